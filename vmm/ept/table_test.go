package ept

import (
	"errors"
	"testing"

	"github.com/big-iron/big-iron/vmm/ept/hostmem"
)

func TestNewValidatesConfig(t *testing.T) {
	mem := hostmem.New(memBase, 4)
	good := Config{Mem: mem, Alloc: mem, Caps: testCaps}
	for name, mut := range map[string]func(c *Config){
		"no mem":          func(c *Config) { c.Mem = nil },
		"no alloc":        func(c *Config) { c.Alloc = nil },
		"MAXPHYADDR 53":   func(c *Config) { c.Caps.MaxPhysAddr = 53 },
		"no 4-level walk": func(c *Config) { c.Caps.PageWalk4 = false },
		"no EPTP type":    func(c *Config) { c.Caps.WriteBackEPTP, c.Caps.UncacheableEPTP = false, false },
		"1G without 2M":   func(c *Config) { c.Caps.Pages2M = false },
		"A/D unsupported": func(c *Config) { c.AccessDirty = true; c.Caps.AccessDirty = false },
		"no INVEPT":       func(c *Config) { c.Invalidator = newFakeTLB(); c.Caps.InvEPTSingle, c.Caps.InvEPTAll = false, false },
		"empty reserved":  func(c *Config) { c.Reserved = []Range{{5, 5}} },
	} {
		c := good
		mut(&c)
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}
	if mem.InUse() != 0 {
		t.Fatalf("failed New calls leaked %d frames", mem.InUse())
	}
	tb, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Tables() != 1 || mem.InUse() != 1 {
		t.Fatalf("new table uses %d tables, %d frames; want 1, 1", tb.Tables(), mem.InUse())
	}
}

func TestEPTP(t *testing.T) {
	e := newEnv(t, testCaps, true, 8)
	eptp := e.tb.EPTP()
	if eptp&EntryAddr != e.tb.root || eptp&EPTPMemTypeMask != uint64(WriteBack) ||
		eptp&EPTPWalkLenMask != 3<<3 || eptp&EPTPAccessDirty == 0 || eptp&0xF80 != 0 {
		t.Fatalf("EPTP %#x: want root %#x, WB, walk length 4, A/D", eptp, e.tb.root)
	}
	if err := CheckEPTP(eptp, testCaps); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, testCaps, false, 8)
	if e2.tb.EPTP()&EPTPAccessDirty != 0 {
		t.Fatalf("EPTP %#x has A/D enabled", e2.tb.EPTP())
	}
	noWB := testCaps
	noWB.WriteBackEPTP = false
	e3 := newEnv(t, noWB, false, 8)
	if mt := e3.tb.EPTP() & EPTPMemTypeMask; mt != uint64(Uncacheable) {
		t.Fatalf("without WB support EPTP memory type is %d, want UC", mt)
	}

	noAD := testCaps
	noAD.AccessDirty = false
	onlyWB := testCaps
	onlyWB.UncacheableEPTP = false
	for _, tc := range []struct {
		name string
		eptp uint64
		caps Caps
	}{
		{"memory type 1", eptp&^7 | 1, testCaps},
		{"UC unsupported", eptp &^ 7, onlyWB},
		{"walk length 5", eptp&^EPTPWalkLenMask | EPTPWalkLen5, testCaps},
		{"A/D unsupported", eptp, noAD},
		{"bit 8", eptp | 1<<8, testCaps},
		{"beyond MAXPHYADDR", eptp | 1<<46, testCaps},
		{"bit 63", eptp | 1<<63, testCaps},
	} {
		if err := CheckEPTP(tc.eptp, tc.caps); err == nil {
			t.Errorf("CheckEPTP(%s, %#x) accepted", tc.name, tc.eptp)
		}
	}
}

func TestCapsFromMSR(t *testing.T) {
	// A typical value: execute-only, walk 4, UC, WB, 2M, 1G, INVEPT with
	// both types, A/D.
	v := CapExecuteOnly | CapPageWalk4 | CapUncacheableEPTP | CapWriteBackEPTP | CapPages2M |
		CapPages1G | CapINVEPT | CapAccessDirty | CapINVEPTSingle | CapINVEPTAll
	c := CapsFromMSR(v, 46)
	if c != testCaps {
		t.Fatalf("CapsFromMSR = %+v, want %+v", c, testCaps)
	}
	c = CapsFromMSR(v&^CapINVEPT, 39)
	if c.InvEPTSingle || c.InvEPTAll || c.MaxPhysAddr != 39 {
		t.Fatalf("INVEPT types reported without INVEPT: %+v", c)
	}
}

