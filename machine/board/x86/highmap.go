// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package x86

import (
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// The identity map above 4 GiB. cpuinit maps 0-4 GiB (PDPT entries 0-3,
// entry_amd64.s); memory above that is mapped later, once the memory map
// is known, with 2 MiB pages (no 1 GiB pages: QEMU's default TCG models
// lack them), one page directory per GiB taken from memory the caller
// sets aside. Entry formats: Intel SDM Vol. 3A, 4.5.4, Tables 4-16
// (PDPTE referencing a page directory) and 4-18 (PDE mapping a 2 MiB
// page); write-back, as PAT entry 0 with PWT = PCD = 0.
const (
	pteP  = 1 << 0 // present
	pteRW = 1 << 1 // writable
	ptePS = 1 << 7 // in a PDE: maps a 2 MiB page

	gib          = 1 << 30
	largePage    = 2 << 20
	entries      = 512
	lowMappedGiB = 4 // PDPT entries cpuinit fills

	// MaxMapped is the end of what one PDPT (PML4 entry 0) maps: 512 GiB.
	MaxMapped = entries * gib
)

// HighTables is how many page directories (4 KiB each) mapping memory up
// to end needs beyond cpuinit's map.
func HighTables(end uint64) int {
	if end <= lowMappedGiB*gib {
		return 0
	}
	return int((min(end, MaxMapped)+gib-1)/gib) - lowMappedGiB
}

// mapHigh fills pdpt's entries for 4 GiB up to end (rounded up to a GiB,
// at most MaxMapped), each pointing at one of the zeroed page directories
// pds (at physical addresses pdAddrs) filled with 2 MiB write-back pages.
// Entries already present are left as they are (a second call maps only
// what the first did not).
func mapHigh(pdpt *[entries]uint64, end uint64, pds []*[entries]uint64, pdAddrs []uint64) error {
	if end > MaxMapped {
		return fmt.Errorf("x86: memory up to %#x: the identity map ends at %#x", end, uint64(MaxMapped))
	}
	n := HighTables(end)
	if len(pds) < n || len(pdAddrs) < n {
		return fmt.Errorf("x86: mapping up to %#x needs %d page directories, got %d", end, n, min(len(pds), len(pdAddrs)))
	}
	for i := 0; i < n; i++ {
		g := lowMappedGiB + i
		if pdpt[g]&pteP != 0 {
			continue
		}
		if pdAddrs[i]%4096 != 0 {
			return fmt.Errorf("x86: page directory at %#x is not 4 KiB aligned", pdAddrs[i])
		}
		for j := range pds[i] {
			pds[i][j] = uint64(g)*gib + uint64(j)*largePage | pteP | pteRW | ptePS
		}
		pdpt[g] = pdAddrs[i] | pteP | pteRW
	}
	return nil
}

// FramePlan is where a hypervisor's guest frames come from: the usable
// memory of GuestMemory the identity map reaches write-back, and the page
// directories that map what lies above 4 GiB.
type FramePlan struct {
	// Frames are the regions for the frame pool.
	Frames memmap.Map
	// Tables are the frames set aside as page directories (MapHigh's
	// tables), taken from the top of the highest low region.
	Tables []uint64
	// HighEnd is the end of usable memory above 4 GiB (0: none), which
	// MapHigh must map before the pool hands out its frames.
	HighEnd uint64
}

// PlanFrames plans the guest frames of guest (the memory nobody else
// reserved): below 4 GiB, [lowStart, lowEnd) (cpuinit maps 3-4 GiB
// uncached, for MMIO); above it, everything up to MaxMapped, which needs
// HighTables(HighEnd) page directories, carved from the low part.
func PlanFrames(guest memmap.Map, lowStart, lowEnd uint64) (FramePlan, error) {
	var p FramePlan
	var high memmap.Map
	for _, r := range guest.Normalize() {
		if r.Type != memmap.Usable {
			continue
		}
		if lo, hi := max(r.Start, lowStart), min(r.End(), lowEnd); lo < hi {
			p.Frames = append(p.Frames, memmap.Region{Start: lo, Size: hi - lo, Type: memmap.Usable})
		}
		if lo, hi := max(r.Start, lowMappedGiB*gib), min(r.End(), MaxMapped); lo < hi {
			high = append(high, memmap.Region{Start: lo, Size: hi - lo, Type: memmap.Usable})
			p.HighEnd = max(p.HighEnd, hi)
		}
	}
	n := HighTables(p.HighEnd)
	for i := len(p.Frames) - 1; i >= 0 && len(p.Tables) < n; i-- {
		r := &p.Frames[i]
		for len(p.Tables) < n && r.Size >= 2*4096 {
			top := (r.End() - 4096) &^ 4095
			if top < r.Start {
				break
			}
			p.Tables = append(p.Tables, top)
			r.Size = top - r.Start
		}
	}
	if len(p.Tables) < n {
		return FramePlan{}, fmt.Errorf("x86: no low memory left for the %d page directories of memory above 4 GiB", n)
	}
	p.Frames = append(p.Frames, high...)
	return p, nil
}
