// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package memmap

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// space is the size of the small address space the property tests use, so
// that every address can be checked against a reference model.
const space = 96

// typeAt is the reference model: the type of address a in the raw map m,
// found by looking at every region, and whether any region covers it.
func typeAt(m Map, a uint64) (RegionType, bool) {
	var best RegionType
	found := false
	for _, r := range m {
		if r.Size == 0 || a < r.Start || a >= r.End() {
			continue
		}
		if !found || moreRestrictive(r.Type, best) {
			best, found = r.Type, true
		}
	}
	return best, found
}

func randomMap(rng *rand.Rand) Map {
	types := []RegionType{Usable, Usable, Usable, Reserved, ACPIReclaimable, ACPINVS, Bad, 12, 7}
	m := make(Map, rng.IntN(12))
	for i := range m {
		start := rng.Uint64N(space)
		m[i] = Region{
			Start: start,
			Size:  rng.Uint64N(space - start + 1),
			Type:  types[rng.IntN(len(types))],
		}
	}
	return m
}

func checkCanonical(t *testing.T, n Map) {
	t.Helper()
	for i, r := range n {
		if r.Size == 0 {
			t.Fatalf("region %d has zero size: %v", i, n)
		}
		if i == 0 {
			continue
		}
		p := n[i-1]
		if p.End() > r.Start {
			t.Fatalf("regions %d and %d overlap or are unsorted: %v", i-1, i, n)
		}
		if p.End() == r.Start && p.Type == r.Type {
			t.Fatalf("adjacent regions %d and %d of type %v not merged: %v", i-1, i, r.Type, n)
		}
	}
}

func TestNormalizeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 3000; iter++ {
		m := randomMap(rng)
		orig := slices.Clone(m)
		n := m.Normalize()
		if !slices.Equal(m, orig) {
			t.Fatalf("Normalize modified its input")
		}
		checkCanonical(t, n)
		for a := uint64(0); a < space+2; a++ {
			want, wok := typeAt(m, a)
			got, gok := typeAt(n, a)
			if want != got || wok != gok {
				t.Fatalf("map %v: address %d: normalized says (%v,%v), raw says (%v,%v); normalized %v",
					m, a, got, gok, want, wok, n)
			}
		}
		if nn := n.Normalize(); !slices.Equal(nn, n) {
			t.Fatalf("Normalize not idempotent: %v -> %v", n, nn)
		}
		var usable uint64
		for a := uint64(0); a < space+2; a++ {
			if ty, ok := typeAt(m, a); ok && ty == Usable {
				usable++
			}
		}
		if got := m.TotalUsable(); got != usable {
			t.Fatalf("TotalUsable(%v) = %d, want %d", m, got, usable)
		}
	}
}

func TestSubtractProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 3000; iter++ {
		m := randomMap(rng)
		ex := make([]Range, rng.IntN(5))
		for i := range ex {
			s := rng.Uint64N(space)
			ex[i] = Range{Start: s, Size: rng.Uint64N(space/3 + 1)}
		}
		free := m.Subtract(ex...)
		checkCanonicalUsable(t, free)
		for a := uint64(0); a < space*2; a++ {
			ty, ok := typeAt(m, a)
			want := ok && ty == Usable
			for _, e := range ex {
				if a >= e.Start && a < e.End() {
					want = false
				}
			}
			_, got := typeAt(free, a)
			if got != want {
				t.Fatalf("map %v minus %v: address %d free=%v, want %v; got %v", m, ex, a, got, want, free)
			}
		}
	}
}

// checkCanonicalUsable checks a Subtract result: sorted, disjoint, only
// usable regions. Adjacent pieces cannot occur because exclusions leave
// gaps, and Normalize merged the input.
func checkCanonicalUsable(t *testing.T, n Map) {
	t.Helper()
	checkCanonical(t, n)
	for _, r := range n {
		if r.Type != Usable {
			t.Fatalf("Subtract returned a %v region: %v", r.Type, n)
		}
	}
}

