// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// Guest layout of the network tests' driver: both queues' rings, then a
// fixed buffer of nBufStride bytes for every descriptor of each queue.
const (
	nQ                         = MaxQueueSize
	nRxDesc, nRxAvail, nRxUsed = 0x1000, 0x2000, 0x3000
	nTxDesc, nTxAvail, nTxUsed = 0x4000, 0x5000, 0x6000
	nBufStride                 = 0x1000
	nRxBufs                    = 0x10000
	nTxBufs                    = nRxBufs + nQ*nBufStride
	nMem                       = nTxBufs + nQ*nBufStride
)

var (
	guestMAC = link.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	otherMAC = link.MAC{0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF}
)

// A node's port can be the device's uplink.
var _ Uplink = link.Link(nil)

// captureUplink records what the device transmits.
type captureUplink struct {
	frames [][]byte
	keep   bool // copy the frames into frames
	count  int
	bytes  int
	err    error
	check  func(frame []byte) // called on every frame, if set
}

func (u *captureUplink) Transmit(frame []byte) error {
	u.count++
	u.bytes += len(frame)
	if u.check != nil {
		u.check(frame)
	}
	if u.keep {
		u.frames = append(u.frames, bytes.Clone(frame))
	}
	return u.err
}

// drvQueue is one virtqueue as the test driver keeps it.
type drvQueue struct {
	index             uint32
	num               uint16
	desc, avail, used uint64
	bufs              uint64 // descriptor i's buffer is at bufs+i*nBufStride
	availIdx, seen    uint16
	free              []uint16
}

func (q *drvQueue) reset(num uint16) {
	q.num, q.availIdx, q.seen = num, 0, 0
	q.free = q.free[:0]
	for i := int(num) - 1; i >= 0; i-- {
		q.free = append(q.free, uint16(i))
	}
}

func (q *drvQueue) alloc(t *testing.T) uint16 {
	if len(q.free) == 0 {
		t.Fatalf("queue %d: out of descriptors", q.index)
	}
	i := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	return i
}

func (q *drvQueue) buf(i uint16) uint64 { return q.bufs + uint64(i)*nBufStride }

func (q *drvQueue) setDesc(mem flat, i uint16, addr uint64, n uint32, flags, next uint16) {
	e := mem[q.desc+16*uint64(i):]
	binary.LittleEndian.PutUint64(e, addr)
	binary.LittleEndian.PutUint32(e[8:], n)
	binary.LittleEndian.PutUint16(e[12:], flags)
	binary.LittleEndian.PutUint16(e[14:], next)
}

// offer makes chain head available (without notifying).
func (q *drvQueue) offer(mem flat, head uint16) {
	binary.LittleEndian.PutUint16(mem[q.avail+4+2*uint64(q.availIdx%q.num):], head)
	q.availIdx++
	binary.LittleEndian.PutUint16(mem[q.avail+2:], q.availIdx)
}

// nextUsed takes the next used-ring entry, if the device wrote one.
func (q *drvQueue) nextUsed(mem flat) (head uint16, n uint32, ok bool) {
	if binary.LittleEndian.Uint16(mem[q.used+2:]) == q.seen {
		return 0, 0, false
	}
	e := mem[q.used+4+8*uint64(q.seen%q.num):]
	q.seen++
	return uint16(binary.LittleEndian.Uint32(e)), binary.LittleEndian.Uint32(e[4:]), true
}

func (q *drvQueue) usedIdx(mem flat) uint16 { return binary.LittleEndian.Uint16(mem[q.used+2:]) }

// release puts chain head's descriptors back on the free list.
func (q *drvQueue) release(mem flat, head uint16) {
	for i := head; ; {
		q.free = append(q.free, i)
		e := mem[q.desc+16*uint64(i):]
		if binary.LittleEndian.Uint16(e[12:])&spec.DescNext == 0 {
			return
		}
		i = binary.LittleEndian.Uint16(e[14:])
	}
}

// readChain gathers up to n bytes the device wrote into chain head.
func (q *drvQueue) readChain(mem flat, head uint16, n uint32, out []byte) []byte {
	for i := head; n > 0; {
		e := mem[q.desc+16*uint64(i):]
		addr, l := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:])
		k := min(l, n)
		out = append(out, mem[addr:addr+uint64(k)]...)
		n -= k
		if binary.LittleEndian.Uint16(e[12:])&spec.DescNext == 0 {
			break
		}
		i = binary.LittleEndian.Uint16(e[14:])
	}
	return out
}

// netDriver plays the guest's virtio_net driver over the MMIO registers
// and the tests' flat guest memory.
type netDriver struct {
	t      *testing.T
	mem    flat
	dev    *Device
	net    *Net
	up     *captureUplink
	rx, tx drvQueue
	merge  bool
	irq    bool
	// async leaves queue work to the device's worker (Run).
	async bool
}

// newNetDriver makes a device from cfg (its uplink a captureUplink
// unless set) on flat memory, seen by the device through wrap if given.
func newNetDriver(t *testing.T, cfg NetConfig, wrap func(flat) devices.GuestMemory) *netDriver {
	t.Helper()
	up := &captureUplink{keep: true}
	if cfg.Uplink == nil {
		cfg.Uplink = up
	}
	if cfg.MAC == (link.MAC{}) {
		cfg.MAC = guestMAC
	}
	n, err := NewNet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &netDriver{t: t, mem: make(flat, nMem), net: n, up: up,
		rx: drvQueue{index: 0, desc: nRxDesc, avail: nRxAvail, used: nRxUsed, bufs: nRxBufs, free: make([]uint16, 0, nQ)},
		tx: drvQueue{index: 1, desc: nTxDesc, avail: nTxAvail, used: nTxUsed, bufs: nTxBufs, free: make([]uint16, 0, nQ)}}
	var mem devices.GuestMemory = d.mem
	if wrap != nil {
		mem = wrap(d.mem)
	}
	d.dev = NewDevice(n, mem, func(l bool) { d.irq = l })
	n.Attach(d.dev)
	return d
}

func (d *netDriver) w(off uint64, v uint32) {
	d.dev.WriteMMIO(off, 4, uint64(v))
	if !d.async {
		for d.dev.Serve() {
		}
	}
}

