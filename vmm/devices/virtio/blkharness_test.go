// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// lockedMem is guest memory behind a mutex, so that the test's driver and
// the device's worker may share it.
type lockedMem struct {
	mu sync.Mutex
	b  []byte
}

func (m *lockedMem) ReadAt(p []byte, a uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a > uint64(len(m.b)) || uint64(len(p)) > uint64(len(m.b))-a {
		return devices.ErrBadAddress
	}
	copy(p, m.b[a:])
	return nil
}

func (m *lockedMem) WriteAt(p []byte, a uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a > uint64(len(m.b)) || uint64(len(p)) > uint64(len(m.b))-a {
		return devices.ErrBadAddress
	}
	copy(m.b[a:], p)
	return nil
}

func (m *lockedMem) get(a uint64, n int) []byte {
	p := make([]byte, n)
	if err := m.ReadAt(p, a); err != nil {
		panic(err)
	}
	return p
}

func (m *lockedMem) put(a uint64, p []byte) {
	if err := m.WriteAt(p, a); err != nil {
		panic(err)
	}
}

func (m *lockedMem) u16(a uint64) uint16 { return binary.LittleEndian.Uint16(m.get(a, 2)) }
func (m *lockedMem) u32(a uint64) uint32 { return binary.LittleEndian.Uint32(m.get(a, 4)) }

// The block tests' guest layout: rings below hBufs, then one buffer
// region per descriptor head, so that the buffers of requests in flight
// never overlap.
const (
	hDesc  = 0x1000
	hAvail = 0x2000
	hUsed  = 0x3000
	hBufs  = 0x10000
)

// breq is one request the test's driver posted.
type breq struct {
	head        uint16
	descs       []uint16
	typ         uint32
	sector      uint64
	data        []byte // what a write wrote, what a read expects (if known)
	n           int    // data bytes
	hdr, dat    uint64 // guest addresses
	st          uint64
	status      byte
	usedLen     uint32
	got         []byte // a read's data, once answered
	answered    bool
	postedOrder int
}

// bdrv plays the guest's virtio-blk driver with many requests in flight.
type bdrv struct {
	t      testing.TB
	mem    *lockedMem
	dev    *Device
	blk    *Block
	qn     uint16
	region uint64 // buffer bytes per descriptor head
	free   []uint16
	avail  uint16
	used   uint16
	reqs   map[uint16]*breq
	posted int
	// run: the device's worker (Run) serves the queue; otherwise notify
	// serves it on the test's goroutine.
	run  bool
	stop chan struct{}
	irqs atomic.Int64
	// rounds, when run and lockRounds are set, is held by the test's own
	// worker loop through each round, and by init: a reset never
	// overtakes a round, whose writes to the old rings would otherwise
	// race with the new driver's (a window of the transport's).
	lockRounds bool
	rounds     sync.Mutex
}

// newBdrv makes a block device over disk and a driver for it with a
// queue of qn and region bytes of buffers per descriptor head.
func newBdrv(t testing.TB, disk Disk, cfg BlockConfig, qn uint16, region uint64, run bool) *bdrv {
	t.Helper()
	return newBdrvLocked(t, disk, cfg, qn, region, run, false)
}

// newBdrvLocked is newBdrv, with the rounds of the worker (if run) taken
// under d.rounds if lockRounds.
func newBdrvLocked(t testing.TB, disk Disk, cfg BlockConfig, qn uint16, region uint64, run, lockRounds bool) *bdrv {
	t.Helper()
	blk, err := NewBlockConfig(disk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &bdrv{t: t, mem: &lockedMem{b: make([]byte, hBufs+uint64(qn)*region)}, blk: blk, qn: qn, region: region, run: run, lockRounds: lockRounds}
	d.dev = NewDevice(blk, d.mem, func(l bool) {
		if l {
			d.irqs.Add(1)
		}
	})
	blk.Attach(d.dev)
	d.init(spec.FeatureVersion1 | blk.Features())
	if run {
		d.stop = make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if !lockRounds {
				d.dev.Run(d.stop)
				return
			}
			for {
				select {
				case <-d.stop:
					return
				case <-d.dev.wake:
				}
				d.rounds.Lock()
				for d.dev.Serve() {
				}
				d.rounds.Unlock()
			}
		}()
		t.Cleanup(func() { close(d.stop); <-done })
	}
	return d
}

