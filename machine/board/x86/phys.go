// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Package x86 holds the early bare-metal code shared by big-iron's PC-class
// boards: the entry point (cpuinit), the boot loader hand-off, physical
// memory reads for the boot-information parsers, port I/O, TSC calibration
// and the start of application processors from the ACPI MADT.
package x86

import (
	"fmt"
	"unsafe"
)

// Fixed low-memory addresses written by cpuinit (see entry_amd64.s).
const (
	handoffAddr = 0x7000
	tablesStart = 0x9000
	tablesEnd   = 0x10000
	savedAddr   = 0x70000
	savedPage0  = savedAddr + tablesEnd - tablesStart

	// mappedEnd is the end of the identity map cpuinit installs.
	mappedEnd = 4 << 30
)

// Boot loader magic values found in EAX at entry.
const (
	// MultibootMagic is what a Multiboot 1 loader leaves in EAX
	// (Multiboot Specification 0.6.96, 3.2 "Machine state").
	MultibootMagic = 0x2badb002
)

// Handoff is what the boot loader left in EAX and EBX at entry. For
// Multiboot, EAX is MultibootMagic and EBX the information structure; for
// PVH, EBX points to the hvm_start_info structure.
type Handoff struct {
	EAX uint32
	EBX uint32
}

// BootHandoff returns the registers cpuinit saved at entry.
func BootHandoff() Handoff {
	p := physPtr(handoffAddr)
	return Handoff{
		EAX: *(*uint32)(p),
		EBX: *(*uint32)(unsafe.Add(p, 4)),
	}
}

// physPtr converts a physical address of the identity map to a pointer.
func physPtr(addr uint64) unsafe.Pointer {
	a := uintptr(addr)
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

// PhysSlice returns the n bytes of physical memory at addr, through the
// identity map.
func PhysSlice(addr uint64, n int) []byte {
	return unsafe.Slice((*byte)(physPtr(addr)), n)
}

// ReadPhys copies n bytes of physical memory at addr as the boot loader
// left it: the range that cpuinit overwrote with page tables, and page zero
// (unmapped, to catch nil dereferences), are read from the copies it kept.
// It fails for addresses outside the identity map, so that parsers fed
// lying pointers return errors instead of faulting.
func ReadPhys(addr uint64, n int) ([]byte, error) {
	end := addr + uint64(n)
	if n < 0 || end < addr || end > mappedEnd {
		return nil, fmt.Errorf("physical range %#x+%#x is not readable", addr, n)
	}
	buf := make([]byte, n)
	for i := range buf {
		a := addr + uint64(i)
		switch {
		case a < 0x1000:
			a += savedPage0
		case a >= tablesStart && a < tablesEnd:
			a = a - tablesStart + savedAddr
		}
		buf[i] = *(*byte)(physPtr(a))
	}
	return buf, nil
}
