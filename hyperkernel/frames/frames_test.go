// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package frames

import (
	"errors"
	"testing"

	"github.com/big-iron/big-iron/boot/memmap"
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
