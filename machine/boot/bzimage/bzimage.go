// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package bzimage loads a Linux kernel for the 64-bit boot protocol
// (Linux Documentation/arch/x86/boot.rst): it checks the bzImage's setup
// header, places the protected-mode kernel, the initramfs and the command
// line in guest memory, writes the zero page (struct boot_params) with the
// guest's E820 map, and builds a GDT and identity-mapping page tables, so
// that the boot processor can start at the kernel's 64-bit entry point.
package bzimage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// Memory is the guest-physical memory Load writes into: the hypervisor's
// guest memory (vmm/devices.GuestMemory) satisfies it. The
// loader names only what it uses, so that boot does not depend on the
// hyperkernel above it.
type Memory interface {
	WriteAt(p []byte, gpa uint64) error
}

// Setup header fields, as offsets into the image and into the zero page
// (boot.rst, "The Real-Mode Kernel Header" and zero-page.rst).
const (
	offSetupSects      = 0x1F1 // u8: 512-byte setup sectors (0 means 4)
	offVidMode         = 0x1FA // u16
	offBootFlag        = 0x1FE // u16: 0xAA55
	offJump            = 0x200 // u16; its high byte + 0x202 is the header end
	offHeader          = 0x202 // u32: "HdrS"
	offVersion         = 0x206 // u16: boot protocol version
	offTypeOfLoader    = 0x210 // u8
	offLoadFlags       = 0x211 // u8
	offRamdiskImage    = 0x218 // u32
	offRamdiskSize     = 0x21C // u32
	offCmdLinePtr      = 0x228 // u32
	offInitrdAddrMax   = 0x22C // u32
	offKernelAlignment = 0x230 // u32
	offRelocatable     = 0x234 // u8
	offXLoadFlags      = 0x236 // u16
	offCmdlineSize     = 0x238 // u32
	offPrefAddress     = 0x258 // u64
	offInitSize        = 0x260 // u32

	// zero-page-only fields (zero-page.rst)
	zpACPIRSDPAddr    = 0x070 // u64
	zpExtRamdiskImage = 0x0C0 // u32
	zpExtRamdiskSize  = 0x0C4 // u32
	zpExtCmdLinePtr   = 0x0C8 // u32
	zpE820Entries     = 0x1E8 // u8
	zpE820Table       = 0x2D0 // 128 entries of 20 bytes
	zpE820Max         = 128

	headerMagic    = 0x53726448 // "HdrS"
	minVersion     = 0x020C     // 2.12: xloadflags, 64-bit entry
	xlfKernel64    = 1 << 0     // has the 64-bit entry point at +0x200
	loadedHigh     = 1 << 0     // loadflags: protected-mode code at 1 MiB+
	canUseHeap     = 1 << 7
	loaderUnknown  = 0xFF
	entry64Offset  = 0x200
	sectorSize     = 512
	defaultSectors = 4
)

// Guest-physical layout of what the loader writes below 1 MiB.
const (
	GDTAddr       = 0x6000
	ZeroPageAddr  = 0x7000
	PML4Addr      = 0x9000 // PDPT at +0x1000, four page directories after
	StackTop      = 0x8FF0
	CmdlineAddr   = 0x20000
	CmdlineMax    = 0x10000
	pageTableSize = 6 * 0x1000
)

// Selectors of the GDT the loader builds: boot.rst asks for __BOOT_CS
// (0x10) and __BOOT_DS (0x18).
const (
	CodeSelector = 0x10
	DataSelector = 0x18
	gdtLimit     = 4*8 - 1
)

// ErrNotBzImage means the bytes are not a kernel this loader can start.
var ErrNotBzImage = errors.New("bzimage: not a 64-bit Linux bzImage")

// Header is what the loader needs of a bzImage's setup header.
type Header struct {
	Version         uint16
	SetupSectors    int
	KernelOffset    int // of the protected-mode kernel in the file
	PrefAddress     uint64
	InitSize        uint32
	KernelAlignment uint32
	Relocatable     bool
	CmdlineSize     uint32
	InitrdAddrMax   uint32
	headerEnd       int
}

