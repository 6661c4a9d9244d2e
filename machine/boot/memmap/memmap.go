// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package memmap describes a machine's physical memory map: the list of
// address ranges and their types that the firmware reports through E820,
// Multiboot or the Xen PVH start info, and the operations the hyperkernel
// needs on it (normalization, totals, carving out its own ranges to find
// the memory left for guests).
//
// The package is platform independent and allocation is not a concern: a
// map is built once at boot.
package memmap

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// RegionType is the type of an address range, numbered as the E820 /
// ACPI "Address Range Types" (ACPI 6.5, Table 15.4 "Address Range Types").
// Values other than the named ones are kept as they are and are treated as
// reserved.
type RegionType uint32

// Address range types (ACPI 6.5, 15.3 "Address Range Types", Table 15.4).
const (
	// Usable is AddressRangeMemory: RAM available to the OS.
	Usable RegionType = 1
	// Reserved is AddressRangeReserved: in use or reserved by the system.
	Reserved RegionType = 2
	// ACPIReclaimable is AddressRangeACPI: holds ACPI tables, usable as RAM
	// once they have been read.
	ACPIReclaimable RegionType = 3
	// ACPINVS is AddressRangeNVS: must be preserved across sleep states.
	ACPINVS RegionType = 4
	// Bad is AddressRangeUnusable: memory with detected errors.
	Bad RegionType = 5
)

// String returns a short lower-case name for t.
func (t RegionType) String() string {
	switch t {
	case Usable:
		return "usable"
	case Reserved:
		return "reserved"
	case ACPIReclaimable:
		return "acpi-reclaim"
	case ACPINVS:
		return "acpi-nvs"
	case Bad:
		return "bad"
	}
	return fmt.Sprintf("type-%d", uint32(t))
}

// rank orders types by how restrictive they are; when ranges overlap the
// higher rank wins. Usable memory is the least restrictive, memory that
// must never be touched (bad RAM) the most. ACPI NVS ranks above plain
// reserved because it additionally carries a save/restore duty; unknown
// types rank just above reserved (between reserved and NVS) so that they are
// never handed out.
func (t RegionType) rank() int {
	switch t {
	case Usable:
		return 0
	case ACPIReclaimable:
		return 1
	case Reserved:
		return 2
	case ACPINVS:
		return 4
	case Bad:
		return 5
	}
	return 3
}

// moreRestrictive reports whether a should win over b in an overlap. Ties
// between different unknown types are broken by the numeric value so that
// the result does not depend on input order.
func moreRestrictive(a, b RegionType) bool {
	ra, rb := a.rank(), b.rank()
	if ra != rb {
		return ra > rb
	}
	return a > b
}

// Region is one address range of the map.
type Region struct {
	// Start is the first physical address of the range.
	Start uint64
	// Size is the length of the range in bytes.
	Size uint64
	// Type says what the range may be used for.
	Type RegionType
}

// End returns the address one past the last byte of r. A range that would
// extend beyond the 64-bit address space is clipped to end at 2^64-1.
func (r Region) End() uint64 {
	if r.Size > math.MaxUint64-r.Start {
		return math.MaxUint64
	}
	return r.Start + r.Size
}

// Range is a bare address range, used to name memory to take out of a map.
type Range struct {
	// Start is the first address of the range.
	Start uint64
	// Size is the length of the range in bytes.
	Size uint64
}

// End returns the address one past the last byte of r, clipped like
// Region.End.
func (r Range) End() uint64 {
	return Region{Start: r.Start, Size: r.Size}.End()
}

// Map is a physical memory map: a list of regions, in any order and possibly
// overlapping as firmware reports them, until Normalize is applied.
type Map []Region