// deliver hands frame to the device as a NIC would, then lets the
// worker serve the kick.
func (d *netDriver) deliver(frame []byte) bool {
	ok := d.net.Deliver(frame)
	if !d.async {
		for d.dev.Serve() {
		}
	}
	return ok
}

func (d *netDriver) r(off uint64) uint32 { return uint32(d.dev.ReadMMIO(off, 4)) }

// init follows 3.1.1 and 5.1.5 "Device Initialization": features, then
// both queues of num entries, then DRIVER_OK.
func (d *netDriver) init(features uint64, num uint16) {
	d.t.Helper()
	d.merge = features&spec.NetFeatureMergeRxBuf != 0
	d.w(spec.RegStatus, 0)
	writeFeatures(d.w, features)
	if d.r(spec.RegStatus)&spec.StatusFeaturesOK == 0 {
		d.t.Fatalf("features %#x refused", features)
	}
	for _, q := range []*drvQueue{&d.rx, &d.tx} {
		clear(d.mem[q.desc : q.desc+0x3000])
		q.reset(num)
		d.w(spec.RegQueueSel, q.index)
		if d.r(spec.RegQueueNumMax) < uint32(num) {
			d.t.Fatalf("queue %d: %d entries at most", q.index, d.r(spec.RegQueueNumMax))
		}
		setQueue(d.w, q.index, uint32(num), q.desc, q.avail, q.used)
	}
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK|spec.StatusDriverOK)
}

// postRx posts chains receive chains of descs descriptors of size bytes
// each, and notifies the receive queue.
func (d *netDriver) postRx(chains, descs int, size uint32) {
	for range chains {
		d.offerRx(descs, size)
	}
	d.w(spec.RegQueueNotify, spec.NetQueueRx)
}

// offerRx makes one receive chain available, without notifying.
func (d *netDriver) offerRx(descs int, size uint32) {
	q := &d.rx
	head := q.alloc(d.t)
	i := head
	for k := range descs {
		flags, next := uint16(spec.DescWrite), uint16(0)
		if k < descs-1 {
			next = q.alloc(d.t)
			flags |= spec.DescNext
		}
		q.setDesc(d.mem, i, q.buf(i), size, flags, next)
		i = next
	}
	q.offer(d.mem, head)
}

// recv takes the next received packet, if any: its header and frame.
func (d *netDriver) recv() (hdr, frame []byte, ok bool) {
	d.t.Helper()
	q := &d.rx
	head, n, ok := q.nextUsed(d.mem)
	if !ok {
		return nil, nil, false
	}
	pkt := q.readChain(d.mem, head, n, nil)
	q.release(d.mem, head)
	if len(pkt) < netHdrLen {
		d.t.Fatalf("received %d bytes, less than a header", len(pkt))
	}
	num := binary.LittleEndian.Uint16(pkt[spec.NetHdrNumBuffers:])
	if !d.merge && num != 1 {
		d.t.Fatalf("num_buffers %d without mergeable buffers", num)
	}
	for k := uint16(1); k < num; k++ {
		head, n, ok := q.nextUsed(d.mem)
		if !ok {
			d.t.Fatalf("buffer %d of %d missing from the used ring", k+1, num)
		}
		pkt = q.readChain(d.mem, head, n, pkt)
		q.release(d.mem, head)
	}
	return pkt[:netHdrLen], pkt[netHdrLen:], true
}

// send transmits frame with header hdr (nil: zeros), split over
// descriptors as split says: 0 one buffer, 1 header then frame, 2 header
// with 5 bytes of the frame, then up to 100 bytes, then the rest. It
// does not notify.
func (d *netDriver) offerTx(hdr, frame []byte, split int) {
	q := &d.tx
	head := q.alloc(d.t)
	pkt := d.mem[q.buf(head):]
	clear(pkt[:netHdrLen])
	copy(pkt, hdr)
	copy(pkt[netHdrLen:], frame)
	total := netHdrLen + len(frame)
	var cuts [3]int
	parts := cuts[:0]
	switch split {
	case 0:
		parts = append(parts, total)
	case 1:
		parts = append(parts, netHdrLen, total)
	default:
		a := min(netHdrLen+5, total)
		b := min(a+100, total)
		parts = append(parts, a, b, total)
	}
	i, from := head, 0
	for k, to := range parts {
		flags, next := uint16(0), uint16(0)
		if k < len(parts)-1 {
			next = q.alloc(d.t)
			flags = spec.DescNext
		}
		// Every descriptor's bytes are copied to its own buffer.
		copy(d.mem[q.buf(i):], d.mem[q.buf(head)+uint64(from):q.buf(head)+uint64(to)])
		q.setDesc(d.mem, i, q.buf(i), uint32(to-from), flags, next)
		i, from = next, to
	}
	q.offer(d.mem, head)
}

// send transmits one frame and reaps what the device returned.
func (d *netDriver) send(hdr, frame []byte, split int) {
	d.offerTx(hdr, frame, split)
	d.w(spec.RegQueueNotify, spec.NetQueueTx)
	d.reapTx()
}

// reapTx frees the transmit chains the device returned; it returns how
// many.
func (d *netDriver) reapTx() int {
	k := 0
	for {
		head, n, ok := d.tx.nextUsed(d.mem)
		if !ok {
			return k
		}
		if n != 0 {
			d.t.Errorf("transmit chain %d returned with %d bytes written", head, n)
		}
		d.tx.release(d.mem, head)
		k++
	}
}

func (d *netDriver) healthy() {
	d.t.Helper()
	if d.r(spec.RegStatus)&spec.StatusNeedsReset != 0 || d.dev.Errors() != 0 {
		d.t.Fatalf("device broken: status %#x, %d errors", d.r(spec.RegStatus), d.dev.Errors())
	}
}

// ethFrame builds a frame of n bytes (at least a header) from src to dst
// of EtherType t, its payload counting up from seed.
func ethFrame(dst, src link.MAC, t link.EtherType, n int, seed byte) []byte {
	f := make([]byte, n)
	link.PutHeader(f, dst, src, t)
	for i := link.HeaderLen; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}

const allFeatures = spec.FeatureVersion1 | netFeatures

