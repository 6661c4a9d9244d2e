// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mmio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/vmm/devices"

	"github.com/big-iron/big-iron/vmm/vcpu"
)

const (
	pP  = ptePresent
	pPS = pteLarge
)

// put32 and put64 store entry idx of the table at table.
func put32(m flat, table, idx uint64, e uint32) {
	binary.LittleEndian.PutUint32(m[table+4*idx:], e)
}

func put64(m flat, table, idx, e uint64) {
	binary.LittleEndian.PutUint64(m[table+8*idx:], e)
}

// walkTest is a translation to check: va maps to pa, or, if level is
// not 0, va's walk finds the entry at that level not present.
type walkTest struct {
	va, pa uint64
	level  int
}

func checkWalks(t *testing.T, p Paging, mem flat, tests []walkTest) {
	t.Helper()
	for _, tt := range tests {
		pa, err := p.Translate(mem, tt.va)
		if tt.level == 0 {
			if err != nil || pa != tt.pa {
				t.Errorf("%v: Translate(%#x) = %#x, %v; want %#x", p.Mode, tt.va, pa, err, tt.pa)
			}
			continue
		}
		level := fmt.Sprintf("level %d ", tt.level)
		if !errors.Is(err, ErrPageFault) || !strings.Contains(err.Error(), level) {
			t.Errorf("%v: Translate(%#x) = %#x, %v; want ErrPageFault at %s", p.Mode, tt.va, pa, err, level)
		}
	}
}

func TestPagingOf(t *testing.T) {
	// Index bits: 8 CR0.PG, 4 CR4.PAE, 2 EFER.LMA, 1 CR4.LA57.
	want := [16]PagingMode{
		PagingNone, PagingNone, PagingNone, PagingNone,
		PagingNone, PagingNone, PagingNone, PagingNone,
		Paging32, Paging32, Paging32, Paging32, // LMA without PAE cannot be: PAE decides
		PagingPAE, PagingPAE, // LA57 matters only in IA-32e mode
		Paging4, Paging5,
	}
	for i, mode := range want {
		for _, pse := range []bool{false, true} {
			cr0 := uint64(1 | 1<<16) // PE, WP
			cr4 := uint64(1 << 13)   // VMXE
			efer := uint64(1<<8 | 1<<11)
			if i&8 != 0 {
				cr0 |= vcpu.CR0PG
			}
			if i&4 != 0 {
				cr4 |= vcpu.CR4PAE
			}
			if i&2 != 0 {
				efer |= vcpu.EFERLMA
			}
			if i&1 != 0 {
				cr4 |= vcpu.CR4LA57
			}
			if pse {
				cr4 |= vcpu.CR4PSE
			}
			got := PagingOf(cr0, 0x12345018, cr4, efer)
			if got != (Paging{Mode: mode, CR3: 0x12345018, PSE: pse}) {
				t.Errorf("PagingOf(%#x, CR3, %#x, %#x) = %+v; want %v", cr0, cr4, efer, got, mode)
			}
		}
	}
}

func TestPagingNone(t *testing.T) {
	checkWalks(t, Paging{Mode: PagingNone, CR3: 0x1000}, nil, []walkTest{
		{va: 0x7ABC, pa: 0x7ABC},
		{va: 0xFFFFFFFF, pa: 0xFFFFFFFF},
		{va: 0xABCD_1234_5678, pa: 0x1234_5678},
	})
}

// mem32 builds 32-bit paging structures with the page directory at 0x1000.
func mem32() flat {
	m := make(flat, 1<<20)
	put32(m, 0x1000, 0, 0x2000|pP)
	put32(m, 0x2000, 5, 0x7000|pP|0x60) // accessed, dirty
	put32(m, 0x2000, 6, 0x9000|pP)
	put32(m, 0x1000, 1, 0x00C00000|pPS|pP)          // 4 MiB page
	put32(m, 0x1000, 2, 0x5000|pPS|pP)              // PSE-36 bit 33, or a table
	put32(m, 0x5000, 0x12, 0x9000|pP)               // ... used without PSE
	put32(m, 0x1000, 3, 0x12C00000|0xAB<<13|pPS|pP) // PSE-36 bits 39:32 = 0xAB
	put32(m, 0x1000, 0x3FF, 0x3000|pP)              // top of the address space
	put32(m, 0x3000, 0x3FF, 0xF000|pP)
	put32(m, 0x1000, 5, 0xFFC00000|0xFF<<13|pPS|1<<12) // not present
	return m
}

