// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/vmm/guestmem"
)

// TestSpecAboveTheHole: a VM of MaxPages has 3 GiB of RAM below the MMIO
// hole and 1 GiB from 4 GiB, and its homes cover its pages, not the hole.
func TestSpecAboveTheHole(t *testing.T) {
	spec := Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: MaxPages, Homes: HomesStriped}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	s := spec.Split()
	if s.Low != guestmem.MMIOBase || s.High != 1<<30 || s.End() != 5<<30 {
		t.Errorf("Split() = %v", s)
	}
	if h := spec.Homed(); h[0]+h[1] != MaxPages || h[0] != MaxPages/2 {
		t.Errorf("Homed() = %v", h)
	}
	spec.Pages++
	if err := spec.Validate(); err == nil {
		t.Error("a VM above MaxPages accepted")
	}
}

// TestHighRAMThroughTheRuntime: a node of a VM with RAM above 4 GiB
// reaches it through the guest-physical addresses, the engine numbering
// its pages across the hole; the second-level tables are told
// guest-physical addresses, never one in the hole; and an access in or
// across the hole fails.
func TestHighRAMThroughTheRuntime(t *testing.T) {
	const pages = (guestmem.MMIOBase + 2<<20) / memory.PageSize // 2 MiB above 4 GiB
	low := uint64(guestmem.MMIOBase / memory.PageSize)
	mine := map[uint64]bool{0: true, low - 1: true, low: true, pages - 1: true}
	p := &perms{acc: map[uint64]memory.Access{}}
	rt, err := New(Config{
		Spec: Spec{ID: 9, Nodes: 2, VCPUs: 1, Pages: pages}, Self: 0, Perm: p, Transport: discard{},
		// This node homes the pages at the ends of both ranges, node 1
		// (absent) the others, so that the test holds few frames.
		Home: func(page uint64) memory.NodeID {
			if mine[page] {
				return 0
			}
			return 1
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for _, gpa := range []uint64{0, guestmem.MMIOBase - 4, guestmem.HighBase, guestmem.HighBase + 2<<20 - 4} {
		want := []byte{1, 2, 3, byte(gpa >> 32)}
		if err := rt.Write(gpa, want); err != nil {
			t.Fatalf("write at %#x: %v", gpa, err)
		}
		got := make([]byte, 4)
		if err := rt.Read(gpa, got); err != nil || string(got) != string(want) {
			t.Fatalf("read at %#x: %v, %v", gpa, got, err)
		}
		if a := p.acc[gpa&^(memory.PageSize-1)]; a != memory.AccessReadWrite {
			t.Errorf("page of %#x: tables give %v after a write, want read-write", gpa, a)
		}
	}
	got := make([]byte, 4)
	if err := rt.Read(0, got); err != nil || got[3] != 0 {
		t.Errorf("the write at 4 GiB reached address 0: %v %v", got, err)
	}
	for gpa := range p.acc {
		if gpa >= guestmem.MMIOBase && gpa < guestmem.HighBase || gpa >= guestmem.HighBase+2<<20 {
			t.Errorf("tables told about %#x, not RAM", gpa)
		}
	}
	for _, c := range []struct{ gpa, n uint64 }{
		{guestmem.MMIOBase, 4}, {guestmem.MMIOBase - 2, 4}, {guestmem.HighBase - 2, 4}, {0xFEE00000, 4}, {guestmem.HighBase + 2<<20, 1},
	} {
		err := rt.Read(c.gpa, make([]byte, c.n))
		if err == nil || !strings.Contains(err.Error(), "not the VM's RAM") {
			t.Errorf("read of %d at %#x: %v, want not the VM's RAM", c.n, c.gpa, err)
		}
	}
	if h := rt.Home(guestmem.HighBase); h != 0 {
		t.Errorf("Home(4 GiB) = %v, want 0", h)
	}
	if h := rt.Home(guestmem.HighBase + memory.PageSize); h != 1 {
		t.Errorf("Home(4 GiB + 4 KiB) = %v, want 1", h)
	}
	if h := rt.Home(guestmem.MMIOBase); h != memory.NoNode {
		t.Errorf("Home in the hole = %v", h)
	}
}
