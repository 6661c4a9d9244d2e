// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mmio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// PagingMode is how the guest translates linear addresses to
// guest-physical addresses (Intel SDM Vol. 3A, 4.1.1, Table 4-1).
type PagingMode uint8

// Paging modes (Intel SDM Vol. 3A, 4.1.1, Table 4-1).
const (
	// PagingNone: CR0.PG=0. Linear addresses are 32 bits wide and are
	// guest-physical addresses.
	PagingNone PagingMode = iota
	// Paging32: CR0.PG=1, CR4.PAE=0. 32-bit paging (SDM Vol. 3A, 4.3):
	// a page directory and page tables of 4-byte entries mapping 4 KiB
	// pages, and 4 MiB pages where CR4.PSE=1 and PDE.PS=1, the PDE's bits
	// 20:13 giving bits 39:32 of the page's address (PSE-36, Table 4-4).
	Paging32
	// PagingPAE: CR0.PG=1, CR4.PAE=1, EFER.LMA=0. PAE paging (SDM Vol.
	// 3A, 4.4): four PDPTEs at CR3 bits 31:5, then a page directory and
	// page tables of 8-byte entries mapping 2 MiB and 4 KiB pages.
	PagingPAE
	// Paging4: EFER.LMA=1, CR4.LA57=0. 4-level paging (SDM Vol. 3A, 4.5),
	// mapping 1 GiB, 2 MiB and 4 KiB pages.
	Paging4
	// Paging5: EFER.LMA=1, CR4.LA57=1. 5-level paging (SDM Vol. 3A, 4.5),
	// 4-level paging under a PML5 table.
	Paging5
)

var modeNames = [...]string{
	PagingNone: "no paging",
	Paging32:   "32-bit paging",
	PagingPAE:  "PAE paging",
	Paging4:    "4-level paging",
	Paging5:    "5-level paging",
}

// String names the mode as the SDM does (Vol. 3A, 4.1.1).
func (m PagingMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "PagingMode(" + strconv.Itoa(int(m)) + ")"
}

// Paging-structure entry bits (SDM Vol. 3A, 4.3 to 4.5, Tables 4-4 to 4-20).
const (
	ptePresent = 1 << 0
	pteLarge   = 1 << 7             // PS: the entry maps a page
	pteAddr    = 0x000FFFFFFFFFF000 // 8-byte entries: bits 51:12
	pte32Addr  = 0xFFFFF000         // 4-byte entries: bits 31:12
	pde32Page  = 0xFFC00000         // 4 MiB PDE: bits 31:22
	pdptAddr   = 0xFFFFFFE0         // PAE CR3: bits 31:5 (SDM 4.4.1)
	linear32   = 0xFFFFFFFF         // linear addresses outside IA-32e mode
	large4M    = 1<<22 - 1          // offset within a 4 MiB page
	pse36Shift = 13                 // PDE bits 20:13 ...
	pse36Mask  = 0xFF               // ... are address bits 39:32
)

// Paging is a guest's translation regime: its paging mode and CR3.
// PSE is CR4.PSE, which only 32-bit paging consults (SDM Vol. 3A, 4.3).
type Paging struct {
	Mode PagingMode
	CR3  uint64
	PSE  bool
}

// PagingOf returns the regime the processor uses with the given CR0, CR3,
// CR4 and IA32_EFER (SDM Vol. 3A, 4.1.1, Table 4-1): no paging unless
// CR0.PG; 32-bit paging unless CR4.PAE; PAE paging unless EFER.LMA; and
// 5-level paging if CR4.LA57, else 4-level paging.
func PagingOf(cr0, cr3, cr4, efer uint64) Paging {
	p := Paging{CR3: cr3, PSE: cr4&vcpu.CR4PSE != 0}
	switch {
	case cr0&vcpu.CR0PG == 0:
		p.Mode = PagingNone
	case cr4&vcpu.CR4PAE == 0:
		p.Mode = Paging32
	case efer&vcpu.EFERLMA == 0:
		p.Mode = PagingPAE
	case cr4&vcpu.CR4LA57 == 0:
		p.Mode = Paging4
	default:
		p.Mode = Paging5
	}
	return p
}

// entryBufs holds the buffers Translate reads paging-structure entries
// into: a buffer handed to GuestMemory.ReadAt escapes, and Translate must
// not allocate.
var entryBufs = sync.Pool{New: func() any { return new([8]byte) }}

// Translate returns the guest-physical address of the linear address va,
// walking the guest's paging structures in guest memory as the processor
// does (SDM Vol. 3A, 4.3 to 4.5). Access rights are not checked. An entry
// that is not present gives an error wrapping ErrPageFault. Translate
// does not allocate unless it fails.
func (p Paging) Translate(mem devices.GuestMemory, va uint64) (uint64, error) {
	b := entryBufs.Get().(*[8]byte)
	pa, level, err := p.walk(mem, va, b)
	entryBufs.Put(b)
	if err != nil || level != 0 {
		return 0, p.fault(va, pa, level, err)
	}
	return pa, nil
}

