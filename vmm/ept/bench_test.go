package ept

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/ept/hostmem"
)

// countingInvalidator counts INVEPTs and does nothing else.
type countingInvalidator struct{ n int }

func (c *countingInvalidator) InvalidateSingle(uint64) { c.n++ }
func (c *countingInvalidator) InvalidateGlobal()       { c.n++ }

func newBenchTable(tb testing.TB, f Format, frames int) (*Table, *hostmem.Memory, *countingInvalidator) {
	mem := hostmem.New(memBase, frames)
	inv := &countingInvalidator{}
	t, err := New(Config{Format: f, Mem: mem, Alloc: mem, Invalidator: inv, Caps: formatCaps(f), AccessDirty: true,
		Reserved: []Range{{mem.Base(), mem.End()}}})
	if err != nil {
		tb.Fatal(err)
	}
	return t, mem, inv
}

// benchFormats runs a format-independent benchmark for each format, as
// sub-benchmarks named after it.
func benchFormats(b *testing.B, run func(b *testing.B, f Format)) {
	for _, f := range allFormats {
		b.Run(f.String(), func(b *testing.B) { run(b, f) })
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) { testHotPathsDoNotAllocate(t, f) })
	}
}

func testHotPathsDoNotAllocate(t *testing.T, f Format) {
	tb, _, inv := newBenchTable(t, f, 64)
	const gpa = 0x1_2345_6000
	if err := tb.Map(gpa, guestHPA, 4*PageSize4K, PermRWX, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := tb.MapPages(PageSize1G*3, guestHPA, PageSize2M, PageSize2M, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	bitmap := make([]uint64, 8)
	perms := [2]Perm{PermRead, PermRWX}
	i := 0
	for name, f := range map[string]func(){
		"Translate": func() {
			if _, _, _, ok := tb.Translate(gpa + 0x10); !ok {
				t.Fatal("not mapped")
			}
		},
		"Translate large": func() { tb.Translate(PageSize1G*3 + 0x1234) },
		"Protect": func() {
			i++
			if err := tb.Protect(gpa, PageSize4K, perms[i%2]); err != nil {
				t.Fatal(err)
			}
		},
		"Protect large, no split": func() {
			i++
			if err := tb.Protect(PageSize1G*3, PageSize2M, []Perm{PermRead, PermRW}[i%2]); err != nil {
				t.Fatal(err)
			}
		},
		"Unmap and Map in existing tables": func() {
			if err := tb.Unmap(gpa+PageSize4K, PageSize4K); err != nil {
				t.Fatal(err)
			}
			if err := tb.Map(gpa+PageSize4K, guestHPA+PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
				t.Fatal(err)
			}
		},
		"ReadAndClearDirty": func() {
			hwAccess(tb, gpa, true)
			if _, err := tb.ReadAndClearDirty(gpa, 4*PageSize4K, bitmap); err != nil {
				t.Fatal(err)
			}
		},
		"Walk":     func() { tb.Walk(gpa) },
		"Diagnose": func() { _ = tb.Diagnose(gpa) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
	if inv.n == 0 {
		t.Fatal("the exercised operations never invalidated")
	}
}

func BenchmarkMap4K(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		const window = 256 << 20 // 64 Ki pages, 128 page tables
		tb, _, _ := newBenchTable(b, f, 256)
		b.ReportAllocs()
		var gpa uint64
		for b.Loop() {
			if gpa == window {
				b.StopTimer()
				if err := tb.Unmap(0, window); err != nil {
					b.Fatal(err)
				}
				gpa = 0
				b.StartTimer()
			}
			if err := tb.Map(gpa, guestHPA+gpa, PageSize4K, PermRW, WriteBack); err != nil {
				b.Fatal(err)
			}
			gpa += PageSize4K
		}
	})
}

func BenchmarkUnmap4K(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		tb, _, _ := newBenchTable(b, f, 64)
		// A neighbour keeps the page table alive, so this measures the
		// unmap itself (with its INVEPT request) and the remap.
		if err := tb.Map(0, guestHPA, 2*PageSize4K, PermRW, WriteBack); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := tb.Unmap(PageSize4K, PageSize4K); err != nil {
				b.Fatal(err)
			}
			if err := tb.Map(PageSize4K, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTranslate(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		tb, _, _ := newBenchTable(b, f, 64)
		const n = 4096
		if err := tb.MapPages(0, guestHPA, n*PageSize4K, PageSize4K, PermRW, WriteBack); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var i uint64
		for b.Loop() {
			if _, _, _, ok := tb.Translate((i * 0x9E3779B1 % n) * PageSize4K); !ok {
				b.Fatal("not mapped")
			}
			i++
		}
	})
}

func BenchmarkTranslate1G(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		tb, _, _ := newBenchTable(b, f, 64)
		if err := tb.MapPages(0, guestHPA, PageSize1G, PageSize1G, PermRW, WriteBack); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var i uint64
		for b.Loop() {
			tb.Translate(i * 0x9E3779B1 % PageSize1G)
			i++
		}
	})
}

func BenchmarkProtect4K(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		tb, _, _ := newBenchTable(b, f, 64)
		if err := tb.Map(0, guestHPA, 512*PageSize4K, PermRW, WriteBack); err != nil {
			b.Fatal(err)
		}
		perms := [2]Perm{PermRead, PermRW} // alternately removes and adds write
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := tb.Protect(uint64(i%512)*PageSize4K, PageSize4K, perms[i&1]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkReadAndClearDirty2M(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		tb, _, _ := newBenchTable(b, f, 64)
		if err := tb.MapPages(0, guestHPA, PageSize2M, PageSize4K, PermRW, WriteBack); err != nil {
			b.Fatal(err)
		}
		bitmap := make([]uint64, 8)
		b.ReportAllocs()
		for b.Loop() {
			for g := uint64(0); g < PageSize2M; g += 64 * PageSize4K {
				hwAccess(tb, g, true)
			}
			if _, err := tb.ReadAndClearDirty(0, PageSize2M, bitmap); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMapGuestRAM maps 1 GiB of guest RAM the two ways hv can: page
// by page (guest RAM backed by scattered frames) and in 2 MiB stretches
// (backed by runs), reporting the tables each needs.
func BenchmarkMapGuestRAM(b *testing.B) {
	benchFormats(b, func(b *testing.B, f Format) {
		const ram = 1 << 30
		for _, step := range []uint64{PageSize4K, PageSize2M} {
			name := map[uint64]string{PageSize4K: "4KiB", PageSize2M: "2MiB"}[step]
			b.Run(name, func(b *testing.B) {
				tb, _, _ := newBenchTable(b, f, 1024)
				for b.Loop() {
					for gpa := uint64(0); gpa < ram; gpa += step {
						if err := tb.Map(gpa, guestHPA+gpa, step, PermRWX, WriteBack); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					tables := tb.Tables()
					if err := tb.Unmap(0, ram); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					b.ReportMetric(float64(tables*4), "KiB-tables/GiB")
				}
			})
		}
	})
}
