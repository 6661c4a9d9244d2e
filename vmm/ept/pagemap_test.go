package ept

import (
	"errors"
	"testing"
)

// holeLayout is a guest's RAM with a hole: low bytes from 0, the rest
// from highBase, numbered without the hole (as guestmem.Split does).
type holeLayout struct{ low, pages uint64 }

const highBase = 1 << 32

func (l holeLayout) Index(gpa uint64) (uint64, bool) {
	switch {
	case gpa < l.low:
		return gpa / PageSize4K, true
	case gpa >= highBase && (gpa-highBase+l.low)/PageSize4K < l.pages:
		return (gpa - highBase + l.low) / PageSize4K, true
	}
	return 0, false
}

func (l holeLayout) Addr(i uint64) uint64 {
	if off := i * PageSize4K; off < l.low {
		return off
	}
	return highBase + i*PageSize4K - l.low
}

func (l holeLayout) Pages() uint64 { return l.pages }

// linear is RAM without a hole: 8 MiB, four 2 MiB ranges.
var linear = holeLayout{low: 8 << 20, pages: 4 * PagesPerLarge}

// setRange maps the pages [first, first+n) of the range at gpa to the
// frames from hpa on, in order, with perm.
func setRange(t *testing.T, m *PageMap, gpa, hpa uint64, n int, perm Perm) {
	t.Helper()
	for k := range uint64(n) {
		if err := m.Set(gpa+k*PageSize4K, hpa+k*PageSize4K, perm); err != nil {
			t.Fatalf("Set(%#x): %v", gpa+k*PageSize4K, err)
		}
	}
}

// wantPage fails the test unless gpa translates to hpa with perm in a
// page of size size.
func wantPage(t *testing.T, tb *Table, gpa, hpa uint64, perm Perm, size uint64) {
	t.Helper()
	got, gotPerm, gotSize, ok := tb.Translate(gpa)
	if !ok || got != hpa || gotPerm != perm || gotSize != size {
		t.Fatalf("Translate(%#x) = %#x %v size %#x ok %v, want %#x %v size %#x", gpa, got, gotPerm, gotSize, ok, hpa, perm, size)
	}
}

func TestPageMapPromotesAWholeRange(t *testing.T) {
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			e := newFormatEnv(t, f, formatCaps(f), false, 64)
			m := NewPageMap(e.tb, linear, WriteBack, true)
			const gpa = 2 * PageSize2M
			setRange(t, m, gpa, guestHPA, PagesPerLarge-1, PermRX)
			wantPage(t, e.tb, gpa+5*PageSize4K, guestHPA+5*PageSize4K, PermRX, PageSize4K)
			if n := e.tb.Tables(); n != 4 {
				t.Fatalf("%d table frames with 511 pages mapped, want 4", n)
			}
			setRange(t, m, gpa+(PagesPerLarge-1)*PageSize4K, guestHPA+(PagesPerLarge-1)*PageSize4K, 1, PermRX)
			wantPage(t, e.tb, gpa+5*PageSize4K, guestHPA+5*PageSize4K, PermRX, PageSize2M)
			if n := e.tb.Tables(); n != 3 {
				t.Fatalf("%d table frames with the range whole, want 3 (its page table freed)", n)
			}
			if s := m.Stats(); s != (PageMapStats{Large: 1, Promotions: 1}) {
				t.Fatalf("stats %+v, want one large page", s)
			}
			checkStructure(t, e)

			// A write grant to one page splits the large page; the
			// others keep their frames and rights, and the cached
			// translation of the range is invalidated.
			e.tlb.touch(e.tb, gpa+7*PageSize4K)
			if err := m.Set(gpa+7*PageSize4K, guestHPA+7*PageSize4K, PermRWX); err != nil {
				t.Fatal(err)
			}
			e.tlb.check(t, e.tb, "split")
			wantPage(t, e.tb, gpa+7*PageSize4K, guestHPA+7*PageSize4K, PermRWX, PageSize4K)
			wantPage(t, e.tb, gpa+8*PageSize4K, guestHPA+8*PageSize4K, PermRX, PageSize4K)
			if s := m.Stats(); s != (PageMapStats{Large: 0, Promotions: 1, Splits: 1}) {
				t.Fatalf("stats %+v after a split", s)
			}
			checkStructure(t, e)

			// Held exclusively page by page, the range is whole again,
			// read/write.
			setRange(t, m, gpa, guestHPA, PagesPerLarge, PermRWX)
			wantPage(t, e.tb, gpa, guestHPA, PermRWX, PageSize2M)
			if s := m.Stats(); s != (PageMapStats{Large: 1, Promotions: 2, Splits: 1}) {
				t.Fatalf("stats %+v after the range was written whole", s)
			}

			// Taking one page away splits it again.
			e.tlb.touch(e.tb, gpa+PageSize4K)
			if err := m.Set(gpa+PageSize4K, 0, 0); err != nil {
				t.Fatal(err)
			}
			e.tlb.check(t, e.tb, "unmap")
			if _, _, _, ok := e.tb.Translate(gpa + PageSize4K); ok {
				t.Fatal("page still mapped after Set with no rights")
			}
			wantPage(t, e.tb, gpa+2*PageSize4K, guestHPA+2*PageSize4K, PermRWX, PageSize4K)
			if s := m.Stats(); s.Large != 0 || s.Splits != 2 {
				t.Fatalf("stats %+v after an unmap", s)
			}
			checkStructure(t, e)
		})
	}
}

