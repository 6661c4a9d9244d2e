// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// flat is guest memory starting at address 0.
type flat []byte

func (m flat) ReadAt(p []byte, a uint64) error {
	if a > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-a {
		return devices.ErrBadAddress
	}
	copy(p, m[a:])
	return nil
}

func (m flat) WriteAt(p []byte, a uint64) error {
	if a > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-a {
		return devices.ErrBadAddress
	}
	copy(m[a:], p)
	return nil
}

// Guest layout of the tests' driver.
const (
	qSize    = 8
	descAt   = 0x1000
	availAt  = 0x2000
	usedAt   = 0x3000
	bufAt    = 0x10000
	memBytes = 0x40000
)

// driver plays the guest's virtio driver against a device.
type driver struct {
	t     *testing.T
	mem   flat
	dev   *Device
	irq   bool
	avail uint16
	next  uint64 // bump allocator for buffers
	// async leaves queue work to the device's own worker (Run) instead
	// of serving it after each register write.
	async bool
}

func newDriver(t *testing.T, be Backend) *driver {
	d := &driver{t: t, mem: make(flat, memBytes), next: bufAt}
	d.dev = NewDevice(be, d.mem, func(l bool) { d.irq = l })
	return d
}

// w writes a register, then lets the device's worker serve what the
// write notified, as Run would, on the test's goroutine.
func (d *driver) w(off uint64, v uint32) {
	d.dev.WriteMMIO(off, 4, uint64(v))
	if !d.async {
		d.drain()
	}
}

// drain serves every pending queue.
func (d *driver) drain() {
	for d.dev.Serve() {
	}
}

func (d *driver) r(off uint64) uint32 { return uint32(d.dev.ReadMMIO(off, 4)) }

// init follows the driver initialisation of 3.1.1 and 4.2.3.
func (d *driver) init(features uint64) {
	d.w(spec.RegStatus, 0)
	writeFeatures(d.w, features)
	if d.r(spec.RegStatus)&spec.StatusFeaturesOK == 0 {
		d.t.Fatalf("features %#x refused", features)
	}
	d.w(spec.RegQueueSel, 0)
	if d.r(spec.RegQueueNumMax) < qSize {
		d.t.Fatal("queue too small")
	}
	setQueue(d.w, 0, qSize, descAt, availAt, usedAt)
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK|spec.StatusDriverOK)
}

func (d *driver) alloc(n int) uint64 {
	a := d.next
	d.next += uint64(n+15) &^ 15
	return a
}

// submit places a chain of buffers (addr, len, write) and notifies.
func (d *driver) submit(bufs ...Buffer) {
	head := uint16(d.avail % qSize) // one chain at a time in these tests
	for i, b := range bufs {
		idx := (int(head) + i) % qSize
		next := -1
		if i < len(bufs)-1 {
			next = (idx + 1) % qSize
		}
		putDesc(d.mem[descAt+16*idx:], b, next)
	}
	binary.LittleEndian.PutUint16(d.mem[availAt+4+2*uint64(d.avail%qSize):], head)
	d.avail++
	binary.LittleEndian.PutUint16(d.mem[availAt+2:], d.avail)
	d.w(spec.RegQueueNotify, 0)
}

func (d *driver) usedIdx() uint16 { return binary.LittleEndian.Uint16(d.mem[usedAt+2:]) }

// request sends one block request and returns its status byte.
func (d *driver) request(typ uint32, sector uint64, data []byte, write bool) byte {
	hdr := d.alloc(16)
	binary.LittleEndian.PutUint32(d.mem[hdr:], typ)
	binary.LittleEndian.PutUint64(d.mem[hdr+8:], sector)
	st := d.alloc(1)
	d.mem[st] = 0xFF
	bufs := []Buffer{{Addr: hdr, Len: 16}}
	if data != nil {
		a := d.alloc(len(data))
		copy(d.mem[a:], data)
		bufs = append(bufs, Buffer{Addr: a, Len: uint32(len(data)), Write: write})
		defer func() { copy(data, d.mem[a:]) }()
	}
	bufs = append(bufs, Buffer{Addr: st, Len: 1, Write: true})
	d.submit(bufs...)
	return d.mem[st]
}

