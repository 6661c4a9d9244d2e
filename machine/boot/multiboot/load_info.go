// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"encoding/binary"
	"math"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// Sizes of what the loader writes in the boot information block
// (Multiboot 0.6.96, 3.3 "Boot information format").
const (
	// infoStructSize is the whole information structure, through the
	// framebuffer fields (116 bytes), rounded up to 8 so that the module
	// list after it is aligned. Fields the flags do not announce are 0.
	infoStructSize = 120
	// mmapEntrySize is one memory map entry as the loader writes it: the
	// size field (20) and base_addr, length, type.
	mmapEntrySize = mmapSizeFieldLen + mmapMinEntrySize
	// maxMmapEntries bounds the memory map so it stays within
	// MaxMmapLength bytes, the parser's limit.
	maxMmapEntries = MaxMmapLength / mmapEntrySize
	// lowMemoryKiB caps mem_lower (3.3: lower memory starts at 0 and ends
	// at 640 KiB at most).
	lowMemoryKiB = LowMemoryEnd >> 10
	// upperMemoryStart is where upper memory starts (3.3: 1 MiB).
	upperMemoryStart = 1 << 20
)

// infoBlock is the boot information block: the information structure at
// offset 0, then the module list, the memory map, and the strings (the
// command line, the boot loader name, the module strings), each
// NUL-terminated. All pointers in it are absolute, so it is encoded for a
// given base address.
type infoBlock struct {
	cmdline, name      string
	mods               []Module
	mmap               memmap.Map
	memLower, memUpper uint32
}

func newInfoBlock(cfg LoadConfig, mods []Module, ram, usable memmap.Map) *infoBlock {
	return &infoBlock{
		cmdline:  cfg.Cmdline,
		name:     cfg.Name,
		mods:     mods,
		mmap:     ram,
		memLower: memLower(usable),
		memUpper: memUpper(usable),
	}
}

func (b *infoBlock) modsOff() uint64 { return infoStructSize }
func (b *infoBlock) mmapOff() uint64 { return b.modsOff() + uint64(len(b.mods))*moduleEntrySize }
func (b *infoBlock) strOff() uint64  { return b.mmapOff() + uint64(len(b.mmap))*mmapEntrySize }

// size is the block's length in bytes. checkConfig bounds every part, so
// the total stays far below 4 GiB.
func (b *infoBlock) size() uint64 {
	n := b.strOff() + uint64(len(b.cmdline)+1+len(b.name)+1)
	for _, m := range b.mods {
		n += uint64(len(m.Cmdline) + 1)
	}
	return n
}

// encode returns the block for base address base; every address in it
// fits 32 bits because placement keeps the block below 4 GiB.
func (b *infoBlock) encode(base uint64) []byte {
	le := binary.LittleEndian
	out := make([]byte, b.size())
	str := b.strOff()
	putString := func(s string) uint32 {
		addr := uint32(base + str)
		copy(out[str:], s) // the NUL is already there
		str += uint64(len(s) + 1)
		return addr
	}
	flags := InfoMemory | InfoCmdline | InfoMemoryMap | InfoBootLoaderName
	le.PutUint32(out[offMemLower:], b.memLower)
	le.PutUint32(out[offMemUpper:], b.memUpper)
	le.PutUint32(out[offCmdline:], putString(b.cmdline))
	le.PutUint32(out[offBootLoaderName:], putString(b.name))
	if len(b.mods) > 0 {
		flags |= InfoModules
		le.PutUint32(out[offModsCount:], uint32(len(b.mods)))
		le.PutUint32(out[offModsAddr:], uint32(base+b.modsOff()))
	}
	for i, m := range b.mods {
		e := out[b.modsOff()+uint64(i)*moduleEntrySize:]
		le.PutUint32(e[0:], uint32(m.Start))
		le.PutUint32(e[4:], uint32(m.End))
		le.PutUint32(e[8:], putString(m.Cmdline))
	}
	le.PutUint32(out[offMmapLength:], uint32(len(b.mmap)*mmapEntrySize))
	le.PutUint32(out[offMmapAddr:], uint32(base+b.mmapOff()))
	for i, r := range b.mmap {
		e := out[b.mmapOff()+uint64(i)*mmapEntrySize:]
		le.PutUint32(e[0:], mmapMinEntrySize)
		le.PutUint64(e[4:], r.Start)
		le.PutUint64(e[12:], r.Size)
		le.PutUint32(e[20:], uint32(r.Type)) // memmap numbers types as E820 does, as 3.3 asks
	}
	le.PutUint32(out[offFlags:], uint32(flags))
	return out
}

// memLower is mem_lower: KiB of usable RAM contiguous from address 0, at
// most 640 (3.3).
func memLower(usable memmap.Map) uint32 {
	for _, r := range usable {
		if r.Start == 0 {
			return uint32(min(r.End()>>10, lowMemoryKiB))
		}
	}
	return 0
}

// memUpper is mem_upper: KiB of usable RAM contiguous from 1 MiB up to the
// first hole (3.3), saturated at the 32-bit maximum.
func memUpper(usable memmap.Map) uint32 {
	for _, r := range usable {
		if r.Start <= upperMemoryStart && upperMemoryStart < r.End() {
			return uint32(min((r.End()-upperMemoryStart)>>10, math.MaxUint32))
		}
	}
	return 0
}