func TestPaging32(t *testing.T) {
	m := mem32()
	common := []walkTest{
		{va: 0x5ABC, pa: 0x7ABC},
		{va: 0x6000, pa: 0x9000},
		{va: 0xFFFFFFFF, pa: 0xFFFF},
		{va: 1<<32 | 0x5ABC, pa: 0x7ABC}, // linear addresses are 32 bits
		{va: 0x7000, level: 1},
		{va: 0x01000000, level: 2},
		{va: 0x01400000, level: 2},
	}
	pse := Paging{Mode: Paging32, CR3: 0x1000 | 0x18, PSE: true}
	checkWalks(t, pse, m, append(common,
		walkTest{va: 0x00412345, pa: 0xC12345},
		walkTest{va: 0x00812345, pa: 0x2_0001_2345},
		walkTest{va: 0x00FFFFFF, pa: 0xAB_12FF_FFFF},
	))
	nopse := Paging{Mode: Paging32, CR3: 0x1000}
	checkWalks(t, nopse, m, append(common,
		walkTest{va: 0x00812345, pa: 0x9345},
	))
	// Without CR4.PSE the 4 MiB PDE points at a table outside memory.
	_, err := nopse.Translate(m, 0x00412345)
	if !errors.Is(err, devices.ErrBadAddress) || errors.Is(err, ErrPageFault) {
		t.Errorf("table outside memory: %v", err)
	}
}

// memPAE builds PAE paging structures with the PDPTEs at 0x1020.
func memPAE() flat {
	m := make(flat, 1<<20)
	put64(m, 0x1020, 0, 0x2000|pP)
	put64(m, 0x1020, 3, 0x4000|pPS|pP) // PS is reserved in a PDPTE (SDM 4.4.1): ignored
	put64(m, 0x2000, 0, 0x3000|pP)
	put64(m, 0x2000, 1, 1<<63|0x1_2340_0000|pPS|pP) // 2 MiB page above 4 GiB
	put64(m, 0x3000, 5, 0xFFF0_0000_0000_0000|0x7000|pP)
	put64(m, 0x3000, 7, 0x1_0000_9000|pP)
	put64(m, 0x4000, 511, 0x5000|pP)
	put64(m, 0x5000, 511, 0xF000|pP)
	return m
}

func TestPagingPAE(t *testing.T) {
	p := Paging{Mode: PagingPAE, CR3: 1<<40 | 0x1020 | 0x18, PSE: true}
	checkWalks(t, p, memPAE(), []walkTest{
		{va: 0x5ABC, pa: 0x7ABC},
		{va: 0x7123, pa: 0x1_0000_9123},
		{va: 0x00201234, pa: 0x1_2340_1234},
		{va: 0x003FFFFF, pa: 0x1_235F_FFFF},
		{va: 0xFFFFFFFF, pa: 0xFFFF},
		{va: 0xFFFF_FFFF_0000_5ABC, pa: 0x7ABC},
		{va: 0x6000, level: 1},
		{va: 0x00400000, level: 2},
		{va: 0x40000000, level: 3},
		{va: 0x80000000, level: 3},
	})
}

// memLong builds 5-level paging structures with the PML5 table at 0x1000
// and, below it, 4-level ones with the PML4 table at 0x2000.
func memLong() flat {
	m := make(flat, 1<<20)
	put64(m, 0x1000, 1, 0x2000|pP)
	put64(m, 0x2000, 2, 0x3000|pP)
	put64(m, 0x3000, 3, 0x4000|pP)
	put64(m, 0x3000, 4, 1<<63|0x80000000|pPS|pP) // 1 GiB page
	put64(m, 0x4000, 4, 0x5000|pP)
	put64(m, 0x4000, 5, 0x600000|pPS|pP) // 2 MiB page
	put64(m, 0x5000, 6, 0x7000|pP)
	put64(m, 0x5000, 7, 0xFFFF_FFFF_FFFF_F000|pP) // highest address
	return m
}

