// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// Uplink takes the frames a guest transmits: the node's NIC, a bridge.
// Transmit is called on the device's worker, one frame at a time, with
// a frame that starts with its Ethernet header and has no FCS; it must
// not keep the slice after it returns. A link.Link is an Uplink.
type Uplink interface {
	Transmit(frame []byte) error
}

// netFeatures are the network device's features (5.1.3): the MAC
// address, the link status, the MTU, mergeable receive buffers and
// checksum completion and TCP segmentation (IPv4 and IPv6) on transmit.
// Receive offloads and the control queue are not offered.
const netFeatures = spec.NetFeatureCSUM | spec.NetFeatureMTU | spec.NetFeatureMAC |
	spec.NetFeatureMergeRxBuf | spec.NetFeatureStatus | spec.NetFeatureHostTSO4 | spec.NetFeatureHostTSO6

// netHdrLen is struct virtio_net_hdr with num_buffers, the header of
// every packet under VIRTIO_F_VERSION_1 (5.1.6), which the transport
// requires.
const netHdrLen = spec.NetHdrLen

// Tag protocol identifiers after which a frame's EtherType comes 4
// bytes later (IEEE Std 802.1Q-2018, 9.5 "Tag Protocol Identification").
const (
	tpidCVLAN  link.EtherType = 0x8100 // customer VLAN tag
	tpidSVLAN  link.EtherType = 0x88A8 // service VLAN tag (Q-in-Q)
	tpidLegacy link.EtherType = 0x9100 // pre-standard Q-in-Q, still met
	vlanTagLen                = 4      // TPID and TCI
)

// Receive ring sizes.
const (
	// DefaultRxSlots is the receive ring's size in frames unless
	// NetConfig says otherwise.
	DefaultRxSlots = 256
	// MaxRxSlots bounds NetConfig.RxSlots.
	MaxRxSlots = 1 << 16
)

// Default transmit rate limit: far above what a guest's virtual NIC
// needs, low enough that a runaway guest cannot take a node's 10 Gbit/s
// link for itself.
const (
	DefaultTxFramesPerSecond = 200_000
	DefaultTxBytesPerSecond  = 1_000_000_000
	DefaultTxBurst           = 50 * time.Millisecond
)

// ErrNetConfig is wrapped by NewNet's errors.
var ErrNetConfig = errors.New("virtio-net: invalid configuration")

// RateLimit bounds what a guest transmits with two token buckets, of
// frames and of bytes, each refilled at its rate and holding Burst's
// worth of it (at least one frame of the largest size). A zero field
// takes its default (DefaultTxFramesPerSecond, DefaultTxBytesPerSecond,
// DefaultTxBurst); a negative rate means no limit of that kind.
type RateLimit struct {
	FramesPerSecond float64
	BytesPerSecond  float64
	Burst           time.Duration
}

// NetConfig configures a network device.
type NetConfig struct {
	// MAC is the guest's address: a unicast address, not zero. The
	// guest reads it from the configuration space and may transmit
	// from no other.
	MAC link.MAC
	// MTU is the largest payload each way (0: link.DefaultMTU).
	MTU int
	// Uplink takes the frames the guest transmits.
	Uplink Uplink
	// RxSlots is how many received frames wait for the guest's buffers
	// (0: DefaultRxSlots).
	RxSlots int
	// Rate limits what the guest transmits.
	Rate RateLimit
	// Now is the rate limit's clock (nil: time.Now).
	Now func() time.Time
}

// NetDrop is why a frame was dropped.
type NetDrop int

