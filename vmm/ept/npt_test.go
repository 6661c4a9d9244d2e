package ept

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// The NPT entry bits are checked against two independent descriptions
// of long-mode page-table entries:
//
//   - AMD64 Architecture Programmer's Manual Vol. 2, 5.4.1 "Field
//     Definitions" and Figures 5-18 to 5-25 (PML4E, PDPE, PDE, PTE for
//     4-KiB, 2-MiB and 1-GiB pages): P bit 0, R/W 1, U/S 2, PWT 3, PCD 4,
//     A 5, D 6 (leaves), PS 7 (PDPE/PDE; PAT in a PTE), G 8 (leaves),
//     PAT 12 (large leaves), NX 63; 15.25.5 "Nested Table Walk": nested
//     accesses are user accesses, so U/S must be set at every level.
//   - Linux, arch/x86/include/asm/pgtable_types.h (torvalds/linux):
//     _PAGE_BIT_PRESENT 0, _PAGE_BIT_RW 1, _PAGE_BIT_USER 2,
//     _PAGE_BIT_PWT 3, _PAGE_BIT_PCD 4, _PAGE_BIT_ACCESSED 5,
//     _PAGE_BIT_DIRTY 6, _PAGE_BIT_PSE 7, _PAGE_BIT_PAT 7 ("on 4KB
//     pages"), _PAGE_BIT_GLOBAL 8, _PAGE_BIT_PAT_LARGE 12 ("On 2MB or
//     1GB pages"), _PAGE_BIT_NX 63 ("only valid after cpuid check").
//
// Bochs' nested walk (cpu/paging.cc, nested_walk_long_mode) agrees on the
// two points specific to nesting: bit 63 is reserved unless the host's
// EFER.NXE (from the VMCB host save state) is set, and every nested
// access is checked as a user access.
func TestNPTEntryBitsMatchManuals(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uint64
		bit  uint
	}{
		{"P", NPTPresent, 0}, {"R/W", NPTWrite, 1}, {"U/S", NPTUser, 2},
		{"PWT", NPTPWT, 3}, {"PCD", NPTPCD, 4}, {"A", NPTAccessed, 5},
		{"D", NPTDirty, 6}, {"PS", NPTLarge, 7}, {"PAT (PTE)", NPTPAT4K, 7},
		{"G", NPTGlobal, 8}, {"PAT (large)", NPTPATLarge, 12}, {"NX", NPTNoExec, 63},
		{"N_CR3 PWT", NCR3PWT, 3}, {"N_CR3 PCD", NCR3PCD, 4},
	} {
		if c.got != 1<<c.bit {
			t.Errorf("%s = %#x, want bit %d", c.name, c.got, c.bit)
		}
	}
	// The page-size bit is the same in both formats, so isLeaf serves
	// both.
	if NPTLarge != EntryLarge {
		t.Errorf("NPT PS %#x != EPT large-page bit %#x", NPTLarge, EntryLarge)
	}
}

func newNPT(t *testing.T, caps Caps) *env {
	t.Helper()
	return newFormatEnv(t, NPT, caps, false, 256)
}

// leafAt returns the leaf entry that maps gpa and its level.
func leafAt(t *testing.T, tb *Table, gpa uint64) (uint64, Level) {
	t.Helper()
	e, l := tb.Walk(gpa).Leaf()
	if !tb.f.isPresent(e) || !isLeaf(e, l) {
		t.Fatalf("GPA %#x: no leaf (%#x at %v)", gpa, e, l)
	}
	return e, l
}

func TestNPTLeafRights(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	const flags = NPTPresent | NPTWrite | NPTUser | NPTNoExec | NPTPWT | NPTPCD | NPTLarge
	for i, c := range []struct {
		perm Perm
		want uint64
	}{
		{PermRWX, NPTPresent | NPTWrite | NPTUser},            // RW page, executable: NX clear
		{PermRW, NPTPresent | NPTWrite | NPTUser | NPTNoExec}, // RW, no execute
		{PermRead, NPTPresent | NPTUser | NPTNoExec},          // read-only, no execute
		{PermRX, NPTPresent | NPTUser},                        // read and execute
	} {
		gpa := uint64(i) * PageSize4K
		hpa := guestHPA + uint64(i)*PageSize4K
		if err := tb.MapPages(gpa, hpa, PageSize4K, PageSize4K, c.perm, WriteBack); err != nil {
			t.Fatal(err)
		}
		leaf, l := leafAt(t, tb, gpa)
		if l != LevelPT || leaf&flags != c.want || leaf&EntryAddr != hpa {
			t.Errorf("%v: %v %#x, want PTE %#x|%#x", c.perm, l, leaf, hpa, c.want)
		}
		mustTranslate(t, tb, gpa, hpa, c.perm, PageSize4K)
	}
	checkStructure(t, e)
}

