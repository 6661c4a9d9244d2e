// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread/memreadtest"
)

type mmapEntry struct {
	size uint32 // value of the size field; 20 for the spec's minimal entry
	base uint64
	len  uint64
	typ  uint32
}

func encodeMmap(es []mmapEntry) []byte {
	var b []byte
	le := binary.LittleEndian
	for _, e := range es {
		b = le.AppendUint32(b, e.size)
		ent := make([]byte, max(e.size, mmapMinEntrySize))
		le.PutUint64(ent[0:], e.base)
		le.PutUint64(ent[8:], e.len)
		le.PutUint32(ent[16:], e.typ)
		b = append(b, ent[:e.size]...)
	}
	return b
}

// grubLike lays out a boot information structure the way GRUB does: the
// structure, and separately the command line, module list, module strings,
// memory map and loader name.
func grubLike() (memreadtest.Mem, uint64) {
	const (
		infoAddr   = 0x9500
		cmdAddr    = 0x20000
		modsAddr   = 0x20100
		modStrAddr = 0x20200
		mmapAddr   = 0x20300
		nameAddr   = 0x203f0
	)
	mem := memreadtest.Mem{}
	le := binary.LittleEndian
	info := make([]byte, 120)
	flags := InfoMemory | InfoBootDevice | InfoCmdline | InfoModules | InfoMemoryMap | InfoBootLoaderName
	le.PutUint32(info[offFlags:], uint32(flags))
	le.PutUint32(info[offMemLower:], 639)
	le.PutUint32(info[offMemUpper:], 2096000)
	le.PutUint32(info[offBootDevice:], 0x8000ffff)
	le.PutUint32(info[offCmdline:], cmdAddr)
	le.PutUint32(info[offModsCount:], 2)
	le.PutUint32(info[offModsAddr:], modsAddr)
	mmap := encodeMmap([]mmapEntry{
		{20, 0, 0x9fc00, 1},
		{20, 0x9fc00, 0x400, 2},
		{24, 0xf0000, 0x10000, 2}, // a larger entry: the parser must step by size+4
		{20, 0x100000, 0x7fee0000 - 0x100000, 1},
		{20, 0x7fee0000, 0x20000, 3},
		{20, 0x100000000, 0x80000000, 1},
	})
	le.PutUint32(info[offMmapLength:], uint32(len(mmap)))
	le.PutUint32(info[offMmapAddr:], mmapAddr)
	le.PutUint32(info[offBootLoaderName:], nameAddr)
	mem[infoAddr] = info
	mem[cmdAddr] = []byte("/bigiron.mb bigiron.node=3 console=ttyS0\x00")
	mods := make([]byte, 2*moduleEntrySize)
	le.PutUint32(mods[0:], 0x400000)
	le.PutUint32(mods[4:], 0x9a0000)
	le.PutUint32(mods[8:], modStrAddr)
	le.PutUint32(mods[16:], 0xa00000)
	le.PutUint32(mods[20:], 0xa00000) // empty module
	le.PutUint32(mods[24:], 0)        // no string
	mem[modsAddr] = mods
	mem[modStrAddr] = []byte("/bzImage root=/dev/ram0\x00")
	mem[mmapAddr] = mmap
	mem[nameAddr] = []byte("GRUB 2.12\x00")
	return mem, infoAddr
}

func TestParseInfoGRUBLike(t *testing.T) {
	mem, addr := grubLike()
	in, err := ParseInfo(mem.Read, addr)
	if err != nil {
		t.Fatal(err)
	}
	if in.MemLower != 639 || in.MemUpper != 2096000 || in.BootDevice != 0x8000ffff {
		t.Errorf("mem_lower/upper/boot_device = %d/%d/%#x", in.MemLower, in.MemUpper, in.BootDevice)
	}
	if want := "/bigiron.mb bigiron.node=3 console=ttyS0"; in.Cmdline != want {
		t.Errorf("Cmdline = %q, want %q", in.Cmdline, want)
	}
	if in.BootLoaderName != "GRUB 2.12" {
		t.Errorf("BootLoaderName = %q", in.BootLoaderName)
	}
	wantMods := []Module{
		{Start: 0x400000, End: 0x9a0000, Cmdline: "/bzImage root=/dev/ram0"},
		{Start: 0xa00000, End: 0xa00000},
	}
	if !slices.Equal(in.Modules, wantMods) {
		t.Errorf("Modules = %+v, want %+v", in.Modules, wantMods)
	}
	wantMap := memmap.Map{
		{Start: 0, Size: 0x9fc00, Type: memmap.Usable},
		{Start: 0x9fc00, Size: 0x400, Type: memmap.Reserved},
		{Start: 0xf0000, Size: 0x10000, Type: memmap.Reserved},
		{Start: 0x100000, Size: 0x7fee0000 - 0x100000, Type: memmap.Usable},
		{Start: 0x7fee0000, Size: 0x20000, Type: memmap.ACPIReclaimable},
		{Start: 0x100000000, Size: 0x80000000, Type: memmap.Usable},
	}
	if !slices.Equal(in.MemoryMap, wantMap) {
		t.Errorf("MemoryMap =\n%v\nwant\n%v", in.MemoryMap, wantMap)
	}
	if !in.Has(InfoMemoryMap|InfoModules) || in.Has(InfoVBE) {
		t.Errorf("Has gives wrong answers for flags %#x", in.Flags)
	}
}