func TestMapPageSizes(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	tb := e.tb
	const g4, g2, g1 = 0x1000, 0x4020_0000, 0x80_4000_0000
	if err := tb.MapPages(g4, guestHPA+0x5000, PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.MapPages(g2, guestHPA+0x60_0000, PageSize2M, PageSize2M, PermRX, WriteThrough); err != nil {
		t.Fatal(err)
	}
	if err := tb.MapPages(g1, guestHPA+PageSize1G, PageSize1G, PageSize1G, PermRWX, Uncacheable); err != nil {
		t.Fatal(err)
	}
	mustTranslate(t, tb, g4+0x123, guestHPA+0x5123, PermRW, PageSize4K)
	mustTranslate(t, tb, g2+0x1F_F008, guestHPA+0x7F_F008, PermRX, PageSize2M)
	mustTranslate(t, tb, g1+0x3FFF_FFFF, guestHPA+2*PageSize1G-1, PermRWX, PageSize1G)
	mustFault(t, tb, g4+PageSize4K)
	mustFault(t, tb, g2-1)
	mustFault(t, tb, g1+PageSize1G)
	mustFault(t, tb, GPALimit)
	w := tb.Walk(g2)
	if leaf, l := w.Leaf(); l != LevelPD || entryMemType(leaf) != WriteThrough || leaf&EntryLarge == 0 {
		t.Fatalf("2-MiB leaf %#x at %v", leaf, l)
	}
	if leaf, l := tb.Walk(g1).Leaf(); l != LevelPDPT || entryMemType(leaf) != Uncacheable {
		t.Fatalf("1-GiB leaf %#x at %v", leaf, l)
	}
	checkStructure(t, e)
	if e.tlb.count() != 0 {
		t.Fatalf("mapping into empty space invalidated %d times", e.tlb.count())
	}

	for _, tc := range []struct {
		name           string
		gpa, hpa, size uint64
		ps             uint64
		want           error
	}{
		{"gpa not 2M-aligned", 0x1000, guestHPA, PageSize2M, PageSize2M, ErrAlign},
		{"hpa not 2M-aligned", 0, guestHPA + 0x1000, PageSize2M, PageSize2M, ErrAlign},
		{"size not 1G multiple", 0, guestHPA, PageSize2M, PageSize1G, ErrAlign},
		{"gpa not 4K-aligned", 0x10, guestHPA, PageSize4K, PageSize4K, ErrAlign},
		{"page size 8K", 0, guestHPA, 0x2000, 0x2000, ErrPageSize},
		{"zero size", 0, guestHPA, 0, PageSize4K, ErrRange},
		{"beyond 48 bits", GPALimit - PageSize4K, guestHPA, 2 * PageSize4K, PageSize4K, ErrRange},
		{"beyond MAXPHYADDR", 0, 1<<46 - PageSize4K, 2 * PageSize4K, PageSize4K, ErrRange},
	} {
		if err := tb.MapPages(tc.gpa, tc.hpa, tc.size, tc.ps, PermRW, WriteBack); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	small := testCaps
	small.Pages1G = false
	e2 := newEnv(t, small, false, 16)
	if err := e2.tb.MapPages(0, guestHPA, PageSize1G, PageSize1G, PermRW, WriteBack); !errors.Is(err, ErrPageSize) {
		t.Fatalf("1-GiB page without support: %v, want ErrPageSize", err)
	}
}

func countSizes(tb *Table) map[uint64]int {
	n := map[uint64]int{}
	for m := range tb.Mappings() {
		n[m.Size]++
	}
	return n
}

func TestMapUsesLargestPages(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	// 1 GiB + 2 MiB + 4 KiB, all aligned: one page of each size.
	size := PageSize1G + PageSize2M + PageSize4K
	if err := e.tb.Map(0, guestHPA, size, PermRWX, WriteBack); err != nil {
		t.Fatal(err)
	}
	if n := countSizes(e.tb); n[PageSize1G] != 1 || n[PageSize2M] != 1 || n[PageSize4K] != 1 {
		t.Fatalf("page sizes used: %v", n)
	}
	// A GPA and HPA that disagree modulo 2 MiB force 4-KiB pages.
	e2 := newEnv(t, testCaps, false, 64)
	if err := e2.tb.Map(PageSize2M, guestHPA+PageSize4K, 2*PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if n := countSizes(e2.tb); n[PageSize4K] != 1024 || len(n) != 1 {
		t.Fatalf("page sizes used: %v", n)
	}
	// An unaligned start uses 4 KiB up to the 2-MiB boundary, then 2 MiB.
	e3 := newEnv(t, testCaps, false, 64)
	if err := e3.tb.Map(PageSize2M-PageSize4K, guestHPA+PageSize2M-PageSize4K, PageSize4K+PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if n := countSizes(e3.tb); n[PageSize4K] != 1 || n[PageSize2M] != 1 {
		t.Fatalf("page sizes used: %v", n)
	}
	checkStructure(t, e3)
}

func TestReservedHostRangesAreRefused(t *testing.T) {
	mem := hostmem.New(memBase, 16)
	hk := Range{0x10_0000, 0x80_0000} // the hyperkernel's image and heap
	tb, err := New(Config{Mem: mem, Alloc: mem, Caps: testCaps,
		Reserved: []Range{hk, {mem.Base(), mem.End()}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		hpa, size uint64
	}{
		{"inside", 0x20_0000, PageSize4K},
		{"first page", hk.Start, PageSize4K},
		{"last page", hk.End - PageSize4K, PageSize4K},
		{"straddling the start", hk.Start - PageSize4K, 2 * PageSize4K},
		{"covering", 0, PageSize1G},
		{"a table frame", mem.Base(), PageSize4K},
		{"via a 2-MiB page", 0, PageSize2M},
	} {
		if err := tb.Map(0x4000_0000, tc.hpa, tc.size, PermRWX, WriteBack); !errors.Is(err, ErrReserved) {
			t.Errorf("%s: Map = %v, want ErrReserved", tc.name, err)
		}
		if tc.size != PageSize4K {
			continue
		}
		if err := tb.MapPages(0x4000_0000, tc.hpa, PageSize4K, PageSize4K, PermRead, WriteBack); !errors.Is(err, ErrReserved) {
			t.Errorf("%s: MapPages = %v, want ErrReserved", tc.name, err)
		}
	}
	if tb.Tables() != 1 || mem.InUse() != 1 {
		t.Fatalf("refused maps allocated tables: %d tables, %d frames", tb.Tables(), mem.InUse())
	}
	for m := range tb.Mappings() {
		t.Fatalf("refused map left %+v", m)
	}
	// Right next to the reserved range is fine.
	if err := tb.Map(0, hk.End, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatalf("page after the reserved range: %v", err)
	}
	if err := tb.Map(PageSize4K, hk.Start-PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatalf("page before the reserved range: %v", err)
	}
}

func TestRightsAndMemTypeValidation(t *testing.T) {
	e := newEnv(t, testCaps, false, 16)
	for _, p := range []Perm{0, PermWrite, PermWrite | PermExec, 8} {
		if err := e.tb.Map(0, guestHPA, PageSize4K, p, WriteBack); !errors.Is(err, ErrPerm) {
			t.Errorf("Map with rights %v: %v, want ErrPerm", p, err)
		}
	}
	if err := e.tb.Map(0, guestHPA, PageSize4K, PermExec, WriteBack); err != nil {
		t.Errorf("execute-only with support: %v", err)
	}
	if err := e.tb.Protect(0, PageSize4K, 0); !errors.Is(err, ErrPerm) {
		t.Errorf("Protect to no rights: %v, want ErrPerm", err)
	}
	for _, mt := range []MemType{2, 3, 7, 8} {
		if err := e.tb.Map(0, guestHPA, PageSize4K, PermRW, mt); !errors.Is(err, ErrMemType) {
			t.Errorf("Map with memory type %d: %v, want ErrMemType", mt, err)
		}
	}
	noXO := testCaps
	noXO.ExecuteOnly = false
	e2 := newEnv(t, noXO, false, 16)
	if err := e2.tb.Map(0, guestHPA, PageSize4K, PermExec, WriteBack); !errors.Is(err, ErrPerm) {
		t.Errorf("execute-only without support: %v, want ErrPerm", err)
	}
}

func TestProtectSplitsLargePages(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	tb := e.tb
	if err := tb.MapPages(PageSize1G, guestHPA, PageSize1G, PageSize1G, PermRWX, WriteBack); err != nil {
		t.Fatal(err)
	}
	target := PageSize1G + 3*PageSize2M + 5*PageSize4K
	e.tlb.touch(tb, target)
	before := e.tlb.count()
	if err := tb.Protect(target, PageSize4K, PermRead); err != nil {
		t.Fatal(err)
	}
	e.tlb.check(t, tb, "protect")
	if e.tlb.count() != before+1 {
		t.Fatalf("protect that removes rights invalidated %d times, want 1", e.tlb.count()-before)
	}
	mustTranslate(t, tb, target+8, guestHPA+3*PageSize2M+5*PageSize4K+8, PermRead, PageSize4K)
	mustTranslate(t, tb, target+PageSize4K, guestHPA+3*PageSize2M+6*PageSize4K, PermRWX, PageSize4K)
	mustTranslate(t, tb, target-PageSize4K, guestHPA+3*PageSize2M+4*PageSize4K, PermRWX, PageSize4K)
	mustTranslate(t, tb, PageSize1G, guestHPA, PermRWX, PageSize2M)
	mustTranslate(t, tb, 2*PageSize1G-1, guestHPA+PageSize1G-1, PermRWX, PageSize2M)
	if n := countSizes(tb); n[PageSize2M] != 511 || n[PageSize4K] != 512 {
		t.Fatalf("after split: %v", n)
	}
	checkStructure(t, e)
	// Protecting with the rights a large page already has splits nothing.
	tables := tb.Tables()
	if err := tb.Protect(PageSize1G+10*PageSize2M, PageSize4K, PermRWX); err != nil {
		t.Fatal(err)
	}
	if tb.Tables() != tables {
		t.Fatal("no-op protect split a page")
	}
}

func TestRemapInsideLargePage(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	tb := e.tb
	if err := tb.MapPages(0, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	e.tlb.touch(tb, 0x3000)
	if err := tb.Map(0x3000, guestHPA+0x100_0000, PageSize4K, PermRX, WriteBack); err != nil {
		t.Fatal(err)
	}
	e.tlb.check(t, tb, "remap")
	mustTranslate(t, tb, 0x3000, guestHPA+0x100_0000, PermRX, PageSize4K)
	mustTranslate(t, tb, 0x2000, guestHPA+0x2000, PermRW, PageSize4K)
	mustTranslate(t, tb, 0x4000, guestHPA+0x4000, PermRW, PageSize4K)
	// Mapping a large page over a split one frees the page table.
	tables := tb.Tables()
	if err := tb.MapPages(0, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if tb.Tables() != tables-1 {
		t.Fatalf("tables %d, want %d", tb.Tables(), tables-1)
	}
	mustTranslate(t, tb, 0x3000, guestHPA+0x3000, PermRW, PageSize2M)
	checkStructure(t, e)
}

func TestUnmapSplitsAndFreesTables(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	tb := e.tb
	gpa := uint64(0x12_3456_7000)
	if err := tb.Map(gpa, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if tb.Tables() != 4 {
		t.Fatalf("one 4-KiB page uses %d tables, want 4", tb.Tables())
	}
	if err := tb.Unmap(gpa, PageSize4K); err != nil {
		t.Fatal(err)
	}
	if tb.Tables() != 1 || e.mem.InUse() != 1 {
		t.Fatalf("after unmap: %d tables, %d frames; want 1, 1", tb.Tables(), e.mem.InUse())
	}
	mustFault(t, tb, gpa)

	if err := tb.MapPages(0, guestHPA, PageSize1G, PageSize1G, PermRWX, WriteBack); err != nil {
		t.Fatal(err)
	}
	hole := PageSize2M + 7*PageSize4K
	e.tlb.touch(tb, hole)
	if err := tb.Unmap(hole, PageSize4K); err != nil {
		t.Fatal(err)
	}
	e.tlb.check(t, tb, "unmap")
	mustFault(t, tb, hole)
	mustTranslate(t, tb, hole+PageSize4K, guestHPA+hole+PageSize4K, PermRWX, PageSize4K)
	mustTranslate(t, tb, 0, guestHPA, PermRWX, PageSize2M)
	checkStructure(t, e)
	// Unmapping the rest piece by piece frees everything.
	if err := tb.Unmap(0, hole); err != nil {
		t.Fatal(err)
	}
	if err := tb.Unmap(hole+PageSize4K, PageSize1G-hole-PageSize4K); err != nil {
		t.Fatal(err)
	}
	checkStructure(t, e)
	if tb.Tables() != 1 || e.mem.InUse() != 1 {
		t.Fatalf("after unmapping all: %d tables, %d frames; want 1, 1", tb.Tables(), e.mem.InUse())
	}
	// Unmapping nothing is harmless and does not invalidate.
	before := e.tlb.count()
	if err := tb.Unmap(0, PageSize1G); err != nil {
		t.Fatal(err)
	}
	if e.tlb.count() != before {
		t.Fatal("unmapping an empty range invalidated")
	}
}

func TestInvalidationPolicy(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	tb := e.tb
	step := func(name string, want int, f func() error) {
		t.Helper()
		before := e.tlb.count()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := e.tlb.count() - before; got != want {
			t.Fatalf("%s: %d invalidations, want %d", name, got, want)
		}
	}
	step("map new", 0, func() error { return tb.Map(0, guestHPA, 4*PageSize4K, PermRead, WriteBack) })
	step("add rights", 0, func() error { return tb.Protect(0, 4*PageSize4K, PermRWX) })
	step("remap same with more rights", 0, func() error { return tb.Map(0, guestHPA, PageSize4K, PermRWX, WriteBack) })
	step("remap same with fewer rights", 1, func() error { return tb.Map(0, guestHPA, PageSize4K, PermRW, WriteBack) })
	step("remove rights", 1, func() error { return tb.Protect(0, 4*PageSize4K, PermRX) })
	step("remap elsewhere", 1, func() error { return tb.Map(0, guestHPA+PageSize2M, PageSize4K, PermRX, WriteBack) })
	step("change memory type", 1, func() error { return tb.Map(0, guestHPA+PageSize2M, PageSize4K, PermRX, Uncacheable) })
	step("unmap", 1, func() error { return tb.Unmap(PageSize4K, PageSize4K) })
	step("batch", 0, func() error {
		tb.BeginBatch()
		for i := uint64(0); i < 4; i++ {
			if err := tb.Unmap(i*PageSize4K, PageSize4K); err != nil {
				return err
			}
		}
		return nil
	})
	if tb.Tables() != 1 || e.mem.InUse() != 4 {
		t.Fatalf("inside a batch: %d tables linked, %d frames out; want 1, 4 (frees wait for the invalidation)",
			tb.Tables(), e.mem.InUse())
	}
	step("end batch", 1, func() error { tb.EndBatch(); return nil })
	if e.mem.InUse() != 1 {
		t.Fatalf("after the batch %d frames out, want 1", e.mem.InUse())
	}
	checkStructure(t, e)
	if e.tlb.global != 0 {
		t.Fatalf("%d global invalidations with single-context support", e.tlb.global)
	}

	noSingle := testCaps
	noSingle.InvEPTSingle = false
	e2 := newEnv(t, noSingle, false, 16)
	if err := e2.tb.Map(0, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := e2.tb.Unmap(0, PageSize4K); err != nil {
		t.Fatal(err)
	}
	if e2.tlb.global != 1 || e2.tlb.single != 0 {
		t.Fatalf("without single-context INVEPT: %d global, %d single; want 1, 0", e2.tlb.global, e2.tlb.single)
	}
}

func TestAllocationFailureLeavesTableConsistent(t *testing.T) {
	for fail := 0; fail < 3; fail++ { // the map needs 3 tables
		e := newEnv(t, testCaps, false, 64)
		e.mem.FailAfter(fail)
		err := e.tb.Map(0x40_0000_0000, guestHPA, 2*PageSize4K, PermRW, WriteBack)
		if !errors.Is(err, hostmem.ErrNoMemory) {
			t.Fatalf("fail after %d: Map = %v, want ErrNoMemory", fail, err)
		}
		checkStructure(t, e)
		if e.tb.Tables() != 1 {
			t.Fatalf("fail after %d: %d tables left", fail, e.tb.Tables())
		}
		// A failed split leaves the large page intact.
		if err := e.tb.MapPages(0, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
			t.Fatal(err)
		}
		e.mem.FailAfter(0)
		if err := e.tb.Protect(0, PageSize4K, PermRead); !errors.Is(err, hostmem.ErrNoMemory) {
			t.Fatalf("Protect = %v, want ErrNoMemory", err)
		}
		mustTranslate(t, e.tb, 0x1000, guestHPA+0x1000, PermRW, PageSize2M)
		checkStructure(t, e)
		e.tb.Destroy()
		if e.mem.InUse() != 0 {
			t.Fatalf("Destroy left %d frames", e.mem.InUse())
		}
	}
}

func TestDestroyFreesEverything(t *testing.T) {
	e := newEnv(t, testCaps, false, 128)
	for i := uint64(0); i < 20; i++ {
		if err := e.tb.Map(i*0x8_0000_0000+i*PageSize2M+i*PageSize4K, guestHPA+i*PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
			t.Fatal(err)
		}
	}
	if e.mem.InUse() < 20 {
		t.Fatalf("only %d frames in use", e.mem.InUse())
	}
	e.tb.Destroy()
	if e.mem.InUse() != 0 {
		t.Fatalf("Destroy left %d frames", e.mem.InUse())
	}
}
