// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// reqSpec is a request a test wants the guest to make.
type reqSpec struct {
	typ    uint32
	sector uint64
	data   []byte // a write's data; a read's buffer size
	segs   int
}

// pump has the guest post specs, as many at a time as the ring takes,
// notifying after each batch, until every one is answered; it returns
// them answered, in the order of specs.
func (d *bdrv) pump(specs []reqSpec, timeout time.Duration) []*breq {
	d.t.Helper()
	out := make([]*breq, len(specs))
	next, left := 0, len(specs)
	deadline := time.Now().Add(timeout)
	for left > 0 {
		posted := false
		for next < len(specs) {
			s := specs[next]
			r := d.post(s.typ, s.sector, s.data, s.typ == blkIn, s.segs)
			if r == nil {
				break
			}
			r.postedOrder = next
			out[next] = r
			next++
			posted = true
		}
		if posted {
			d.notify()
		}
		left -= len(d.reap())
		if time.Now().After(deadline) {
			d.t.Fatalf("%d of %d requests unanswered after %v; stats %+v", left, len(specs), timeout, d.blk.Stats())
		}
		if left > 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return out
}

// TestBlockManyInFlight: writes then reads, many in flight on a disk that
// completes them out of order after delays, from another goroutine: every
// byte lands where it should and comes back, every chain is returned once
// with the right length, and the disk held many requests at once but never
// more than the limit.
func TestBlockManyInFlight(t *testing.T) {
	const size = 4 << 20
	disk := newFakeDisk(size, false, DiskCaps{Flush: true})
	defer disk.start(300*time.Microsecond, 1)()
	d := newBdrv(t, disk, BlockConfig{ID: "fake"}, 256, 20<<10, true)
	rng := rand.New(rand.NewPCG(2, 3))
	want := make([]byte, size)
	var writes, reads []reqSpec
	var wrote uint64
	for i := range 160 {
		sector := uint64(i) * 32 // 16 KiB apart
		n := (1 + rng.IntN(32)) * SectorSize
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		copy(want[sector*SectorSize:], data)
		wrote += uint64(n)
		writes = append(writes, reqSpec{blkOut, sector, data, 1 + rng.IntN(4)})
		reads = append(reads, reqSpec{blkIn, sector, make([]byte, n), 1 + rng.IntN(4)})
	}
	for _, r := range d.pump(writes, 30*time.Second) {
		if r.status != blkOK || r.usedLen != 1 {
			t.Fatalf("write %d: status %d, used length %d", r.postedOrder, r.status, r.usedLen)
		}
	}
	disk.mu.Lock()
	same := bytes.Equal(disk.data, want)
	disk.mu.Unlock()
	if !same {
		t.Fatal("the disk does not hold what was written")
	}
	for i, r := range d.pump(reads, 30*time.Second) {
		sector := reads[i].sector
		if r.status != blkOK || r.usedLen != uint32(r.n)+1 || !bytes.Equal(r.got, want[sector*SectorSize:sector*SectorSize+uint64(r.n)]) {
			t.Fatalf("read %d of %d bytes at sector %d: status %d, used length %d, data wrong: %v", i, r.n, sector, r.status, r.usedLen,
				!bytes.Equal(r.got, want[sector*SectorSize:sector*SectorSize+uint64(r.n)]))
		}
	}
	disk.checkContract(t)
	if most := disk.mostPending(); most < 4 || most > DefaultMaxInFlight {
		t.Errorf("the disk held up to %d requests at once: want several, at most %d", most, DefaultMaxInFlight)
	}
	st := d.blk.Stats()
	if st.Writes != 160 || st.Reads != 160 || st.BytesWritten != wrote || st.BytesRead != wrote || st.InFlight != 0 || st.IOErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	if d.dev.Errors() != 0 || d.irqs.Load() == 0 {
		t.Errorf("%d queue errors, %d interrupts", d.dev.Errors(), d.irqs.Load())
	}
	t.Logf("the disk held up to %d requests at once", disk.mostPending())
}

// TestBlockInFlightLimit: a guest posting more chains than the device
// takes in flight has the rest wait in the ring; they are served as
// earlier ones complete.
func TestBlockInFlightLimit(t *testing.T) {
	disk := newFakeDisk(64*SectorSize, false, DiskCaps{Flush: true})
	for i := range disk.data {
		disk.data[i] = byte(i / SectorSize)
	}
	d := newBdrv(t, disk, BlockConfig{MaxInFlight: 4}, 64, 1<<10, false)
	var rs []*breq
	for i := range 10 {
		rs = append(rs, d.post(blkIn, uint64(i), make([]byte, SectorSize), true, 1))
	}
	d.notify()
	if n := disk.pendingCount(); n != 4 || len(d.reap()) != 0 {
		t.Fatalf("the disk holds %d requests, want 4 of 10", n)
	}
	if st := d.blk.Stats(); st.InFlight != 4 || st.Reads != 4 {
		t.Errorf("stats %+v", st)
	}
	done := 0
	disk.completeWhere(func(r *DiskRequest) bool { done++; return done <= 2 })
	d.drain()
	if got := len(d.reap()); got != 2 || disk.pendingCount() != 4 {
		t.Fatalf("after 2 completions: %d answered, %d on the disk; want 2 and 4", got, disk.pendingCount())
	}
	for len(d.reqs) > 0 {
		if disk.completeAll() == 0 {
			t.Fatalf("%d requests unanswered and none on the disk", len(d.reqs))
		}
		d.drain()
		d.reap()
	}
	for i, r := range rs {
		if r.status != blkOK || r.usedLen != SectorSize+1 || !bytes.Equal(r.got, bytes.Repeat([]byte{byte(i)}, SectorSize)) {
			t.Errorf("read %d: status %d, length %d, data %x...", i, r.status, r.usedLen, r.got[:4])
		}
	}
	if disk.maxPending != 4 {
		t.Errorf("the disk held up to %d requests, want 4", disk.maxPending)
	}
	disk.checkContract(t)
}

// TestBlockFlushWaitsForWrites: a flush reaches the disk only once the
// writes taken before it have completed; writes taken after it do not
// wait for it; the flush is answered when the disk's flush completes.
func TestBlockFlushWaitsForWrites(t *testing.T) {
	disk := newFakeDisk(64*SectorSize, false, DiskCaps{Flush: true})
	d := newBdrv(t, disk, BlockConfig{}, 64, 1<<10, false)
	sector := func(s uint64) func(r *DiskRequest) bool {
		return func(r *DiskRequest) bool { return r.Op == DiskWrite && r.Offset == s*SectorSize }
	}
	w1 := d.post(blkOut, 1, make([]byte, SectorSize), false, 1)
	w2 := d.post(blkOut, 2, make([]byte, SectorSize), false, 1)
	d.notify()
	fl := d.post(blkFlush, 0, nil, false, 0)
	d.notify()
	w3 := d.post(blkOut, 3, make([]byte, SectorSize), false, 1)
	d.notify()
	ops := disk.held()
	if len(ops) != 3 || ops[0].op != DiskWrite || ops[1].op != DiskWrite || ops[2].op != DiskWrite {
		t.Fatalf("the disk holds %v: want the three writes, not the flush", ops)
	}
	disk.completeWhere(sector(2))
	d.drain()
	if got := d.reap(); len(got) != 1 || got[0] != w2 {
		t.Fatalf("after the second write completed, answered %v", got)
	}
	for _, o := range disk.held() {
		if o.op == DiskFlush {
			t.Fatal("the flush went to the disk with the first write still on it")
		}
	}
	disk.completeWhere(sector(1))
	d.drain()
	if got := d.reap(); len(got) != 1 || got[0] != w1 {
		t.Fatalf("after the first write completed, answered %v", got)
	}
	ops = disk.held()
	if len(ops) != 2 || ops[0].op != DiskWrite || ops[1].op != DiskFlush {
		t.Fatalf("the disk holds %v: want the third write and the flush", ops)
	}
	if fl.answered {
		t.Fatal("the flush was answered before the disk's flush completed")
	}
	disk.completeWhere(func(r *DiskRequest) bool { return r.Op == DiskFlush })
	d.drain()
	if got := d.reap(); len(got) != 1 || got[0] != fl || fl.status != blkOK || fl.usedLen != 1 {
		t.Fatalf("after the disk's flush: answered %v, flush status %d", got, fl.status)
	}
	disk.completeAll()
	d.drain()
	if got := d.reap(); len(got) != 1 || got[0] != w3 {
		t.Fatalf("the third write: %v", got)
	}
	// With nothing on the disk a flush goes straight to it.
	fl = d.post(blkFlush, 0, nil, false, 0)
	d.notify()
	if ops := disk.held(); len(ops) != 1 || ops[0].op != DiskFlush {
		t.Fatalf("an idle disk holds %v, want the flush", ops)
	}
	disk.completeAll()
	d.drain()
	d.reap()
	if fl.status != blkOK || d.blk.Stats().Flushes != 2 {
		t.Errorf("flush status %d, stats %+v", fl.status, d.blk.Stats())
	}
	disk.checkContract(t)
}

// TestBlockFlushWithoutCache: a disk without a write cache never sees a
// flush; the device answers it itself, still offering FLUSH.
func TestBlockFlushWithoutCache(t *testing.T) {
	disk := newFakeDisk(8*SectorSize, false, DiskCaps{})
	d := newBdrv(t, disk, BlockConfig{}, 16, 1<<10, false)
	if d.blk.Features()&featureBlkFlush == 0 {
		t.Error("FLUSH not offered")
	}
	fl := d.post(blkFlush, 0, nil, false, 0)
	d.notify()
	if d.reap(); !fl.answered || fl.status != blkOK || disk.counts[DiskFlush] != 0 {
		t.Errorf("flush answered %v status %d; the disk got %d flushes", fl.answered, fl.status, disk.counts[DiskFlush])
	}
}

// TestBlockDiskErrors: a request the disk fails is answered IOERR, with
// nothing written to a read's buffers; the others succeed.
func TestBlockDiskErrors(t *testing.T) {
	disk := newFakeDisk(64*SectorSize, false, DiskCaps{Flush: true})
	errEIO := errors.New("nbd: EIO")
	disk.fail = func(r *DiskRequest) error {
		if r.Offset/SectorSize%3 == 0 || r.Op == DiskFlush {
			return errEIO
		}
		return nil
	}
	d := newBdrv(t, disk, BlockConfig{}, 128, 1<<10, false)
	var rs []*breq
	for i := range 12 {
		typ := uint32(blkIn)
		if i%2 == 1 {
			typ = blkOut
		}
		rs = append(rs, d.post(typ, uint64(i), bytes.Repeat([]byte{byte(i)}, SectorSize), typ == blkIn, 1))
	}
	rs = append(rs, d.post(blkFlush, 0, nil, false, 0))
	d.notify()
	for disk.completeAll() > 0 {
		d.drain()
	}
	d.reap()
	failed := 0
	for i, r := range rs {
		fail := i == 12 || i%3 == 0
		switch {
		case fail && (r.status != blkIOErr || r.usedLen != 1):
			t.Errorf("request %d: status %d, length %d; want IOERR, 1", i, r.status, r.usedLen)
		case fail && r.typ == blkIn && !bytes.Equal(r.got, bytes.Repeat([]byte{0xEE}, SectorSize)):
			t.Errorf("a failed read wrote its buffer: %x", r.got[:8])
		case !fail && r.status != blkOK:
			t.Errorf("request %d: status %d", i, r.status)
		}
		if fail {
			failed++
		}
	}
	if st := d.blk.Stats(); st.DiskErrors != uint64(failed) || st.IOErrors != uint64(failed) || st.InFlight != 0 {
		t.Errorf("stats %+v, want %d disk errors", st, failed)
	}
	if d.dev.Errors() != 0 {
		t.Error("a failed request broke the queue")
	}
}

// TestBlockReadOnly: a read-only disk is offered with RO and without
// DISCARD; writes are refused with IOERR, discards with UNSUPP, and never
// reach it; reads and flushes do.
func TestBlockReadOnly(t *testing.T) {
	disk := newFakeDisk(16*SectorSize, true, DiskCaps{Flush: true, Discard: true})
	copy(disk.data, "golden")
	d := newBdrv(t, disk, BlockConfig{}, 32, 1<<10, false)
	if d.blk.Features()&featureBlkRO == 0 || d.blk.Features()&featureBlkDiscard != 0 {
		t.Errorf("features %#x: want RO, not DISCARD", d.blk.Features())
	}
	w := d.post(blkOut, 0, make([]byte, SectorSize), false, 1)
	dc := d.post(blkDiscard, 0, discardSegs(0, 8, 0), false, 1)
	r := d.post(blkIn, 0, make([]byte, SectorSize), true, 1)
	fl := d.post(blkFlush, 0, nil, false, 0)
	d.notify()
	for disk.completeAll() > 0 {
		d.drain()
	}
	d.reap()
	if w.status != blkIOErr || dc.status != blkUnsupp || r.status != blkOK || fl.status != blkOK {
		t.Errorf("write %d, discard %d, read %d, flush %d", w.status, dc.status, r.status, fl.status)
	}
	if string(r.got[:6]) != "golden" || disk.counts[DiskWrite]+disk.counts[DiskDiscard] != 0 {
		t.Errorf("read %q; the disk got %d writes, %d discards", r.got[:6], disk.counts[DiskWrite], disk.counts[DiskDiscard])
	}
	disk.checkContract(t)

	// The RAM disk, read-only.
	data := bytes.Repeat([]byte{7}, 8*SectorSize)
	mem := NewMemDisk(data, MemDiskOptions{ReadOnly: true})
	d = newBdrv(t, mem, BlockConfig{}, 16, 1<<10, false)
	w = d.post(blkOut, 0, make([]byte, SectorSize), false, 1)
	d.notify()
	if d.reap(); w.status != blkIOErr || data[0] != 7 {
		t.Errorf("write to a read-only RAM disk: status %d, data %d", w.status, data[0])
	}
}

// TestBlockRefused: requests outside the disk, off its block size, longer
// than a slot's buffer, or with data the wrong way are answered IOERR
// without reaching the disk; unknown ones UNSUPP.
func TestBlockRefused(t *testing.T) {
	const size = 64 << 10
	disk := newFakeDisk(size, false, DiskCaps{Flush: true, BlockSize: 4096})
	d := newBdrv(t, disk, BlockConfig{MaxSegments: 2, MaxSegmentSize: 4096}, 64, 16<<10, false)
	if got := d.dev.ReadMMIO(spec.RegConfig+cfgBlkSize, 4); got != 4096 || d.blk.Features()&featureBlkBlkSize == 0 {
		t.Errorf("blk_size %d", got)
	}
	for _, c := range []struct {
		name   string
		typ    uint32
		sector uint64
		n      int
		write  bool // the data buffers are device-writable
		want   byte
	}{
		{"read at the end", blkIn, size / SectorSize, 4096, true, blkIOErr},
		{"read across the end", blkIn, size/SectorSize - 8, 8192, true, blkIOErr},
		{"huge sector", blkIn, 1 << 60, 4096, true, blkIOErr},
		{"sector off the block size", blkIn, 1, 4096, true, blkIOErr},
		{"length off the block size", blkIn, 0, SectorSize, true, blkIOErr},
		{"longer than size_max x seg_max", blkIn, 0, 12288, true, blkIOErr},
		{"read into device-readable buffers", blkIn, 0, 4096, false, blkIOErr},
		{"write from device-writable buffers", blkOut, 0, 4096, true, blkIOErr},
		{"unknown type", 99, 0, 0, false, blkUnsupp},
		{"write zeroes", 13, 0, 16, false, blkUnsupp},
		{"discard, not offered", blkDiscard, 0, 16, false, blkUnsupp},
		{"empty read at the end", blkIn, size / SectorSize, 0, true, blkOK},
	} {
		r := d.post(c.typ, c.sector, make([]byte, c.n), c.write, 1)
		d.notify()
		if d.reap(); r.status != c.want || r.usedLen != 1 {
			t.Errorf("%s: status %d, length %d; want %d, 1", c.name, r.status, r.usedLen, c.want)
		}
	}
	if disk.counts != [4]int{} || d.dev.Errors() != 0 {
		t.Errorf("the disk got %v; %d queue errors", disk.counts, d.dev.Errors())
	}
	if st := d.blk.Stats(); st.IOErrors != 8 || st.Unsupported != 3 || st.Others != 2 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

// discardSegs encodes discard segments: sector, sectors, flags triples.
func discardSegs(v ...uint64) []byte {
	var p []byte
	for i := 0; i+2 < len(v); i += 3 {
		p = binary.LittleEndian.AppendUint64(p, v[i])
		p = binary.LittleEndian.AppendUint32(p, uint32(v[i+1]))
		p = binary.LittleEndian.AppendUint32(p, uint32(v[i+2]))
	}
	return p
}

// TestBlockDiscard: DISCARD is offered with its limits for a disk that
// discards; a request's segments reach the disk one after the other;
// flags, too many segments and ranges outside the disk are refused.
func TestBlockDiscard(t *testing.T) {
	disk := newFakeDisk(64*SectorSize, false, DiskCaps{Flush: true, Discard: true})
	for i := range disk.data {
		disk.data[i] = 0xAA
	}
	d := newBdrv(t, disk, BlockConfig{MaxDiscardSegments: 4}, 64, 1<<10, false)
	cfg := func(off uint64) uint64 { return d.dev.ReadMMIO(spec.RegConfig+off, 4) }
	if d.blk.Features()&featureBlkDiscard == 0 || cfg(cfgMaxDiscardSectors) != maxDiscardSectors || cfg(cfgMaxDiscardSeg) != 4 || cfg(cfgDiscardAlignment) != 1 {
		t.Fatalf("discard config: %d sectors, %d segments, alignment %d", cfg(cfgMaxDiscardSectors), cfg(cfgMaxDiscardSeg), cfg(cfgDiscardAlignment))
	}
	r := d.post(blkDiscard, 0, discardSegs(8, 8, 0, 20, 0, 0, 40, 4, 0), false, 2)
	d.notify()
	if ops := disk.held(); len(ops) != 1 || ops[0] != (diskOp{DiskDiscard, 8 * SectorSize, 8 * SectorSize}) {
		t.Fatalf("the disk holds %v, want the first segment", ops)
	}
	disk.completeAll()
	d.drain()
	if ops := disk.held(); len(ops) != 1 || ops[0] != (diskOp{DiskDiscard, 40 * SectorSize, 4 * SectorSize}) || r.answered {
		t.Fatalf("the disk holds %v, want the third segment (the second is empty)", ops)
	}
	disk.completeAll()
	d.drain()
	if d.reap(); r.status != blkOK || r.usedLen != 1 {
		t.Fatalf("discard: status %d", r.status)
	}
	if disk.data[8*SectorSize] != 0 || disk.data[16*SectorSize] != 0xAA || disk.data[40*SectorSize] != 0 || disk.data[44*SectorSize] != 0xAA {
		t.Error("the discarded ranges are wrong")
	}
	for _, c := range []struct {
		name string
		data []byte
		want byte
	}{
		{"unmap", discardSegs(0, 8, blkDiscardUnmap), blkUnsupp},
		{"unknown flag", discardSegs(0, 8, 4), blkUnsupp},
		{"five segments", discardSegs(0, 1, 0, 1, 1, 0, 2, 1, 0, 3, 1, 0, 4, 1, 0), blkIOErr},
		{"past the end", discardSegs(60, 8, 0), blkIOErr},
		{"a ragged segment", discardSegs(0, 8, 0)[:12], blkIOErr},
		{"no segment", nil, blkIOErr},
	} {
		r := d.post(blkDiscard, 0, c.data, false, 1)
		d.notify()
		if d.reap(); r.status != c.want {
			t.Errorf("%s: status %d, want %d", c.name, r.status, c.want)
		}
	}
	if disk.counts[DiskDiscard] != 2 {
		t.Errorf("the disk got %d discards, want 2", disk.counts[DiskDiscard])
	}
	// A failing segment fails the request; the rest are not sent.
	disk.fail = func(*DiskRequest) error { return errors.New("EIO") }
	r = d.post(blkDiscard, 0, discardSegs(0, 8, 0, 16, 8, 0), false, 1)
	d.notify()
	disk.completeAll()
	d.drain()
	if d.reap(); r.status != blkIOErr || disk.counts[DiskDiscard] != 3 {
		t.Errorf("failed discard: status %d, %d discards", r.status, disk.counts[DiskDiscard])
	}
	disk.checkContract(t)

	// The RAM disk discards when asked to, zeroing.
	data := bytes.Repeat([]byte{7}, 8*SectorSize)
	d = newBdrv(t, NewMemDisk(data, MemDiskOptions{Discard: true}), BlockConfig{}, 16, 1<<10, false)
	r = d.post(blkDiscard, 0, discardSegs(2, 2, 0), false, 1)
	d.notify()
	if d.reap(); r.status != blkOK || data[2*SectorSize] != 0 || data[4*SectorSize] != 7 || data[2*SectorSize-1] != 7 {
		t.Errorf("RAM disk discard: status %d", r.status)
	}
}

// TestBlockReset: a reset with requests on the disk. Their completions,
// arriving after the reset, write nothing to guest memory; their slots
// (and buffers) are not given to new requests until the disk completed
// them; the device works for the new driver meanwhile.
func TestBlockReset(t *testing.T) {
	disk := newFakeDisk(64*SectorSize, false, DiskCaps{Flush: true})
	for i := range disk.data {
		disk.data[i] = 0x5A
	}
	d := newBdrv(t, disk, BlockConfig{MaxInFlight: 3}, 16, 1<<10, false)
	r1 := d.post(blkIn, 1, make([]byte, SectorSize), true, 1)
	r2 := d.post(blkIn, 2, make([]byte, SectorSize), true, 1)
	w := d.post(blkOut, 3, bytes.Repeat([]byte{1}, SectorSize), false, 1)
	d.notify()
	if disk.pendingCount() != 3 {
		t.Fatalf("%d requests on the disk, want 3", disk.pendingCount())
	}
	old := d.mem.get(hDesc, int(hBufs-hDesc)+16*int(d.region))
	d.w(spec.RegStatus, 0) // the driver resets the device

	// r1 completes after the reset: nothing is written.
	disk.completeWhere(func(r *DiskRequest) bool { return r.Offset == 1*SectorSize })
	d.drain()
	if now := d.mem.get(hDesc, len(old)); !bytes.Equal(now, old) {
		t.Fatal("a completion after the reset wrote guest memory")
	}
	if r1.answered || d.mem.get(r1.dat, 1)[0] != 0xEE || d.mem.get(r1.st, 1)[0] != 0xFF {
		t.Fatal("the abandoned read was answered")
	}

	// A new driver: three reads. r1's slot is free once the worker has
	// seen its completion; r2's and w's are still the disk's.
	d.init(spec.FeatureVersion1 | d.blk.Features())
	for i := range 3 {
		d.post(blkIn, uint64(10+i), make([]byte, SectorSize), true, 1)
	}
	d.notify()
	held := disk.held()
	if len(held) != 3 || held[2].offset != 10*SectorSize {
		t.Fatalf("the disk holds %v: want the two abandoned requests and one new read", held)
	}
	disk.checkContract(t) // no buffer given twice
	// r2 and w complete: dropped, their slots serve the waiting reads.
	disk.completeWhere(func(r *DiskRequest) bool { return r.Offset < 10*SectorSize })
	d.drain()
	if held = disk.held(); len(held) != 3 {
		t.Fatalf("the disk holds %v: want the three new reads", held)
	}
	if r2.answered || w.answered {
		t.Fatal("an abandoned request was answered")
	}
	for disk.completeAll() > 0 {
		d.drain()
	}
	done := d.reap()
	if len(done) != 3 {
		t.Fatalf("%d answers, want the three new reads", len(done))
	}
	for _, r := range done {
		if r.status != blkOK || !bytes.Equal(r.got, bytes.Repeat([]byte{0x5A}, SectorSize)) {
			t.Errorf("new read at %d: status %d", r.sector, r.status)
		}
	}
	if st := d.blk.Stats(); st.Dropped != 3 || st.InFlight != 0 {
		t.Errorf("stats %+v: want 3 dropped, none in flight", st)
	}
	disk.checkContract(t)
}

// TestBlockResetHeldFlush: a flush held behind a write when the driver
// resets is dropped, never sent to the disk.
func TestBlockResetHeldFlush(t *testing.T) {
	disk := newFakeDisk(8*SectorSize, false, DiskCaps{Flush: true})
	d := newBdrv(t, disk, BlockConfig{}, 16, 1<<10, false)
	d.post(blkOut, 0, make([]byte, SectorSize), false, 1)
	d.post(blkFlush, 0, nil, false, 0)
	d.notify()
	d.w(spec.RegStatus, 0)
	disk.completeAll()
	d.init(spec.FeatureVersion1 | d.blk.Features())
	r := d.post(blkIn, 0, make([]byte, SectorSize), true, 1)
	d.notify()
	disk.completeAll()
	d.drain()
	if d.reap(); r.status != blkOK || disk.counts[DiskFlush] != 0 {
		t.Errorf("read status %d; the disk got %d flushes", r.status, disk.counts[DiskFlush])
	}
	if st := d.blk.Stats(); st.Dropped != 2 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestBlockResetRunning: resets while the worker runs and the disk
// completes from its own goroutine: each new driver's requests are all
// answered right, and no slot is lost.
func TestBlockResetRunning(t *testing.T) {
	disk := newFakeDisk(256*SectorSize, false, DiskCaps{Flush: true})
	for i := range disk.data {
		disk.data[i] = byte(i / SectorSize)
	}
	defer disk.start(200*time.Microsecond, 7)()
	d := newBdrvLocked(t, disk, BlockConfig{MaxInFlight: 8}, 64, 1<<10, true, true)
	for round := range 20 {
		for i := range 12 {
			d.post(blkIn, uint64(round*12+i)%256, make([]byte, SectorSize), true, 1)
		}
		d.notify()
		time.Sleep(time.Duration(round%4) * 100 * time.Microsecond)
		d.init(spec.FeatureVersion1 | d.blk.Features()) // resets with requests in flight
	}
	var specs []reqSpec
	for i := range 40 {
		specs = append(specs, reqSpec{blkIn, uint64(i), make([]byte, SectorSize), 1})
	}
	for i, r := range d.pump(specs, 30*time.Second) {
		if r.status != blkOK || !bytes.Equal(r.got, bytes.Repeat([]byte{byte(i)}, SectorSize)) {
			t.Fatalf("read %d after the resets: status %d, %x", i, r.status, r.got[:4])
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.blk.Stats().InFlight != 0 || disk.pendingCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, %d on the disk", d.blk.Stats(), disk.pendingCount())
		}
		time.Sleep(time.Millisecond)
	}
	disk.checkContract(t)
	t.Logf("stats %+v", d.blk.Stats())
}

// TestBlockFraming: a request's header, data and status byte may be laid
// out in descriptors any way (2.6.4).
func TestBlockFraming(t *testing.T) {
	data := make([]byte, 16*SectorSize)
	d := newBdrv(t, NewMemDisk(data, MemDiskOptions{}), BlockConfig{}, 16, 4<<10, false)
	base := uint64(hBufs + 8*d.region)
	hdr := func(at uint64, typ uint32, sector uint64) {
		var h [16]byte
		binary.LittleEndian.PutUint32(h[0:], typ)
		binary.LittleEndian.PutUint64(h[8:], sector)
		d.mem.put(at, h[:])
	}
	// A write: header and data in one buffer, the status alone.
	hdr(base, blkOut, 2)
	d.mem.put(base+16, bytes.Repeat([]byte("ab"), SectorSize/2))
	st := base + 16 + SectorSize
	d.mem.put(st, []byte{0xFF})
	d.postRaw(Buffer{Addr: base, Len: 16 + SectorSize}, Buffer{Addr: st, Len: 1, Write: true})
	if s := d.mem.get(st, 1)[0]; s != blkOK || string(data[2*SectorSize:2*SectorSize+4]) != "abab" {
		t.Fatalf("merged header and data: status %d, disk %q", s, data[2*SectorSize:2*SectorSize+4])
	}
	// A read: the header split in two, data and status in one buffer.
	hdr(base, blkIn, 2)
	d.postRaw(Buffer{Addr: base, Len: 8}, Buffer{Addr: base + 8, Len: 8}, Buffer{Addr: base + 0x100, Len: SectorSize + 1, Write: true})
	if s := d.mem.get(base+0x100+SectorSize, 1)[0]; s != blkOK || string(d.mem.get(base+0x100, 4)) != "abab" {
		t.Fatalf("merged data and status: status %d", s)
	}
	if l := d.mem.u32(hUsed + 4 + 8*1 + 4); l != SectorSize+1 {
		t.Errorf("used length %d", l)
	}
	// A header in a device-writable buffer, a status byte in a
	// device-readable one: malformed.
	for _, bufs := range [][]Buffer{
		{{Addr: base, Len: 16, Write: true}, {Addr: st, Len: 1, Write: true}},
		{{Addr: base, Len: 16}, {Addr: st, Len: 1}},
		{{Addr: base, Len: 8}, {Addr: st, Len: 1, Write: true}},
	} {
		d.init(spec.FeatureVersion1)
		d.postRaw(bufs...)
		if d.dev.ReadMMIO(spec.RegStatus, 4)&spec.StatusNeedsReset == 0 {
			t.Errorf("chain %v accepted", bufs)
		}
	}
}

// postRaw posts one chain of bufs at descriptors 0.. and notifies.
func (d *bdrv) postRaw(bufs ...Buffer) {
	for i, b := range bufs {
		var e [16]byte
		next := -1
		if i < len(bufs)-1 {
			next = i + 1
		}
		putDesc(e[:], b, next)
		d.mem.put(hDesc+16*uint64(i), e[:])
	}
	d.mem.put(hAvail+4+2*uint64(d.avail%d.qn), []byte{0, 0})
	d.avail++
	d.mem.put(hAvail+2, binary.LittleEndian.AppendUint16(nil, d.avail))
	d.notify()
}

// TestBlockConfig: the features and configuration space offered.
func TestBlockConfig(t *testing.T) {
	blk, err := NewBlock(NewMemDisk(make([]byte, 1<<20), MemDiskOptions{}), "x")
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(featureBlkSizeMax | featureBlkSegMax | featureBlkBlkSize | featureBlkFlush)
	if blk.Features() != want {
		t.Errorf("features %#x, want %#x", blk.Features(), want)
	}
	for _, c := range []struct{ off, size, want uint64 }{
		{cfgCapacity, 8, 2048}, {cfgSizeMax, 4, DefaultMaxSegmentSize}, {cfgSegMax, 4, DefaultMaxSegments},
		{cfgBlkSize, 4, SectorSize}, {cfgMaxDiscardSectors, 4, 0}, {cfgCapacity + 1, 1, 8},
		{blkConfigSize - 4, 8, 0}, {blkConfigSize, 4, 0},
	} {
		if got := blk.ReadConfig(c.off, int(c.size)); got != c.want {
			t.Errorf("config %d/%d = %d, want %d", c.off, c.size, got, c.want)
		}
	}
	for _, bad := range []struct {
		disk Disk
		cfg  BlockConfig
	}{
		{NewMemDisk(nil, MemDiskOptions{}), BlockConfig{}},
		{NewMemDisk(make([]byte, 100), MemDiskOptions{}), BlockConfig{}},
		{newFakeDisk(4096+512, false, DiskCaps{BlockSize: 4096}), BlockConfig{}},
		{newFakeDisk(4096, false, DiskCaps{BlockSize: 1024 + 512}), BlockConfig{}},
		{NewMemDisk(make([]byte, 4096), MemDiskOptions{}), BlockConfig{MaxInFlight: MaxQueueSize + 1}},
		{NewMemDisk(make([]byte, 4096), MemDiskOptions{}), BlockConfig{MaxSegments: MaxQueueSize - 1}},
		{NewMemDisk(make([]byte, 4096), MemDiskOptions{}), BlockConfig{MaxSegmentSize: 512}},
		{NewMemDisk(make([]byte, 4096), MemDiskOptions{}), BlockConfig{MaxSegments: 254, MaxSegmentSize: 1 << 20}},
	} {
		if _, err := NewBlockConfig(bad.disk, bad.cfg); err == nil {
			t.Errorf("NewBlockConfig(%d bytes, %+v) accepted", bad.disk.Size(), bad.cfg)
		}
	}
}

// TestMemDisk: the RAM disk's requests, used directly.
func TestMemDisk(t *testing.T) {
	m := NewMemDisk(make([]byte, 4*SectorSize), MemDiskOptions{})
	var got *DiskRequest
	do := func(op DiskOp, off, n uint64, data []byte) error {
		r := &DiskRequest{Op: op, Offset: off, Length: n, Data: data, Done: func(r *DiskRequest) { got = r }}
		got = nil
		m.Submit(r)
		if got != r {
			t.Fatalf("%v did not complete inside Submit", op)
		}
		return r.Err
	}
	if err := do(DiskWrite, SectorSize, 3, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3)
	if err := do(DiskRead, SectorSize, 3, p); err != nil || string(p) != "abc" {
		t.Fatalf("read %q, %v", p, err)
	}
	if err := do(DiskRead, 4*SectorSize-1, 2, p); !errors.Is(err, ErrDiskRange) {
		t.Errorf("read past the end: %v", err)
	}
	if err := do(DiskDiscard, 0, SectorSize, nil); !errors.Is(err, ErrDiskUnsupported) {
		t.Errorf("discard: %v", err)
	}
	if err := do(DiskFlush, 0, 0, nil); err != nil {
		t.Errorf("flush: %v", err)
	}
	if DiskDiscard.String() != "discard" || DiskOp(9).String() != "DiskOp(9)" {
		t.Error("DiskOp names")
	}
}
