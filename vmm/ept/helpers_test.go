package ept

import (
	"sync/atomic"
	"testing"

	"github.com/big-iron/big-iron/vmm/ept/hostmem"
)

// testCaps is a modern processor: everything supported, 46-bit addresses.
var testCaps = Caps{
	MaxPhysAddr: 46, ExecuteOnly: true, PageWalk4: true,
	UncacheableEPTP: true, WriteBackEPTP: true, Pages2M: true, Pages1G: true,
	AccessDirty: true, InvEPTSingle: true, InvEPTAll: true,
}

// testNPTCaps is a modern AMD processor whose host runs with EFER.NXE.
var testNPTCaps = NPTCaps(46, true, true)

// formatCaps returns the test processor for a format.
func formatCaps(f Format) Caps {
	if f == NPT {
		return testNPTCaps
	}
	return testCaps
}

// allFormats is what format-independent tests run over.
var allFormats = []Format{EPT, NPT}

// Host-physical layout of the tests: table frames live in a fake memory
// at memBase, which is reserved; guest memory is mapped from guestHPA.
const (
	memBase  uint64 = 0x1_0000_0000 // 4 GiB
	guestHPA uint64 = 0x2_0000_0000 // 8 GiB
)

// fakeTLB is an Invalidator that models the processor's cache of
// translations: touch caches the current translation of a page, and only
// an invalidation forgets it. After every operation, each cached
// translation must still be allowed by the table, or an INVEPT was missed.
type fakeTLB struct {
	eptp    uint64
	single  int
	global  int
	entries map[uint64]tlbEntry
}

type tlbEntry struct {
	hpa  uint64
	perm Perm
}

func newFakeTLB() *fakeTLB { return &fakeTLB{entries: map[uint64]tlbEntry{}} }

func (f *fakeTLB) InvalidateSingle(eptp uint64) {
	if f.eptp != 0 && eptp != f.eptp {
		panic("InvalidateSingle with a foreign EPTP")
	}
	f.single++
	clear(f.entries)
}

func (f *fakeTLB) InvalidateGlobal() {
	f.global++
	clear(f.entries)
}

func (f *fakeTLB) count() int { return f.single + f.global }

// touch caches the translation of the 4-KiB page at gpa, as a processor
// does when the guest accesses it.
func (f *fakeTLB) touch(tb *Table, gpa uint64) {
	if hpa, perm, _, ok := tb.Translate(gpa); ok {
		f.entries[gpa&^(PageSize4K-1)] = tlbEntry{hpa &^ (PageSize4K - 1), perm}
	}
}

// check fails the test if a cached translation is no longer allowed.
func (f *fakeTLB) check(t *testing.T, tb *Table, what string) {
	t.Helper()
	for gpa, c := range f.entries {
		hpa, perm, _, ok := tb.Translate(gpa)
		if !ok || hpa&^(PageSize4K-1) != c.hpa || c.perm&^perm != 0 {
			t.Fatalf("%s: stale cached translation of GPA %#x (%#x %v), table now %#x %v %v: missing INVEPT",
				what, gpa, c.hpa, c.perm, hpa, perm, ok)
		}
	}
}

// checkedAlloc wraps the fake memory and fails the test when a table
// frame is freed while the fake TLB may still hold translations through
// it, i.e. without an invalidation since the last access.
type checkedAlloc struct {
	*hostmem.Memory
	tlb *fakeTLB
	t   testing.TB
}

func (a checkedAlloc) FreeFrame(hpa uint64) {
	if len(a.tlb.entries) != 0 {
		a.t.Fatalf("frame %#x freed before invalidation", hpa)
	}
	a.Memory.FreeFrame(hpa)
}

type env struct {
	tb  *Table
	mem *hostmem.Memory
	tlb *fakeTLB
}

func newEnv(t testing.TB, caps Caps, ad bool, frames int) *env {
	t.Helper()
	return newFormatEnv(t, EPT, caps, ad, frames)
}