// longTests are walks of memLong relative to the PML4 entry base.
func longTests(base uint64) []walkTest {
	return []walkTest{
		{va: base | 3<<30 | 4<<21 | 6<<12 | 0xABC, pa: 0x7ABC},
		{va: base | 3<<30 | 4<<21 | 7<<12 | 0xABC, pa: 0xF_FFFF_FFFF_FABC},
		{va: base | 4<<30 | 0x12345678, pa: 0x92345678},
		{va: base | 3<<30 | 5<<21 | 0x1ABCD, pa: 0x61ABCD},
		{va: base, level: 3},
		{va: base | 3<<30, level: 2},
		{va: base | 3<<30 | 4<<21 | 8<<12, level: 1},
	}
}

func TestPaging4(t *testing.T) {
	m := memLong()
	p := Paging{Mode: Paging4, CR3: 0x2000 | 0x18}
	tests := append(longTests(2<<39), longTests(0xFFFF_0000_0000_0000|2<<39)...)
	tests = append(tests, walkTest{va: 0, level: 4}, walkTest{va: 0xFFFF_8000_0000_0000, level: 4})
	checkWalks(t, p, m, tests)
	for _, tt := range tests { // the 4-level Translate is Paging4's
		pa, err := Translate(m, 0x2018, tt.va)
		pa2, err2 := p.Translate(m, tt.va)
		if pa != pa2 || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Errorf("Translate(%#x) = %#x, %v; Paging4: %#x, %v", tt.va, pa, err, pa2, err2)
		}
	}
}

func TestPaging5(t *testing.T) {
	p := Paging{Mode: Paging5, CR3: 0x1000}
	tests := append(longTests(1<<48|2<<39), longTests(0xFE00_0000_0000_0000|1<<48|2<<39)...)
	tests = append(tests, walkTest{va: 1 << 48, level: 4}, walkTest{va: 2 << 39, level: 5})
	checkWalks(t, p, memLong(), tests)
}