func TestBlockRoundTrip(t *testing.T) {
	disk := make([]byte, 64*SectorSize)
	blk, err := NewBlock(NewMemDisk(disk, MemDiskOptions{}), "big-iron-ramdisk")
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, blk)
	if d.r(spec.RegMagic) != spec.MagicValue || d.r(spec.RegVersion) != 2 || d.r(spec.RegDeviceID) != spec.DeviceBlock {
		t.Fatal("identification registers wrong")
	}
	if c := d.dev.ReadMMIO(spec.RegConfig, 8); c != 64 {
		t.Errorf("capacity %d sectors, want 64", c)
	}
	d.init(spec.FeatureVersion1 | featureBlkFlush)

	msg := bytes.Repeat([]byte("hello\n"), 100)[:SectorSize]
	if st := d.request(blkOut, 3, append([]byte(nil), msg...), false); st != blkOK {
		t.Fatalf("write: status %d", st)
	}
	if !d.irq || d.r(spec.RegInterrupt)&spec.InterruptUsedBuffer == 0 {
		t.Error("no used-buffer interrupt")
	}
	d.w(spec.RegInterruptACK, spec.InterruptUsedBuffer)
	if d.irq {
		t.Error("interrupt line still up after ACK")
	}
	if !bytes.Equal(disk[3*SectorSize:4*SectorSize], msg) {
		t.Error("the disk does not hold what was written")
	}
	got := make([]byte, SectorSize)
	if st := d.request(blkIn, 3, got, true); st != blkOK || !bytes.Equal(got, msg) {
		t.Errorf("read back: status %d, %q", st, got[:12])
	}
	if st := d.request(blkIn, 64, make([]byte, SectorSize), true); st != blkIOErr {
		t.Errorf("read past the end: status %d, want IOERR", st)
	}
	if st := d.request(blkIn, 1<<60, make([]byte, SectorSize), true); st != blkIOErr {
		t.Errorf("huge sector: status %d, want IOERR", st)
	}
	if st := d.request(blkIn, 0, make([]byte, SectorSize), false); st != blkIOErr {
		t.Errorf("read into a read-only buffer: status %d, want IOERR", st)
	}
	if st := d.request(blkFlush, 0, nil, false); st != blkOK {
		t.Errorf("flush: %d", st)
	}
	id := make([]byte, 20)
	if st := d.request(blkGetID, 0, id, true); st != blkOK || string(bytes.TrimRight(id, "\x00")) != "big-iron-ramdisk" {
		t.Errorf("get id: %d %q", st, id)
	}
	if st := d.request(99, 0, nil, false); st != blkUnsupp {
		t.Errorf("unknown request: %d", st)
	}
	if got := d.usedIdx(); got != 8 {
		t.Errorf("used index %d, want 8", got)
	}
	if d.dev.Errors() != 0 || d.r(spec.RegStatus)&spec.StatusNeedsReset != 0 {
		t.Error("a well-formed request broke the device")
	}
}

func TestFeatureNegotiation(t *testing.T) {
	blk, _ := NewBlock(NewMemDisk(make([]byte, SectorSize), MemDiskOptions{}), "")
	d := newDriver(t, blk)
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver)
	d.w(spec.RegDriverFeatSel, 0)
	d.w(spec.RegDriverFeatures, 1<<20) // not offered
	d.w(spec.RegDriverFeatSel, 1)
	d.w(spec.RegDriverFeatures, 1)
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK)
	if d.r(spec.RegStatus)&spec.StatusFeaturesOK != 0 {
		t.Error("FEATURES_OK with a feature not offered")
	}
	d.w(spec.RegStatus, 0)
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK) // no VERSION_1
	if d.r(spec.RegStatus)&spec.StatusFeaturesOK != 0 {
		t.Error("FEATURES_OK without VERSION_1")
	}
	d.w(spec.RegDeviceFeatSel, 1)
	if d.r(spec.RegDeviceFeatures)&1 == 0 {
		t.Error("VERSION_1 not offered")
	}
}

