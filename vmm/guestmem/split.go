// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package guestmem

import (
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// Split is where a guest's RAM lies in guest-physical space: Low bytes
// from address 0, and High bytes from HighBase. High is nonzero only when
// Low is all of [0, MMIOBase): RAM that does not fit below the device
// windows continues above 4 GiB, as on a PC.
//
// The guest's pages are also numbered in this order, without the hole:
// page index i is the guest page at i*PageSize below MMIOBase and at
// HighBase+(i-MMIOBase/PageSize)*PageSize above it. A distributed VM
// numbers its coherence pages so.
type Split struct {
	Low, High uint64
}

// NewSplit returns where size bytes of guest RAM go.
func NewSplit(size uint64) Split {
	if size <= MMIOBase {
		return Split{Low: size}
	}
	return Split{Low: MMIOBase, High: size - MMIOBase}
}

// Size returns the RAM's size in bytes.
func (s Split) Size() uint64 { return s.Low + s.High }

// Pages returns the number of guest pages of RAM.
func (s Split) Pages() uint64 { return s.Size() / PageSize }

// End returns the address just above the highest byte of RAM: the
// guest-physical address width the RAM needs is that of End-1.
func (s Split) End() uint64 {
	if s.High == 0 {
		return s.Low
	}
	return HighBase + s.High
}

// Index returns the page index (see Split) of the page holding gpa, and
// whether gpa is RAM. It does not allocate.
func (s Split) Index(gpa uint64) (uint64, bool) {
	switch {
	case gpa < s.Low:
		return gpa / PageSize, true
	case gpa >= HighBase && gpa-HighBase < s.High:
		return (s.Low + gpa - HighBase) / PageSize, true
	}
	return 0, false
}

// Addr returns the guest-physical address of page index i, which must be
// below Pages.
func (s Split) Addr(i uint64) uint64 {
	off := i * PageSize
	if off < s.Low {
		return off
	}
	return HighBase + off - s.Low
}

// Contains reports whether gpa is RAM and so are the n bytes from it (in
// one range: no access reaches across the hole).
func (s Split) Contains(gpa, n uint64) bool {
	switch {
	case gpa < s.Low:
		return n <= s.Low-gpa
	case gpa >= HighBase && gpa-HighBase < s.High:
		return n <= s.High-(gpa-HighBase)
	}
	return false
}

// Range is a stretch of guest-physical RAM.
type Range struct {
	Start, Size uint64
}

// Ranges returns the RAM's ranges in address order: [0, Low), then
// [HighBase, HighBase+High) if High is not zero.
func (s Split) Ranges() []Range {
	r := []Range{{Start: 0, Size: s.Low}}
	if s.High != 0 {
		r = append(r, Range{Start: HighBase, Size: s.High})
	}
	return r
}

// Map is the memory map (E820) of the RAM: conventional memory, the
// reserved legacy hole, RAM from 1 MiB up to Low; with RAM above 4 GiB
// also the reserved MMIO hole [MMIOBase, HighBase) and that RAM. Low must
// be at least HighRAMStart.
func (s Split) Map() memmap.Map {
	m := memmap.Map{
		{Start: 0, Size: LowRAMEnd, Type: memmap.Usable},
		{Start: LowRAMEnd, Size: HighRAMStart - LowRAMEnd, Type: memmap.Reserved},
		{Start: HighRAMStart, Size: s.Low - HighRAMStart, Type: memmap.Usable},
	}
	if s.High != 0 {
		m = append(m,
			memmap.Region{Start: MMIOBase, Size: HighBase - MMIOBase, Type: memmap.Reserved},
			memmap.Region{Start: HighBase, Size: s.High, Type: memmap.Usable})
	}
	return m
}

// String describes the RAM's ranges, as [0, 0xc0000000) + [0x100000000,
// 0x1c0000000).
func (s Split) String() string {
	if s.High == 0 {
		return fmt.Sprintf("[0, %#x)", s.Low)
	}
	return fmt.Sprintf("[0, %#x) + [%#x, %#x)", s.Low, uint64(HighBase), s.End())
}