func TestPagingReadError(t *testing.T) {
	m := memLong()
	put64(m, 0x4000, 4, 0x100000|pP) // page table just past memory
	va := uint64(2<<39 | 3<<30 | 4<<21)
	_, err := Paging{Mode: Paging4, CR3: 0x2000}.Translate(m, va)
	if !errors.Is(err, devices.ErrBadAddress) || !strings.Contains(err.Error(), "level 1 entry at 0x100000") {
		t.Errorf("page table outside memory: %v", err)
	}
	_, err = Paging{Mode: 9}.Translate(m, 0)
	if err == nil || errors.Is(err, ErrPageFault) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestPagingFetch(t *testing.T) {
	long := memLong()
	base := uint64(2<<39 | 3<<30 | 4<<21)
	copy(long[0x7FF8:], "\x01\x02\x03\x04\x05\x06\x07\x08")
	copy(long[0x9000:], "\x09\x0A\x0B\x0C\x0D\x0E\x0F\x10")
	copy(long[0x9FFA:], "\xA1\xA2\xA3\xA4\xA5\xA6")
	put64(long, 0x5000, 7, 0x9000|pP)
	m32 := mem32()
	copy(m32[0x9FFC:], "\xB1\xB2\xB3\xB4")
	for _, tt := range []struct {
		p    Paging
		mem  flat
		la   uint64
		want string // "": a page fault
	}{
		{Paging{Mode: Paging4, CR3: 0x2000}, long, base | 6<<12 | 0xFF8, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E\x0F"},
		{Paging{Mode: Paging4, CR3: 0x2000}, long, base | 7<<12 | 0xFFA, "\xA1\xA2\xA3\xA4\xA5\xA6"},
		{Paging{Mode: Paging4, CR3: 0x2000}, long, base | 8<<12, ""},
		{Paging{Mode: Paging5, CR3: 0x1000}, long, 1<<48 | base | 6<<12 | 0xFFF, "\x08\x09\x0A\x0B\x0C\x0D\x0E\x0F\x10\x00\x00\x00\x00\x00\x00"},
		{Paging{Mode: Paging32, CR3: 0x1000}, m32, 0x6FFC, "\xB1\xB2\xB3\xB4"},
		{Paging{Mode: PagingNone}, long, 1<<32 | 0x7FF8, "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x00\x00\x00\x00"},
		{Paging{Mode: PagingNone}, long, 0xFFFFA, "\x00\x00\x00\x00\x00\x00"}, // memory ends
	} {
		var buf [15]byte
		code, err := tt.p.Fetch(tt.mem, tt.la, &buf)
		if tt.want == "" {
			if !errors.Is(err, ErrPageFault) {
				t.Errorf("%v: Fetch(%#x) = % x, %v; want ErrPageFault", tt.p.Mode, tt.la, code, err)
			}
			continue
		}
		if err != nil || string(code) != tt.want {
			t.Errorf("%v: Fetch(%#x) = % x, %v; want % x", tt.p.Mode, tt.la, code, err, tt.want)
		}
		if tt.p.Mode != Paging4 {
			continue
		}
		var buf2 [15]byte
		code2, err := Fetch(tt.mem, tt.p.CR3, tt.la, &buf2) // the 4-level Fetch is Paging4's
		if err != nil || string(code2) != tt.want {
			t.Errorf("Fetch(%#x) = % x, %v; want % x", tt.la, code2, err, tt.want)
		}
	}
}

func TestPagingAllocs(t *testing.T) {
	long, m32, pae := memLong(), mem32(), memPAE()
	base := uint64(2<<39 | 3<<30 | 4<<21)
	for _, tt := range []struct {
		p      Paging
		mem    devices.GuestMemory
		va, la uint64 // la's fetch straddles a page boundary
	}{
		{Paging{Mode: PagingNone}, long, 0x7ABC, 0x7FF8},
		{Paging{Mode: Paging32, CR3: 0x1000, PSE: true}, m32, 0x00812345, 0x6FFC},
		{Paging{Mode: PagingPAE, CR3: 0x1020}, pae, 0x00201234, 0x5FFC},
		{Paging{Mode: Paging4, CR3: 0x2000}, long, 2<<39 | 3<<30 | 5<<21 | 0x1234, base | 6<<12 | 0xFFC},
		{Paging{Mode: Paging5, CR3: 0x1000}, long, 1<<48 | base | 6<<12, 1<<48 | base | 6<<12 | 0xFF8},
	} {
		var buf [15]byte
		n := testing.AllocsPerRun(100, func() {
			if _, err := tt.p.Translate(tt.mem, tt.va); err != nil {
				t.Fatal(err)
			}
			if _, err := tt.p.Fetch(tt.mem, tt.la, &buf); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%v: %v allocations per Translate and Fetch", tt.p.Mode, n)
		}
	}
}

func FuzzTranslate(f *testing.F) {
	var e [8]byte
	binary.LittleEndian.PutUint64(e[:], 0x1000|pP) // every entry maps table 0x1000
	f.Add(e[:], uint64(0x1000), uint64(0x12345678))
	binary.LittleEndian.PutUint64(e[:], 0x8000_0000_0020_0000|pPS|pP)
	f.Add(e[:], uint64(0), ^uint64(0))
	f.Add([]byte{}, uint64(0xFFF), uint64(0xFFF))
	f.Fuzz(func(t *testing.T, data []byte, cr3, va uint64) {
		mem := make(flat, 64<<10)
		for i := 0; len(data) > 0 && i < len(mem); {
			i += copy(mem[i:], data)
		}
		for mode := PagingNone; mode <= Paging5+1; mode++ {
			for _, pse := range []bool{false, true} {
				p := Paging{Mode: mode, CR3: cr3, PSE: pse}
				for _, a := range []uint64{va, va ^ 0xFFFF_FFFF_FFFF_F000, va + 0x1000} {
					if pa, err := p.Translate(mem, a); err == nil && pa >= 1<<52 {
						t.Fatalf("%+v: Translate(%#x) = %#x", p, a, pa)
					}
					var buf [15]byte
					if code, err := p.Fetch(mem, a, &buf); err == nil && (len(code) == 0 || len(code) > 15) {
						t.Fatalf("%+v: Fetch(%#x) = % x", p, a, code)
					}
				}
			}
		}
	})
}