// Fetch reads the instruction bytes at the linear address la into buf and
// returns them: 15, the architectural limit on an instruction's length,
// or fewer where the bytes run into a page that is not mapped or into
// the end of guest memory. Fetch does not allocate unless it fails.
func (p Paging) Fetch(mem devices.GuestMemory, la uint64, buf *[15]byte) ([]byte, error) {
	// buf is also the walks' scratch space: both walks are done before
	// the instruction bytes are read into it.
	scratch := (*[8]byte)(buf[:8])
	pa, level, err := p.walk(mem, la, scratch)
	if err != nil || level != 0 {
		return nil, p.fault(la, pa, level, err)
	}
	n := min(len(buf), 4096-int(la&0xFFF))
	next := false // whether the bytes on the next page are mapped
	var pa2 uint64
	if n < len(buf) {
		pa2, level, err = p.walk(mem, la+uint64(n), scratch)
		next = err == nil && level == 0
	}
	if err := mem.ReadAt(buf[:n], pa); err != nil {
		return nil, fmt.Errorf("mmio: fetching at %#x: %w", la, err)
	}
	if next && mem.ReadAt(buf[n:], pa2) == nil {
		n = len(buf)
	}
	return buf[:n], nil
}

var errMode = errors.New("unknown paging mode")

// walk translates va, reading entries into b. If an entry stops the walk,
// walk returns the entry's guest-physical address and its level (1 for a
// page table, 2 for a page directory, up to 5 for a PML5 table), with the
// error from reading it or nil if it is not present. Otherwise it returns
// the guest-physical address of va and level 0.
func (p Paging) walk(mem devices.GuestMemory, va uint64, b *[8]byte) (uint64, int, error) {
	switch p.Mode {
	case PagingNone:
		return va & linear32, 0, nil
	case Paging32:
		return walk32(mem, p.CR3&pte32Addr, va&linear32, p.PSE, b)
	case PagingPAE:
		return walk64(mem, p.CR3&pdptAddr, va&linear32, 3, 2, b)
	case Paging4:
		return walk64(mem, p.CR3&pteAddr, va, 4, 3, b)
	case Paging5:
		return walk64(mem, p.CR3&pteAddr, va, 5, 3, b)
	}
	return 0, 0, errMode
}

// walk32 walks 32-bit paging's page directory at table and, unless the
// PDE maps a 4 MiB page, its page table (SDM Vol. 3A, 4.3, Figures 4-2
// and 4-3).
func walk32(mem devices.GuestMemory, table, va uint64, pse bool, b *[8]byte) (uint64, int, error) {
	for level := 2; level > 0; level-- {
		a := table + 4*(va>>(2+10*level)&1023)
		if err := mem.ReadAt(b[:4], a); err != nil {
			return a, level, err
		}
		e := uint64(binary.LittleEndian.Uint32(b[:4]))
		if e&ptePresent == 0 {
			return a, level, nil
		}
		if level == 2 && pse && e&pteLarge != 0 {
			return e&pde32Page | e>>pse36Shift&pse36Mask<<32 | va&large4M, 0, nil
		}
		table = e & pte32Addr
	}
	return table | va&0xFFF, 0, nil
}

// walk64 walks levels of paging structures with 8-byte entries from the
// table at table, the entries of levels 2 to large mapping a page when
// their PS bit is set: PAE paging has 3 levels and 2 MiB pages, 4- and
// 5-level paging have 1 GiB pages too (SDM Vol. 3A, 4.4.2 and 4.5.4).
func walk64(mem devices.GuestMemory, table, va uint64, levels, large int, b *[8]byte) (uint64, int, error) {
	for level := levels; level > 0; level-- {
		shift := 3 + 9*level
		a := table + 8*(va>>shift&511)
		if err := mem.ReadAt(b[:], a); err != nil {
			return a, level, err
		}
		e := binary.LittleEndian.Uint64(b[:])
		if e&ptePresent == 0 {
			return a, level, nil
		}
		if level > 1 && level <= large && e&pteLarge != 0 {
			size := uint64(1) << shift
			return e&pteAddr&^(size-1) | va&(size-1), 0, nil
		}
		table = e & pteAddr
	}
	return table | va&0xFFF, 0, nil
}

// fault is the error for a walk of va that walk stopped at the level
// entry at guest-physical address entry, or that failed with err.
func (p Paging) fault(va, entry uint64, level int, err error) error {
	switch {
	case level == 0:
		return fmt.Errorf("mmio: translating %#x: %w %d", va, err, p.Mode)
	case err != nil:
		return fmt.Errorf("mmio: page walk of %#x (%v): reading level %d entry at %#x: %w", va, p.Mode, level, entry, err)
	}
	return fmt.Errorf("%w: %#x (%v, level %d entry at %#x)", ErrPageFault, va, p.Mode, level, entry)
}