func TestNetConfigSpace(t *testing.T) {
	d := newNetDriver(t, NetConfig{MTU: 9000}, nil)
	if d.r(spec.RegDeviceID) != spec.DeviceNet {
		t.Fatalf("device ID %d", d.r(spec.RegDeviceID))
	}
	d.w(spec.RegDeviceFeatSel, 0)
	lo := uint64(d.r(spec.RegDeviceFeatures))
	d.w(spec.RegDeviceFeatSel, 1)
	offered := lo | uint64(d.r(spec.RegDeviceFeatures))<<32
	for name, f := range map[string]uint64{"VERSION_1": spec.FeatureVersion1, "MAC": spec.NetFeatureMAC,
		"STATUS": spec.NetFeatureStatus, "MTU": spec.NetFeatureMTU, "MRG_RXBUF": spec.NetFeatureMergeRxBuf, "CSUM": spec.NetFeatureCSUM} {
		if offered&f == 0 {
			t.Errorf("%s not offered (%#x)", name, offered)
		}
	}
	if offered&(spec.NetFeatureGuestCSUM|1<<17) != 0 {
		t.Errorf("offers GUEST_CSUM or CTRL_VQ: %#x", offered)
	}
	var mac link.MAC
	for i := range mac {
		mac[i] = byte(d.dev.ReadMMIO(spec.RegConfig+spec.NetConfigMAC+uint64(i), 1))
	}
	if mac != guestMAC {
		t.Errorf("config mac %v, want %v", mac, guestMAC)
	}
	if s := d.dev.ReadMMIO(spec.RegConfig+spec.NetConfigStatus, 2); s != uint64(spec.NetStatusLinkUp) {
		t.Errorf("config status %#x, want link up", s)
	}
	if m := d.dev.ReadMMIO(spec.RegConfig+spec.NetConfigMTU, 2); m != 9000 {
		t.Errorf("config mtu %d, want 9000", m)
	}
	if v := d.dev.ReadMMIO(spec.RegConfig+spec.NetConfigMAC, 4); v != 0x12005452 {
		t.Errorf("4-byte read of mac: %#x", v)
	}
	if v := d.dev.ReadMMIO(spec.RegConfig+spec.NetConfigMTU, 4); v != 0 {
		t.Errorf("read past the configuration: %#x", v)
	}
	for q, want := range []uint32{nQ, nQ, 0} {
		d.w(spec.RegQueueSel, uint32(q))
		if got := d.r(spec.RegQueueNumMax); got != want {
			t.Errorf("queue %d: QueueNumMax %d, want %d", q, got, want)
		}
	}
	if n, _ := NewNet(NetConfig{MAC: guestMAC, Uplink: &captureUplink{}}); n.Status().MTU != link.DefaultMTU {
		t.Errorf("default MTU %d", n.Status().MTU)
	}
}