func (d *bdrv) w(off uint64, v uint32) {
	d.dev.WriteMMIO(off, 4, uint64(v))
	if !d.run {
		d.drain()
	}
}

func (d *bdrv) drain() {
	for d.dev.Serve() {
	}
}

// init resets the device and sets it up afresh (3.1.1), with clean rings.
func (d *bdrv) init(features uint64) {
	if d.lockRounds {
		d.rounds.Lock()
		defer d.rounds.Unlock()
	}
	d.w(spec.RegStatus, 0)
	d.mem.put(hDesc, make([]byte, hBufs-hDesc))
	d.free = d.free[:0]
	for i := range d.qn {
		d.free = append(d.free, i)
	}
	d.avail, d.used, d.reqs = 0, 0, map[uint16]*breq{}
	writeFeatures(d.w, features)
	if d.dev.ReadMMIO(spec.RegStatus, 4)&spec.StatusFeaturesOK == 0 {
		d.t.Fatalf("features %#x refused", features)
	}
	setQueue(d.w, 0, uint32(d.qn), hDesc, hAvail, hUsed)
	d.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK|spec.StatusDriverOK)
}

// post places a request with its data split in segs buffers (a read's
// filled with 0xEE first) and makes it available, without notifying. It
// returns nil when the ring has too few free descriptors.
func (d *bdrv) post(typ uint32, sector uint64, data []byte, devWrites bool, segs int) *breq {
	n := len(data)
	segs = min(max(segs, 1), max(n, 1))
	if n == 0 {
		segs = 0
	}
	if len(d.free) < 2+segs {
		return nil
	}
	r := &breq{typ: typ, sector: sector, data: data, n: n, postedOrder: d.posted}
	d.posted++
	r.descs = append([]uint16(nil), d.free[len(d.free)-2-segs:]...)
	d.free = d.free[:len(d.free)-2-segs]
	r.head = r.descs[0]
	base := hBufs + uint64(r.head)*d.region
	if 16+uint64(n)+16 > d.region {
		d.t.Fatalf("a request of %d bytes in regions of %d", n, d.region)
	}
	r.hdr, r.dat, r.st = base, base+16, base+16+uint64(n)
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:], typ)
	binary.LittleEndian.PutUint64(hdr[8:], sector)
	d.mem.put(r.hdr, hdr[:])
	if devWrites {
		d.mem.put(r.dat, bytes.Repeat([]byte{0xEE}, n))
	} else {
		d.mem.put(r.dat, data)
	}
	d.mem.put(r.st, []byte{0xFF})
	d.chainDescs(r, n, segs, devWrites)
	d.reqs[r.head] = r
	d.mem.put(hAvail+4+2*uint64(d.avail%d.qn), binary.LittleEndian.AppendUint16(nil, r.head))
	d.avail++
	d.mem.put(hAvail+2, binary.LittleEndian.AppendUint16(nil, d.avail))
	return r
}

// chainDescs writes r's descriptors: header, segs data pieces, status.
func (d *bdrv) chainDescs(r *breq, n, segs int, devWrites bool) {
	put := func(i int, addr uint64, l uint32, write bool) {
		var e [16]byte
		binary.LittleEndian.PutUint64(e[0:], addr)
		binary.LittleEndian.PutUint32(e[8:], l)
		flags := uint16(0)
		if write {
			flags |= spec.DescWrite
		}
		if i < len(r.descs)-1 {
			flags |= spec.DescNext
			binary.LittleEndian.PutUint16(e[14:], r.descs[i+1])
		}
		binary.LittleEndian.PutUint16(e[12:], flags)
		d.mem.put(hDesc+16*uint64(r.descs[i]), e[:])
	}
	put(0, r.hdr, 16, false)
	at := 0
	for i := range segs {
		l := n / segs
		if i == segs-1 {
			l = n - at
		}
		put(1+i, r.dat+uint64(at), uint32(l), devWrites)
		at += l
	}
	put(len(r.descs)-1, r.st, 1, true)
}

// notify tells the device; without a worker it serves the queue at once.
func (d *bdrv) notify() { d.w(spec.RegQueueNotify, 0) }