// Reasons to drop a frame; NetStatus.Drops counts them.
const (
	DropRxRingFull       NetDrop = iota // Deliver found the receive ring full
	DropRxNotForGuest                   // unicast to another address
	DropRxBadLength                     // no full header, or longer than the MTU allows
	DropRxCluster                       // the cluster transport's EtherType, possibly VLAN-tagged
	DropRxBufferTooSmall                // the guest's receive buffers cannot hold it
	DropRxBadChain                      // a receive buffer it was being written to was malformed
	DropRxReset                         // waiting in the ring when the device was reset
	DropTxTooShort                      // no full Ethernet header (or VLAN tag)
	DropTxTooLong                       // longer than the MTU allows
	DropTxBadSource                     // a source address other than the guest's
	DropTxCluster                       // the cluster transport's EtherType, possibly VLAN-tagged
	DropTxRateLimited                   // over the rate limit
	DropTxBadChain                      // a device-writable or unreadable buffer; a header asking for segmentation, or a checksum outside the frame
	DropTxUplink                        // the uplink's Transmit failed
	NumNetDrops                         // the number of reasons
)

// noDrop is the reason of a frame that is not dropped.
const noDrop NetDrop = -1

var netDropNames = [NumNetDrops]string{"rx ring full", "rx not for guest", "rx bad length", "rx cluster ethertype",
	"rx buffer too small", "rx bad chain", "rx reset", "tx too short", "tx too long", "tx bad source mac",
	"tx cluster ethertype", "tx rate limited", "tx bad chain", "tx uplink error"}

// String names the reason.
func (d NetDrop) String() string {
	if d >= 0 && d < NumNetDrops {
		return netDropNames[d]
	}
	return fmt.Sprintf("NetDrop(%d)", int(d))
}

// NetStatus is a network device's state and counters.
type NetStatus struct {
	// MAC is the guest's address.
	MAC link.MAC
	// MTU is the largest payload each way.
	MTU int
	// RxFrames and RxBytes count frames placed in the guest's buffers.
	RxFrames, RxBytes uint64
	// TxFrames and TxBytes count frames the uplink took.
	TxFrames, TxBytes uint64
	// RxQueued is how many frames wait in the receive ring.
	RxQueued int
	// RxBadChains counts malformed receive chains returned unused.
	RxBadChains uint64
	// Drops counts dropped frames by reason.
	Drops [NumNetDrops]uint64
}

// netCounters are a device's counters: atomics, as Deliver and the
// worker count while Status reads.
type netCounters struct {
	rxFrames, rxBytes, txFrames, txBytes, rxBadChains atomic.Uint64
	drops                                             [NumNetDrops]atomic.Uint64
}

// Net is a virtio network device (VIRTIO 1.2, 5.1) for a guest, whose
// driver sees receiveq1 (queue 0) and transmitq1 (queue 1). What the
// guest transmits goes to an Uplink if it passes the checks (its length,
// the guest's source address, never the cluster's EtherType) and the
// rate limit; Deliver queues frames for the guest to receive. Connect it
// to its transport with Attach.
//
// Ownership: the configuration fields are set by NewNet and never change.
// Notify runs on the device's worker only, and the fields from txChain to
// rx are its own. Deliver may run on any goroutine and touches only ring
// (whose comment gives its rule), dev and the counters; Reset, on a vCPU
// under the transport's spin lock, touches only ring's atomics.
type Net struct {
	mac      link.MAC
	mtu      int
	maxFrame int // the longest frame either way: a VLAN tag's more than the MTU allows untagged
	uplink   Uplink
	now      func() time.Time
	config   [spec.NetConfigSize]byte
	dev      atomic.Pointer[Device]

	txChain     Chain
	txBuf       []byte      // a transmitted packet: header and frame
	segBuf      []byte      // a segment of a packet txBuf holds
	frameBucket tokenBucket // the rate limit's
	byteBucket  tokenBucket
	last        time.Time // the rate limit's last refill
	rxChain     Chain
	rx          rxGather

	ring rxRing
	c    netCounters
}