func TestNetConfigErrors(t *testing.T) {
	up := &captureUplink{}
	for name, cfg := range map[string]NetConfig{
		"zero mac":      {Uplink: up},
		"multicast mac": {MAC: link.MAC{1, 0, 0x5e, 0, 0, 1}, Uplink: up},
		"small mtu":     {MAC: guestMAC, Uplink: up, MTU: 67},
		"huge mtu":      {MAC: guestMAC, Uplink: up, MTU: 70000},
		"no uplink":     {MAC: guestMAC},
		"slots":         {MAC: guestMAC, Uplink: up, RxSlots: -1},
		"burst":         {MAC: guestMAC, Uplink: up, Rate: RateLimit{Burst: -time.Second}},
	} {
		if _, err := NewNet(cfg); !errors.Is(err, ErrNetConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNetRoundTrip: frames go out and come in byte for byte, with or
// without mergeable buffers, in one buffer or split, and the header the
// guest reads says one buffer.
func TestNetRoundTrip(t *testing.T) {
	for _, mode := range []struct {
		name     string
		features uint64
		descs    int
		size     uint32
	}{
		{"small", allFeatures &^ spec.NetFeatureMergeRxBuf, 1, 12 + 1518},
		{"big", allFeatures &^ spec.NetFeatureMergeRxBuf, 3, 600},
		{"mergeable", allFeatures, 1, 1536},
		{"minimal", spec.FeatureVersion1 | spec.NetFeatureMAC, 1, 2048},
	} {
		t.Run(mode.name, func(t *testing.T) {
			d := newNetDriver(t, NetConfig{}, nil)
			d.init(mode.features, 64)
			var sent [][]byte
			for i, n := range []int{14, 60, 61, 1000, 1514} {
				f := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, n, byte(i))
				sent = append(sent, f)
				d.send(nil, f, i%3)
			}
			tagged := ethFrame(otherMAC, guestMAC, 0x8100, 1518, 9)
			binary.BigEndian.PutUint16(tagged[16:], uint16(link.EtherTypeIPv6))
			d.send(nil, tagged, 2)
			sent = append(sent, tagged)
			if len(d.up.frames) != len(sent) {
				t.Fatalf("uplink got %d frames, want %d (%+v)", len(d.up.frames), len(sent), d.net.Status().Drops)
			}
			for i := range sent {
				if !bytes.Equal(d.up.frames[i], sent[i]) {
					t.Errorf("frame %d: sent %x..., uplink got %x...", i, sent[i][:16], d.up.frames[i][:16])
				}
			}

			d.postRx(16, mode.descs, mode.size)
			var in [][]byte
			for i, dst := range []link.MAC{guestMAC, link.Broadcast, {0x33, 0x33, 0, 0, 0, 1}, guestMAC} {
				f := ethFrame(dst, otherMAC, link.EtherTypeIPv6, []int{14, 60, 777, 1514}[i], byte(40+i))
				in = append(in, f)
				if !d.deliver(f) {
					t.Fatalf("frame %d not taken", i)
				}
			}
			for i := range in {
				hdr, f, ok := d.recv()
				if !ok {
					t.Fatalf("frame %d not received (%+v)", i, d.net.Status())
				}
				want := make([]byte, netHdrLen)
				want[spec.NetHdrNumBuffers] = 1
				if !bytes.Equal(hdr, want) || !bytes.Equal(f, in[i]) {
					t.Errorf("frame %d: header %x, frame %d bytes %x..., want %d bytes %x...", i, hdr, len(f), f[:min(16, len(f))], len(in[i]), in[i][:16])
				}
			}
			st := d.net.Status()
			if st.TxFrames != uint64(len(sent)) || st.RxFrames != uint64(len(in)) || st.TxBytes != 14+60+61+1000+1514+1518 || st.RxBytes != 14+60+777+1514 {
				t.Errorf("status %+v", st)
			}
			if st.Drops != ([NumNetDrops]uint64{}) || st.RxQueued != 0 {
				t.Errorf("drops %v, %d queued", st.Drops, st.RxQueued)
			}
			d.healthy()
			if !d.irq {
				t.Error("no interrupt")
			}
		})
	}
}

// usedWatch is guest memory that records every value written to one
// used index.
type usedWatch struct {
	flat
	at     uint64
	values []uint16
}

func (m *usedWatch) WriteAt(p []byte, a uint64) error {
	if err := m.flat.WriteAt(p, a); err != nil {
		return err
	}
	if a == m.at && len(p) == 2 {
		m.values = append(m.values, binary.LittleEndian.Uint16(p))
	}
	return nil
}

// TestNetMergeable: with VIRTIO_NET_F_MRG_RXBUF a frame spreads over
// small buffers, num_buffers says how many, and the driver sees them all
// at once; a frame waits for buffers when too few are posted.
func TestNetMergeable(t *testing.T) {
	var watch *usedWatch
	d := newNetDriver(t, NetConfig{}, func(m flat) devices.GuestMemory {
		watch = &usedWatch{flat: m, at: nRxUsed + 2}
		return watch
	})
	d.init(allFeatures, 64)
	f := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 1514, 7)
	d.postRx(3, 1, 256) // 768 bytes: too few for 1526
	if !d.deliver(f) {
		t.Fatal("not taken")
	}
	if d.rx.usedIdx(d.mem) != 0 || d.net.Status().RxQueued != 1 {
		t.Fatalf("used %d, %d queued: the frame should wait", d.rx.usedIdx(d.mem), d.net.Status().RxQueued)
	}
	d.postRx(4, 1, 256) // 7 buffers: 1792 bytes
	hdr, got, ok := d.recv()
	if !ok || !bytes.Equal(got, f) {
		t.Fatalf("received %v: %d bytes", ok, len(got))
	}
	if num := binary.LittleEndian.Uint16(hdr[spec.NetHdrNumBuffers:]); num != 6 {
		t.Errorf("num_buffers %d, want 6 (1526 bytes in 256-byte buffers)", num)
	}
	if len(watch.values) != 1 || watch.values[0] != 6 {
		t.Errorf("used index went through %v, want straight to 6", watch.values)
	}
	// Used lengths: five full buffers and the rest.
	for k := range uint16(6) {
		e := d.mem[nRxUsed+4+8*uint64(k):]
		want := uint32(256)
		if k == 5 {
			want = 1526 - 5*256
		}
		if l := binary.LittleEndian.Uint32(e[4:]); l != want {
			t.Errorf("used entry %d: %d bytes, want %d", k, l, want)
		}
	}
	// A frame that fits one buffer takes one.
	small := ethFrame(link.Broadcast, otherMAC, link.EtherTypeARP, 60, 1)
	d.deliver(small)
	hdr, got, ok = d.recv()
	if !ok || !bytes.Equal(got, small) || binary.LittleEndian.Uint16(hdr[spec.NetHdrNumBuffers:]) != 1 {
		t.Errorf("small frame: %v %x", ok, hdr)
	}
	d.healthy()
}

// TestNetNumBuffersWithoutMerge: without mergeable buffers the device
// still writes the whole 12-byte header, num_buffers 1, whatever the
// buffer held before.
func TestNetNumBuffersWithoutMerge(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.init(spec.FeatureVersion1|spec.NetFeatureMAC, 8)
	for i := range uint64(8) {
		for k := range uint64(netHdrLen) {
			d.mem[d.rx.buf(uint16(i))+k] = 0xFF
		}
	}
	d.postRx(1, 1, 1600)
	d.deliver(ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 100, 0))
	hdr, _, ok := d.recv()
	want := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	if !ok || !bytes.Equal(hdr, want) {
		t.Errorf("header %x, want %x", hdr, want)
	}
}

// TestNetTransmitDrops: frames the device must not send are dropped and
// counted, their chains returned, and the queue goes on.
func TestNetTransmitDrops(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.init(allFeatures, 16)
	good := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 100, 0)
	vlanCluster := ethFrame(otherMAC, guestMAC, 0x8100, 100, 0)
	binary.BigEndian.PutUint16(vlanCluster[16:], uint16(link.EtherTypeCluster))
	qinqCluster := ethFrame(otherMAC, guestMAC, 0x88A8, 100, 0)
	binary.BigEndian.PutUint16(qinqCluster[16:], 0x8100)
	binary.BigEndian.PutUint16(qinqCluster[20:], uint16(link.EtherTypeCluster))
	truncatedTag := ethFrame(otherMAC, guestMAC, 0x8100, 16, 0)
	gso := make([]byte, netHdrLen)
	gso[spec.NetHdrGSOType] = 1 // TCPv4: not offered
	badCsum := make([]byte, netHdrLen)
	badCsum[spec.NetHdrFlags] = spec.NetHdrNeedsCsum
	binary.LittleEndian.PutUint16(badCsum[spec.NetHdrCsumStart:], 95)
	binary.LittleEndian.PutUint16(badCsum[spec.NetHdrCsumOffset:], 4)
	for _, c := range []struct {
		name  string
		hdr   []byte
		frame []byte
		want  NetDrop
	}{
		{"bad source", nil, ethFrame(otherMAC, otherMAC, link.EtherTypeIPv4, 100, 0), DropTxBadSource},
		{"cluster", nil, ethFrame(otherMAC, guestMAC, link.EtherTypeCluster, 100, 0), DropTxCluster},
		{"vlan cluster", nil, vlanCluster, DropTxCluster},
		{"qinq cluster", nil, qinqCluster, DropTxCluster},
		{"oversize", nil, ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 1515, 0), DropTxTooLong},
		{"oversize tagged", nil, ethFrame(otherMAC, guestMAC, 0x8100, 1519, 0), DropTxTooLong},
		{"short", nil, good[:13], DropTxTooShort},
		{"truncated tag", nil, truncatedTag, DropTxTooShort},
		{"gso", gso, good, DropTxBadChain},
		{"checksum outside", badCsum, good, DropTxBadChain},
	} {
		before := d.net.Status()
		d.send(c.hdr, c.frame, 1)
		after := d.net.Status()
		if after.Drops[c.want] != before.Drops[c.want]+1 || after.TxFrames != before.TxFrames {
			t.Errorf("%s: drops %v, want one more %v", c.name, after.Drops, c.want)
		}
		d.send(nil, good, 0)
		if d.net.Status().TxFrames != after.TxFrames+1 {
			t.Errorf("%s: the next good frame did not go", c.name)
		}
	}
	// Chains of a bad shape: a device-writable buffer, one outside guest
	// memory, an absurd length, no buffer at all but an empty one.
	for _, c := range []struct {
		name   string
		addr   uint64
		length uint32
		flags  uint16
		want   NetDrop
	}{
		{"writable", d.tx.buf(0), 112, spec.DescWrite, DropTxBadChain},
		{"outside memory", nMem - 50, 112, 0, DropTxBadChain},
		{"absurd", d.tx.buf(0), 0xFFFFFFF0, 0, DropTxTooLong},
		{"empty", d.tx.buf(0), 0, 0, DropTxTooShort},
	} {
		before := d.net.Status()
		head := d.tx.alloc(t)
		d.tx.setDesc(d.mem, head, c.addr, c.length, c.flags, 0)
		d.tx.offer(d.mem, head)
		d.w(spec.RegQueueNotify, spec.NetQueueTx)
		if d.reapTx() != 1 {
			t.Errorf("%s: chain not returned", c.name)
		}
		if d.net.Status().Drops[c.want] != before.Drops[c.want]+1 {
			t.Errorf("%s: drops %v, want one more %v", c.name, d.net.Status().Drops, c.want)
		}
	}
	d.healthy()
	for _, f := range d.up.frames {
		if !bytes.Equal(f, good) {
			t.Fatalf("uplink got %x...", f[:16])
		}
	}
	d.up.err = link.ErrDown
	d.send(nil, good, 0)
	if st := d.net.Status(); st.Drops[DropTxUplink] != 1 {
		t.Errorf("uplink error not counted: %v", st.Drops)
	}
}