// TestNPTTableEntries: every non-leaf entry grants everything the leaf
// may grant: P, R/W and U/S set (nested accesses are user accesses,
// APM 15.25.5), NX and PS clear.
func TestNPTTableEntries(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	if err := tb.Map(PageSize1G-PageSize2M-PageSize4K, guestHPA+PageSize1G-PageSize2M-PageSize4K, 2*PageSize1G, PermRead, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.Map(0x80_0000_0000, guestHPA, PageSize4K, PermRX, Uncacheable); err != nil {
		t.Fatal(err)
	}
	var walk func(f uint64, l Level)
	nonLeaf := 0
	walk = func(f uint64, l Level) {
		for _, x := range tb.mem.Frame(f) {
			if !tb.f.isPresent(x) || isLeaf(x, l) {
				continue
			}
			nonLeaf++
			const want = NPTPresent | NPTWrite | NPTUser
			if x&(want|NPTNoExec|NPTLarge|NPTPWT|NPTPCD) != want {
				t.Errorf("%v %#x: want P|RW|US, no NX/PS/PWT/PCD", l, x)
			}
			walk(x&EntryAddr, l-1)
		}
	}
	walk(tb.root, LevelPML4)
	if nonLeaf < 5 {
		t.Fatalf("only %d non-leaf entries checked", nonLeaf)
	}
}

func TestNPTLargePages(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	if err := tb.MapPages(0, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.MapPages(PageSize1G, guestHPA, PageSize1G, PageSize1G, PermRWX, WriteBack); err != nil {
		t.Fatal(err)
	}
	if leaf, l := leafAt(t, tb, 0x1234); l != LevelPD || leaf&NPTLarge == 0 || leaf&(NPTPresent|NPTUser|NPTWrite|NPTNoExec) != NPTPresent|NPTUser|NPTWrite|NPTNoExec {
		t.Errorf("2-MiB leaf %v %#x: want PDE with PS, P|RW|US|NX", l, leaf)
	}
	if leaf, l := leafAt(t, tb, PageSize1G+0x1234); l != LevelPDPT || leaf&NPTLarge == 0 || leaf&NPTNoExec != 0 {
		t.Errorf("1-GiB leaf %v %#x: want PDPE with PS, NX clear", l, leaf)
	}
	// Splitting the 2-MiB page leaves PTEs whose bit 7 (PAT there, not
	// PS) is clear, with rights and memory type kept.
	if err := tb.Protect(PageSize4K, PageSize4K, PermRead); err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint64{0, PageSize4K, PageSize2M - PageSize4K} {
		leaf, l := leafAt(t, tb, g)
		if l != LevelPT || leaf&NPTPAT4K != 0 || leaf&EntryAddr != guestHPA+g {
			t.Errorf("after split, GPA %#x: %v %#x", g, l, leaf)
		}
	}
	mustTranslate(t, tb, PageSize4K, guestHPA+PageSize4K, PermRead, PageSize4K)
	mustTranslate(t, tb, 0, guestHPA, PermRW, PageSize4K)
	checkStructure(t, e)
}

// TestNPTRoot: the N_CR3 value is the PML4 table's frame address with
// PWT and PCD clear (write-back table accesses, host PAT index 0).
func TestNPTRoot(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	if tb.Format() != NPT {
		t.Fatalf("Format() = %v", tb.Format())
	}
	ncr3 := tb.NCR3()
	if ncr3 != tb.root || ncr3&(PageSize4K-1) != 0 || ncr3 < e.mem.Base() || ncr3 >= e.mem.End() {
		t.Fatalf("N_CR3 %#x, want the PML4 frame %#x", ncr3, tb.root)
	}
	if tb.Pointer() != ncr3 || MakeNCR3(tb.root) != ncr3 {
		t.Fatalf("Pointer() %#x, MakeNCR3 %#x, NCR3 %#x differ", tb.Pointer(), MakeNCR3(tb.root), ncr3)
	}
	// The PML4 entries are in that frame.
	if err := tb.Map(0, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if x := tb.mem.Frame(ncr3)[0]; x&NPTPresent == 0 {
		t.Fatalf("PML4E 0 in frame %#x is %#x", ncr3, x)
	}
	// Invalidations name the table by its N_CR3 (the fake TLB checks
	// it); NPT has no INVEPT capabilities to consult.
	if err := tb.Unmap(0, PageSize4K); err != nil {
		t.Fatal(err)
	}
	if e.tlb.single == 0 || e.tlb.global != 0 {
		t.Fatalf("invalidations: %d single, %d global; want single", e.tlb.single, e.tlb.global)
	}
}

// TestNPTAccessedDirty: the processor sets A (bit 5) and D (bit 6) in
// nested entries without any enable; dirty.go reads and clears them.
func TestNPTAccessedDirty(t *testing.T) {
	e := newNPT(t, testNPTCaps) // Config.AccessDirty false: NPT has them anyway
	tb := e.tb
	if err := tb.MapPages(0, guestHPA, 8*PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.MapPages(PageSize2M, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	hwAccess(tb, 2*PageSize4K, true)
	hwAccess(tb, 5*PageSize4K, false)
	hwAccess(tb, PageSize2M+0x3000, true)
	if leaf, _ := leafAt(t, tb, 2*PageSize4K); leaf&(NPTAccessed|NPTDirty) != NPTAccessed|NPTDirty {
		t.Fatalf("written PTE %#x lacks A|D (bits 5, 6)", leaf)
	}
	if leaf, _ := leafAt(t, tb, 5*PageSize4K); leaf&(NPTAccessed|NPTDirty) != NPTAccessed {
		t.Fatalf("read PTE %#x: want A only", leaf)
	}
	var dirty, accessed int
	for m := range tb.Mappings() {
		if m.Dirty {
			dirty++
		}
		if m.Accessed {
			accessed++
		}
	}
	if dirty != 2 || accessed != 3 {
		t.Fatalf("Mappings: %d dirty, %d accessed; want 2, 3", dirty, accessed)
	}
	bitmap := make([]uint64, 16)
	n, err := tb.ReadAndClearDirty(0, 2*PageSize2M, bitmap)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1+512 || bitmap[0] != 1<<2 || popcount(bitmap) != n {
		t.Fatalf("ReadAndClearDirty: %d pages, bitmap[0] %#x", n, bitmap[0])
	}
	if leaf, _ := leafAt(t, tb, 2*PageSize4K); leaf&(NPTAccessed|NPTDirty) != NPTAccessed {
		t.Fatalf("PTE %#x after clearing dirty: want A kept, D clear", leaf)
	}
	clear(bitmap)
	if n, err := tb.ReadAndClearAccessed(0, 8*PageSize4K, bitmap); err != nil || n != 2 || bitmap[0] != 1<<2|1<<5 {
		t.Fatalf("ReadAndClearAccessed = %d, %v, bitmap[0] %#x", n, err, bitmap[0])
	}
	for m := range tb.Mappings() {
		if m.GPA < PageSize2M && (m.Accessed || m.Dirty) {
			t.Fatalf("flags left after harvest: %+v", m)
		}
	}
	e.tlb.check(t, tb, "harvest")
	checkStructure(t, e)
}

// TestNPTWithoutNoExecute: with the host's EFER.NXE clear, bit 63 is
// reserved, so only executable mappings can be made.
func TestNPTWithoutNoExecute(t *testing.T) {
	e := newNPT(t, NPTCaps(46, true, false))
	tb := e.tb
	for _, p := range []Perm{PermRead, PermRW, PermExec, PermWrite} {
		if err := tb.Map(0, guestHPA, PageSize4K, p, WriteBack); !errors.Is(err, ErrPerm) {
			t.Errorf("Map %v without NXE: %v, want ErrPerm", p, err)
		}
	}
	for _, p := range []Perm{PermRX, PermRWX} {
		if err := tb.Map(0, guestHPA, PageSize4K, p, WriteBack); err != nil {
			t.Fatalf("Map %v: %v", p, err)
		}
		if leaf, _ := leafAt(t, tb, 0); leaf&NPTNoExec != 0 {
			t.Fatalf("%v leaf %#x has NX", p, leaf)
		}
	}
	if err := tb.Protect(0, PageSize4K, PermRead); !errors.Is(err, ErrPerm) {
		t.Errorf("Protect read-only without NXE: %v, want ErrPerm", err)
	}
	checkStructure(t, e)
	// Execute-only is not expressible even with NXE: P means readable.
	e2 := newNPT(t, testNPTCaps)
	if err := e2.tb.Map(0, guestHPA, PageSize4K, PermExec, WriteBack); !errors.Is(err, ErrPerm) {
		t.Errorf("Map execute-only: %v, want ErrPerm", err)
	}
}

// TestNPTMemTypes: with the power-on host PAT (6, 4, 7, 0, ...), WB is
// index 0, WT index 1 (PWT), UC index 3 (PCD|PWT); WC and WP have no
// index and are refused.
func TestNPTMemTypes(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	for i, c := range []struct {
		mt   MemType
		bits uint64
	}{
		{WriteBack, 0}, {WriteThrough, NPTPWT}, {Uncacheable, NPTPCD | NPTPWT},
	} {
		gpa := uint64(i) * PageSize2M
		if err := tb.MapPages(gpa, guestHPA, PageSize2M, PageSize2M, PermRW, c.mt); err != nil {
			t.Fatal(err)
		}
		leaf, _ := leafAt(t, tb, gpa)
		if leaf&(NPTPWT|NPTPCD|NPTPATLarge) != c.bits {
			t.Errorf("%v: leaf %#x, want PAT/PCD/PWT %#x", c.mt, leaf, c.bits)
		}
	}
	got := map[uint64]MemType{}
	for m := range tb.Mappings() {
		got[m.GPA] = m.MemType
	}
	if got[0] != WriteBack || got[PageSize2M] != WriteThrough || got[2*PageSize2M] != Uncacheable {
		t.Errorf("Mappings memory types %v", got)
	}
	for _, mt := range []MemType{WriteCombining, WriteProtected, MemType(2)} {
		if err := tb.Map(0, guestHPA, PageSize4K, PermRW, mt); !errors.Is(err, ErrMemType) {
			t.Errorf("Map %v: %v, want ErrMemType", mt, err)
		}
	}
}

// TestNPTCheckEntry: NPT has no misconfiguration exit, but reserved bits
// make the walk fail with a nested page fault, RSV=1 (APM 15.25.6), and a
// clear U/S faults every (user) access.
func TestNPTCheckEntry(t *testing.T) {
	const addr = 0x1234_5000
	ok := NPTPresent | NPTWrite | NPTUser
	no1G := testNPTCaps
	no1G.Pages1G = false
	noNX := NPTCaps(46, true, false)
	cases := []struct {
		name   string
		e      uint64
		l      Level
		caps   Caps
		reason MisconfigReason
		bits   uint64
	}{
		{"not present", NPTNoExec | NPTWrite | 1<<50, LevelPT, testNPTCaps, 0, 0},
		{"PTE", addr | ok | NPTNoExec | NPTAccessed | NPTDirty | NPTPAT4K | NPTGlobal, LevelPT, testNPTCaps, 0, 0},
		{"PML4E", addr | ok | NPTAccessed, LevelPML4, testNPTCaps, 0, 0},
		{"PML4E count bits", addr | ok | 5<<countShift, LevelPML4, testNPTCaps, 0, 0},
		{"PDE 2M with PAT", 0x20_0000 | ok | NPTLarge | NPTPATLarge, LevelPD, testNPTCaps, 0, 0},
		{"PDPE 1G", 0x4000_0000 | ok | NPTLarge, LevelPDPT, testNPTCaps, 0, 0},
		{"NX without NXE", addr | ok | NPTNoExec, LevelPT, noNX, ReservedBits, NPTNoExec},
		{"address above MAXPHYADDR", 1<<46 | ok, LevelPT, testNPTCaps, ReservedBits, 1 << 46},
		{"PS in PML4E", addr | ok | NPTLarge, LevelPML4, testNPTCaps, ReservedBits, NPTLarge},
		{"2M misaligned", 0x20_0000 | 0x2000 | ok | NPTLarge, LevelPD, testNPTCaps, ReservedBits, 0x2000},
		{"1G misaligned", 0x4000_0000 | 0x20_0000 | ok | NPTLarge, LevelPDPT, testNPTCaps, ReservedBits, 0x20_0000},
		{"1G unsupported", 0x4000_0000 | ok | NPTLarge, LevelPDPT, no1G, LargePageUnsupported, NPTLarge},
		{"supervisor PDE", addr | NPTPresent | NPTWrite, LevelPD, testNPTCaps, NotUser, 0},
	}
	for _, c := range cases {
		err := NPT.CheckEntry(c.e, c.l, c.caps)
		if c.reason == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var me *MisconfigError
		if !errors.As(err, &me) || me.Reason != c.reason || me.Bits != c.bits || me.Format != NPT {
			t.Errorf("%s: %v (%+v), want %v bits %#x", c.name, err, me, c.reason, c.bits)
			continue
		}
		if !strings.Contains(err.Error(), "NPT") {
			t.Errorf("%s: message %q does not name NPT", c.name, err)
		}
	}
	// The formats read the same bits differently: R/W alone (bit 1) is
	// a write-only EPT entry, a misconfiguration; an EPT-style entry
	// (bits 2:0 = 011b, U/S clear) is an NPT entry no access can use.
	if err := CheckEntry(NPTWrite|addr, LevelPT, testCaps); err == nil {
		t.Error("EPT accepted a write-only entry")
	}
	if err := NPT.CheckEntry(EntryWrite|EntryRead|addr, LevelPT, testNPTCaps); err == nil {
		t.Error("NPT accepted an entry without U/S")
	}
}

// TestNPTDiagnose finds a corrupted entry on the path of a faulting GPA.
func TestNPTDiagnose(t *testing.T) {
	e := newNPT(t, testNPTCaps)
	tb := e.tb
	const gpa = 0x1_2345_6000
	if err := tb.Map(gpa, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.Diagnose(gpa); err != nil {
		t.Fatalf("well-formed path: %v", err)
	}
	pd := tb.Walk(gpa).Entries[1] & EntryAddr
	p := &tb.mem.Frame(pd)[LevelPD.index(gpa)]
	atomic.AndUint64(p, ^NPTUser)
	var me *MisconfigError
	if err := tb.Diagnose(gpa); !errors.As(err, &me) || me.Reason != NotUser || me.Level != LevelPD {
		t.Fatalf("Diagnose after clearing U/S in the PDE: %v", err)
	}
	atomic.OrUint64(p, NPTUser)
	pt := tb.Walk(gpa).Entries[2] & EntryAddr
	atomic.OrUint64(&tb.mem.Frame(pt)[LevelPT.index(gpa)], 1<<50)
	if err := tb.Diagnose(gpa); !errors.As(err, &me) || me.Reason != ReservedBits || me.Bits != 1<<50 {
		t.Fatalf("Diagnose after setting bit 50 in the PTE: %v", err)
	}
}

// TestNPTConfig: NPT needs none of the EPT capabilities.
func TestNPTConfig(t *testing.T) {
	e := newNPT(t, NPTCaps(39, false, false))
	if e.tb.Pointer() != e.tb.root {
		t.Fatal("N_CR3 not the root")
	}
	if err := e.tb.MapPages(0, guestHPA, PageSize1G, PageSize1G, PermRWX, WriteBack); !errors.Is(err, ErrPageSize) {
		t.Errorf("1-GiB page without Page1GB: %v, want ErrPageSize", err)
	}
	if _, err := New(Config{Format: Format(7), Mem: e.mem, Alloc: e.mem, Caps: testNPTCaps}); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown format: %v, want ErrConfig", err)
	}
	if err := Format(7).CheckEntry(1, LevelPT, testNPTCaps); err == nil {
		t.Error("CheckEntry of an unknown format accepted")
	}
	if EPT.String() != "EPT" || NPT.String() != "NPT" {
		t.Errorf("format names %v %v", EPT, NPT)
	}
}