// NewNet returns a network device configured by cfg.
func NewNet(cfg NetConfig) (*Net, error) {
	if cfg.MAC == (link.MAC{}) || cfg.MAC.IsMulticast() {
		return nil, fmt.Errorf("%w: guest address %v is not a unicast address", ErrNetConfig, cfg.MAC)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = link.DefaultMTU
	}
	if mtu < spec.NetMTUMin || mtu > spec.NetMTUMax {
		return nil, fmt.Errorf("%w: MTU %d outside [%d, %d]", ErrNetConfig, mtu, spec.NetMTUMin, spec.NetMTUMax)
	}
	if cfg.Uplink == nil {
		return nil, fmt.Errorf("%w: no uplink", ErrNetConfig)
	}
	slots := cfg.RxSlots
	if slots == 0 {
		slots = DefaultRxSlots
	}
	if slots < 1 || slots > MaxRxSlots {
		return nil, fmt.Errorf("%w: %d receive slots outside [1, %d]", ErrNetConfig, slots, MaxRxSlots)
	}
	maxFrame := link.HeaderLen + vlanTagLen + mtu
	frames, octets, err := cfg.Rate.buckets(maxFrame)
	if err != nil {
		return nil, err
	}
	n := &Net{mac: cfg.MAC, mtu: mtu, maxFrame: maxFrame, uplink: cfg.Uplink, now: cfg.Now,
		frameBucket: frames, byteBucket: octets,
		txChain: Chain{Buffers: make([]Buffer, 0, MaxQueueSize)},
		rxChain: Chain{Buffers: make([]Buffer, 0, MaxQueueSize)},
		txBuf:   make([]byte, netHdrLen+max(maxFrame, maxGSOFrame)),
		segBuf:  make([]byte, maxFrame)}
	if n.now == nil {
		n.now = time.Now
	}
	n.ring.init(slots, netHdrLen+maxFrame)
	copy(n.config[spec.NetConfigMAC:], cfg.MAC[:])
	binary.LittleEndian.PutUint16(n.config[spec.NetConfigStatus:], spec.NetStatusLinkUp)
	binary.LittleEndian.PutUint16(n.config[spec.NetConfigMaxPairs:], 1)
	binary.LittleEndian.PutUint16(n.config[spec.NetConfigMTU:], uint16(mtu))
	return n, nil
}

// Attach tells the device the transport it is on, so that Deliver can
// kick the receive queue and Notify can read the negotiated features.
func (n *Net) Attach(d *Device) { n.dev.Store(d) }

// DeviceID implements Backend.
func (n *Net) DeviceID() uint32 { return spec.DeviceNet }

// Features implements Backend.
func (n *Net) Features() uint64 { return netFeatures }

// NumQueues implements Backend: receiveq1 and transmitq1.
func (n *Net) NumQueues() int { return 2 }

// ReadConfig implements Backend: struct virtio_net_config (5.1.4) up to
// mtu. It runs under the transport's spin lock: it reads only what
// NewNet set.
func (n *Net) ReadConfig(off uint64, size int) uint64 {
	if size < 1 || size > 8 || off >= spec.NetConfigSize || off+uint64(size) > spec.NetConfigSize {
		return 0
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(n.config[off+uint64(i)])
	}
	return v
}

// Reset implements Backend: the frames waiting in the receive ring are
// dropped, counted as DropRxReset, when the worker next serves the
// receive queue (until a driver starts again they keep their slots); the
// counters stay. It runs under the transport's spin lock, so it only
// stores an atomic.
func (n *Net) Reset() { n.ring.resetTo.Store(n.ring.tail.Load() + 1) }

// Status returns the device's address, MTU and counters.
func (n *Net) Status() NetStatus {
	s := NetStatus{MAC: n.mac, MTU: n.mtu,
		RxFrames: n.c.rxFrames.Load(), RxBytes: n.c.rxBytes.Load(),
		TxFrames: n.c.txFrames.Load(), TxBytes: n.c.txBytes.Load(),
		RxBadChains: n.c.rxBadChains.Load()}
	head := n.ring.head.Load()
	s.RxQueued = int(n.ring.tail.Load() - head)
	for i := range s.Drops {
		s.Drops[i] = n.c.drops[i].Load()
	}
	return s
}

// drop counts a frame dropped for reason d.
func (n *Net) drop(d NetDrop) { n.c.drops[d].Add(1) }

