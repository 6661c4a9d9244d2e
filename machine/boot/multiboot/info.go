// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package multiboot implements the two sides of the Multiboot 1
// specification (version 0.6.96) that big-iron needs: parsing the boot
// information structure a Multiboot loader (GRUB 2, iPXE, QEMU -kernel)
// hands to the image, and encoding and finding the Multiboot header that
// makes an image loadable.
//
// The parser reads physical memory only through a ReadFunc, so it runs
// unchanged on bare metal (where the function slices the identity map) and
// in hosted tests (where it reads a fake memory). It treats everything it
// reads as untrusted: lengths and counts are bounded and checked, and bad
// input yields an error, never a panic.
package multiboot

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread"
)

// BootloaderMagic is the value a Multiboot-compliant boot loader leaves in
// EAX when it jumps to the image (Multiboot 0.6.96, 3.2 "Machine state").
// EBX then holds the physical address of the information structure.
const BootloaderMagic uint32 = 0x2BADB002

// ReadFunc returns the n bytes of physical memory starting at addr. It must
// return exactly n bytes or an error (for example when the range is not
// backed by memory). The parser does not keep the returned slice.
type ReadFunc = memread.ReadFunc

// InfoFlags is the flags word at offset 0 of the boot information
// structure; each bit says whether a group of fields is valid
// (Multiboot 0.6.96, 3.3 "Boot information format").
type InfoFlags uint32

// Information structure flags (Multiboot 0.6.96, 3.3).
const (
	// InfoMemory: mem_lower and mem_upper are valid.
	InfoMemory InfoFlags = 1 << 0
	// InfoBootDevice: boot_device is valid.
	InfoBootDevice InfoFlags = 1 << 1
	// InfoCmdline: cmdline is valid.
	InfoCmdline InfoFlags = 1 << 2
	// InfoModules: mods_count and mods_addr are valid.
	InfoModules InfoFlags = 1 << 3
	// InfoAOutSymbols: the a.out symbol table fields are valid.
	InfoAOutSymbols InfoFlags = 1 << 4
	// InfoELFSections: the ELF section header table fields are valid.
	InfoELFSections InfoFlags = 1 << 5
	// InfoMemoryMap: mmap_length and mmap_addr are valid.
	InfoMemoryMap InfoFlags = 1 << 6
	// InfoDrives: drives_length and drives_addr are valid.
	InfoDrives InfoFlags = 1 << 7
	// InfoConfigTable: config_table is valid.
	InfoConfigTable InfoFlags = 1 << 8
	// InfoBootLoaderName: boot_loader_name is valid.
	InfoBootLoaderName InfoFlags = 1 << 9
	// InfoAPMTable: apm_table is valid.
	InfoAPMTable InfoFlags = 1 << 10
	// InfoVBE: the VBE fields are valid.
	InfoVBE InfoFlags = 1 << 11
	// InfoFramebuffer: the framebuffer fields are valid.
	InfoFramebuffer InfoFlags = 1 << 12
)

// Byte offsets of the fields of the information structure
// (Multiboot 0.6.96, 3.3).
const (
	offFlags          = 0
	offMemLower       = 4
	offMemUpper       = 8
	offBootDevice     = 12
	offCmdline        = 16
	offModsCount      = 20
	offModsAddr       = 24
	offMmapLength     = 44
	offMmapAddr       = 48
	offBootLoaderName = 64
	// infoSize is how much of the structure the parser reads: up to and
	// including boot_loader_name.
	infoSize = 68
)

// Module list entry layout (Multiboot 0.6.96, 3.3): mod_start, mod_end,
// string, reserved; 16 bytes each.
const moduleEntrySize = 16

// Memory map entry layout (Multiboot 0.6.96, 3.3): a size field (u32) that
// does not count itself, then base_addr (u64), length (u64), type (u32).
// Entries may be larger than that; the next entry starts size+4 bytes on.
const (
	mmapSizeFieldLen = 4
	mmapMinEntrySize = 20
)

// Bounds on what the parser accepts, so that garbage cannot make it read
// or allocate without limit.
const (
	// MaxStringLen bounds the command line and string lengths, without the
	// terminating NUL.
	MaxStringLen = 64 << 10
	// MaxModules bounds mods_count.
	MaxModules = 256
	// MaxMmapLength bounds mmap_length in bytes.
	MaxMmapLength = 64 << 10
)

// Module is one boot module the loader placed in memory (for example an
// initramfs or a guest kernel given with GRUB's `module` command).
type Module struct {
	// Start is the physical address of the module's first byte.
	Start uint64
	// End is the physical address one past the module's last byte.
	End uint64
	// Cmdline is the string the loader associated with the module.
	Cmdline string
}

// Info is the decoded boot information structure.
type Info struct {
	// Flags is the raw flags word; the fields below are set only for the
	// groups whose bit is set.
	Flags InfoFlags
	// MemLower is the amount of lower memory (from 0) in KiB.
	MemLower uint32
	// MemUpper is the amount of upper memory (from 1 MiB) in KiB, up to the
	// first hole.
	MemUpper uint32
	// BootDevice is the BIOS boot device word.
	BootDevice uint32
	// Cmdline is the image's command line.
	Cmdline string
	// Modules lists the boot modules in the loader's order.
	Modules []Module
	// MemoryMap is the BIOS memory map as the loader reported it (raw, not
	// normalized).
	MemoryMap memmap.Map
	// BootLoaderName names the boot loader, e.g. "GRUB 2.12".
	BootLoaderName string
}

