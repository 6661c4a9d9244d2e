// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package pvh

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread/memreadtest"
)

type entry struct {
	addr, size uint64
	typ        uint32
}

// qemuLike lays out a version-1 start info the way QEMU's PVH option ROM
// does: structure, command line, one module (the initrd) and an E820-style
// memory map.
func qemuLike(version uint32) (memreadtest.Mem, uint64) {
	const (
		infoAddr = 0x6000
		cmdAddr  = 0x6100
		modAddr  = 0x6200
		mcmdAddr = 0x6300
		mapAddr  = 0x6400
	)
	le := binary.LittleEndian
	mem := memreadtest.Mem{}
	si := make([]byte, sizeV1)
	le.PutUint32(si[offMagic:], StartMagic)
	le.PutUint32(si[offVersion:], version)
	le.PutUint32(si[offFlags:], 0)
	le.PutUint32(si[offNrModules:], 1)
	le.PutUint64(si[offModlistPaddr:], modAddr)
	le.PutUint64(si[offCmdlinePaddr:], cmdAddr)
	le.PutUint64(si[offRSDPPaddr:], 0xf5a40)
	entries := []entry{
		{0, 0x9fc00, 1},
		{0x9fc00, 0x400, 2},
		{0xf0000, 0x10000, 2},
		{0x100000, 0x7fee0000 - 0x100000, 1},
		{0x7fee0000, 0x20000, 2},
		{0xfeffc000, 0x4000, 2},
		{0x100000000, 0x80000000, 1},
	}
	le.PutUint64(si[offMemmapPaddr:], mapAddr)
	le.PutUint32(si[offMemmapEntries:], uint32(len(entries)))
	mem[infoAddr] = si
	mem[cmdAddr] = []byte("bigiron.node=2 console=ttyS0\x00")
	mod := make([]byte, modlistEntrySize)
	le.PutUint64(mod[0:], 0x7f000000)
	le.PutUint64(mod[8:], 0x00e00000)
	le.PutUint64(mod[16:], mcmdAddr)
	mem[modAddr] = mod
	mem[mcmdAddr] = []byte("initrd.cpio\x00")
	mm := make([]byte, 0, len(entries)*memmapEntrySize)
	for _, e := range entries {
		mm = le.AppendUint64(mm, e.addr)
		mm = le.AppendUint64(mm, e.size)
		mm = le.AppendUint32(mm, e.typ)
		mm = le.AppendUint32(mm, 0)
	}
	mem[mapAddr] = mm
	return mem, infoAddr
}

func TestParseStartInfoV1(t *testing.T) {
	mem, addr := qemuLike(1)
	si, err := ParseStartInfo(mem.Read, addr)
	if err != nil {
		t.Fatal(err)
	}
	if si.Version != 1 || si.RSDP != 0xf5a40 || si.Cmdline != "bigiron.node=2 console=ttyS0" {
		t.Errorf("got %+v", si)
	}
	wantMods := []Module{{Addr: 0x7f000000, Size: 0xe00000, Cmdline: "initrd.cpio"}}
	if !slices.Equal(si.Modules, wantMods) {
		t.Errorf("Modules = %+v", si.Modules)
	}
	if len(si.MemoryMap) != 7 {
		t.Fatalf("memory map has %d entries: %v", len(si.MemoryMap), si.MemoryMap)
	}
	if got := si.MemoryMap[6]; got != (memmap.Region{Start: 0x100000000, Size: 0x80000000, Type: memmap.Usable}) {
		t.Errorf("last entry = %+v", got)
	}
	if got := si.MemoryMap.TotalUsable(); got != 0x9fc00+0x7fee0000-0x100000+0x80000000 {
		t.Errorf("TotalUsable = %#x", got)
	}
}

