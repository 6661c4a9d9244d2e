// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package x86

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// walk translates addr through pdpt and the page directories (by their
// physical addresses), as the processor would for PML4 entry 0.
func walk(pdpt *[entries]uint64, pds map[uint64]*[entries]uint64, addr uint64) (uint64, bool) {
	e := pdpt[addr/gib]
	if e&pteP == 0 {
		return 0, false
	}
	pd := pds[e&^0xFFF]
	de := pd[addr%gib/largePage]
	if de&pteP == 0 || de&ptePS == 0 || de&pteRW == 0 {
		return 0, false
	}
	return de&0x000FFFFFFFE00000 | addr%largePage, true
}

func TestMapHigh(t *testing.T) {
	var pdpt [entries]uint64
	pdpt[0], pdpt[3] = 0xb000|pteP|pteRW, 0xe000|pteP|pteRW // cpuinit's
	end := uint64(6*gib + 512<<20)                          // 6.5 GiB: three GiBs to map
	if n := HighTables(end); n != 3 {
		t.Fatalf("HighTables(6.5 GiB) = %d, want 3", n)
	}
	pds := map[uint64]*[entries]uint64{}
	var tabs []*[entries]uint64
	var addrs []uint64
	for i := 0; i < 3; i++ {
		a := uint64(0x100000 + i*4096)
		pds[a] = new([entries]uint64)
		tabs, addrs = append(tabs, pds[a]), append(addrs, a)
	}
	if err := mapHigh(&pdpt, end, tabs, addrs); err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint64{4 * gib, 4*gib + 0x1234, 5*gib - 1, 6*gib + 512<<20 - 8, 7*gib - 1} {
		got, ok := walk(&pdpt, pds, a)
		if !ok || got != a {
			t.Errorf("walk(%#x) = %#x, %v: want the identity", a, got, ok)
		}
	}
	if _, ok := walk(&pdpt, pds, 7*gib); ok {
		t.Error("7 GiB is mapped: past the GiB end rounds up to")
	}
	if pdpt[0] != 0xb000|pteP|pteRW || pdpt[3] != 0xe000|pteP|pteRW {
		t.Error("cpuinit's entries changed")
	}
	// Mapping again leaves what is mapped alone.
	before := pdpt
	if err := mapHigh(&pdpt, end, tabs, addrs); err != nil || pdpt != before {
		t.Errorf("second mapHigh: %v, entries changed %v", err, pdpt != before)
	}
}

func TestMapHighRefuses(t *testing.T) {
	var pdpt [entries]uint64
	for _, c := range []struct {
		end   uint64
		pds   int
		addr  uint64
		wants string
	}{
		{5 * gib, 0, 0x1000, "needs 1 page directories"},
		{MaxMapped + gib, 600, 0x1000, "identity map ends"},
		{5 * gib, 1, 0x1008, "not 4 KiB aligned"},
	} {
		tabs := make([]*[entries]uint64, c.pds)
		addrs := make([]uint64, c.pds)
		for i := range tabs {
			tabs[i], addrs[i] = new([entries]uint64), c.addr+uint64(i)*4096
		}
		err := mapHigh(&pdpt, c.end, tabs, addrs)
		if err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("mapHigh(end %#x, %d tables at %#x) = %v, want %q", c.end, c.pds, c.addr, err, c.wants)
		}
	}
	if HighTables(3*gib) != 0 || HighTables(4*gib) != 0 || HighTables(4*gib+1) != 1 {
		t.Error("HighTables at and below 4 GiB")
	}
}

func TestPlanFrames(t *testing.T) {
	u := func(start, size uint64) memmap.Region {
		return memmap.Region{Start: start, Size: size, Type: memmap.Usable}
	}
	// QEMU q35 with 8 GiB: 2 GiB below the hole, 6 GiB from 4 GiB.
	guest := memmap.Map{u(0x2000_0000, 0x6000_0000-0x2000_0000), u(4*gib, 6*gib),
		{Start: 0xfd_0000_0000, Size: 12 * gib, Type: memmap.Reserved}}
	p, err := PlanFrames(guest, 16<<20, 3*gib)
	if err != nil {
		t.Fatal(err)
	}
	if p.HighEnd != 10*gib || len(p.Tables) != 6 {
		t.Fatalf("HighEnd %#x, %d tables; want 10 GiB, 6", p.HighEnd, len(p.Tables))
	}
	for i, a := range p.Tables {
		if a%4096 != 0 || a < 0x2000_0000 || a >= 0x6000_0000 {
			t.Errorf("table %d at %#x: not an aligned frame of the low region", i, a)
		}
		for _, r := range p.Frames {
			if a >= r.Start && a < r.End() {
				t.Errorf("table %d at %#x is still in the pool's region %v", i, a, r)
			}
		}
	}
	var total uint64
	for _, r := range p.Frames {
		total += r.Size
	}
	if want := uint64(0x4000_0000) - 6*4096 + 6*gib; total != want {
		t.Errorf("pool regions total %#x, want %#x", total, want)
	}

	// Below 4 GiB only: nothing to map, nothing set aside; 3-4 GiB left out.
	p, err = PlanFrames(memmap.Map{u(0, 0xF000_0000)}, 16<<20, 3*gib)
	if err != nil || p.HighEnd != 0 || len(p.Tables) != 0 || len(p.Frames) != 1 || p.Frames[0].End() != 3*gib {
		t.Errorf("low only: %+v, %v", p, err)
	}
	// No low memory for the tables.
	if _, err := PlanFrames(memmap.Map{u(4*gib, gib)}, 16<<20, 3*gib); err == nil {
		t.Error("planned high memory with no low memory for its tables")
	}
}