// TestNetReceiveFilter: the guest receives its own unicast, broadcast
// and multicast; other unicast, the cluster's EtherType and bad lengths
// are dropped and counted.
func TestNetReceiveFilter(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	vlanCluster := ethFrame(link.Broadcast, otherMAC, 0x8100, 100, 0)
	binary.BigEndian.PutUint16(vlanCluster[16:], uint16(link.EtherTypeCluster))
	for _, c := range []struct {
		name  string
		frame []byte
		want  NetDrop
	}{
		{"ours", ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 60, 0), noDrop},
		{"broadcast", ethFrame(link.Broadcast, otherMAC, link.EtherTypeARP, 60, 0), noDrop},
		{"multicast", ethFrame(link.MAC{1, 0, 0x5e, 0, 0, 0xfb}, otherMAC, link.EtherTypeIPv4, 60, 0), noDrop},
		{"tagged full size", ethFrame(guestMAC, otherMAC, 0x8100, 1518, 0), noDrop},
		{"other unicast", ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 60, 0), DropRxNotForGuest},
		{"cluster", ethFrame(link.Broadcast, otherMAC, link.EtherTypeCluster, 60, 0), DropRxCluster},
		{"vlan cluster", vlanCluster, DropRxCluster},
		{"short", make([]byte, 13), DropRxBadLength},
		{"long", ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 1515, 0), DropRxBadLength},
		{"long tagged", ethFrame(guestMAC, otherMAC, 0x8100, 1519, 0), DropRxBadLength},
	} {
		before := d.net.Status()
		took := d.net.Deliver(c.frame)
		after := d.net.Status()
		if took != (c.want == noDrop) {
			t.Errorf("%s: taken %v", c.name, took)
		}
		if c.want != noDrop && after.Drops[c.want] != before.Drops[c.want]+1 {
			t.Errorf("%s: drops %v, want one more %v", c.name, after.Drops, c.want)
		}
	}
	if st := d.net.Status(); st.RxQueued != 4 {
		t.Errorf("%d frames queued, want 4", st.RxQueued)
	}
}

// TestNetRingOverflow: with no buffers posted, frames wait in the ring
// until it is full, then are dropped and counted; posting buffers
// delivers those waiting, in order.
func TestNetRingOverflow(t *testing.T) {
	d := newNetDriver(t, NetConfig{RxSlots: 4}, nil)
	d.init(allFeatures, 16)
	for i := range 6 {
		took := d.deliver(ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 60, byte(i)))
		if took != (i < 4) {
			t.Errorf("frame %d: taken %v", i, took)
		}
	}
	if st := d.net.Status(); st.Drops[DropRxRingFull] != 2 || st.RxQueued != 4 {
		t.Fatalf("%d dropped, %d queued; want 2, 4", st.Drops[DropRxRingFull], st.RxQueued)
	}
	d.postRx(8, 1, 2048)
	for i := range 4 {
		_, f, ok := d.recv()
		if !ok || f[link.HeaderLen] != byte(i)+link.HeaderLen {
			t.Fatalf("frame %d: %v %x", i, ok, f)
		}
	}
	if _, _, ok := d.recv(); ok {
		t.Error("a dropped frame arrived")
	}
	if st := d.net.Status(); st.RxQueued != 0 || st.RxFrames != 4 {
		t.Errorf("status %+v", st)
	}
}

// fakeClock is a rate limit's clock that tests move.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time           { return c.t }
func (c *fakeClock) advance(dt time.Duration) { c.t = c.t.Add(dt) }

