package ept

import (
	"errors"
	"math/bits"
	"testing"
)

func popcount(b []uint64) int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

func TestReadAndClearDirty(t *testing.T) {
	e := newEnv(t, testCaps, true, 64)
	tb := e.tb
	const base = 0x4000_0000
	// 4 MiB: two 2-MiB pages, the second split into 4-KiB pages.
	if err := tb.Map(base, guestHPA, 2*PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.Protect(base+PageSize2M, PageSize4K, PermRead); err != nil {
		t.Fatal(err)
	}
	for _, gpa := range []uint64{base + 0x1234, base + PageSize2M + 5*PageSize4K, base + PageSize2M + 9*PageSize4K} {
		if !hwAccess(tb, gpa, true) {
			t.Fatalf("write to %#x faulted", gpa)
		}
	}
	hwAccess(tb, base+PageSize2M+100*PageSize4K, false) // read: accessed, not dirty
	if hwAccess(tb, base+PageSize2M, true) {
		t.Fatal("write to a read-only page succeeded")
	}
	bitmap := make([]uint64, 2*PageSize2M/PageSize4K/64)
	before := e.tlb.count()
	n, err := tb.ReadAndClearDirty(base, 2*PageSize2M, bitmap)
	if err != nil {
		t.Fatal(err)
	}
	if n != 512+2 || popcount(bitmap) != n {
		t.Fatalf("%d dirty pages, %d bits; want 514", n, popcount(bitmap))
	}
	if bitmap[0] != ^uint64(0) || bitmap[7] != ^uint64(0) || bitmap[8] != 1<<5|1<<9 {
		t.Fatalf("bitmap words 0, 7, 8 = %#x %#x %#x", bitmap[0], bitmap[7], bitmap[8])
	}
	if e.tlb.count() != before+1 {
		t.Fatalf("clearing dirty flags invalidated %d times, want 1", e.tlb.count()-before)
	}
	clear(bitmap)
	if n, _ := tb.ReadAndClearDirty(base, 2*PageSize2M, bitmap); n != 0 || popcount(bitmap) != 0 {
		t.Fatalf("second harvest found %d dirty pages", n)
	}
	if e.tlb.count() != before+1 {
		t.Fatal("a harvest that cleared nothing invalidated")
	}
	// A sub-range of a dirty large page marks only its own pages.
	hwAccess(tb, base, true)
	small := make([]uint64, 1)
	if n, err := tb.ReadAndClearDirty(base+3*PageSize4K, 5*PageSize4K, small); err != nil || n != 5 || small[0] != 0x1F {
		t.Fatalf("sub-range harvest: %d, %v, bitmap %#x; want 5 pages 0x1f", n, err, small[0])
	}
	n, err = tb.ReadAndClearAccessed(base, 2*PageSize2M, bitmap)
	if err != nil || n != 512+3 {
		t.Fatalf("accessed harvest: %d, %v; want 515", n, err)
	}
	if _, err := tb.ReadAndClearDirty(base, 2*PageSize2M, bitmap[:3]); !errors.Is(err, ErrRange) {
		t.Fatalf("short bitmap: %v, want ErrRange", err)
	}
	checkStructure(t, e)

	e2 := newEnv(t, testCaps, false, 16)
	if _, err := e2.tb.ReadAndClearDirty(0, PageSize4K, bitmap); !errors.Is(err, ErrNoAccessDirty) {
		t.Fatalf("without A/D: %v, want ErrNoAccessDirty", err)
	}
}

func TestSplitKeepsDirtyFlags(t *testing.T) {
	e := newEnv(t, testCaps, true, 64)
	tb := e.tb
	if err := tb.MapPages(0, guestHPA, PageSize1G, PageSize1G, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	hwAccess(tb, 0x1000, true)
	if err := tb.Protect(PageSize2M, PageSize4K, PermRead); err != nil {
		t.Fatal(err)
	}
	dirty := 0
	for m := range tb.Mappings() {
		if !m.Dirty || !m.Accessed {
			t.Fatalf("mapping %+v lost the flags of the page it was split from", m)
		}
		dirty++
	}
	if dirty != 511+512 {
		t.Fatalf("%d mappings after split, want 1023", dirty)
	}
	// Adding rights to the same translation keeps the flags; a new
	// translation starts clean.
	if err := tb.Map(PageSize2M, guestHPA+PageSize2M, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if leaf, _ := tb.Walk(PageSize2M).Leaf(); leaf&EntryDirty == 0 {
		t.Fatal("remapping with more rights dropped the dirty flag")
	}
	if err := tb.Map(PageSize2M, guestHPA+PageSize1G, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if leaf, _ := tb.Walk(PageSize2M).Leaf(); leaf&(EntryDirty|EntryAccessed) != 0 {
		t.Fatal("a new translation inherited A/D flags")
	}
}

func TestSetBits(t *testing.T) {
	for _, tc := range []struct{ from, to uint64 }{{0, 0}, {0, 1}, {3, 64}, {63, 65}, {5, 200}, {64, 128}, {0, 256}} {
		b := make([]uint64, 4)
		setBits(b, tc.from, tc.to)
		for i := uint64(0); i < 256; i++ {
			want := i >= tc.from && i < tc.to
			if got := b[i/64]&(1<<(i%64)) != 0; got != want {
				t.Fatalf("setBits(%d, %d): bit %d = %v", tc.from, tc.to, i, got)
			}
		}
	}
}
