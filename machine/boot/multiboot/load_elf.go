// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

// The loader reads of an ELF image only what loading needs, the ELF header
// and the program headers (System V ABI, "ELF Header" and "Program
// Header"), as GRUB does for Multiboot kernels. Section headers are
// ignored, so an image with odd or stripped ones still loads, and nothing
// is allocated beyond MaxProgramHeaders entries.

import (
	"encoding/binary"
	"fmt"
)

// ELF constants (System V ABI, ELF header and program header).
const (
	elfMagic         = "\x7fELF"
	elfClass32       = 1
	elfClass64       = 2
	elfData2LSB      = 1
	elfTypeExec      = 2
	elfTypeDyn       = 3
	elfMachine386    = 3
	elfMachineX86_64 = 62
	elfPTLoad        = 1
	elfPFExec        = 1

	elfHeader32Size = 52
	elfHeader64Size = 64
	elfProg32Size   = 32
	elfProg64Size   = 56
)

// elfProg is a decoded program header.
type elfProg struct {
	typ, flags                       uint32
	off, vaddr, paddr, filesz, memsz uint64
}

// elfHeader is what the loader needs of the ELF header.
type elfHeader struct {
	class            byte
	typ, machine     uint16
	entry, phoff     uint64
	phentsize, phnum uint64
}

// elfImage lays out an ELF image without the address fields: each PT_LOAD
// segment at its physical address p_paddr (3.1.3: "the boot loader ...
// load[s] the image by the ELF headers").
func elfImage(kernel []byte) (layout, error) {
	eh, err := parseELFHeader(kernel)
	if err != nil {
		return layout{}, err
	}
	progs := parseProgs(kernel, eh)
	var segs []segment
	for i, p := range progs {
		if p.typ != elfPTLoad || p.memsz == 0 {
			continue
		}
		if p.filesz > p.memsz {
			return layout{}, fmt.Errorf("multiboot: ELF program header %d: p_filesz %#x exceeds p_memsz %#x", i, p.filesz, p.memsz)
		}
		if p.off > uint64(len(kernel)) || p.filesz > uint64(len(kernel))-p.off {
			return layout{}, fmt.Errorf("multiboot: ELF program header %d: file range [%#x, +%#x) runs past the end of the %d-byte image",
				i, p.off, p.filesz, len(kernel))
		}
		if p.paddr >= limit4G || p.memsz > limit4G-p.paddr {
			return layout{}, fmt.Errorf("multiboot: ELF program header %d: segment [%#x, +%#x) is not below 4 GiB", i, p.paddr, p.memsz)
		}
		segs = append(segs, segment{
			addr:  p.paddr,
			vaddr: p.vaddr,
			data:  kernel[p.off : p.off+p.filesz],
			memsz: p.memsz,
			exec:  p.flags&elfPFExec != 0,
		})
	}
	if len(segs) == 0 {
		return layout{}, fmt.Errorf("multiboot: ELF image has no loadable segment (PT_LOAD with p_memsz > 0)")
	}
	entry, err := elfEntry(eh.entry, segs)
	if err != nil {
		return layout{}, err
	}
	return layout{segs: segs, entry: entry}, nil
}

