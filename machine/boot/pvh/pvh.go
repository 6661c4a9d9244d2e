// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package pvh parses the Xen PVH start-of-day structure, hvm_start_info,
// that QEMU (-kernel with a PVH ELF note), Firecracker, Cloud Hypervisor
// and Xen pass to a PVH entry point in EBX.
//
// The layout is that of xen/include/public/arch-x86/hvm/start_info.h
// (all fields little endian):
//
//	hvm_start_info (version 0: 40 bytes; version 1: 56 bytes)
//	 0 u32 magic           XEN_HVM_START_MAGIC_VALUE (0x336ec578)
//	 4 u32 version         0 or 1; later versions are backwards compatible
//	 8 u32 flags           SIF_xxx flags
//	12 u32 nr_modules      number of entries at modlist_paddr
//	16 u64 modlist_paddr   physical address of the module list
//	24 u64 cmdline_paddr   physical address of a NUL-terminated command line
//	32 u64 rsdp_paddr      physical address of the ACPI RSDP
//	40 u64 memmap_paddr    (version >= 1) physical address of the memory map
//	48 u32 memmap_entries  (version >= 1) number of memory map entries
//	52 u32 reserved        (version >= 1)
//
//	hvm_modlist_entry (32 bytes)
//	 0 u64 paddr           physical address of the module
//	 8 u64 size            size of the module in bytes
//	16 u64 cmdline_paddr   physical address of the module's command line
//	24 u64 reserved
//
//	hvm_memmap_table_entry (24 bytes)
//	 0 u64 addr            base address
//	 8 u64 size            size in bytes
//	16 u32 type            XEN_HVM_MEMMAP_TYPE_*, the E820 / ACPI numbering
//	20 u32 reserved
//
// A zero address field means "not present" (start_info.h: nothing is
// loaded at physical address 0).
//
// Like the Multiboot parser, this package reads memory only through a
// ReadFunc and treats what it reads as untrusted.
package pvh

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread"
)

// StartMagic is XEN_HVM_START_MAGIC_VALUE, the first field of
// hvm_start_info ("xEn3" with the 0x80 bit of the "E" set; start_info.h).
const StartMagic uint32 = 0x336ec578

// Structure sizes and offsets (start_info.h).
const (
	sizeV0 = 40
	sizeV1 = 56

	offMagic         = 0
	offVersion       = 4
	offFlags         = 8
	offNrModules     = 12
	offModlistPaddr  = 16
	offCmdlinePaddr  = 24
	offRSDPPaddr     = 32
	offMemmapPaddr   = 40
	offMemmapEntries = 48

	modlistEntrySize = 32
	memmapEntrySize  = 24
)

// Bounds on what the parser accepts.
const (
	// MaxModules bounds nr_modules.
	MaxModules = 256
	// MaxMemmapEntries bounds memmap_entries.
	MaxMemmapEntries = 4096
	// MaxStringLen bounds command line lengths, without the NUL.
	MaxStringLen = 64 << 10
)

// ReadFunc returns the n bytes of physical memory starting at addr. It must
// return exactly n bytes or an error. The parser does not keep the slice.
type ReadFunc = memread.ReadFunc

// Module is one entry of the module list.
type Module struct {
	// Addr is the physical address of the module.
	Addr uint64
	// Size is the module's size in bytes.
	Size uint64
	// Cmdline is the module's command line ("" if none was given).
	Cmdline string
}

// StartInfo is the decoded hvm_start_info.
type StartInfo struct {
	// Version is the structure's version (0 or 1, or a later compatible one).
	Version uint32
	// Flags holds the SIF_xxx flags.
	Flags uint32
	// Cmdline is the kernel command line ("" if none was given).
	Cmdline string
	// Modules lists the modules in order.
	Modules []Module
	// RSDP is the physical address of the ACPI RSDP, or 0 if not given.
	RSDP uint64
	// MemoryMap is the memory map (raw, not normalized); nil for version 0
	// or when the loader provided none.
	MemoryMap memmap.Map
}