func TestParseInfoFlagsGateFields(t *testing.T) {
	// Only the flags word is set: no pointer may be followed, so garbage in
	// the other fields must not matter.
	mem := memreadtest.Mem{}
	info := make([]byte, infoSize)
	for i := range info {
		info[i] = 0xee
	}
	binary.LittleEndian.PutUint32(info, uint32(InfoMemory))
	mem[0x1000] = info
	in, err := ParseInfo(mem.Read, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	if in.MemLower != 0xeeeeeeee || in.Cmdline != "" || in.Modules != nil || in.MemoryMap != nil {
		t.Errorf("unexpected fields: %+v", in)
	}
}

func TestParseInfoErrors(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		mutate func(mem memreadtest.Mem, info []byte)
		want   string
	}{
		{"info unreadable", func(mem memreadtest.Mem, info []byte) { delete(mem, 0x9500) }, "reading information structure"},
		{"mmap entry too small", func(mem memreadtest.Mem, info []byte) {
			mm := encodeMmap([]mmapEntry{{20, 0, 0x1000, 1}, {16, 0, 0, 0}})
			mem[0x20300] = mm
			le.PutUint32(info[offMmapLength:], uint32(len(mm)))
		}, "below the minimum"},
		{"mmap entry overruns buffer", func(mem memreadtest.Mem, info []byte) {
			mem[0x20300] = encodeMmap([]mmapEntry{{20, 0, 0x1000, 1}, {20, 0x1000, 0x1000, 1}})
			le.PutUint32(info[offMmapLength:], 40)
		}, "runs past the end"},
		{"mmap trailing bytes", func(mem memreadtest.Mem, info []byte) {
			mem[0x20300] = append(encodeMmap([]mmapEntry{{20, 0, 0x1000, 1}}), 0, 0)
			le.PutUint32(info[offMmapLength:], 26)
		}, "too short for a size field"},
		{"mmap length beyond memory", func(mem memreadtest.Mem, info []byte) {
			le.PutUint32(info[offMmapLength:], 4096)
		}, "memory map"},
		{"mmap length absurd", func(mem memreadtest.Mem, info []byte) {
			le.PutUint32(info[offMmapLength:], 1<<30)
		}, "exceeds the limit"},
		{"too many modules", func(mem memreadtest.Mem, info []byte) {
			le.PutUint32(info[offModsCount:], 100000)
		}, "exceeds the limit"},
		{"module ends before start", func(mem memreadtest.Mem, info []byte) {
			b, _ := mem.Read(0x20100, 16)
			le.PutUint32(b[4:], 0x1000)
		}, "before it starts"},
		{"unterminated cmdline", func(mem memreadtest.Mem, info []byte) {
			mem[0x20000] = []byte("no terminator")
		}, "command line"},
		{"cmdline at 0", func(mem memreadtest.Mem, info []byte) {
			le.PutUint32(info[offCmdline:], 0)
		}, "address is 0"},
		{"loader name unreadable", func(mem memreadtest.Mem, info []byte) {
			le.PutUint32(info[offBootLoaderName:], 0xdead0000)
		}, "boot loader name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, addr := grubLike()
			info, _ := mem.Read(addr, infoSize)
			tc.mutate(mem, info)
			_, err := ParseInfo(mem.Read, addr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseInfoZeroAddress(t *testing.T) {
	if _, err := ParseInfo(memreadtest.Mem{}.Read, 0); err == nil {
		t.Fatal("ParseInfo at address 0 succeeded")
	}
}

// badReader violates the ReadFunc contract by returning short slices.
func badReader(addr uint64, n int) ([]byte, error) { return make([]byte, n/2), nil }

func TestReadContractViolation(t *testing.T) {
	if _, err := ParseInfo(badReader, 0x1000); err == nil {
		t.Fatal("short reads were accepted")
	}
}

// FuzzParseInfo feeds arbitrary bytes as the memory holding the information
// structure and everything it points to (one segment at fuzzBase).
func FuzzParseInfo(f *testing.F) {
	const fuzzBase = 0x1000
	// Seed: the GRUB-like structure relocated into one contiguous segment.
	le := binary.LittleEndian
	seed := make([]byte, 0x300)
	flags := InfoMemory | InfoCmdline | InfoModules | InfoMemoryMap | InfoBootLoaderName
	le.PutUint32(seed[offFlags:], uint32(flags))
	le.PutUint32(seed[offMemLower:], 639)
	le.PutUint32(seed[offCmdline:], fuzzBase+0x80)
	copy(seed[0x80:], "bigiron.node=1\x00")
	le.PutUint32(seed[offModsCount:], 1)
	le.PutUint32(seed[offModsAddr:], fuzzBase+0xa0)
	le.PutUint32(seed[0xa0:], 0x200000)
	le.PutUint32(seed[0xa4:], 0x300000)
	le.PutUint32(seed[0xa8:], fuzzBase+0x90)
	copy(seed[0x90:], "initrd\x00")
	mm := encodeMmap([]mmapEntry{{20, 0, 0x9fc00, 1}, {24, 0x100000, 1 << 30, 1}})
	copy(seed[0x100:], mm)
	le.PutUint32(seed[offMmapLength:], uint32(len(mm)))
	le.PutUint32(seed[offMmapAddr:], fuzzBase+0x100)
	le.PutUint32(seed[offBootLoaderName:], fuzzBase+0x200)
	copy(seed[0x200:], "GRUB\x00")
	f.Add(seed)
	f.Add(make([]byte, infoSize))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memreadtest.Mem{}
		mem[fuzzBase] = data
		in, err := ParseInfo(mem.Read, fuzzBase)
		if err != nil {
			return
		}
		if len(in.Modules) > MaxModules || len(in.Cmdline) > MaxStringLen {
			t.Fatalf("limits exceeded: %d modules, %d-byte cmdline", len(in.Modules), len(in.Cmdline))
		}
		for _, m := range in.Modules {
			if m.End < m.Start {
				t.Fatalf("module %+v accepted", m)
			}
		}
	})
}