// Deliver queues frame, which starts with its Ethernet header and has no
// FCS, for the guest to receive, and reports whether it did. Frames to
// the guest's address, broadcast and multicast are taken; other unicast,
// frames of the cluster's EtherType and frames too short or too long are
// dropped, as are frames that find the receive ring full. Deliver does
// not keep frame, never touches guest memory, never allocates and never
// waits for the device's worker: a NIC's receive loop calls it.
func (n *Net) Deliver(frame []byte) bool {
	if d := n.rxFilter(frame); d != noDrop {
		n.drop(d)
		return false
	}
	if !n.ring.put(frame) {
		n.drop(DropRxRingFull)
		return false
	}
	if d := n.dev.Load(); d != nil {
		d.Kick(spec.NetQueueRx)
	}
	return true
}

// rxFilter returns why a received frame is not for the guest, or noDrop.
func (n *Net) rxFilter(frame []byte) NetDrop {
	if len(frame) < link.HeaderLen {
		return DropRxBadLength
	}
	t, tags, ok := innerType(frame)
	switch {
	case !ok || len(frame) > n.frameMax(tags):
		return DropRxBadLength
	case frame[0]&1 == 0 && !bytes.Equal(frame[:6], n.mac[:]):
		return DropRxNotForGuest
	case t == link.EtherTypeCluster:
		return DropRxCluster
	}
	return noDrop
}

// txFilter returns why a transmitted frame may not leave, or noDrop.
func (n *Net) txFilter(frame []byte) NetDrop {
	if len(frame) < link.HeaderLen {
		return DropTxTooShort
	}
	t, tags, ok := innerType(frame)
	switch {
	case !ok:
		return DropTxTooShort
	case len(frame) > n.frameMax(tags):
		return DropTxTooLong
	case !bytes.Equal(frame[6:12], n.mac[:]):
		return DropTxBadSource
	case t == link.EtherTypeCluster:
		return DropTxCluster
	}
	return noDrop
}

// frameMax is the longest frame with the given number of VLAN tags: the
// MTU's payload after the header and one tag (a VLAN of the full MTU).
func (n *Net) frameMax(tags int) int {
	if tags > 0 {
		return n.maxFrame
	}
	return n.maxFrame - vlanTagLen
}

// innerType returns the EtherType of frame (at least a header long) past
// its VLAN tags, and how many tags it has; ok is false when the tags run
// past its end.
func innerType(frame []byte) (t link.EtherType, tags int, ok bool) {
	for off := 12; off+2 <= len(frame); off += vlanTagLen {
		t = link.EtherType(binary.BigEndian.Uint16(frame[off:]))
		if t != tpidCVLAN && t != tpidSVLAN && t != tpidLegacy {
			return t, tags, true
		}
		tags++
	}
	return 0, tags, false
}

// Notify implements Backend.
func (n *Net) Notify(mem devices.GuestMemory, q *Queue, index int, budget *Budget) (bool, error) {
	switch index {
	case spec.NetQueueRx:
		used, err := n.receive(mem, q, budget)
		if err != nil {
			return used, fmt.Errorf("virtio-net receive queue: %w", err)
		}
		return used, nil
	case spec.NetQueueTx:
		used, err := n.transmit(mem, q, budget)
		if err != nil {
			return used, fmt.Errorf("virtio-net transmit queue: %w", err)
		}
		return used, nil
	}
	return false, nil
}

// negotiated returns the features the driver accepted.
func (n *Net) negotiated() uint64 {
	if d := n.dev.Load(); d != nil {
		return d.DriverFeatures()
	}
	return 0
}

// transmit serves the transmit queue (5.1.6.2): each chain is a header
// and a frame, which goes to the uplink or is dropped; either way the
// chain goes back to the driver, so a bad frame never stops the queue.
func (n *Net) transmit(mem devices.GuestMemory, q *Queue, budget *Budget) (bool, error) {
	used := false
	features := n.negotiated()
	for budget.Left() {
		ok, err := q.Pop(mem, &n.txChain)
		if err != nil || !ok {
			return used, err
		}
		moved := n.send(mem, features)
		if err := q.Push(mem, n.txChain.Head, 0); err != nil {
			return used, err
		}
		budget.Spend(uint64(moved))
		used = true
	}
	return used, nil
}