func TestNormalizeRealisticE820(t *testing.T) {
	// A QEMU q35 style map with the BIOS's overlapping reservations.
	m := Map{
		{Start: 0x100000, Size: 0x7fee0000 - 0x100000, Type: Usable},
		{Start: 0, Size: 0x9fc00, Type: Usable},
		{Start: 0x9fc00, Size: 0x400, Type: Reserved},
		{Start: 0xf0000, Size: 0x10000, Type: Reserved},
		{Start: 0x7fee0000, Size: 0x20000, Type: Reserved},
		{Start: 0xb0000000, Size: 0x10000000, Type: Reserved},
		{Start: 0x100000000, Size: 0x80000000, Type: Usable},
		{Start: 0x7fe00000, Size: 0x1000, Type: ACPIReclaimable}, // inside usable RAM
	}
	want := Map{
		{Start: 0, Size: 0x9fc00, Type: Usable},
		{Start: 0x9fc00, Size: 0x400, Type: Reserved},
		{Start: 0xf0000, Size: 0x10000, Type: Reserved},
		{Start: 0x100000, Size: 0x7fe00000 - 0x100000, Type: Usable},
		{Start: 0x7fe00000, Size: 0x1000, Type: ACPIReclaimable},
		{Start: 0x7fe01000, Size: 0x7fee0000 - 0x7fe01000, Type: Usable},
		{Start: 0x7fee0000, Size: 0x20000, Type: Reserved},
		{Start: 0xb0000000, Size: 0x10000000, Type: Reserved},
		{Start: 0x100000000, Size: 0x80000000, Type: Usable},
	}
	if got := m.Normalize(); !slices.Equal(got, want) {
		t.Fatalf("Normalize:\n%v\nwant:\n%v", got, want)
	}
	free := m.Subtract(
		Range{Start: 0, Size: 1 << 20},             // low 1 MiB
		Range{Start: 0x10000000, Size: 0x01000000}, // image + heap
	)
	wantFree := Map{
		{Start: 0x100000, Size: 0x10000000 - 0x100000, Type: Usable},
		{Start: 0x11000000, Size: 0x7fe00000 - 0x11000000, Type: Usable},
		{Start: 0x7fe01000, Size: 0x7fee0000 - 0x7fe01000, Type: Usable},
		{Start: 0x100000000, Size: 0x80000000, Type: Usable},
	}
	if !slices.Equal(free, wantFree) {
		t.Fatalf("Subtract:\n%v\nwant:\n%v", free, wantFree)
	}
}

func TestOverflowingRegion(t *testing.T) {
	m := Map{{Start: math.MaxUint64 - 0xfff, Size: 0x10000, Type: Usable}}
	n := m.Normalize()
	if len(n) != 1 || n[0].Start != math.MaxUint64-0xfff || n[0].End() != math.MaxUint64 {
		t.Fatalf("Normalize(%v) = %v", m, n)
	}
	if got := m.TotalUsable(); got != 0xfff {
		t.Fatalf("TotalUsable = %#x, want 0xfff", got)
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{0x9fc00, "639 KiB"},
		{3 << 29, "1.5 GiB"},
		{4 << 30, "4 GiB"},
		{(1 << 20) - 1, "1023.9 KiB"},
		{1 << 40, "1 TiB"},
		{math.MaxUint64, "15.9 EiB"},
	} {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestString(t *testing.T) {
	m := Map{
		{Start: 0, Size: 0x9fc00, Type: Usable},
		{Start: 0x9fc00, Size: 0x400, Type: Reserved},
		{Start: 0x100000000, Size: 2 << 30, Type: Usable},
		{Start: 0xfed00000, Size: 0x1000, Type: 9},
	}
	s := m.String()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != len(m)+2 {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(m)+2, s)
	}
	for _, want := range []string{
		"0x0000000000000000  0x000000000009fbff     639 KiB  usable",
		"0x000000000009fc00  0x000000000009ffff       1 KiB  reserved",
		"0x0000000100000000  0x000000017fffffff       2 GiB  usable",
		"type-9",
		// 2 GiB + 639 KiB is rounded down to one decimal.
		"usable: 2 GiB in 4 regions",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
}

func TestRegionTypeString(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range []RegionType{Usable, Reserved, ACPIReclaimable, ACPINVS, Bad, 0, 77} {
		s := ty.String()
		if s == "" || seen[s] {
			t.Errorf("type %d has empty or duplicate name %q", ty, s)
		}
		seen[s] = true
	}
}

func TestOverlapPrecedence(t *testing.T) {
	// Each pair overlaps completely; the second type must win.
	for _, p := range [][2]RegionType{
		{Usable, ACPIReclaimable},
		{ACPIReclaimable, Reserved},
		{Reserved, 42},
		{42, ACPINVS},
		{ACPINVS, Bad},
		{Usable, Bad},
	} {
		for _, m := range []Map{
			{{Start: 0x1000, Size: 0x1000, Type: p[0]}, {Start: 0x1000, Size: 0x1000, Type: p[1]}},
			{{Start: 0x1000, Size: 0x1000, Type: p[1]}, {Start: 0x1000, Size: 0x1000, Type: p[0]}},
		} {
			n := m.Normalize()
			if len(n) != 1 || n[0].Type != p[1] {
				t.Errorf("Normalize(%v) = %v, want one %v region", m, n, p[1])
			}
		}
	}
}