// TestNetRateLimit: frames over the rate are dropped and counted, tokens
// refill with the clock up to the burst, and a clock that goes back
// refills nothing.
func TestNetRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	d := newNetDriver(t, NetConfig{Now: clock.now, Rate: RateLimit{FramesPerSecond: 100, BytesPerSecond: -1, Burst: 50 * time.Millisecond}}, nil)
	d.init(allFeatures, 16)
	f := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 60, 0)
	burst := func(k int) (sent int) {
		before := d.up.count
		for range k {
			d.send(nil, f, 0)
		}
		return d.up.count - before
	}
	if n := burst(8); n != 5 {
		t.Errorf("first burst: %d sent, want 5", n)
	}
	clock.advance(10 * time.Millisecond) // one frame's worth
	if n := burst(3); n != 1 {
		t.Errorf("after 10ms: %d sent, want 1", n)
	}
	clock.advance(-time.Second)
	if n := burst(2); n != 0 {
		t.Errorf("clock went back: %d sent, want 0", n)
	}
	clock.advance(time.Hour)
	if n := burst(9); n != 5 {
		t.Errorf("after an hour: %d sent, want the burst of 5", n)
	}
	if st := d.net.Status(); st.Drops[DropTxRateLimited] != 3+2+2+4 || st.TxFrames != 11 {
		t.Errorf("rate limited %d, sent %d", st.Drops[DropTxRateLimited], st.TxFrames)
	}

	// Bytes: 10 kB/s with a burst of 100 ms is a bucket of one
	// full-size frame (1518 bytes, more than the 1000 of the burst).
	d = newNetDriver(t, NetConfig{Now: clock.now, Rate: RateLimit{FramesPerSecond: -1, BytesPerSecond: 10000, Burst: 100 * time.Millisecond}}, nil)
	d.init(allFeatures, 16)
	big := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 1514, 0)
	f = big
	if n := burst(2); n != 1 {
		t.Errorf("bytes: %d sent, want 1", n)
	}
	clock.advance(100 * time.Millisecond) // 1000 bytes back
	if n := burst(1); n != 0 {
		t.Errorf("bytes after 100ms: %d sent, want 0", n)
	}
	clock.advance(60 * time.Millisecond) // 1600 in all, capped at 1518
	if n := burst(2); n != 1 {
		t.Errorf("bytes after 160ms: %d sent, want 1", n)
	}
	// The default limit lets a plain burst through.
	d = newNetDriver(t, NetConfig{Now: clock.now}, nil)
	d.init(allFeatures, 16)
	if n := burst(200); n != 200 {
		t.Errorf("default limit: %d of 200 sent", n)
	}
}

// TestNetBudget: thousands of chains behind notifications are served a
// budget at a time, every round coming back for the rest, in order.
func TestNetBudget(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.init(allFeatures, nQ)
	d.async = true // serve by hand, round by round
	d.up.keep = false
	var seq uint32
	d.up.check = func(f []byte) {
		if got := binary.BigEndian.Uint32(f[link.HeaderLen:]); got != seq {
			t.Fatalf("frame %d went out as %d", got, seq)
		}
		seq++
	}
	f := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 64, 0)
	const batches = 16
	for b := range batches {
		for i := range nQ {
			binary.BigEndian.PutUint32(f[link.HeaderLen:], uint32(b*nQ+i))
			d.offerTx(nil, f, 0)
		}
		d.w(spec.RegQueueNotify, spec.NetQueueTx)
		rounds := d.serveRounds(t, &d.tx, nQ)
		if rounds != nQ/roundChains {
			t.Fatalf("batch %d: %d rounds, want %d", b, rounds, nQ/roundChains)
		}
		d.reapTx()
	}
	if seq != batches*nQ {
		t.Fatalf("%d frames out, want %d", seq, batches*nQ)
	}

	// Receive: a full ring of frames, a full queue of buffers.
	for b := range 8 {
		for i := range nQ {
			binary.BigEndian.PutUint32(f[link.HeaderLen:], uint32(b*nQ+i))
			copy(f, guestMAC[:])
			if !d.net.Deliver(f) {
				t.Fatalf("frame %d not taken", b*nQ+i)
			}
		}
		for range nQ {
			d.offerRx(1, 2048)
		}
		d.w(spec.RegQueueNotify, spec.NetQueueRx)
		if rounds := d.serveRounds(t, &d.rx, nQ); rounds != nQ/roundChains {
			t.Fatalf("receive batch %d: %d rounds, want %d", b, rounds, nQ/roundChains)
		}
		for i := range nQ {
			_, got, ok := d.recv()
			if !ok || binary.BigEndian.Uint32(got[link.HeaderLen:]) != uint32(b*nQ+i) {
				t.Fatalf("receive batch %d: frame %d: %v", b, i, ok)
			}
		}
	}
	d.healthy()
}

// serveRounds serves rounds until the device has no more to do; every
// round but the last must return exactly roundChains of q's chains. It
// returns the number of rounds and checks total chains were returned.
func (d *netDriver) serveRounds(t *testing.T, q *drvQueue, total int) int {
	t.Helper()
	rounds := 0
	start := q.usedIdx(d.mem)
	for {
		before := q.usedIdx(d.mem)
		more := d.dev.Serve()
		rounds++
		got := int(q.usedIdx(d.mem) - before)
		if more && got != roundChains {
			t.Fatalf("round %d returned %d chains, want the budget's %d", rounds, got, roundChains)
		}
		if !more {
			if got != 0 && got > roundChains {
				t.Fatalf("last round returned %d chains", got)
			}
			if got == 0 {
				rounds--
			}
			break
		}
	}
	if n := int(q.usedIdx(d.mem) - start); n != total {
		t.Fatalf("%d chains returned, want %d", n, total)
	}
	return rounds
}

// TestNetAllocations: neither Deliver nor the transmit and receive
// paths allocate per frame.
func TestNetAllocations(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.up.keep = false
	d.init(allFeatures, 64)
	tx := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 1514, 0)
	rx := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 1514, 0)
	if n := testing.AllocsPerRun(200, func() { d.send(nil, tx, 2) }); n != 0 {
		t.Errorf("transmit: %v allocations per frame", n)
	}
	if d.up.count < 200 {
		t.Fatalf("only %d frames went out", d.up.count)
	}
	d.postRx(32, 1, 2048)
	if n := testing.AllocsPerRun(200, func() {
		if !d.net.Deliver(rx) {
			t.Fatal("not taken")
		}
		d.recvDiscard()
		d.offerRx(1, 2048)
		d.w(spec.RegQueueNotify, spec.NetQueueRx)
	}); n != 0 {
		t.Errorf("receive: %v allocations per frame", n)
	}
	if d.net.Status().RxFrames < 200 {
		t.Fatalf("only %d frames came in", d.net.Status().RxFrames)
	}
	// Deliver alone, the ring full and not.
	if n := testing.AllocsPerRun(1000, func() { d.net.Deliver(rx) }); n != 0 {
		t.Errorf("Deliver: %v allocations per frame", n)
	}
	if d.net.Status().Drops[DropRxRingFull] == 0 {
		t.Error("the ring never filled")
	}
}