// Normalize returns the canonical form of m as a new map: regions sorted by
// address, no zero-sized regions, no overlaps (where input regions overlap
// the more restrictive type wins; see RegionType), and adjacent regions of
// the same type merged. m itself is not modified.
//
// The cost is O(n^2) in the number of regions, which is fine for firmware
// maps (tens to a few hundred entries).
func (m Map) Normalize() Map {
	// Every region boundary splits the address space into elementary
	// intervals; each interval takes the winning type among the regions
	// covering it.
	points := make([]uint64, 0, 2*len(m))
	for _, r := range m {
		if r.Size == 0 || r.End() == r.Start {
			continue
		}
		points = append(points, r.Start, r.End())
	}
	slices.Sort(points)
	points = slices.Compact(points)

	var out Map
	for i := 0; i+1 < len(points); i++ {
		lo, hi := points[i], points[i+1]
		covered := false
		var best RegionType
		for _, r := range m {
			if r.Size == 0 || r.Start > lo || r.End() < hi {
				continue
			}
			if !covered || moreRestrictive(r.Type, best) {
				best = r.Type
				covered = true
			}
		}
		if !covered {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Type == best && out[n-1].End() == lo {
			out[n-1].Size += hi - lo
			continue
		}
		out = append(out, Region{Start: lo, Size: hi - lo, Type: best})
	}
	return out
}

// TotalUsable returns the number of usable bytes in m, counting bytes that
// several usable regions share once and bytes that a more restrictive
// region overlaps not at all.
func (m Map) TotalUsable() uint64 {
	var total uint64
	for _, r := range m.Normalize() {
		if r.Type == Usable {
			total += r.Size
		}
	}
	return total
}

// Subtract returns the usable memory of m that lies outside all of the
// given ranges (the hyperkernel image, its heap, the low 1 MiB, ...): the
// memory free for guests. The result is normalized and holds only Usable
// regions.
func (m Map) Subtract(exclude ...Range) Map {
	ex := make([]Range, 0, len(exclude))
	for _, e := range exclude {
		if e.Size != 0 {
			ex = append(ex, e)
		}
	}
	slices.SortFunc(ex, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})

	var out Map
	for _, r := range m.Normalize() {
		if r.Type != Usable {
			continue
		}
		lo, hi := r.Start, r.End()
		for _, e := range ex {
			if lo >= hi {
				break
			}
			es, ee := e.Start, e.End()
			if ee <= lo || es >= hi {
				continue
			}
			if es > lo {
				out = append(out, Region{Start: lo, Size: es - lo, Type: Usable})
			}
			lo = max(lo, ee)
		}
		if lo < hi {
			out = append(out, Region{Start: lo, Size: hi - lo, Type: Usable})
		}
	}
	return out
}

// String formats m as a table for the shell's `mem` command: one line per
// region with its first and last address, its size and its type, and a
// closing line with the usable total. The map is printed as given; call
// Normalize first for the canonical view.
func (m Map) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s  %-18s  %10s  %s\n", "start", "end", "size", "type")
	for _, r := range m {
		last := r.End()
		if r.Size != 0 && last != math.MaxUint64 {
			last--
		}
		fmt.Fprintf(&b, "0x%016x  0x%016x  %10s  %s\n", r.Start, last, FormatSize(r.Size), r.Type)
	}
	fmt.Fprintf(&b, "usable: %s in %d regions\n", FormatSize(m.TotalUsable()), len(m))
	return b.String()
}

// FormatSize renders a byte count for people: in the largest binary unit
// (B, KiB, MiB, GiB, TiB) that leaves at least 1, with up to one decimal,
// e.g. "639 KiB", "1.5 GiB", "4 GiB".
func FormatSize(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for i+1 < len(units) && n >= uint64(1)<<(10*(i+1)) {
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	unit := uint64(1) << (10 * i)
	whole := n / unit
	// Tenths, rounded down so that a size is never overstated.
	tenths := (n % unit) * 10 / unit
	if tenths == 0 {
		return fmt.Sprintf("%d %s", whole, units[i])
	}
	return fmt.Sprintf("%d.%d %s", whole, tenths, units[i])
}