// send reads the packet of n.txChain, checks it and hands its frame, or
// the segments its header asks for, to the uplink, counting what
// happened; it returns how many bytes it read.
func (n *Net) send(mem devices.GuestMemory, features uint64) int {
	size := n.txChain.Bytes()
	switch {
	case size < uint64(netHdrLen+link.HeaderLen):
		n.drop(DropTxTooShort)
		return 0
	case size > uint64(len(n.txBuf)):
		n.drop(DropTxTooLong)
		return 0
	}
	pkt := n.txBuf[:size]
	if !n.readChain(mem, pkt) {
		n.drop(DropTxBadChain)
		return len(pkt)
	}
	n.sendPacket(pkt, features)
	return len(pkt)
}

// sendPacket sends a transmitted packet, header and frame, as its header
// asks: the frame with its checksum completed, or its segments.
func (n *Net) sendPacket(pkt []byte, features uint64) {
	hdr, frame := pkt[:netHdrLen], pkt[netHdrLen:]
	if hdr[spec.NetHdrGSOType] != spec.NetGSONone {
		p, ok := n.parseGSO(hdr, frame, features)
		if !ok {
			n.drop(DropTxBadChain)
			return
		}
		n.sendGSO(frame, p)
		return
	}
	if !completeHeader(hdr, frame) {
		n.drop(DropTxBadChain)
		return
	}
	n.sendFrame(frame)
}

// sendFrame checks one frame and hands it to the uplink, counting what
// happened.
func (n *Net) sendFrame(frame []byte) {
	if d := n.txFilter(frame); d != noDrop {
		n.drop(d)
		return
	}
	if !n.allow(len(frame)) {
		n.drop(DropTxRateLimited)
		return
	}
	if err := n.uplink.Transmit(frame); err != nil {
		n.drop(DropTxUplink)
		return
	}
	n.c.txFrames.Add(1)
	n.c.txBytes.Add(uint64(len(frame)))
}

// readChain copies n.txChain's buffers, which must all be
// device-readable and in guest memory, into pkt, their total length.
func (n *Net) readChain(mem devices.GuestMemory, pkt []byte) bool {
	prefetch(mem, n.txChain.Buffers, len(pkt), false)
	off := 0
	for _, b := range n.txChain.Buffers {
		if b.Write {
			return false
		}
		if b.Len == 0 {
			continue
		}
		if err := mem.ReadAt(pkt[off:off+int(b.Len)], b.Addr); err != nil {
			return false
		}
		off += int(b.Len)
	}
	return true
}

// completeHeader acts on the header of a transmitted packet that needs no
// segmentation (5.1.6.2): the checksum completed where the
// driver left it partial (whether or not it negotiated VIRTIO_NET_F_CSUM,
// without which it may not ask). It reports false for a header it cannot
// honour.
func completeHeader(hdr, frame []byte) bool {
	if hdr[spec.NetHdrGSOType] != spec.NetGSONone {
		return false
	}
	if hdr[spec.NetHdrFlags]&spec.NetHdrNeedsCsum == 0 {
		return true
	}
	start := int(binary.LittleEndian.Uint16(hdr[spec.NetHdrCsumStart:]))
	off := int(binary.LittleEndian.Uint16(hdr[spec.NetHdrCsumOffset:]))
	return completeChecksum(frame, start, off)
}

// completeChecksum stores the Internet checksum (RFC 1071) of frame from
// start to its end at start+off, as VIRTIO_NET_HDR_F_NEEDS_CSUM asks:
// the driver left the pseudo-header's sum in the field, so the sum over
// the range covers it. A result of zero is sent as 0xFFFF, its other
// form in ones' complement, as UDP requires (RFC 768). It reports false
// when the field is not inside the frame.
func completeChecksum(frame []byte, start, off int) bool {
	if start >= len(frame) || off > len(frame)-start-2 {
		return false
	}
	sum := ^onesSum(frame[start:])
	if sum == 0 {
		sum = 0xFFFF
	}
	binary.BigEndian.PutUint16(frame[start+off:], sum)
	return true
}