// recvDiscard takes every received packet without looking at it (nor
// allocating).
func (d *netDriver) recvDiscard() {
	for {
		head, _, ok := d.rx.nextUsed(d.mem)
		if !ok {
			return
		}
		d.rx.release(d.mem, head)
	}
}

// TestNetWaitingMemory: while the worker waits for guest memory (a page
// on another node), Deliver neither waits nor touches guest memory; the
// frames arrive when the memory answers.
func TestNetWaitingMemory(t *testing.T) {
	gate := make(chan struct{})
	var accesses atomic.Int64
	var open sync.Once
	defer open.Do(func() { close(gate) }) // before the worker is stopped, should the test fail
	d := newNetDriver(t, NetConfig{RxSlots: 8}, func(m flat) devices.GuestMemory {
		return waitingMemory{m, gate, &accesses}
	})
	d.async = true
	d.init(allFeatures, 16)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { d.dev.Run(stop); close(done) }()
	defer func() { close(stop); <-done }()
	for range 8 {
		d.offerRx(1, 2048)
	}
	d.w(spec.RegQueueNotify, spec.NetQueueRx) // nothing to receive yet
	d.net.Deliver(ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 100, 0))
	for accesses.Load() == 0 { // the worker now waits for memory
		time.Sleep(time.Millisecond)
	}
	delivered := make(chan int)
	go func() {
		taken := 0
		for i := 1; i < 20; i++ {
			if d.net.Deliver(ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 100, byte(i))) {
				taken++
			}
		}
		delivered <- taken
	}()
	select {
	case taken := <-delivered:
		if taken != 7 {
			t.Errorf("%d frames taken into a ring of 8 holding one", taken)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver waited for the worker's guest memory")
	}
	if n := accesses.Load(); n != 1 {
		t.Errorf("%d guest memory accesses while it waited", n)
	}
	open.Do(func() { close(gate) })
	deadline := time.Now().Add(10 * time.Second)
	for d.net.Status().RxFrames < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("frames not delivered after the memory answered: %+v", d.net.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNetReset: a reset drops the frames waiting in the ring and keeps
// the counters; the next driver receives what comes after.
func TestNetReset(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.init(allFeatures, 16)
	d.send(nil, ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 60, 0), 0)
	for i := range 3 {
		d.deliver(ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 60, byte(i)))
	}
	d.w(spec.RegStatus, 0)
	d.init(allFeatures, 16)
	fresh := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 60, 9)
	d.deliver(fresh)
	d.postRx(4, 1, 2048)
	_, got, ok := d.recv()
	if !ok || !bytes.Equal(got, fresh) {
		t.Fatalf("after reset received %v %x", ok, got)
	}
	if _, _, ok := d.recv(); ok {
		t.Error("a frame from before the reset arrived")
	}
	st := d.net.Status()
	if st.Drops[DropRxReset] != 3 || st.TxFrames != 1 || st.RxFrames != 1 {
		t.Errorf("status %+v", st)
	}
}

// TestNetChecksum: with VIRTIO_NET_F_CSUM the guest leaves a UDP
// checksum partial and the device completes it; filters look at the
// frame as completed.
func TestNetChecksum(t *testing.T) {
	d := newNetDriver(t, NetConfig{}, nil)
	d.init(allFeatures, 16)
	for _, size := range []int{8, 9, 100, 1472} {
		f, hdr := udpPartial(size)
		d.send(hdr, f, 2)
		out := d.up.frames[len(d.up.frames)-1]
		if !udpChecksumOK(out) {
			t.Errorf("UDP payload %d: checksum %#x does not verify", size, binary.BigEndian.Uint16(out[40:]))
		}
		want := udpReference(f)
		if got := binary.BigEndian.Uint16(out[40:]); got != want {
			t.Errorf("UDP payload %d: checksum %#x, want %#x", size, got, want)
		}
		if !bytes.Equal(out[:40], f[:40]) || !bytes.Equal(out[42:], f[42:]) {
			t.Errorf("UDP payload %d: bytes besides the checksum changed", size)
		}
	}
	// A checksum field placed over the EtherType: the completed frame
	// is of the cluster's type, and dropped.
	f := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 60, 3)
	binary.BigEndian.PutUint16(f[12:], 0)
	rest := onesSum(f)
	binary.BigEndian.PutUint16(f[12:], onesAdd(^uint16(link.EtherTypeCluster), ^rest))
	hdr := make([]byte, netHdrLen)
	hdr[spec.NetHdrFlags] = spec.NetHdrNeedsCsum
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrCsumOffset:], 12)
	d.send(hdr, f, 0)
	if st := d.net.Status(); st.Drops[DropTxCluster] != 1 {
		t.Errorf("a checksum that makes the cluster's EtherType went out: %v", st.Drops)
	}
}

// udpPartial builds an IPv4 UDP frame with payload bytes and the header
// Linux sends it with under VIRTIO_NET_F_CSUM: the checksum field holds
// the pseudo-header's sum, csum_start and csum_offset point at it.
func udpPartial(payload int) (frame, hdr []byte) {
	f := ethFrame(otherMAC, guestMAC, link.EtherTypeIPv4, 14+20+8+payload, byte(payload))
	ip := f[14:]
	ip[0], ip[9] = 0x45, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 5353)
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payload))
	binary.BigEndian.PutUint16(udp[6:], udpPseudoSum(ip))
	hdr = make([]byte, netHdrLen)
	hdr[spec.NetHdrFlags] = spec.NetHdrNeedsCsum
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrCsumStart:], 34)
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrCsumOffset:], 6)
	return f, hdr
}

// udpPseudoSum is the folded sum of the IPv4 pseudo-header of ip's UDP
// datagram (RFC 768).
func udpPseudoSum(ip []byte) uint16 {
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	s += 17 + uint32(binary.BigEndian.Uint16(ip[20+4:]))
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	return uint16(s)
}

// udpReference computes the checksum of frame's UDP datagram the long
// way: pseudo-header, header with a zero checksum, data, byte by byte.
func udpReference(frame []byte) uint16 {
	ip := frame[14:]
	udp := append([]byte(nil), ip[20:]...)
	udp[6], udp[7] = 0, 0
	var s uint32
	words := append(append([]byte{}, ip[12:20]...), 0, 17, ip[24], ip[25])
	words = append(words, udp...)
	if len(words)%2 == 1 {
		words = append(words, 0)
	}
	for i := 0; i < len(words); i += 2 {
		s += uint32(words[i])<<8 | uint32(words[i+1])
	}
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	if c := ^uint16(s); c != 0 {
		return c
	}
	return 0xFFFF
}