// reap takes the used ring's new entries: each must name a request in
// flight, once.
func (d *bdrv) reap() []*breq {
	var done []*breq
	for idx := d.mem.u16(hUsed + 2); d.used != idx; d.used++ {
		e := hUsed + 4 + 8*uint64(d.used%d.qn)
		head, l := uint16(d.mem.u32(e)), d.mem.u32(e+4)
		r := d.reqs[head]
		if r == nil {
			d.t.Fatalf("the used ring returns head %d, not in flight", head)
		}
		delete(d.reqs, head)
		r.usedLen, r.status, r.answered = l, d.mem.get(r.st, 1)[0], true
		if r.typ == blkIn || r.typ == blkGetID {
			r.got = d.mem.get(r.dat, r.n)
		}
		d.free = append(d.free, r.descs...)
		done = append(done, r)
	}
	return done
}

// waitIdle reaps until no request is in flight, failing after timeout.
func (d *bdrv) waitIdle(timeout time.Duration) []*breq {
	d.t.Helper()
	var done []*breq
	deadline := time.Now().Add(timeout)
	for len(d.reqs) > 0 {
		done = append(done, d.reap()...)
		if time.Now().After(deadline) {
			d.t.Fatalf("%d requests still in flight after %v; stats %+v", len(d.reqs), timeout, d.blk.Stats())
		}
		if !d.run {
			d.drain()
		}
		time.Sleep(100 * time.Microsecond)
	}
	return done
}

// fakeDisk is an asynchronous Disk for the tests. It completes requests
// when the test says (complete), or, once started, from a goroutine of
// its own, in random order and after random delays. It checks the Disk
// contract on every request it is given.
type fakeDisk struct {
	size uint64
	ro   bool
	caps DiskCaps

	mu         sync.Mutex
	data       []byte
	pending    []*DiskRequest
	batch      []*DiskRequest // the completer's
	submitted  []diskOp       // when log is set
	log        bool
	fail       func(r *DiskRequest) error
	maxPending int
	counts     [4]int
	violations []string
	wake       chan struct{}
	rng        *rand.Rand
}

// diskOp records a request as the disk received it.
type diskOp struct {
	op     DiskOp
	offset uint64
	length uint64
}

func newFakeDisk(size uint64, ro bool, caps DiskCaps) *fakeDisk {
	return &fakeDisk{size: size, ro: ro, caps: caps, data: make([]byte, size),
		pending: make([]*DiskRequest, 0, MaxQueueSize), batch: make([]*DiskRequest, 0, MaxQueueSize),
		submitted: make([]diskOp, 0, 1024), log: true}
}

func (f *fakeDisk) Size() uint64   { return f.size }
func (f *fakeDisk) ReadOnly() bool { return f.ro }
func (f *fakeDisk) Caps() DiskCaps { return f.caps }