func TestParseStartInfoV0IgnoresMemmap(t *testing.T) {
	mem, addr := qemuLike(0)
	// Version 0 structures are only 40 bytes: the parser must not read
	// beyond them.
	mem[addr] = mem[addr][:sizeV0]
	si, err := ParseStartInfo(mem.Read, addr)
	if err != nil {
		t.Fatal(err)
	}
	if si.MemoryMap != nil || si.Version != 0 || len(si.Modules) != 1 {
		t.Errorf("got %+v", si)
	}
}

func TestParseStartInfoErrors(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		mutate func(mem memreadtest.Mem, si []byte)
		want   string
	}{
		{"bad magic", func(mem memreadtest.Mem, si []byte) { si[0] ^= 1 }, "magic"},
		{"v1 truncated", func(mem memreadtest.Mem, si []byte) { mem[0x6000] = si[:sizeV0] }, "version 1"},
		{"too many modules", func(mem memreadtest.Mem, si []byte) { le.PutUint32(si[offNrModules:], 1<<20) }, "exceeds"},
		{"modlist at 0", func(mem memreadtest.Mem, si []byte) { le.PutUint64(si[offModlistPaddr:], 0) }, "modlist_paddr is 0"},
		{"modlist unreadable", func(mem memreadtest.Mem, si []byte) { le.PutUint32(si[offNrModules:], 2) }, "modules"},
		{"module wraps", func(mem memreadtest.Mem, si []byte) { le.PutUint64(mem[0x6200][8:], ^uint64(0)) }, "wraps"},
		{"memmap too long", func(mem memreadtest.Mem, si []byte) { le.PutUint32(si[offMemmapEntries:], 1<<30) }, "exceeds"},
		{"memmap beyond memory", func(mem memreadtest.Mem, si []byte) { le.PutUint32(si[offMemmapEntries:], 8) }, "memory map"},
		{"memmap at 0", func(mem memreadtest.Mem, si []byte) { le.PutUint64(si[offMemmapPaddr:], 0) }, "memmap_paddr is 0"},
		{"cmdline unterminated", func(mem memreadtest.Mem, si []byte) { mem[0x6100] = []byte("abc") }, "command line"},
		{"structure unreadable", func(mem memreadtest.Mem, si []byte) { delete(mem, 0x6000) }, "reading start info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, addr := qemuLike(1)
			tc.mutate(mem, mem[addr])
			_, err := ParseStartInfo(mem.Read, addr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseStartInfo(memreadtest.Mem{}.Read, 0); err == nil {
		t.Error("address 0 accepted")
	}
}

func TestOptionalFieldsAbsent(t *testing.T) {
	mem, addr := qemuLike(1)
	le := binary.LittleEndian
	si := mem[addr]
	le.PutUint64(si[offCmdlinePaddr:], 0)
	le.PutUint32(si[offNrModules:], 0)
	le.PutUint32(si[offMemmapEntries:], 0)
	le.PutUint64(mem[0x6200][16:], 0)
	got, err := ParseStartInfo(mem.Read, addr)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmdline != "" || got.Modules != nil || got.MemoryMap != nil {
		t.Errorf("got %+v", got)
	}
}

// FuzzParseStartInfo treats the fuzz input as the memory at fuzzBase that
// holds the structure and everything it points to.
func FuzzParseStartInfo(f *testing.F) {
	const fuzzBase = 0x6000
	mem, addr := qemuLike(1)
	// Relocate the QEMU-like layout into one segment: offsets match.
	seg := make([]byte, 0x400+7*memmapEntrySize)
	for base, b := range mem {
		copy(seg[base-addr:], b)
	}
	f.Add(seg)
	f.Add(seg[:sizeV0])
	f.Add([]byte{0x78, 0xc5, 0x6e, 0x33, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := memreadtest.Mem{fuzzBase: data}
		si, err := ParseStartInfo(m.Read, fuzzBase)
		if err != nil {
			return
		}
		if len(si.Modules) > MaxModules || len(si.MemoryMap) > MaxMemmapEntries || len(si.Cmdline) > MaxStringLen {
			t.Fatalf("limits exceeded: %d modules, %d map entries", len(si.Modules), len(si.MemoryMap))
		}
	})
}