func TestPageMapKeepsSmallPagesWhereTheRangeIsNotOneRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout holeLayout
		large  bool
		caps   Caps
		set    func(t *testing.T, m *PageMap)
	}{
		{"frames not in order", linear, true, testCaps, func(t *testing.T, m *PageMap) {
			setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX)
			setRange(t, m, 3*PageSize4K, guestHPA+PageSize2M, 1, PermRX) // a copy elsewhere
		}},
		{"run not aligned", linear, true, testCaps, func(t *testing.T, m *PageMap) {
			setRange(t, m, 0, guestHPA+PageSize4K, PagesPerLarge, PermRX)
		}},
		{"mixed rights", linear, true, testCaps, func(t *testing.T, m *PageMap) {
			setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX)
			setRange(t, m, 0, guestHPA, 1, PermRWX)
		}},
		{"read-only rights", linear, true, testCaps, func(t *testing.T, m *PageMap) {
			setRange(t, m, 0, guestHPA, PagesPerLarge, PermRead)
		}},
		{"large pages off", linear, false, testCaps, func(t *testing.T, m *PageMap) {
			setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX)
		}},
		{"no 2 MiB pages in the processor", linear, true, func() Caps { c := testCaps; c.Pages2M, c.Pages1G = false, false; return c }(),
			func(t *testing.T, m *PageMap) { setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX) }},
		{"range across the hole", holeLayout{low: PageSize2M - PageSize4K, pages: PagesPerLarge}, true, testCaps,
			func(t *testing.T, m *PageMap) {
				setRange(t, m, 0, guestHPA, PagesPerLarge-1, PermRX)
				setRange(t, m, highBase, guestHPA+PageSize2M-PageSize4K, 1, PermRX)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.caps, false, 64)
			m := NewPageMap(e.tb, tc.layout, WriteBack, tc.large)
			tc.set(t, m)
			if s := m.Stats(); s.Large != 0 {
				t.Fatalf("stats %+v: promoted", s)
			}
			if _, _, size, ok := e.tb.Translate(PageSize4K); !ok || size != PageSize4K {
				t.Fatalf("page 1 mapped %v with size %#x, want a 4 KiB page", ok, size)
			}
			checkStructure(t, e)
		})
	}
}

func TestPageMapRefusesWhatIsNotAPage(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	m := NewPageMap(e.tb, linear, WriteBack, true)
	if err := m.Set(8<<20, guestHPA, PermRX); !errors.Is(err, ErrRange) {
		t.Errorf("a page beyond the RAM: %v, want ErrRange", err)
	}
	if err := m.Set(0, guestHPA+8, PermRX); !errors.Is(err, ErrAlign) {
		t.Errorf("a frame not aligned: %v, want ErrAlign", err)
	}
	if _, _, _, ok := e.tb.Translate(0); ok {
		t.Error("a refused Set mapped the page")
	}
}

// TestPageMapFailedSplitKeepsThePage: when the split's table frame
// cannot be had, the page keeps its mapping and the map its bookkeeping,
// so that the next try does the right thing.
func TestPageMapFailedSplitKeepsThePage(t *testing.T) {
	e := newEnv(t, testCaps, false, 4) // PML4, PDPT, PD, the PT promotion frees
	m := NewPageMap(e.tb, linear, WriteBack, true)
	setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX)
	if s := m.Stats(); s.Large != 1 {
		t.Fatalf("stats %+v, want the range promoted", s)
	}
	other := uint64(PageSize2M)
	if err := m.Set(other, guestHPA+PageSize2M, PermRX); err != nil { // takes the last frame
		t.Fatal(err)
	}
	if err := m.Set(PageSize4K, guestHPA+PageSize4K, PermRWX); err == nil {
		t.Fatal("split without a frame for its table succeeded")
	}
	wantPage(t, e.tb, PageSize4K, guestHPA+PageSize4K, PermRX, PageSize2M)
	if err := m.Set(other, 0, 0); err != nil { // frees the page table
		t.Fatal(err)
	}
	if err := m.Set(PageSize4K, guestHPA+PageSize4K, PermRWX); err != nil {
		t.Fatal(err)
	}
	wantPage(t, e.tb, PageSize4K, guestHPA+PageSize4K, PermRWX, PageSize4K)
	if s := m.Stats(); s.Large != 0 || s.Splits != 1 {
		t.Fatalf("stats %+v after the split", s)
	}
	checkStructure(t, e)
}

func TestPageMapSetDoesNotAllocate(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	m := NewPageMap(e.tb, linear, WriteBack, true)
	setRange(t, m, 0, guestHPA, PagesPerLarge, PermRX)
	perms := [2]Perm{PermRWX, PermRX}
	i := 0
	// Each run splits the large page and promotes it again.
	if n := testing.AllocsPerRun(100, func() {
		i++
		for _, p := range perms {
			if err := m.Set(uint64(i%PagesPerLarge)*PageSize4K, guestHPA+uint64(i%PagesPerLarge)*PageSize4K, p); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("%v allocations per split and promotion", n)
	}
	if s := m.Stats(); s.Splits < 100 || s.Large != 1 {
		t.Fatalf("stats %+v: the runs did not split and promote", s)
	}
}

func BenchmarkPageMapSplitAndPromote(b *testing.B) {
	e := newEnv(b, testCaps, false, 64)
	m := NewPageMap(e.tb, linear, WriteBack, true)
	for k := range uint64(PagesPerLarge) {
		if err := m.Set(k*PageSize4K, guestHPA+k*PageSize4K, PermRX); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := uint64(i%PagesPerLarge) * PageSize4K
		if err := m.Set(p, guestHPA+p, PermRWX); err != nil {
			b.Fatal(err)
		}
		if err := m.Set(p, guestHPA+p, PermRX); err != nil {
			b.Fatal(err)
		}
	}
}