func (f *fakeDisk) Submit(r *DiskRequest) {
	f.mu.Lock()
	f.check(r)
	f.pending = append(f.pending, r)
	f.maxPending = max(f.maxPending, len(f.pending))
	if r.Op <= DiskDiscard {
		f.counts[r.Op]++
	}
	if f.log {
		f.submitted = append(f.submitted, diskOp{r.Op, r.Offset, r.Length})
	}
	wake := f.wake
	f.mu.Unlock()
	if wake != nil {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// check records the ways r breaks the Disk contract; f.mu is held.
func (f *fakeDisk) check(r *DiskRequest) {
	bad := func(format string, a ...any) {
		f.violations = append(f.violations, fmt.Sprintf("%v %#x+%#x: ", r.Op, r.Offset, r.Length)+fmt.Sprintf(format, a...))
	}
	bs := uint64(max(f.caps.BlockSize, SectorSize))
	if r.Offset%bs != 0 || r.Length%bs != 0 || r.Offset > f.size || r.Length > f.size-r.Offset {
		bad("outside the disk or unaligned")
	}
	switch r.Op {
	case DiskRead, DiskWrite:
		if r.Length == 0 || uint64(len(r.Data)) != r.Length {
			bad("%d bytes of data", len(r.Data))
		}
		if r.Op == DiskWrite && f.ro {
			bad("a write to a read-only disk")
		}
	case DiskFlush:
		if !f.caps.Flush || r.Offset != 0 || r.Length != 0 || r.Data != nil {
			bad("a flush the disk should not get")
		}
	case DiskDiscard:
		if !f.caps.Discard || f.ro || r.Data != nil || r.Length == 0 {
			bad("a discard the disk should not get")
		}
	default:
		bad("unknown op")
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(r.Data)))
	for _, p := range f.pending {
		if p == r {
			bad("submitted twice")
		}
		plo := uintptr(unsafe.Pointer(unsafe.SliceData(p.Data)))
		if len(r.Data) > 0 && len(p.Data) > 0 && lo < plo+uintptr(len(p.Data)) && plo < lo+uintptr(len(r.Data)) {
			bad("its buffer overlaps one the disk holds")
		}
	}
}

// apply does r's work on the disk's data; f.mu is held.
func (f *fakeDisk) apply(r *DiskRequest) error {
	if f.fail != nil {
		if err := f.fail(r); err != nil {
			return err
		}
	}
	if r.Offset > f.size || r.Length > f.size-r.Offset {
		return ErrDiskRange
	}
	switch r.Op {
	case DiskRead:
		copy(r.Data, f.data[r.Offset:r.Offset+r.Length])
	case DiskWrite:
		copy(f.data[r.Offset:], r.Data)
	case DiskDiscard:
		clear(f.data[r.Offset : r.Offset+r.Length])
	}
	return nil
}

// completeWhere completes, in order, the pending requests match picks,
// and returns how many.
func (f *fakeDisk) completeWhere(match func(r *DiskRequest) bool) int {
	f.mu.Lock()
	var picked []*DiskRequest
	k := 0
	for _, r := range f.pending {
		if match(r) {
			picked = append(picked, r)
			continue
		}
		f.pending[k] = r
		k++
	}
	f.pending = f.pending[:k]
	errs := make([]error, len(picked))
	for i, r := range picked {
		errs[i] = f.apply(r)
	}
	f.mu.Unlock()
	for i, r := range picked {
		r.Complete(errs[i])
	}
	return len(picked)
}

// held returns the pending requests' operations, in the order submitted.
func (f *fakeDisk) held() []diskOp {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ops []diskOp
	for _, r := range f.pending {
		ops = append(ops, diskOp{r.Op, r.Offset, r.Length})
	}
	return ops
}

// start has a goroutine complete requests, a random part of those
// pending at a time, in random order, after up to maxDelay; it returns
// the function that stops it. The goroutine allocates nothing once
// running.
func (f *fakeDisk) start(maxDelay time.Duration, seed uint64) (stop func()) {
	f.wake = make(chan struct{}, 1)
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-f.wake:
			}
			for f.completeSome(maxDelay) {
				select {
				case <-quit:
					return
				default:
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// completeSome completes a random part of the pending requests in random
// order after a random delay, reporting false if none was pending.
func (f *fakeDisk) completeSome(maxDelay time.Duration) bool {
	f.mu.Lock()
	n := len(f.pending)
	if n == 0 {
		f.mu.Unlock()
		return false
	}
	for i := n - 1; i > 0; i-- {
		j := f.rng.IntN(i + 1)
		f.pending[i], f.pending[j] = f.pending[j], f.pending[i]
	}
	k := 1 + f.rng.IntN(n)
	f.batch = append(f.batch[:0], f.pending[n-k:]...)
	f.pending = f.pending[:n-k]
	delay := time.Duration(f.rng.Int64N(int64(maxDelay) + 1))
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	for _, r := range f.batch {
		f.mu.Lock()
		err := f.apply(r)
		f.mu.Unlock()
		r.Complete(err)
	}
	return true
}

// completeAll completes every pending request, in the order submitted,
// without allocating.
func (f *fakeDisk) completeAll() int {
	f.mu.Lock()
	f.batch = append(f.batch[:0], f.pending...)
	f.pending = f.pending[:0]
	f.mu.Unlock()
	for _, r := range f.batch {
		f.mu.Lock()
		err := f.apply(r)
		f.mu.Unlock()
		r.Complete(err)
	}
	return len(f.batch)
}

// completeNth completes the pending request k (modulo their number),
// failing it with err if not nil.
func (f *fakeDisk) completeNth(k int, err error) {
	f.mu.Lock()
	if len(f.pending) == 0 {
		f.mu.Unlock()
		return
	}
	k %= len(f.pending)
	r := f.pending[k]
	f.pending = append(f.pending[:k], f.pending[k+1:]...)
	if err == nil {
		err = f.apply(r)
	}
	f.mu.Unlock()
	r.Complete(err)
}

func (f *fakeDisk) mostPending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxPending
}

func (f *fakeDisk) pendingCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

func (f *fakeDisk) checkContract(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Error("disk contract:", v)
	}
}
