// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"fmt"
	"slices"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// fuzzModules makes n modules (at most MaxModules+8, so that the limit is
// crossed) whose sizes derive from size.
func fuzzModules(n, size uint16) []GuestModule {
	mods := make([]GuestModule, int(n)%(MaxModules+8))
	for i := range mods {
		mods[i] = GuestModule{
			Data:    pattern((int(size)*(i+1))%700, byte(i)),
			Cmdline: fmt.Sprintf("module-%d", i),
		}
	}
	return mods
}

// FuzzLoad feeds arbitrary kernel bytes, module counts and sizes and command
// lines to Load. It must never panic, never write outside the usable RAM
// below 4 GiB (the fake memory records any such write), never write the
// same byte twice, write nothing when it refuses, and, when it accepts,
// leave an information structure that ParseInfo reads back.
func FuzzLoad(f *testing.F) {
	// The valid images of the tests, with their file data cut short so
	// that the fuzzer's mutations and minimization stay cheap.
	for _, s := range []elfSpec{elf32Spec(), elf64Spec()} {
		for i := range s.segs {
			sg := &s.segs[i]
			sg.memsz = max(sg.memsz, uint64(len(sg.data)))
			sg.data = sg.data[:min(len(sg.data), 0x40)]
		}
		f.Add(buildELF(f, s), uint16(len(s.segs)), uint16(29), "msr.flat -smp 2")
	}
	h := aoutHeader()
	h.LoadEndAddr = h.LoadAddr + 0x100
	f.Add(aoutImageBytes(f, h, 0x100), uint16(2), uint16(100), "bigiron.node=1")
	lowAout := Header{Flags: HeaderAddressFields, HeaderAddr: 0x8000, LoadAddr: 0x8000, LoadEndAddr: 0x8200, EntryAddr: 0x8100}
	f.Add(aoutImageBytes(f, lowAout, 0x200), uint16(MaxModules), uint16(7), "x")
	f.Add([]byte("\x7fELF"), uint16(0), uint16(0), "a\x00b")
	f.Add(make([]byte, 64), uint16(MaxModules+1), uint16(1), "")

	ram := append(pcRAM(64<<20), memmap.Region{Start: 0x20000000, Size: 0x1000, Type: memmap.ACPIReclaimable})
	f.Fuzz(func(t *testing.T, kernel []byte, nmods, modSize uint16, cmdline string) {
		cfg := LoadConfig{Kernel: kernel, Cmdline: cmdline, Modules: fuzzModules(nmods, modSize), RAM: ram, Name: "fuzz"}
		mem := newFakeMem(ram)
		ld, err := Load(mem, cfg)
		if len(mem.violations) > 0 {
			t.Fatalf("writes outside usable RAM: %v (err %v)", mem.violations, err)
		}
		if err != nil {
			if len(mem.writes) != 0 {
				t.Fatalf("refused (%v) after writing %v", err, mem.writes)
			}
			return
		}
		checkFuzzWrites(t, mem.writes)
		if uint64(ld.Entry) < ld.KernelStart || uint64(ld.Entry) >= ld.KernelEnd {
			t.Fatalf("entry %#x outside the kernel [%#x, %#x)", ld.Entry, ld.KernelStart, ld.KernelEnd)
		}
		in, err := ParseInfo(mem.Read, uint64(ld.Info))
		if err != nil {
			t.Fatalf("ParseInfo of what Load wrote: %v", err)
		}
		if in.Cmdline != cmdline || len(in.Modules) != len(cfg.Modules) || !slices.Equal(in.Modules, ld.Modules) {
			t.Fatalf("info does not round-trip: cmdline %q, modules %+v, Load says %+v", in.Cmdline, in.Modules, ld.Modules)
		}
	})
}

// checkFuzzWrites checks that writes stay below 4 GiB and do not overlap.
func checkFuzzWrites(t *testing.T, writes []memmap.Range) {
	ws := slices.Clone(writes)
	slices.SortFunc(ws, func(a, b memmap.Range) int { return cmpUint(a.Start, b.Start) })
	for i, w := range ws {
		if w.End() > 1<<32 {
			t.Fatalf("write [%#x, %#x) reaches above 4 GiB", w.Start, w.End())
		}
		if i > 0 && w.Start < ws[i-1].End() {
			t.Fatalf("writes [%#x, %#x) and [%#x, %#x) overlap", ws[i-1].Start, ws[i-1].End(), w.Start, w.End())
		}
	}
}
