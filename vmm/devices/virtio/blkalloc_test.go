// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// batchDriver posts the same batch of requests again and again without
// allocating: request i is descriptors 3i..3i+2 with its buffers at a
// fixed place, so a batch is only available-ring entries.
type batchDriver struct {
	*bdrv
	n       int
	scratch [2]byte
}

const batchData = 4096

// newBatchDriver sets up n requests: reads, writes and (if flush) a flush
// as the last, each of batchData bytes at its own sector range.
func newBatchDriver(d *bdrv, n int, flush bool) *batchDriver {
	b := &batchDriver{bdrv: d, n: n}
	for i := range n {
		typ := uint32(blkIn)
		if i%2 == 1 {
			typ = blkOut
		}
		if flush && i == n-1 {
			typ = blkFlush
		}
		base := hBufs + uint64(i)*d.region
		hdr := binary.LittleEndian.AppendUint32(nil, typ)
		hdr = binary.LittleEndian.AppendUint32(hdr, 0)
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(i)*batchData/SectorSize)
		d.mem.put(base, hdr)
		descs := []uint16{uint16(3 * i), uint16(3*i + 1), uint16(3*i + 2)}
		r := &breq{descs: descs, hdr: base, dat: base + 16, st: base + 16 + batchData}
		if typ == blkFlush {
			r.descs = []uint16{descs[0], descs[2]}
			d.chainDescs(r, 0, 0, false)
			continue
		}
		d.chainDescs(r, batchData, 1, typ == blkIn)
	}
	return b
}

// post makes the batch available and notifies; it allocates nothing.
func (b *batchDriver) post() {
	for i := range b.n {
		binary.LittleEndian.PutUint16(b.scratch[:], uint16(3*i))
		b.mem.WriteAt(b.scratch[:], hAvail+4+2*uint64(b.avail%b.qn))
		b.avail++
	}
	binary.LittleEndian.PutUint16(b.scratch[:], b.avail)
	b.mem.WriteAt(b.scratch[:], hAvail+2)
	b.dev.WriteMMIO(spec.RegQueueNotify, 4, 0)
}

// usedIdx reads the used index without allocating.
func (b *batchDriver) usedIdx() uint16 {
	b.mem.ReadAt(b.scratch[:], hUsed+2)
	return binary.LittleEndian.Uint16(b.scratch[:])
}

// TestBlockNoAllocations: in steady state a request allocates nothing,
// whether the disk completes it inside Submit (MemDisk), when the test
// says, or from a goroutine of its own, out of order.
func TestBlockNoAllocations(t *testing.T) {
	const n = 8
	check := func(name string, allocs float64) {
		t.Helper()
		if allocs != 0 {
			t.Errorf("%s: %v allocations a batch of %d requests", name, allocs, n)
		}
	}

	mem := NewMemDisk(make([]byte, n*batchData), MemDiskOptions{})
	b := newBatchDriver(newBdrv(t, mem, BlockConfig{}, 32, 8<<10, false), n, true)
	check("MemDisk", testing.AllocsPerRun(100, func() {
		b.post()
		b.drain()
	}))

	disk := newFakeDisk(n*batchData, false, DiskCaps{Flush: true})
	disk.log = false
	b = newBatchDriver(newBdrv(t, disk, BlockConfig{}, 32, 8<<10, false), n, true)
	check("async, completed by the test", testing.AllocsPerRun(100, func() {
		b.post()
		b.drain()
		for disk.completeAll() > 0 {
			b.drain()
		}
	}))
	if b.usedIdx() != 101*n || disk.mostPending() != n-1 {
		t.Errorf("used index %d, up to %d on the disk", b.usedIdx(), disk.mostPending())
	}

	disk = newFakeDisk(n*batchData, false, DiskCaps{Flush: true})
	disk.log = false
	defer disk.start(50*time.Microsecond, 3)()
	b = newBatchDriver(newBdrv(t, disk, BlockConfig{}, 32, 8<<10, true), n, false)
	check("async, completed out of order by the disk's goroutine", testing.AllocsPerRun(100, func() {
		want := b.avail + n
		b.post()
		for b.usedIdx() != want {
			runtime.Gosched()
		}
	}))
	disk.checkContract(t)
}