// ParseStartInfo decodes the hvm_start_info at physical address addr (the
// value of EBX at the PVH entry point), following its pointers through read.
func ParseStartInfo(read ReadFunc, addr uint64) (*StartInfo, error) {
	if addr == 0 {
		return nil, errors.New("pvh: start info address is 0")
	}
	b, err := memread.Exact(read, addr, sizeV0)
	if err != nil {
		return nil, fmt.Errorf("pvh: reading start info: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[offMagic:]); m != StartMagic {
		return nil, fmt.Errorf("pvh: bad start info magic %#x, want %#x", m, StartMagic)
	}
	si := &StartInfo{
		Version: le.Uint32(b[offVersion:]),
		Flags:   le.Uint32(b[offFlags:]),
		RSDP:    le.Uint64(b[offRSDPPaddr:]),
	}
	if p := le.Uint64(b[offCmdlinePaddr:]); p != 0 {
		if si.Cmdline, err = memread.CString(read, p, MaxStringLen); err != nil {
			return nil, fmt.Errorf("pvh: command line: %w", err)
		}
	}
	if si.Modules, err = parseModules(read, le.Uint32(b[offNrModules:]), le.Uint64(b[offModlistPaddr:])); err != nil {
		return nil, fmt.Errorf("pvh: modules: %w", err)
	}
	if si.Version >= 1 {
		b, err := memread.Exact(read, addr, sizeV1)
		if err != nil {
			return nil, fmt.Errorf("pvh: reading version %d start info: %w", si.Version, err)
		}
		if si.MemoryMap, err = parseMemmap(read, le.Uint32(b[offMemmapEntries:]), le.Uint64(b[offMemmapPaddr:])); err != nil {
			return nil, fmt.Errorf("pvh: memory map: %w", err)
		}
	}
	return si, nil
}

func parseModules(read ReadFunc, n uint32, addr uint64) ([]Module, error) {
	if n == 0 {
		return nil, nil
	}
	if n > MaxModules {
		return nil, fmt.Errorf("nr_modules %d exceeds the limit of %d", n, MaxModules)
	}
	if addr == 0 {
		return nil, fmt.Errorf("%d modules but modlist_paddr is 0", n)
	}
	b, err := memread.Exact(read, addr, int(n)*modlistEntrySize)
	if err != nil {
		return nil, fmt.Errorf("reading %d entries at %#x: %w", n, addr, err)
	}
	le := binary.LittleEndian
	mods := make([]Module, n)
	for i := range mods {
		e := b[i*modlistEntrySize:]
		mods[i].Addr = le.Uint64(e[0:])
		mods[i].Size = le.Uint64(e[8:])
		if mods[i].Size > ^uint64(0)-mods[i].Addr {
			return nil, fmt.Errorf("module %d at %#x of size %#x wraps around the address space", i, mods[i].Addr, mods[i].Size)
		}
		if p := le.Uint64(e[16:]); p != 0 {
			if mods[i].Cmdline, err = memread.CString(read, p, MaxStringLen); err != nil {
				return nil, fmt.Errorf("module %d command line: %w", i, err)
			}
		}
	}
	return mods, nil
}

func parseMemmap(read ReadFunc, n uint32, addr uint64) (memmap.Map, error) {
	if n == 0 {
		return nil, nil
	}
	if n > MaxMemmapEntries {
		return nil, fmt.Errorf("memmap_entries %d exceeds the limit of %d", n, MaxMemmapEntries)
	}
	if addr == 0 {
		return nil, fmt.Errorf("%d entries but memmap_paddr is 0", n)
	}
	b, err := memread.Exact(read, addr, int(n)*memmapEntrySize)
	if err != nil {
		return nil, fmt.Errorf("reading %d entries at %#x: %w", n, addr, err)
	}
	le := binary.LittleEndian
	m := make(memmap.Map, n)
	for i := range m {
		e := b[i*memmapEntrySize:]
		m[i] = memmap.Region{
			Start: le.Uint64(e[0:]),
			Size:  le.Uint64(e[8:]),
			Type:  memmap.RegionType(le.Uint32(e[16:])),
		}
	}
	return m, nil
}