// TestHostileQueues: chains that loop, index past the queue, point
// outside memory or lie about the available index break the device
// (NEEDS_RESET), never the hyperkernel; a reset recovers it.
func TestHostileQueues(t *testing.T) {
	for name, corrupt := range map[string]func(d *driver){
		"loop": func(d *driver) {
			for i := 0; i < qSize; i++ {
				e := d.mem[descAt+16*i:]
				binary.LittleEndian.PutUint64(e, bufAt)
				binary.LittleEndian.PutUint32(e[8:], 16)
				binary.LittleEndian.PutUint16(e[12:], spec.DescNext)
				binary.LittleEndian.PutUint16(e[14:], uint16((i+1)%qSize))
			}
			binary.LittleEndian.PutUint16(d.mem[availAt+2:], 1)
		},
		"index": func(d *driver) {
			binary.LittleEndian.PutUint16(d.mem[availAt+4:], 200)
			binary.LittleEndian.PutUint16(d.mem[availAt+2:], 1)
		},
		"avail ahead": func(d *driver) {
			binary.LittleEndian.PutUint16(d.mem[availAt+2:], 100)
		},
		"outside memory": func(d *driver) {
			e := d.mem[descAt:]
			binary.LittleEndian.PutUint64(e, memBytes-4)
			binary.LittleEndian.PutUint32(e[8:], 16)
			binary.LittleEndian.PutUint16(e[12:], spec.DescNext)
			binary.LittleEndian.PutUint16(e[14:], 1)
			e = d.mem[descAt+16:]
			binary.LittleEndian.PutUint64(e, bufAt)
			binary.LittleEndian.PutUint32(e[8:], 1)
			binary.LittleEndian.PutUint16(e[12:], spec.DescWrite)
			binary.LittleEndian.PutUint16(d.mem[availAt+2:], 1)
		},
		"indirect": func(d *driver) {
			binary.LittleEndian.PutUint16(d.mem[descAt+12:], spec.DescIndirect)
			binary.LittleEndian.PutUint16(d.mem[availAt+2:], 1)
		},
	} {
		blk, _ := NewBlock(NewMemDisk(make([]byte, 8*SectorSize), MemDiskOptions{}), "")
		d := newDriver(t, blk)
		d.init(spec.FeatureVersion1)
		corrupt(d)
		d.w(spec.RegQueueNotify, 0)
		if d.r(spec.RegStatus)&spec.StatusNeedsReset == 0 || d.dev.Errors() != 1 || !d.irq {
			t.Errorf("%s: status %#x, %d errors, irq %v", name, d.r(spec.RegStatus), d.dev.Errors(), d.irq)
		}
		if !errors.Is(ErrBadQueue, ErrBadQueue) {
			t.Fatal("unreachable")
		}
		// A reset and a fresh start work again.
		for i := range d.mem {
			d.mem[i] = 0
		}
		d.avail = 0
		d.init(spec.FeatureVersion1)
		if st := d.request(blkOut, 0, make([]byte, SectorSize), false); st != blkOK {
			t.Errorf("%s: after reset: status %d", name, st)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	blk, _ := NewBlock(NewMemDisk(make([]byte, 64*SectorSize), MemDiskOptions{}), "")
	d := newDriver(t, blk)
	d.init(spec.FeatureVersion1)
	hdr, st, buf := uint64(bufAt), uint64(bufAt+16), uint64(bufAt+32)
	binary.LittleEndian.PutUint32(d.mem[hdr:], blkIn)
	n := testing.AllocsPerRun(100, func() {
		d.submitNoAlloc(hdr, buf, st)
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// submitNoAlloc queues the 3-descriptor request at fixed addresses
// without allocating.
func (d *driver) submitNoAlloc(hdr, buf, st uint64) {
	put := func(i int, addr uint64, n uint32, flags uint16) {
		e := d.mem[descAt+16*i:]
		binary.LittleEndian.PutUint64(e, addr)
		binary.LittleEndian.PutUint32(e[8:], n)
		binary.LittleEndian.PutUint16(e[12:], flags)
		binary.LittleEndian.PutUint16(e[14:], uint16(i+1))
	}
	put(0, hdr, 16, spec.DescNext)
	put(1, buf, 4096, spec.DescNext|spec.DescWrite)
	put(2, st, 1, spec.DescWrite)
	binary.LittleEndian.PutUint16(d.mem[availAt+4+2*uint64(d.avail%qSize):], 0)
	d.avail++
	binary.LittleEndian.PutUint16(d.mem[availAt+2:], d.avail)
	d.dev.WriteMMIO(spec.RegQueueNotify, 4, 0)
	d.drain()
	d.dev.WriteMMIO(spec.RegInterruptACK, 4, 1)
}

// FuzzQueue lets arbitrary bytes be the guest's rings and buffers, and
// arbitrary register writes the driver: the device must never panic,
// never write outside guest memory (the flat memory would panic), and
// keep its disk size.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{0x50, 0, 0, 0, 0}, []byte{1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, regs, ring []byte) {
		disk := make([]byte, 8*SectorSize)
		blk, _ := NewBlock(NewMemDisk(disk, MemDiskOptions{}), "x")
		mem := make(flat, 0x8000)
		copy(mem[descAt:], ring)
		dev := NewDevice(blk, mem, func(bool) {})
		dev.WriteMMIO(spec.RegStatus, 4, spec.StatusAcknowledge|spec.StatusDriver)
		dev.WriteMMIO(spec.RegDriverFeatSel, 4, 1)
		dev.WriteMMIO(spec.RegDriverFeatures, 4, 1)
		dev.WriteMMIO(spec.RegStatus, 4, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK)
		dev.WriteMMIO(spec.RegQueueNum, 4, qSize)
		dev.WriteMMIO(spec.RegQueueDescLow, 4, descAt)
		dev.WriteMMIO(spec.RegQueueDrvLow, 4, descAt+0x100)
		dev.WriteMMIO(spec.RegQueueDevLow, 4, descAt+0x200)
		dev.WriteMMIO(spec.RegQueueReady, 4, 1)
		dev.WriteMMIO(spec.RegStatus, 4, 15)
		for len(regs) >= 5 {
			off := uint64(regs[0]) << 2 & 0x1FF
			v := binary.LittleEndian.Uint32(regs[1:])
			dev.WriteMMIO(off, 4, uint64(v))
			dev.Serve()
			_ = dev.ReadMMIO(off, int(regs[1]&7)+1)
			regs = regs[5:]
		}
		dev.WriteMMIO(spec.RegQueueNotify, 4, 0)
		for dev.Serve() {
		}
		if blk.disk.Size() != 8*SectorSize || len(disk) != 8*SectorSize {
			t.Fatal("disk resized")
		}
	})
}

func TestConsole(t *testing.T) {
	var out bytes.Buffer
	con := NewConsole(&out)
	d := newDriver(t, con)
	con.Attach(d.dev)
	con.Input([]byte("early"))   // before the driver: kept
	d.init(spec.FeatureVersion1) // queue 0: receive
	d.initTransmit()

	// The guest offers a receive buffer: the early input fills it.
	rx := d.alloc(64)
	d.submit(Buffer{Addr: rx, Len: 64, Write: true})
	if got := d.usedIdx(); got != 1 || string(d.mem[rx:rx+5]) != "early" {
		t.Fatalf("receive: used %d, %q", got, d.mem[rx:rx+5])
	}
	if l := binary.LittleEndian.Uint32(d.mem[usedAt+8:]); l != 5 {
		t.Errorf("receive length %d", l)
	}
	// Transmit.
	msg := d.alloc(16)
	copy(d.mem[msg:], "hello hvc0\n")
	e := d.mem[txDesc:]
	binary.LittleEndian.PutUint64(e, msg)
	binary.LittleEndian.PutUint32(e[8:], 11)
	binary.LittleEndian.PutUint16(d.mem[txAvail+2:], 1)
	d.w(spec.RegQueueNotify, 1)
	if out.String() != "hello hvc0\n" || binary.LittleEndian.Uint16(d.mem[txUsed+2:]) != 1 {
		t.Errorf("transmit: %q", out.String())
	}
	// Input with a buffer waiting is delivered at once, with an interrupt.
	d.w(spec.RegInterruptACK, 3)
	rx2 := d.alloc(64)
	d.submit(Buffer{Addr: rx2, Len: 64, Write: true}) // nothing to give yet
	if d.usedIdx() != 1 {
		t.Fatal("an empty receive completed")
	}
	n := con.Input([]byte("ls\r"))
	d.drain()
	if n != 3 || d.usedIdx() != 2 || string(d.mem[rx2:rx2+3]) != "ls\r" || !d.irq {
		t.Errorf("live input: took %d, used %d, %q, irq %v", n, d.usedIdx(), d.mem[rx2:rx2+3], d.irq)
	}
	// A read-only receive buffer breaks the queue, not the host.
	d.submit(Buffer{Addr: rx, Len: 8})
	con.Input([]byte("x"))
	d.drain()
	if d.r(spec.RegStatus)&spec.StatusNeedsReset == 0 {
		t.Error("read-only receive buffer accepted")
	}
}