// Has reports whether all bits of f are set in the info's flags.
func (in *Info) Has(f InfoFlags) bool { return in.Flags&f == f }

// ParseInfo decodes the boot information structure at physical address
// addr (the value of EBX at entry), following its pointers to the command
// line, module list, memory map and boot loader name through read.
func ParseInfo(read ReadFunc, addr uint64) (*Info, error) {
	if addr == 0 {
		return nil, errors.New("multiboot: information structure address is 0")
	}
	b, err := memread.Exact(read, addr, infoSize)
	if err != nil {
		return nil, fmt.Errorf("multiboot: reading information structure: %w", err)
	}
	le := binary.LittleEndian
	in := &Info{Flags: InfoFlags(le.Uint32(b[offFlags:]))}

	if in.Has(InfoMemory) {
		in.MemLower = le.Uint32(b[offMemLower:])
		in.MemUpper = le.Uint32(b[offMemUpper:])
	}
	if in.Has(InfoBootDevice) {
		in.BootDevice = le.Uint32(b[offBootDevice:])
	}
	if in.Has(InfoCmdline) {
		s, err := memread.CString(read, uint64(le.Uint32(b[offCmdline:])), MaxStringLen)
		if err != nil {
			return nil, fmt.Errorf("multiboot: command line: %w", err)
		}
		in.Cmdline = s
	}
	if in.Has(InfoModules) {
		mods, err := parseModules(read, le.Uint32(b[offModsCount:]), le.Uint32(b[offModsAddr:]))
		if err != nil {
			return nil, fmt.Errorf("multiboot: modules: %w", err)
		}
		in.Modules = mods
	}
	if in.Has(InfoMemoryMap) {
		m, err := parseMemoryMap(read, le.Uint32(b[offMmapLength:]), le.Uint32(b[offMmapAddr:]))
		if err != nil {
			return nil, fmt.Errorf("multiboot: memory map: %w", err)
		}
		in.MemoryMap = m
	}
	if in.Has(InfoBootLoaderName) {
		s, err := memread.CString(read, uint64(le.Uint32(b[offBootLoaderName:])), MaxStringLen)
		if err != nil {
			return nil, fmt.Errorf("multiboot: boot loader name: %w", err)
		}
		in.BootLoaderName = s
	}
	return in, nil
}

func parseModules(read ReadFunc, count, addr uint32) ([]Module, error) {
	if count == 0 {
		return nil, nil
	}
	if count > MaxModules {
		return nil, fmt.Errorf("mods_count %d exceeds the limit of %d", count, MaxModules)
	}
	b, err := memread.Exact(read, uint64(addr), int(count)*moduleEntrySize)
	if err != nil {
		return nil, fmt.Errorf("reading %d entries at %#x: %w", count, addr, err)
	}
	le := binary.LittleEndian
	mods := make([]Module, count)
	for i := range mods {
		e := b[i*moduleEntrySize:]
		start, end := le.Uint32(e[0:]), le.Uint32(e[4:])
		if end < start {
			return nil, fmt.Errorf("module %d ends (%#x) before it starts (%#x)", i, end, start)
		}
		mods[i].Start, mods[i].End = uint64(start), uint64(end)
		if s := le.Uint32(e[8:]); s != 0 {
			str, err := memread.CString(read, uint64(s), MaxStringLen)
			if err != nil {
				return nil, fmt.Errorf("module %d string: %w", i, err)
			}
			mods[i].Cmdline = str
		}
	}
	return mods, nil
}

func parseMemoryMap(read ReadFunc, length, addr uint32) (memmap.Map, error) {
	if length > MaxMmapLength {
		return nil, fmt.Errorf("mmap_length %d exceeds the limit of %d", length, MaxMmapLength)
	}
	if length == 0 {
		return nil, nil
	}
	// The spec's mmap_addr points at the first entry's size field.
	b, err := memread.Exact(read, uint64(addr), int(length))
	if err != nil {
		return nil, fmt.Errorf("reading %d bytes at %#x: %w", length, addr, err)
	}
	le := binary.LittleEndian
	var m memmap.Map
	for off := 0; off < len(b); {
		if len(b)-off < mmapSizeFieldLen {
			return nil, fmt.Errorf("entry at offset %d: %d trailing bytes, too short for a size field", off, len(b)-off)
		}
		size := le.Uint32(b[off:])
		if size < mmapMinEntrySize {
			return nil, fmt.Errorf("entry at offset %d: size %d is below the minimum of %d", off, size, mmapMinEntrySize)
		}
		if uint64(size) > uint64(len(b)-off-mmapSizeFieldLen) {
			return nil, fmt.Errorf("entry at offset %d: size %d runs past the end of the %d-byte buffer", off, size, len(b))
		}
		e := b[off+mmapSizeFieldLen:]
		m = append(m, memmap.Region{
			Start: le.Uint64(e[0:]),
			Size:  le.Uint64(e[8:]),
			Type:  memmap.RegionType(le.Uint32(e[16:])),
		})
		off += mmapSizeFieldLen + int(size)
	}
	return m, nil
}