// onesSum is the 16-bit ones' complement sum of b (RFC 1071), an odd
// last byte padded with zero.
func onesSum(b []byte) uint16 {
	var s uint64
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>48 + v>>32&0xFFFF + v>>16&0xFFFF + v&0xFFFF
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	return uint16(s)
}

// tokenBucket is one of the transmit rate limit's buckets: tokens refill
// at rate per second up to size. A zero rate is no limit.
type tokenBucket struct {
	rate, size, tokens float64
}

// refill adds the tokens of elapsed time.
func (b *tokenBucket) refill(elapsed time.Duration) {
	b.tokens = min(b.size, b.tokens+b.rate*elapsed.Seconds())
}

// has reports whether v tokens may be taken.
func (b *tokenBucket) has(v float64) bool { return b.rate == 0 || b.tokens >= v }

// take takes v tokens.
func (b *tokenBucket) take(v float64) {
	if b.rate != 0 {
		b.tokens -= v
	}
}

// buckets returns the token buckets of r, full, for frames of at most
// maxFrame bytes.
func (r RateLimit) buckets(maxFrame int) (frames, octets tokenBucket, err error) {
	burst := r.Burst
	if burst == 0 {
		burst = DefaultTxBurst
	}
	if burst < 0 {
		return frames, octets, fmt.Errorf("%w: rate limit burst %v", ErrNetConfig, burst)
	}
	bucket := func(rate, def, least float64) (tokenBucket, error) {
		switch {
		case math.IsNaN(rate) || math.IsInf(rate, 0):
			return tokenBucket{}, fmt.Errorf("%w: rate limit %v", ErrNetConfig, rate)
		case rate < 0:
			return tokenBucket{}, nil
		case rate == 0:
			rate = def
		}
		size := max(rate*burst.Seconds(), least)
		return tokenBucket{rate: rate, size: size, tokens: size}, nil
	}
	if frames, err = bucket(r.FramesPerSecond, DefaultTxFramesPerSecond, 1); err != nil {
		return frames, octets, err
	}
	octets, err = bucket(r.BytesPerSecond, DefaultTxBytesPerSecond, float64(maxFrame))
	return frames, octets, err
}

// allow takes a frame of size bytes from the rate limit, reporting
// whether it is within it.
func (n *Net) allow(size int) bool {
	if n.frameBucket.rate == 0 && n.byteBucket.rate == 0 {
		return true
	}
	now := n.now()
	if elapsed := now.Sub(n.last); n.last.IsZero() || elapsed > 0 { // a clock gone back refills nothing
		if !n.last.IsZero() {
			n.frameBucket.refill(elapsed)
			n.byteBucket.refill(elapsed)
		}
		n.last = now
	}
	if !n.frameBucket.has(1) || !n.byteBucket.has(float64(size)) {
		return false
	}
	n.frameBucket.take(1)
	n.byteBucket.take(float64(size))
	return true
}

// rxRing holds received frames between Deliver and the receive queue's
// Notify in fixed slots: each a header's room, then a frame, so that
// Notify writes both to guest memory in one piece.
//
// Lock rule: head is written by the consumer only (Notify, on the
// device's worker), tail by a producer only (Deliver) holding prodMu;
// both are atomics that either side reads without a lock. Slot i mod
// size belongs to the consumer while head <= i < tail, to the producers
// otherwise: a producer fills slot tail and then publishes it by storing
// tail+1, the consumer reads slot head and then frees it by storing
// head+1. Neither side ever waits for the other; prodMu only orders
// concurrent Deliver calls, each holding it for one copy. Reset (a vCPU,
// under the transport's spin lock, which must not wait) stores resetTo
// only; the consumer applies it.
type rxRing struct {
	prodMu  sync.Mutex
	tail    atomic.Uint64
	head    atomic.Uint64
	resetTo atomic.Uint64 // 1 + the tail at the last Reset; 0 if none is pending

	size    uint64
	slotLen uint64
	slots   []byte   // size slots of slotLen bytes
	lens    []uint32 // the frame length in each slot
}

// init allocates the ring's slots.
func (r *rxRing) init(slots, slotLen int) {
	r.size, r.slotLen = uint64(slots), uint64(slotLen)
	r.slots = make([]byte, slots*slotLen)
	r.lens = make([]uint32, slots)
}