// udpChecksumOK verifies frame's UDP checksum as a receiver does.
func udpChecksumOK(frame []byte) bool {
	ip := frame[14:]
	udp := ip[20:]
	return onesAdd(udpPseudoSum(ip), onesSum(udp)) == 0xFFFF
}

// TestNetHostileReceiveChains: receive chains of a bad shape go back
// unused or take the frame with them; none breaks the queue or gets a
// byte written where it may not.
func TestNetHostileReceiveChains(t *testing.T) {
	for _, c := range []struct {
		name     string
		features uint64
		post     func(d *netDriver)
		dropped  NetDrop
		bad      uint64
	}{
		{"read-only", allFeatures &^ spec.NetFeatureMergeRxBuf, func(d *netDriver) {
			head := d.rx.alloc(d.t)
			d.rx.setDesc(d.mem, head, d.rx.buf(head), 2048, 0, 0)
			d.rx.offer(d.mem, head)
			d.offerRx(1, 2048)
		}, noDrop, 1},
		{"smaller than a header", allFeatures, func(d *netDriver) {
			d.offerRx(1, 11)
			d.offerRx(1, 2048)
		}, noDrop, 1},
		{"bad after good", allFeatures, func(d *netDriver) {
			d.offerRx(1, 64)
			d.offerRx(1, 4)
			d.offerRx(1, 2048)
		}, DropRxBadChain, 1},
		{"outside memory", allFeatures, func(d *netDriver) {
			head := d.rx.alloc(d.t)
			d.rx.setDesc(d.mem, head, nMem-100, 2048, spec.DescWrite, 0)
			d.rx.offer(d.mem, head)
			d.offerRx(1, 2048)
		}, DropRxBadChain, 1},
		{"too small without merging", allFeatures &^ spec.NetFeatureMergeRxBuf, func(d *netDriver) {
			d.offerRx(1, 100)
		}, DropRxBufferTooSmall, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newNetDriver(t, NetConfig{}, nil)
			d.init(c.features, 8)
			first := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 1000, 1)
			second := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 60, 2)
			d.deliver(first)
			d.deliver(second)
			c.post(d)
			d.w(spec.RegQueueNotify, spec.NetQueueRx)
			d.postRx(2, 1, 2048)
			want := [][]byte{first, second}
			if c.dropped != noDrop {
				want = want[1:]
			}
			var got [][]byte
			for {
				head, n, ok := d.rx.nextUsed(d.mem)
				if !ok {
					break
				}
				if n != 0 {
					pkt := d.rx.readChain(d.mem, head, n, nil)
					got = append(got, pkt[netHdrLen:])
				}
				d.rx.release(d.mem, head)
			}
			if len(got) != len(want) {
				t.Fatalf("received %d frames, want %d (%+v)", len(got), len(want), d.net.Status())
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("frame %d differs", i)
				}
			}
			st := d.net.Status()
			if c.dropped != noDrop && st.Drops[c.dropped] != 1 || st.RxBadChains != c.bad {
				t.Errorf("drops %v, %d bad chains", st.Drops, st.RxBadChains)
			}
			d.healthy()
		})
	}
}

func TestNetDropNames(t *testing.T) {
	seen := map[string]bool{}
	for d := range NumNetDrops {
		s := d.String()
		if s == "" || seen[s] {
			t.Errorf("drop %d named %q", int(d), s)
		}
		seen[s] = true
	}
	if s := NumNetDrops.String(); s != fmt.Sprintf("NetDrop(%d)", int(NumNetDrops)) {
		t.Errorf("out of range: %q", s)
	}
}

// TestNetRingConcurrent: producers and the consumer of the receive ring,
// and resets, run at once (go test -race checks the lock rule): every
// frame taken comes out whole, each producer's in order, or is counted
// dropped by a reset.
func TestNetRingConcurrent(t *testing.T) {
	n, err := NewNet(NetConfig{MAC: guestMAC, Uplink: &captureUplink{}, RxSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	const producers, frames = 2, 3000
	var taken [producers]atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := ethFrame(guestMAC, otherMAC, link.EtherTypeIPv4, 64+p*100, byte(p))
			for seq := 0; seq < frames; {
				f[14], f[15] = byte(p), byte(seq>>8)
				f[16] = byte(seq)
				f[len(f)-1] = byte(seq) ^ 0x5A
				if n.Deliver(f) {
					taken[p].Add(1)
					seq++
				} else {
					runtime.Gosched()
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		for range 20 {
			time.Sleep(time.Millisecond)
			n.Reset()
		}
	}()
	produced := make(chan struct{})
	go func() { wg.Wait(); close(produced) }()
	finished := func() bool {
		select {
		case <-produced:
		default:
			return false
		}
		<-stop
		return true
	}
	var last [producers]int
	last[0], last[1] = -1, -1
	consumed := int64(0)
	for done := false; !done; {
		done = finished() // then drain once more
		for {
			if k := n.ring.applyReset(); k > 0 {
				n.c.drops[DropRxReset].Add(k)
			}
			pkt, ok := n.ring.peek()
			if !ok {
				break
			}
			f := pkt[netHdrLen:]
			p, seq := int(f[14]), int(f[15])<<8|int(f[16])
			if p >= producers || len(f) != 64+p*100 || f[len(f)-1] != byte(seq)^0x5A || seq <= last[p] {
				t.Fatalf("frame from %d, seq %d after %d, %d bytes: torn or out of order", p, seq, last[p], len(f))
			}
			last[p] = seq
			consumed++
			n.ring.pop()
		}
	}
	if k := n.ring.applyReset(); k > 0 {
		n.c.drops[DropRxReset].Add(k)
	}
	st := n.Status()
	if got := consumed + int64(st.Drops[DropRxReset]) + int64(st.RxQueued); got != taken[0].Load()+taken[1].Load() {
		t.Errorf("%d consumed + %d reset + %d queued, %d taken", consumed, st.Drops[DropRxReset], st.RxQueued, taken[0].Load()+taken[1].Load())
	}
}
