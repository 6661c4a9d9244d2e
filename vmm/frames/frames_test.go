// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package frames

import (
	"errors"
	"slices"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

func TestPool(t *testing.T) {
	m := memmap.Map{
		{Start: 0x1800, Size: 0x3000, Type: memmap.Usable}, // whole frames 0x2000-0x4000
		{Start: 0x10000, Size: 0x2000, Type: memmap.Reserved},
		{Start: 0x20000, Size: 0x1000, Type: memmap.Usable},
	}
	p, err := NewPool(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, total := p.Stats(); total != 3 {
		t.Fatalf("total = %d, want 3", total)
	}
	seen := map[uint64]bool{}
	for i := 0; i < 3; i++ {
		f, err := p.AllocFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f%Size != 0 || seen[f] || (f != 0x2000 && f != 0x3000 && f != 0x20000) {
			t.Fatalf("bad or repeated frame %#x", f)
		}
		seen[f] = true
	}
	if _, err := p.AllocFrame(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("fourth alloc: %v, want ErrExhausted", err)
	}
	p.FreeFrame(0x3000)
	if f, err := p.AllocFrame(); err != nil || f != 0x3000 {
		t.Fatalf("realloc = %#x, %v", f, err)
	}
	if inUse, _ := p.Stats(); inUse != 3 {
		t.Fatalf("inUse = %d", inUse)
	}
}

func TestFreeForeignPanics(t *testing.T) {
	p, err := NewPool(memmap.Map{{Start: 0x1000, Size: 0x4000, Type: memmap.Usable}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []uint64{0x1000, 0x9000, 0x1001} { // not yet handed out, outside, unaligned
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FreeFrame(%#x) did not panic", bad)
				}
			}()
			p.FreeFrame(bad)
		}()
	}
}

func TestEmpty(t *testing.T) {
	if _, err := NewPool(memmap.Map{{Start: 0, Size: 0x800, Type: memmap.Usable}}); err == nil {
		t.Fatal("pool over less than a frame succeeded")
	}
}

func TestRuns(t *testing.T) {
	// 16 MiB + 12 KiB to 24 MiB: the first run starts at 18 MiB, the
	// frames below it go to the free list.
	p, err := NewPool(memmap.Map{{Start: 16<<20 + 0x3000, Size: 8<<20 - 0x3000, Type: memmap.Usable}})
	if err != nil {
		t.Fatal(err)
	}
	_, total := p.Stats()
	var runs []uint64
	for {
		r, err := p.AllocRun()
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil || r%RunSize != 0 {
			t.Fatalf("AllocRun = %#x, %v", r, err)
		}
		runs = append(runs, r)
	}
	if len(runs) != 3 || runs[0] != 18<<20 || runs[2] != 22<<20 {
		t.Fatalf("runs %#x, want 18, 20 and 22 MiB", runs)
	}
	inUse, _ := p.Stats()
	if inUse != 3*RunFrames {
		t.Errorf("in use %d, want %d", inUse, 3*RunFrames)
	}
	// The frames skipped for alignment are still there, one by one.
	skipped := total - 3*RunFrames
	for range skipped {
		if _, err := p.AllocFrame(); err != nil {
			t.Fatalf("the skipped frames: %v", err)
		}
	}
	if _, err := p.AllocFrame(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("more frames than the pool holds: %v", err)
	}
	// A freed run is handed out whole again, or broken up for frames.
	p.FreeRun(runs[1])
	if r, err := p.AllocRun(); err != nil || r != runs[1] {
		t.Fatalf("AllocRun after FreeRun = %#x, %v", r, err)
	}
	p.FreeRun(runs[1])
	seen := map[uint64]bool{}
	for range RunFrames {
		f, err := p.AllocFrame()
		if err != nil || f < runs[1] || f >= runs[1]+RunSize || seen[f] {
			t.Fatalf("frame from a broken run: %#x, %v", f, err)
		}
		seen[f] = true
	}
	if inUse, _ := p.Stats(); inUse != total {
		t.Errorf("in use %d of %d after taking everything", inUse, total)
	}
}

func TestFreeRunRefusesWhatWasNotHandedOut(t *testing.T) {
	p, _ := NewPool(memmap.Map{{Start: 16 << 20, Size: 8 << 20, Type: memmap.Usable}})
	defer func() {
		if recover() == nil {
			t.Error("freeing a run never handed out did not panic")
		}
	}()
	p.FreeRun(20 << 20)
}

// TestFailAfter: after the next n allocations, frames or runs alike,
// every allocation fails and takes nothing, until cancelled.
func TestFailAfter(t *testing.T) {
	p, err := NewPool(memmap.Map{{Start: 16 << 20, Size: 8 << 20, Type: memmap.Usable}})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.FailPending(); n != -1 {
		t.Errorf("FailPending %d before any injection, want -1", n)
	}
	p.FailAfter(2)
	if _, err := p.AllocFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AllocRun(); err != nil {
		t.Fatal(err)
	}
	inUse, _ := p.Stats()
	if n := p.FailPending(); n != 0 {
		t.Errorf("FailPending %d, want 0", n)
	}
	for range 3 {
		if _, err := p.AllocRun(); !errors.Is(err, ErrInjected) {
			t.Fatalf("run past the injection: %v, want ErrInjected", err)
		}
		if _, err := p.AllocFrame(); !errors.Is(err, ErrInjected) {
			t.Fatalf("frame past the injection: %v, want ErrInjected", err)
		}
	}
	if now, _ := p.Stats(); now != inUse {
		t.Errorf("failed allocations took frames: %d in use, was %d", now, inUse)
	}
	p.FailAfter(-1)
	if _, err := p.AllocFrame(); err != nil {
		t.Fatalf("after cancelling: %v", err)
	}
	if n := p.FailPending(); n != -1 {
		t.Errorf("FailPending %d after cancelling, want -1", n)
	}
}

// TestHugeRuns: a huge run is 1 GiB-aligned and contiguous; the memory
// skipped to reach the alignment, and a region too small for one, stay
// usable as runs and frames; a huge run freed run by run comes back as
// runs; and the pool's count stays exact.
func TestHugeRuns(t *testing.T) {
	const (
		mib = 1 << 20
		gib = 1 << 30
	)
	p, err := NewPool(memmap.Map{
		{Start: 300*mib + 0x3000, Size: 2*gib + 100*mib, Type: memmap.Usable}, // 1 huge run (at 1 GiB), to 2.4 GiB
		{Start: 3*gib - 10*mib, Size: 8 * mib, Type: memmap.Usable},           // too small
		{Start: 4 * gib, Size: 2 * gib, Type: memmap.Usable},                  // 2 huge runs
	})
	if err != nil {
		t.Fatal(err)
	}
	_, total := p.Stats()
	var got []uint64
	for {
		h, err := p.AllocHugeRun()
		if err != nil {
			if !errors.Is(err, ErrExhausted) {
				t.Fatal(err)
			}
			break
		}
		got = append(got, h)
	}
	want := []uint64{1 * gib, 4 * gib, 5 * gib}
	if !slices.Equal(got, want) {
		t.Fatalf("huge runs at %#x, want %#x", got, want)
	}
	// Everything else is still there, as runs or frames.
	inUse, _ := p.Stats()
	if inUse != len(want)*HugeRunFrames {
		t.Errorf("%d frames in use, want %d", inUse, len(want)*HugeRunFrames)
	}
	runs, frames := 0, 0
	for {
		if _, err := p.AllocRun(); err != nil {
			break
		}
		runs++
	}
	for {
		if _, err := p.AllocFrame(); err != nil {
			break
		}
		frames++
	}
	if n := len(want)*HugeRunFrames + runs*RunFrames + frames; n != total {
		t.Errorf("huge runs, %d runs and %d frames make %d frames, the pool had %d", runs, frames, n, total)
	}
	// [300 MiB + 12 KiB, 1 GiB): 361 runs from 302 MiB, and the frames
	// before; [2 GiB, 2 GiB + 400 MiB): 200; [3 GiB - 10 MiB, -2 MiB): 4.
	if runs != 361+200+4 {
		t.Errorf("%d runs left beside the huge runs, want %d", runs, 361+200+4)
	}
	for f := uint64(0); f < HugeRunSize; f += RunSize {
		p.FreeRun(4*gib + f)
	}
	if r, err := p.AllocRun(); err != nil || r < 4*gib || r >= 5*gib {
		t.Errorf("a run after freeing a huge run: %#x, %v", r, err)
	}
}