func newFormatEnv(t testing.TB, f Format, caps Caps, ad bool, frames int) *env {
	t.Helper()
	mem := hostmem.New(memBase, frames)
	tlb := newFakeTLB()
	tb, err := New(Config{
		Format: f,
		Mem:    mem, Alloc: checkedAlloc{mem, tlb, t}, Invalidator: tlb,
		Caps: caps, AccessDirty: ad,
		Reserved: []Range{{mem.Base(), mem.End()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tlb.eptp = tb.EPTP()
	return &env{tb, mem, tlb}
}

// checkStructure verifies the invariants of the whole hierarchy: every
// present entry is well formed (CheckEntry), every non-leaf entry's count
// matches its table, no table below the root is empty, and the number of
// table frames matches Tables() and the allocator.
func checkStructure(t *testing.T, e *env) {
	t.Helper()
	tb := e.tb
	seen := map[uint64]bool{tb.root: true}
	var walk func(f uint64, l Level) int
	walk = func(f uint64, l Level) int {
		n := 0
		for i, x := range tb.mem.Frame(f) {
			if !tb.f.isPresent(x) {
				if x != 0 {
					t.Fatalf("%v %d of table %#x: not present but %#x", l, i, f, x)
				}
				continue
			}
			n++
			if err := tb.Format().CheckEntry(x, l, tb.caps); err != nil {
				t.Fatalf("table %#x index %d: %v", f, i, err)
			}
			if isLeaf(x, l) {
				continue
			}
			child := x & EntryAddr
			if seen[child] {
				t.Fatalf("table %#x linked twice", child)
			}
			seen[child] = true
			got := walk(child, l-1)
			if got == 0 {
				t.Fatalf("empty %v table %#x left linked", l-1, child)
			}
			if c := entryCount(x); c != got {
				t.Fatalf("%v %#x records %d present entries, table has %d", l, x, c, got)
			}
		}
		return n
	}
	if n := walk(tb.root, LevelPML4); n != tb.rootCount {
		t.Fatalf("root count %d, root has %d present entries", tb.rootCount, n)
	}
	if len(seen) != tb.Tables() {
		t.Fatalf("Tables() = %d, hierarchy has %d", tb.Tables(), len(seen))
	}
	if got := e.mem.InUse(); got != tb.Tables()+tb.nPending {
		t.Fatalf("allocator has %d frames out, table accounts for %d", got, tb.Tables()+tb.nPending)
	}
}

// hwAccess plays the processor: it walks the table for gpa and sets the
// accessed flags on the way and, for a write, the dirty flag of the leaf
// (Intel SDM Vol. 3C, 28.3, "Accessed and Dirty Flags for EPT"; AMD APM
// Vol. 2, 5.4.1). A write needs write permission at every level, as in
// a nested walk (APM 15.25.5); EPT's non-leaf entries always grant it.
func hwAccess(tb *Table, gpa uint64, write bool) bool {
	f := tb.root
	for l := LevelPML4; l >= LevelPT; l-- {
		p := &tb.mem.Frame(f)[l.index(gpa)]
		e := atomic.LoadUint64(p)
		if !tb.f.isPresent(e) {
			return false
		}
		if write && tb.f.perm(e)&PermWrite == 0 {
			return false
		}
		set := tb.f.accessed
		if isLeaf(e, l) {
			if write {
				set |= tb.f.dirty
			}
			atomic.OrUint64(p, set)
			return true
		}
		atomic.OrUint64(p, set)
		f = e & EntryAddr
	}
	return false
}

func mustTranslate(t *testing.T, tb *Table, gpa, wantHPA uint64, wantPerm Perm, wantSize uint64) {
	t.Helper()
	hpa, perm, size, ok := tb.Translate(gpa)
	if !ok || hpa != wantHPA || perm != wantPerm || size != wantSize {
		t.Fatalf("Translate(%#x) = %#x %v %#x %v; want %#x %v %#x true",
			gpa, hpa, perm, size, ok, wantHPA, wantPerm, wantSize)
	}
}

func mustFault(t *testing.T, tb *Table, gpa uint64) {
	t.Helper()
	if hpa, perm, size, ok := tb.Translate(gpa); ok {
		t.Fatalf("Translate(%#x) = %#x %v %#x, want fault", gpa, hpa, perm, size)
	}
}