// Parse checks image and decodes its header.
func Parse(image []byte) (*Header, error) {
	if len(image) < 0x268 {
		return nil, fmt.Errorf("%w: %d bytes, too short for a setup header", ErrNotBzImage, len(image))
	}
	le := binary.LittleEndian
	if le.Uint16(image[offBootFlag:]) != 0xAA55 || le.Uint32(image[offHeader:]) != headerMagic {
		return nil, fmt.Errorf("%w: no boot flag or HdrS magic", ErrNotBzImage)
	}
	h := &Header{
		Version:         le.Uint16(image[offVersion:]),
		SetupSectors:    int(image[offSetupSects]),
		PrefAddress:     le.Uint64(image[offPrefAddress:]),
		InitSize:        le.Uint32(image[offInitSize:]),
		KernelAlignment: le.Uint32(image[offKernelAlignment:]),
		Relocatable:     image[offRelocatable] != 0,
		CmdlineSize:     le.Uint32(image[offCmdlineSize:]),
		InitrdAddrMax:   le.Uint32(image[offInitrdAddrMax:]),
		headerEnd:       0x202 + int(image[offJump+1]),
	}
	if h.Version < minVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d, need 2.12", ErrNotBzImage, h.Version>>8, h.Version&0xFF)
	}
	if le.Uint16(image[offXLoadFlags:])&xlfKernel64 == 0 {
		return nil, fmt.Errorf("%w: no 64-bit entry point (XLF_KERNEL_64)", ErrNotBzImage)
	}
	if h.SetupSectors == 0 {
		h.SetupSectors = defaultSectors
	}
	h.KernelOffset = (h.SetupSectors + 1) * sectorSize
	if h.KernelOffset >= len(image) {
		return nil, fmt.Errorf("%w: %d setup sectors run past the %d-byte file", ErrNotBzImage, h.SetupSectors, len(image))
	}
	if h.headerEnd > h.KernelOffset || h.headerEnd > 0x1000 {
		return nil, fmt.Errorf("%w: setup header ends at %#x", ErrNotBzImage, h.headerEnd)
	}
	if h.InitSize == 0 || h.PrefAddress == 0 || h.PrefAddress%0x200000 != 0 && !h.Relocatable {
		return nil, fmt.Errorf("%w: init_size %#x, pref_address %#x", ErrNotBzImage, h.InitSize, h.PrefAddress)
	}
	return h, nil
}

// Config is what to load.
type Config struct {
	Kernel  []byte
	Initrd  []byte // may be empty
	Cmdline string
	// Memory is the guest's memory map (usable RAM must include 0-1 MiB
	// and the kernel's load range).
	Memory memmap.Map
	// RSDP is the guest-physical address of the ACPI RSDP, 0 if none.
	RSDP uint64
}

// Entry is where the boot processor starts: 64-bit mode at RIP with RSI
// pointing at the zero page, paging on through CR3, the GDT's code and
// data selectors loaded.
type Entry struct {
	RIP, RSI, RSP, CR3 uint64
	GDTBase            uint64
	GDTLimit           uint32
	CS, DS             uint16
	// KernelAddr and InitrdAddr say where the kernel and initramfs went.
	KernelAddr, InitrdAddr uint64
}

