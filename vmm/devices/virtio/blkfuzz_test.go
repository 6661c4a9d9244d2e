// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// The fuzzed device's guest: its queue of 8 at fuzzDesc, the ring bytes
// the fuzzer gives from there on.
const (
	fuzzDesc  = 0x1000
	fuzzAvail = fuzzDesc + 0x100
	fuzzUsed  = fuzzDesc + 0x200
	fuzzMem   = 0x8000
	fuzzSlots = 4
)

var errFuzzEIO = errors.New("fuzz: EIO")

// FuzzBlockAsync drives the block device over the fake asynchronous disk
// with fuzzed rings and buffers (ring), a fuzzed disk (mode: flush,
// discard, 4 KiB blocks, read-only, failing) and a fuzzed schedule (ops):
// notifications, completions in any order, with or without error,
// register writes, resets, writes to guest memory between steps. The
// device must not panic; every request the disk gets keeps the Disk
// contract (bounds, alignment, never a buffer another request holds, no
// write to a read-only disk) and at most fuzzSlots are on the disk at
// once; completions after a reset write no guest memory; and once the
// disk completed everything and a new driver started, every slot is free.
func FuzzBlockAsync(f *testing.F) {
	// A read at sector 1: header at 0x1400, 512 bytes at 0x1600, status
	// at 0x1800, head 0, one available entry.
	ring := make([]byte, 0x900)
	desc := func(i int, addr uint64, n uint32, flags, next uint16) {
		binary.LittleEndian.PutUint64(ring[16*i:], addr)
		binary.LittleEndian.PutUint32(ring[16*i+8:], n)
		binary.LittleEndian.PutUint16(ring[16*i+12:], flags)
		binary.LittleEndian.PutUint16(ring[16*i+14:], next)
	}
	desc(0, 0x1400, 16, spec.DescNext, 1)
	desc(1, 0x1600, 512, spec.DescNext|spec.DescWrite, 2)
	desc(2, 0x1800, 1, spec.DescWrite, 0)
	binary.LittleEndian.PutUint16(ring[0x102:], 1)
	ring[0x408] = 1
	f.Add(byte(3), []byte{0, 1, 0, 0}, ring)
	f.Add(byte(0x13), []byte{0, 4, 2, 0, 0}, ring)
	f.Add(byte(0x0B), []byte{0, 5, 0x00, 0x04, 1, 0, 6, 0, 2, 1, 0}, ring)
	f.Fuzz(func(t *testing.T, mode byte, ops, ring []byte) {
		fuzzBlock(t, mode, ops, ring)
	})
}

func fuzzBlock(t *testing.T, mode byte, ops, ring []byte) {
	caps := DiskCaps{Flush: mode&1 != 0, Discard: mode&2 != 0}
	if mode&4 != 0 {
		caps.BlockSize = 4096
	}
	disk := newFakeDisk(64<<10, mode&8 != 0, caps)
	disk.log = false
	if mode&16 != 0 {
		disk.fail = func(r *DiskRequest) error {
			if r.Offset&4096 != 0 {
				return errFuzzEIO
			}
			return nil
		}
	}
	blk, err := NewBlockConfig(disk, BlockConfig{ID: "fuzz", MaxInFlight: fuzzSlots, MaxSegments: 2, MaxDiscardSegments: 3})
	if err != nil {
		t.Fatal(err)
	}
	mem := make(flat, fuzzMem)
	copy(mem[fuzzDesc:], ring)
	dev := NewDevice(blk, mem, func(bool) {})
	blk.Attach(dev)
	w := func(off uint64, v uint32) { dev.WriteMMIO(off, 4, uint64(v)) }
	drain := func() {
		for dev.Serve() {
		}
	}
	setup := func() {
		writeFeatures(w, blk.Features()|spec.FeatureVersion1)
		setQueue(w, 0, qSize, fuzzDesc, fuzzAvail, fuzzUsed)
		w(spec.RegStatus, 15)
	}
	setup()
	next := func() byte {
		if len(ops) == 0 {
			return 0
		}
		b := ops[0]
		ops = ops[1:]
		return b
	}
	for len(ops) > 0 {
		switch op := next() % 6; op {
		case 0:
			w(spec.RegQueueNotify, 0)
			drain()
		case 1, 2: // complete the k-th request on the disk, well or not
			var err error
			if op == 2 {
				err = errFuzzEIO
			}
			disk.completeNth(int(next()), err)
			drain()
		case 3:
			off := uint64(next()) << 2 & 0x1FF
			v := uint32(next()) | uint32(next())<<8 | uint32(next())<<16 | uint32(next())<<24
			w(off, v)
			drain()
		case 4: // reset: completions then write nothing; a new driver
			w(spec.RegStatus, 0)
			before := bytes.Clone(mem)
			for disk.completeAll() > 0 {
				drain()
			}
			if !bytes.Equal(before, mem) {
				t.Fatal("completions after a reset wrote guest memory")
			}
			setup()
		case 5:
			at := fuzzDesc + (uint64(next())|uint64(next())<<8)%(fuzzMem-fuzzDesc)
			mem[at] = next()
		}
		if n := disk.pendingCount(); n > fuzzSlots {
			t.Fatalf("%d requests on the disk, more than %d", n, fuzzSlots)
		}
	}
	// A reset, then everything completes; a new driver, with an empty
	// ring, has every slot back, and the abandoned requests' completions
	// wrote nothing.
	w(spec.RegStatus, 0)
	for disk.completeAll() > 0 {
		drain()
	}
	clear(mem[fuzzDesc : fuzzDesc+0x300])
	setup()
	before := bytes.Clone(mem)
	w(spec.RegQueueNotify, 0)
	drain()
	if !bytes.Equal(before, mem) {
		t.Fatal("abandoned requests' completions wrote guest memory")
	}
	if st := blk.Stats(); st.InFlight != 0 || len(blk.free) != fuzzSlots || disk.pendingCount() != 0 {
		t.Fatalf("after everything completed: stats %+v, %d slots free", st, len(blk.free))
	}
	disk.checkContract(t)
}