// parseELFHeader decodes and checks the ELF header: a little-endian 32- or
// 64-bit x86 executable whose program headers lie inside the image.
func parseELFHeader(b []byte) (elfHeader, error) {
	if len(b) < len(elfMagic) || string(b[:len(elfMagic)]) != elfMagic {
		return elfHeader{}, fmt.Errorf("multiboot: the image is not ELF and its header has no address fields (flag 16)")
	}
	if len(b) < elfHeader32Size {
		return elfHeader{}, fmt.Errorf("multiboot: ELF image of %d bytes is too short for an ELF header", len(b))
	}
	le := binary.LittleEndian
	eh := elfHeader{class: b[4], typ: le.Uint16(b[16:]), machine: le.Uint16(b[18:])}
	if b[5] != elfData2LSB {
		return elfHeader{}, fmt.Errorf("multiboot: ELF image is not little-endian (EI_DATA %d)", b[5])
	}
	switch eh.class {
	case elfClass32:
		eh.entry, eh.phoff = uint64(le.Uint32(b[24:])), uint64(le.Uint32(b[28:]))
		eh.phentsize, eh.phnum = uint64(le.Uint16(b[42:])), uint64(le.Uint16(b[44:]))
		if eh.phentsize < elfProg32Size {
			return elfHeader{}, fmt.Errorf("multiboot: ELF program header size %d is below %d", eh.phentsize, elfProg32Size)
		}
	case elfClass64:
		if len(b) < elfHeader64Size {
			return elfHeader{}, fmt.Errorf("multiboot: ELF64 image of %d bytes is too short for an ELF header", len(b))
		}
		eh.entry, eh.phoff = le.Uint64(b[24:]), le.Uint64(b[32:])
		eh.phentsize, eh.phnum = uint64(le.Uint16(b[54:])), uint64(le.Uint16(b[56:]))
		if eh.phentsize < elfProg64Size {
			return elfHeader{}, fmt.Errorf("multiboot: ELF program header size %d is below %d", eh.phentsize, elfProg64Size)
		}
	default:
		return elfHeader{}, fmt.Errorf("multiboot: ELF class %d is neither ELFCLASS32 nor ELFCLASS64", eh.class)
	}
	return eh, checkELFHeader(eh, len(b))
}

// checkELFHeader checks the type, machine and program header table of eh
// for an image of n bytes.
func checkELFHeader(eh elfHeader, n int) error {
	if eh.typ != elfTypeExec && eh.typ != elfTypeDyn {
		return fmt.Errorf("multiboot: ELF type %d is neither ET_EXEC nor ET_DYN", eh.typ)
	}
	if eh.machine != elfMachine386 && eh.machine != elfMachineX86_64 {
		return fmt.Errorf("multiboot: ELF machine %d is neither EM_386 nor EM_X86_64", eh.machine)
	}
	if eh.phnum > MaxProgramHeaders {
		return fmt.Errorf("multiboot: %d ELF program headers, the limit is %d", eh.phnum, MaxProgramHeaders)
	}
	if size := eh.phnum * eh.phentsize; eh.phoff > uint64(n) || size > uint64(n)-eh.phoff {
		return fmt.Errorf("multiboot: ELF program header table [%#x, +%#x) runs past the end of the %d-byte image", eh.phoff, size, n)
	}
	return nil
}

// parseProgs decodes the program headers checkELFHeader has bounded.
func parseProgs(b []byte, eh elfHeader) []elfProg {
	le := binary.LittleEndian
	progs := make([]elfProg, eh.phnum)
	for i := range progs {
		p := b[eh.phoff+uint64(i)*eh.phentsize:]
		if eh.class == elfClass32 {
			progs[i] = elfProg{
				typ: le.Uint32(p[0:]), off: uint64(le.Uint32(p[4:])),
				vaddr: uint64(le.Uint32(p[8:])), paddr: uint64(le.Uint32(p[12:])),
				filesz: uint64(le.Uint32(p[16:])), memsz: uint64(le.Uint32(p[20:])),
				flags: le.Uint32(p[24:]),
			}
			continue
		}
		progs[i] = elfProg{
			typ: le.Uint32(p[0:]), flags: le.Uint32(p[4:]), off: le.Uint64(p[8:]),
			vaddr: le.Uint64(p[16:]), paddr: le.Uint64(p[24:]),
			filesz: le.Uint64(p[32:]), memsz: le.Uint64(p[40:]),
		}
	}
	return progs
}

// elfEntry returns the physical entry point: e_entry translated through
// the executable segment whose virtual range holds it (as GRUB does, so
// that a kernel linked at a higher-half virtual address starts at the
// physical copy), else e_entry itself if an executable segment's physical
// range holds it.
func elfEntry(entry uint64, segs []segment) (uint32, error) {
	for _, s := range segs {
		if s.exec && entry >= s.vaddr && entry-s.vaddr < s.memsz {
			return uint32(s.addr + (entry - s.vaddr)), nil
		}
	}
	for _, s := range segs {
		if s.exec && entry >= s.addr && entry-s.addr < s.memsz {
			return uint32(entry), nil
		}
	}
	return 0, fmt.Errorf("multiboot: ELF entry point %#x is not inside an executable loaded segment", entry)
}