// Load writes the kernel, initramfs, command line, zero page, GDT and
// page tables into mem and returns the entry state.
func Load(mem Memory, c Config) (*Entry, error) {
	h, err := Parse(c.Kernel)
	if err != nil {
		return nil, err
	}
	if len(c.Cmdline)+1 > CmdlineMax || h.CmdlineSize != 0 && uint32(len(c.Cmdline)) > h.CmdlineSize {
		return nil, fmt.Errorf("bzimage: command line of %d bytes exceeds the kernel's %d", len(c.Cmdline), h.CmdlineSize)
	}
	if len(c.Memory) > zpE820Max {
		return nil, fmt.Errorf("bzimage: %d memory regions, the zero page holds %d", len(c.Memory), zpE820Max)
	}
	top := usableTop(c.Memory, h.PrefAddress)
	if h.PrefAddress+uint64(h.InitSize) > top {
		return nil, fmt.Errorf("bzimage: the kernel needs %#x-%#x (init_size %d MiB), usable RAM there ends at %#x",
			h.PrefAddress, h.PrefAddress+uint64(h.InitSize), h.InitSize>>20, top)
	}
	e := &Entry{KernelAddr: h.PrefAddress}
	if err := mem.WriteAt(c.Kernel[h.KernelOffset:], e.KernelAddr); err != nil {
		return nil, fmt.Errorf("bzimage: loading the kernel: %w", err)
	}

	zp := make([]byte, 0x1000)
	copy(zp[offSetupSects:h.headerEnd], c.Kernel[offSetupSects:h.headerEnd])
	le := binary.LittleEndian
	zp[offTypeOfLoader] = loaderUnknown
	zp[offLoadFlags] |= loadedHigh | canUseHeap
	le.PutUint16(zp[offVidMode:], 0xFFFF) // "normal"
	le.PutUint32(zp[offCmdLinePtr:], CmdlineAddr)
	le.PutUint32(zp[zpExtCmdLinePtr:], 0)
	le.PutUint64(zp[zpACPIRSDPAddr:], c.RSDP)

	if len(c.Initrd) > 0 {
		limit := min(top, uint64(h.InitrdAddrMax)+1)
		end := limit &^ 0xFFF
		size := uint64(len(c.Initrd))
		if size > end || end-size < e.KernelAddr+uint64(h.InitSize) {
			return nil, fmt.Errorf("bzimage: no room for a %d KiB initramfs between the kernel's end %#x and %#x",
				size>>10, e.KernelAddr+uint64(h.InitSize), end)
		}
		e.InitrdAddr = (end - size) &^ 0xFFF
		if err := mem.WriteAt(c.Initrd, e.InitrdAddr); err != nil {
			return nil, fmt.Errorf("bzimage: loading the initramfs: %w", err)
		}
		le.PutUint32(zp[offRamdiskImage:], uint32(e.InitrdAddr))
		le.PutUint32(zp[zpExtRamdiskImage:], uint32(e.InitrdAddr>>32))
		le.PutUint32(zp[offRamdiskSize:], uint32(size))
		le.PutUint32(zp[zpExtRamdiskSize:], uint32(size>>32))
	}

	zp[zpE820Entries] = byte(len(c.Memory))
	for i, r := range c.Memory {
		ent := zp[zpE820Table+20*i:]
		le.PutUint64(ent, r.Start)
		le.PutUint64(ent[8:], r.Size)
		le.PutUint32(ent[16:], uint32(r.Type))
	}
	if err := mem.WriteAt(zp, ZeroPageAddr); err != nil {
		return nil, fmt.Errorf("bzimage: zero page: %w", err)
	}
	if err := mem.WriteAt(append([]byte(c.Cmdline), 0), CmdlineAddr); err != nil {
		return nil, fmt.Errorf("bzimage: command line: %w", err)
	}

	// GDT: null, unused, 64-bit code (0x10), flat data (0x18).
	gdt := make([]byte, 32)
	le.PutUint64(gdt[CodeSelector:], 0x00AF9B000000FFFF)
	le.PutUint64(gdt[DataSelector:], 0x00CF93000000FFFF)
	if err := mem.WriteAt(gdt, GDTAddr); err != nil {
		return nil, fmt.Errorf("bzimage: GDT: %w", err)
	}

	// Page tables: the first 4 GiB identity-mapped with 2 MiB pages.
	pt := make([]byte, pageTableSize)
	const present, writable, large = 1, 2, 1 << 7
	pdpt := uint64(PML4Addr + 0x1000)
	le.PutUint64(pt[0:], pdpt|present|writable)
	for i := uint64(0); i < 4; i++ {
		pd := pdpt + 0x1000*(1+i)
		le.PutUint64(pt[0x1000+8*i:], pd|present|writable)
		for j := uint64(0); j < 512; j++ {
			addr := (i*512 + j) << 21
			le.PutUint64(pt[0x2000+0x1000*i+8*j:], addr|present|writable|large)
		}
	}
	if err := mem.WriteAt(pt, PML4Addr); err != nil {
		return nil, fmt.Errorf("bzimage: page tables: %w", err)
	}

	e.RIP = e.KernelAddr + entry64Offset
	e.RSI = ZeroPageAddr
	e.RSP = StackTop
	e.CR3 = PML4Addr
	e.GDTBase, e.GDTLimit = GDTAddr, gdtLimit
	e.CS, e.DS = CodeSelector, DataSelector
	return e, nil
}

// usableTop returns the end of the usable region holding addr, or 0.
func usableTop(m memmap.Map, addr uint64) uint64 {
	for _, r := range m {
		if r.Type == memmap.Usable && r.Start <= addr && addr < r.Start+r.Size {
			return r.Start + r.Size
		}
	}
	return 0
}