// put copies frame, which fits a slot, into the next free slot,
// reporting false if none is free.
func (r *rxRing) put(frame []byte) bool {
	r.prodMu.Lock()
	defer r.prodMu.Unlock()
	t := r.tail.Load()
	if t-r.head.Load() >= r.size {
		return false
	}
	i := t % r.size
	copy(r.slots[i*r.slotLen+uint64(netHdrLen):], frame)
	r.lens[i] = uint32(len(frame))
	r.tail.Store(t + 1)
	return true
}

// peek returns the oldest waiting frame's slot, header room and frame,
// which stays the consumer's until pop; ok is false if none waits.
func (r *rxRing) peek() (pkt []byte, ok bool) {
	h := r.head.Load()
	if h == r.tail.Load() {
		return nil, false
	}
	at := h % r.size * r.slotLen
	return r.slots[at : at+uint64(netHdrLen)+uint64(r.lens[h%r.size])], true
}

// pop frees the slot peek returned.
func (r *rxRing) pop() { r.head.Store(r.head.Load() + 1) }

// applyReset drops the frames that were waiting at the last Reset and
// returns how many; the consumer calls it.
func (r *rxRing) applyReset() uint64 {
	t := r.resetTo.Swap(0)
	if t == 0 {
		return 0
	}
	h := r.head.Load()
	if t-1 <= h {
		return 0
	}
	r.head.Store(t - 1)
	return t - 1 - h
}

// rxGather is the receive chains one packet is being placed in: one, or
// with mergeable buffers as many as it takes (5.1.6.4).
type rxGather struct {
	n       int    // chains
	nbufs   int    // their buffers, in bufs
	room    uint64 // bytes they hold
	heads   [MaxQueueSize]uint16
	ends    [MaxQueueSize]int // chain i's buffers end at bufs[ends[i]]
	written [MaxQueueSize]uint32
	bufs    [MaxQueueSize]Buffer
}

// add takes chain c for the packet, reporting false for a chain that
// cannot hold any of it: one with a device-readable buffer, smaller than
// a header with mergeable buffers (5.1.6.3.1), or with more buffers than
// the gather holds (which a driver's queue never has).
func (g *rxGather) add(c *Chain, merge bool) bool {
	var room uint64
	for _, b := range c.Buffers {
		if !b.Write {
			return false
		}
		room += uint64(b.Len)
	}
	if merge && room < uint64(netHdrLen) || g.nbufs+len(c.Buffers) > len(g.bufs) || g.n == len(g.heads) {
		return false
	}
	copy(g.bufs[g.nbufs:], c.Buffers)
	g.nbufs += len(c.Buffers)
	g.heads[g.n] = c.Head
	g.ends[g.n] = g.nbufs
	g.n++
	g.room += room
	return true
}

// rxOutcome is what became of the frame at the head of the ring.
type rxOutcome int

const (
	rxPlaced  rxOutcome = iota // in the guest's buffers
	rxDropped                  // dropped and counted
	rxWait                     // waiting for the guest to post buffers
)

// receive serves the receive queue (5.1.6.4): frames move from the ring
// into the buffers the driver posted, while both last and the budget
// does. A frame that finds no buffers waits in the ring; the driver's
// notification when it posts some brings the worker back.
func (n *Net) receive(mem devices.GuestMemory, q *Queue, budget *Budget) (bool, error) {
	if k := n.ring.applyReset(); k > 0 {
		n.c.drops[DropRxReset].Add(k)
	}
	merge := n.negotiated()&spec.NetFeatureMergeRxBuf != 0
	used := false
	for budget.Left() {
		pkt, ok := n.ring.peek()
		if !ok {
			break
		}
		out, returned, err := n.receiveOne(mem, q, pkt, merge, budget)
		used = used || returned
		if out != rxWait {
			n.ring.pop() // placed or dropped, and counted
		}
		if err != nil || out == rxWait {
			return used, err
		}
	}
	return used, nil
}

