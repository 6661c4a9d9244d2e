// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package image turns the bare-metal big-iron ELF into the boot formats the
// loaders in the field accept: a Multiboot 1 image for GRUB 2's `multiboot`
// command and iPXE's `kernel` command, and the iPXE script and GRUB
// configuration that network-boot it.
//
// It is used by tools/mkimage on the build host and works on byte slices,
// so it is tested hosted.
package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"

	"github.com/big-iron/big-iron/machine/boot/multiboot"
	"github.com/big-iron/big-iron/machine/page"
)

const (
	pageSize = page.Size
	// minLoadAddr is the lowest address a Multiboot image may be loaded
	// at: loaders keep the first MiB (real-mode memory, BIOS areas) for
	// themselves.
	minLoadAddr = 1 << 20
	// maxImageSize bounds the flat image, which is built in memory.
	maxImageSize = 1 << 30
)

// MultibootFlags are the header flags BuildMultiboot sets: modules page
// aligned (so guest kernels and initramfs modules can be mapped directly),
// memory information (so the loader passes the BIOS memory map), and the
// address fields, which make the loader use the flat layout below instead
// of parsing an ELF (Multiboot 0.6.96, 3.1.2 and 3.1.3).
const MultibootFlags = multiboot.HeaderPageAlign | multiboot.HeaderMemoryInfo | multiboot.HeaderAddressFields

// BuildMultiboot converts a static x86-64 ELF executable (as the Go linker
// writes it for GOOS=tamago with -T and -R) into a flat Multiboot 1 image
// and returns the image with its header.
//
// Layout: the image is the memory from load_addr to load_end_addr, byte for
// byte. The PT_LOAD segments appear at file offset (paddr - load_addr),
// gaps between them zero-filled; memory from load_end_addr to bss_end_addr
// (the tail of the last segments' memsz) is zeroed by the loader. The
// Multiboot header occupies a page of its own placed just below the
// lowest segment (load_addr = that segment's page - 4 KiB), at file offset
// 0, well inside the first 8 KiB that loaders search.
//
// A dedicated page costs 4 KiB but does not depend on the linker leaving a
// gap: with -T 0x10010000 the Go linker's first PT_LOAD starts at
// 0x1000f000 and its first page holds the ELF and program headers and the
// notes; writing the header into that page would overwrite bytes that are
// part of a loaded segment.
//
// The entry address is the ELF entry point; the code there must run in the
// state a Multiboot loader leaves (32-bit protected mode, paging off,
// EAX = multiboot.BootloaderMagic, EBX = information structure).
func BuildMultiboot(elfBytes []byte) ([]byte, multiboot.Header, error) {
	f, err := elf.NewFile(bytes.NewReader(elfBytes))
	if err != nil {
		return nil, multiboot.Header{}, fmt.Errorf("image: reading ELF: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, multiboot.Header{}, fmt.Errorf("image: ELF is %v %v %v, want ELFCLASS64 EM_X86_64 ET_EXEC", f.Class, f.Machine, f.Type)
	}

	var loads []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			loads = append(loads, p)
		}
	}
	if len(loads) == 0 {
		return nil, multiboot.Header{}, fmt.Errorf("image: ELF has no PT_LOAD segment")
	}
	var loadEnd, bssEnd uint64
	for i, p := range loads {
		if p.Vaddr != p.Paddr {
			return nil, multiboot.Header{}, fmt.Errorf("image: segment %d: vaddr %#x differs from paddr %#x; the image must be identity-mapped", i, p.Vaddr, p.Paddr)
		}
		if p.Filesz > p.Memsz {
			return nil, multiboot.Header{}, fmt.Errorf("image: segment %d: filesz %#x exceeds memsz %#x", i, p.Filesz, p.Memsz)
		}
		if p.Paddr > 1<<32 || p.Memsz > 1<<32-p.Paddr {
			return nil, multiboot.Header{}, fmt.Errorf("image: segment %d [%#x, +%#x) ends above 4 GiB; Multiboot loads below 4 GiB", i, p.Paddr, p.Memsz)
		}
		if i > 0 && p.Paddr < bssEnd {
			return nil, multiboot.Header{}, fmt.Errorf("image: segment %d at %#x overlaps or precedes the previous one (ends %#x); segments must be in ascending order", i, p.Paddr, bssEnd)
		}
		if p.Filesz > 0 {
			loadEnd = p.Paddr + p.Filesz
		}
		bssEnd = p.Paddr + p.Memsz
	}

	low := loads[0].Paddr &^ (pageSize - 1)
	if low < minLoadAddr+pageSize {
		return nil, multiboot.Header{}, fmt.Errorf("image: lowest segment at %#x leaves no room for the header page above 1 MiB", loads[0].Paddr)
	}
	loadAddr := low - pageSize
	if loadEnd == 0 {
		// Only zero-fill segments: load just the header page.
		loadEnd = low
	}
	if loadEnd-loadAddr > maxImageSize {
		return nil, multiboot.Header{}, fmt.Errorf("image: flat image of %d bytes exceeds the %d-byte limit", loadEnd-loadAddr, maxImageSize)
	}
	if f.Entry < low || f.Entry >= loadEnd || !inExecSegment(loads, f.Entry) {
		return nil, multiboot.Header{}, fmt.Errorf("image: entry point %#x is not in an executable segment's file data", f.Entry)
	}

	h := multiboot.Header{
		Flags:       MultibootFlags,
		HeaderAddr:  uint32(loadAddr),
		LoadAddr:    uint32(loadAddr),
		LoadEndAddr: uint32(loadEnd),
		EntryAddr:   uint32(f.Entry),
	}
	if bssEnd > loadEnd {
		h.BSSEndAddr = uint32(bssEnd)
	}
	img := make([]byte, loadEnd-loadAddr)
	hb, err := h.MarshalBinary()
	if err != nil {
		return nil, multiboot.Header{}, fmt.Errorf("image: encoding header: %w", err)
	}
	copy(img, hb)
	for i, p := range loads {
		if p.Filesz == 0 {
			continue // all zero fill: nothing in the file, maybe past load_end_addr
		}
		off := p.Paddr - loadAddr
		if _, err := io.ReadFull(p.Open(), img[off:off+p.Filesz]); err != nil {
			return nil, multiboot.Header{}, fmt.Errorf("image: reading segment %d: %w", i, err)
		}
	}
	return img, h, nil
}

// inExecSegment reports whether addr lies in the file-backed part of an
// executable segment.
func inExecSegment(loads []*elf.Prog, addr uint64) bool {
	for _, p := range loads {
		if p.Flags&elf.PF_X != 0 && addr >= p.Paddr && addr-p.Paddr < p.Filesz {
			return true
		}
	}
	return false
}