// receiveOne places pkt, a header's room and a frame, in the driver's
// buffers: it gathers chains until they hold it, returning at once any
// malformed one it pops, then writes the header and the frame across
// them. It reports what became of the frame and whether chains went
// back to the driver.
func (n *Net) receiveOne(mem devices.GuestMemory, q *Queue, pkt []byte, merge bool, budget *Budget) (rxOutcome, bool, error) {
	g := &n.rx
	g.n, g.nbufs, g.room = 0, 0, 0
	limit := 1
	if merge {
		limit = max(int(q.Num), 1)
	}
	returned := false
	for g.room < uint64(len(pkt)) && g.n < limit {
		ok, err := q.Pop(mem, &n.rxChain)
		if err != nil {
			return rxWait, returned, err
		}
		if !ok {
			break
		}
		if g.add(&n.rxChain, merge) {
			continue
		}
		// A malformed chain goes back unused. Chains taken before it
		// cannot be put back past it: they go back empty with it, and
		// the frame is dropped.
		n.c.rxBadChains.Add(1)
		budget.Spend(0)
		returned = true
		if g.n == 0 {
			if err := q.Push(mem, n.rxChain.Head, 0); err != nil {
				return rxWait, returned, err
			}
			continue
		}
		g.heads[g.n], g.n = n.rxChain.Head, g.n+1
		n.drop(DropRxBadChain)
		return rxDropped, returned, n.returnEmpty(mem, q)
	}
	switch {
	case g.room >= uint64(len(pkt)):
		out, placed, err := n.place(mem, q, pkt, budget)
		return out, placed || returned, err
	case g.n == limit:
		// All the buffers the driver can post are too small for it.
		q.Unpop(g.n)
		budget.Spend(0)
		n.drop(DropRxBufferTooSmall)
		return rxDropped, returned, nil
	}
	q.Unpop(g.n)
	return rxWait, returned, nil
}

// place writes pkt's header, with num_buffers, and frame across the
// gathered chains, which hold it, and returns them to the driver at
// once. A buffer outside guest memory drops the frame and returns them
// all empty.
func (n *Net) place(mem devices.GuestMemory, q *Queue, pkt []byte, budget *Budget) (rxOutcome, bool, error) {
	g := &n.rx
	clear(pkt[:netHdrLen])
	binary.LittleEndian.PutUint16(pkt[spec.NetHdrNumBuffers:], uint16(g.n))
	prefetch(mem, g.bufs[:g.nbufs], len(pkt), true)
	off, start := 0, 0
	for i := range g.n {
		g.written[i] = 0
		for _, b := range g.bufs[start:g.ends[i]] {
			k := min(uint64(b.Len), uint64(len(pkt)-off))
			if k == 0 {
				break
			}
			if err := mem.WriteAt(pkt[off:off+int(k)], b.Addr); err != nil {
				n.c.rxBadChains.Add(1)
				n.drop(DropRxBadChain)
				return rxDropped, true, n.returnEmpty(mem, q)
			}
			off += int(k)
			g.written[i] += uint32(k)
		}
		start = g.ends[i]
		budget.Spend(uint64(g.written[i]))
	}
	for i := range g.n {
		if err := q.Stage(mem, uint16(i), g.heads[i], g.written[i]); err != nil {
			n.drop(DropRxBadChain) // the used ring is outside memory: the queue is broken
			return rxDropped, false, err
		}
	}
	if err := q.Publish(mem, uint16(g.n)); err != nil {
		n.drop(DropRxBadChain)
		return rxDropped, false, err
	}
	n.c.rxFrames.Add(1)
	n.c.rxBytes.Add(uint64(len(pkt) - netHdrLen))
	return rxPlaced, true, nil
}

// returnEmpty returns the gathered chains to the driver with nothing
// written in them.
func (n *Net) returnEmpty(mem devices.GuestMemory, q *Queue) error {
	g := &n.rx
	for i := range g.n {
		if err := q.Stage(mem, uint16(i), g.heads[i], 0); err != nil {
			return err
		}
	}
	return q.Publish(mem, uint16(g.n))
}
