// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// fakePage is the granule of fakeMem.
const fakePage = 4096

// sharedZero is the page every all-zero page of a fakeMem points to; it is
// never written (a write to such a page copies it first).
var sharedZero [fakePage]byte

// fakeMem is a sparse guest memory over a memory map. A write that is not
// inside one usable region fails and is recorded as a violation; bytes never
// written read as garbage (never 0), so that zero-filling is observable.
type fakeMem struct {
	usable     memmap.Map
	pages      map[uint64]*[fakePage]byte
	writes     []memmap.Range
	violations []string
	failAt     int // when > 0, the failAt-th write fails
}

func newFakeMem(ram memmap.Map) *fakeMem {
	return &fakeMem{usable: ram.Subtract(), pages: map[uint64]*[fakePage]byte{}}
}

// garbage is the content of a byte never written. It repeats every 256
// bytes, so every page starts out as garbagePage.
func garbage(addr uint64) byte { return 0x80 | byte(addr*7) }

var garbagePage = func() (p [fakePage]byte) {
	for i := range p {
		p[i] = garbage(uint64(i))
	}
	return p
}()

// within reports whether [lo, hi) lies in one region of rs.
func within(rs memmap.Map, lo, hi uint64) bool {
	for _, r := range rs {
		if r.Start <= lo && hi <= r.Start+r.Size {
			return true
		}
	}
	return false
}

func (m *fakeMem) WriteAt(p []byte, addr uint64) error {
	end := addr + uint64(len(p))
	if len(p) == 0 || end < addr || !within(m.usable, addr, end) {
		v := fmt.Sprintf("write [%#x, +%#x) outside usable RAM", addr, len(p))
		m.violations = append(m.violations, v)
		return errors.New("fake memory: " + v)
	}
	m.writes = append(m.writes, memmap.Range{Start: addr, Size: uint64(len(p))})
	if m.failAt > 0 && len(m.writes) == m.failAt {
		return errors.New("fake memory: injected failure")
	}
	for len(p) > 0 {
		pn, off := addr/fakePage, addr%fakePage
		n := min(uint64(len(p)), fakePage-off)
		m.store(pn, off, p[:n])
		p, addr = p[n:], addr+n
	}
	return nil
}

// store writes b at offset off of page pn, sharing all-zero whole pages.
func (m *fakeMem) store(pn, off uint64, b []byte) {
	if len(b) == fakePage && bytes.Equal(b, sharedZero[:]) {
		m.pages[pn] = &sharedZero
		return
	}
	pg := m.pages[pn]
	if pg == nil || pg == &sharedZero {
		fresh := new([fakePage]byte)
		if pg == nil {
			*fresh = garbagePage
		}
		m.pages[pn], pg = fresh, fresh
	}
	copy(pg[off:], b)
}

// Read is a ReadFunc over the usable RAM of m.
func (m *fakeMem) Read(addr uint64, n int) ([]byte, error) {
	end := addr + uint64(n)
	if n < 0 || end < addr || !within(m.usable, addr, end) {
		return nil, fmt.Errorf("fake memory: read [%#x, +%d) outside usable RAM", addr, n)
	}
	out := make([]byte, n)
	for i := range out {
		a := addr + uint64(i)
		if pg := m.pages[a/fakePage]; pg != nil {
			out[i] = pg[a%fakePage]
		} else {
			out[i] = garbage(a)
		}
	}
	return out, nil
}

func (m *fakeMem) mustRead(t *testing.T, addr, n uint64) []byte {
	t.Helper()
	b, err := m.Read(addr, int(n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pcRAM is a PC-like guest map: 639 KiB low memory, the BIOS area, RAM
// from 1 MiB to top, the I/O hole below 4 GiB and 1 GiB above it.
func pcRAM(top uint64) memmap.Map {
	return memmap.Map{
		{Start: 0, Size: 0x9FC00, Type: memmap.Usable},
		{Start: 0x9FC00, Size: 0x400, Type: memmap.Reserved},
		{Start: 0xF0000, Size: 0x10000, Type: memmap.Reserved},
		{Start: 0x100000, Size: top - 0x100000, Type: memmap.Usable},
		{Start: 0xFEC00000, Size: 0x1400000, Type: memmap.Reserved},
		{Start: 1 << 32, Size: 1 << 30, Type: memmap.Usable},
	}
}

// testSeg is a program header for buildELF.
type testSeg struct {
	typ          elf.ProgType // 0 means PT_LOAD
	paddr, vaddr uint64       // vaddr 0 means paddr
	data         []byte
	memsz        uint64 // 0 means len(data)
	flags        elf.ProgFlag
	off          uint64 // when nonzero, p_offset instead of the data's offset
}

// elfSpec describes an ELF image for buildELF.
type elfSpec struct {
	class   elf.Class
	machine elf.Machine // 0 means EM_386 for ELF32, EM_X86_64 for ELF64
	entry   uint64
	header  Header // the Multiboot header, placed after the program headers
	segs    []testSeg
}

// buildELF writes a minimal little-endian ELF executable: the ELF header,
// the program headers, the Multiboot header, then each segment's data.
func buildELF(t testing.TB, s elfSpec) []byte {
	t.Helper()
	ehsize, phsize := 52, 32
	if s.class == elf.ELFCLASS64 {
		ehsize, phsize = 64, 56
	}
	mbh, err := s.header.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	off := uint64(ehsize + phsize*len(s.segs) + len(mbh))
	var data bytes.Buffer
	var progs []any
	for _, sg := range s.segs {
		off = (off + 15) &^ 15
		p := elf.Prog64{Type: uint32(sg.typ), Flags: uint32(sg.flags), Off: off, Vaddr: sg.vaddr, Paddr: sg.paddr,
			Filesz: uint64(len(sg.data)), Memsz: sg.memsz, Align: 16}
		if p.Type == 0 {
			p.Type = uint32(elf.PT_LOAD)
		}
		if p.Vaddr == 0 {
			p.Vaddr = p.Paddr
		}
		if p.Memsz == 0 {
			p.Memsz = p.Filesz
		}
		if sg.off != 0 {
			p.Off = sg.off
		}
		for uint64(data.Len()) < off-uint64(ehsize+phsize*len(s.segs)+len(mbh)) {
			data.WriteByte(0)
		}
		data.Write(sg.data)
		off += uint64(len(sg.data))
		progs = append(progs, p)
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(s.class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	if s.class == elf.ELFCLASS64 {
		m := cmpOr(s.machine, elf.EM_X86_64)
		binary.Write(&b, le, elf.Header64{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: 1,
			Entry: s.entry, Phoff: uint64(ehsize), Ehsize: uint16(ehsize), Phentsize: uint16(phsize), Phnum: uint16(len(progs))})
		for _, p := range progs {
			binary.Write(&b, le, p)
		}
	} else {
		m := cmpOr(s.machine, elf.EM_386)
		binary.Write(&b, le, elf.Header32{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: 1,
			Entry: uint32(s.entry), Phoff: uint32(ehsize), Ehsize: uint16(ehsize), Phentsize: uint16(phsize), Phnum: uint16(len(progs))})
		for _, p := range progs {
			p := p.(elf.Prog64)
			binary.Write(&b, le, elf.Prog32{Type: p.Type, Off: uint32(p.Off), Vaddr: uint32(p.Vaddr), Paddr: uint32(p.Paddr),
				Filesz: uint32(p.Filesz), Memsz: uint32(p.Memsz), Flags: p.Flags, Align: uint32(p.Align)})
		}
	}
	b.Write(mbh)
	b.Write(data.Bytes())
	return b.Bytes()
}

func cmpOr(m, def elf.Machine) elf.Machine {
	if m == 0 {
		return def
	}
	return m
}

// pattern returns n bytes of a recognizable non-zero pattern.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13) | 1
	}
	return b
}

// elf32Spec is a kvm-unit-tests-like ELF32: text at 4 MiB with the entry,
// data with a bss tail.
func elf32Spec() elfSpec {
	return elfSpec{
		class:  elf.ELFCLASS32,
		entry:  0x400010,
		header: Header{Flags: 0},
		segs: []testSeg{
			{paddr: 0x400000, data: pattern(0x1234, 1), flags: elf.PF_R | elf.PF_X},
			{paddr: 0x402000, data: pattern(0x800, 2), memsz: 0x5000, flags: elf.PF_R | elf.PF_W},
		},
	}
}

// elf64Spec is a higher-half ELF64: linked at 0xffffffff80100000, loaded
// at 1 MiB, its virtual entry point translated to the physical one.
func elf64Spec() elfSpec {
	const virt = 0xffffffff80000000
	return elfSpec{
		class:  elf.ELFCLASS64,
		entry:  virt + 0x100040,
		header: Header{Flags: HeaderPageAlign | HeaderMemoryInfo},
		segs: []testSeg{
			{paddr: 0x100000, vaddr: virt + 0x100000, data: pattern(0x3000, 3), flags: elf.PF_R | elf.PF_X},
			{paddr: 0x104000, vaddr: virt + 0x104000, data: pattern(0x10, 4), memsz: 0x20000, flags: elf.PF_R | elf.PF_W},
		},
	}
}

// aoutHeader is an a.out-kludge header: the image loaded at 1 MiB + 64
// KiB from its first byte, 0x3000 bytes of it, bss up to 0x116000.
func aoutHeader() Header {
	return Header{
		Flags:      HeaderPageAlign | HeaderMemoryInfo | HeaderAddressFields,
		HeaderAddr: 0x110000, LoadAddr: 0x110000, LoadEndAddr: 0x113000,
		BSSEndAddr: 0x116000, EntryAddr: 0x110040,
	}
}

func aoutImageBytes(t testing.TB, h Header, n int) []byte {
	t.Helper()
	img := pattern(n, 5)
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copy(img, b)
	return img
}

func testModules() []GuestModule {
	return []GuestModule{
		{Data: []byte("KVM_UNIT_TESTS_ENV=1\nFOO=bar\n"), Cmdline: "env"},
		{Data: pattern(0x2345, 6), Cmdline: "/boot/initrd.img rw"},
		{Data: nil, Cmdline: ""},
	}
}

// wantSeg is where a loaded segment must be: data at addr, zeros to memsz.
type wantSeg struct {
	addr  uint64
	data  []byte
	memsz uint64
}

func checkSegmentsLoaded(t *testing.T, mem *fakeMem, segs []wantSeg) {
	t.Helper()
	for i, s := range segs {
		got := mem.mustRead(t, s.addr, s.memsz)
		if !bytes.Equal(got[:len(s.data)], s.data) {
			t.Errorf("segment %d: bytes at %#x differ from the file", i, s.addr)
		}
		if j := slices.IndexFunc(got[len(s.data):], func(c byte) bool { return c != 0 }); j >= 0 {
			t.Errorf("segment %d: bss byte at %#x is %#x, want 0", i, s.addr+uint64(len(s.data)+j), got[len(s.data)+j])
		}
	}
}

// checkInfo parses the information structure Load wrote, with the
// package's own parser, and checks every field against cfg.
func checkInfo(t *testing.T, mem *fakeMem, cfg LoadConfig, ld Loaded, memLower, memUpper uint32) {
	t.Helper()
	if len(mem.violations) > 0 {
		t.Fatalf("writes outside usable RAM: %v", mem.violations)
	}
	in, err := ParseInfo(mem.Read, uint64(ld.Info))
	if err != nil {
		t.Fatalf("ParseInfo at %#x: %v", ld.Info, err)
	}
	want := InfoMemory | InfoCmdline | InfoMemoryMap | InfoBootLoaderName
	if len(cfg.Modules) > 0 {
		want |= InfoModules
	}
	if in.Flags != want {
		t.Errorf("flags = %#x, want %#x", in.Flags, want)
	}
	if in.MemLower != memLower || in.MemUpper != memUpper {
		t.Errorf("mem_lower/mem_upper = %d/%d KiB, want %d/%d", in.MemLower, in.MemUpper, memLower, memUpper)
	}
	if in.Cmdline != cfg.Cmdline || in.BootLoaderName != cfg.Name {
		t.Errorf("cmdline %q, name %q; want %q, %q", in.Cmdline, in.BootLoaderName, cfg.Cmdline, cfg.Name)
	}
	if !slices.Equal(in.MemoryMap, cfg.RAM.Normalize()) {
		t.Errorf("memory map =\n%v\nwant\n%v", in.MemoryMap, cfg.RAM.Normalize())
	}
	if !slices.Equal(in.Modules, ld.Modules) || len(in.Modules) != len(cfg.Modules) {
		t.Errorf("modules = %+v, Load says %+v", in.Modules, ld.Modules)
	}
	checkModules(t, mem, cfg, ld)
	checkRawInfo(t, mem, ld, len(in.MemoryMap))
}

// checkModules checks each module's bytes, string and placement.
func checkModules(t *testing.T, mem *fakeMem, cfg LoadConfig, ld Loaded) {
	t.Helper()
	prevEnd := ld.KernelEnd
	for i, m := range ld.Modules {
		gm := cfg.Modules[i]
		if m.Start%ModuleAlign != 0 || m.Start < prevEnd || m.End-m.Start != uint64(len(gm.Data)) || m.Cmdline != gm.Cmdline {
			t.Errorf("module %d = %+v (previous end %#x), want %d page-aligned bytes with string %q", i, m, prevEnd, len(gm.Data), gm.Cmdline)
			continue
		}
		if got := mem.mustRead(t, m.Start, m.End-m.Start); !bytes.Equal(got, gm.Data) {
			t.Errorf("module %d: bytes at %#x differ", i, m.Start)
		}
		prevEnd = m.End
	}
}

// checkRawInfo checks what ParseInfo does not: the fields the flags do not
// announce are 0, every memory map entry has size 20, and the block does
// not overlap the kernel or a module.
func checkRawInfo(t *testing.T, mem *fakeMem, ld Loaded, mmapEntries int) {
	t.Helper()
	raw := mem.mustRead(t, uint64(ld.Info), 116)
	le := binary.LittleEndian
	for _, off := range []int{offBootDevice, 28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112} {
		if v := le.Uint32(raw[off:]); v != 0 {
			t.Errorf("info field at offset %d = %#x, want 0", off, v)
		}
	}
	mmap := mem.mustRead(t, uint64(le.Uint32(raw[offMmapAddr:])), uint64(le.Uint32(raw[offMmapLength:])))
	if len(mmap) != 24*mmapEntries {
		t.Errorf("mmap_length = %d, want %d", len(mmap), 24*mmapEntries)
	}
	for off := 0; off+4 <= len(mmap); off += 24 {
		if s := le.Uint32(mmap[off:]); s != 20 {
			t.Errorf("memory map entry at offset %d: size %d, want 20", off, s)
		}
	}
	info := uint64(ld.Info)
	if info < ld.KernelEnd && ld.KernelStart < info+infoStructSize {
		t.Errorf("information structure at %#x overlaps the kernel [%#x, %#x)", info, ld.KernelStart, ld.KernelEnd)
	}
	for i, m := range ld.Modules {
		if info < m.End && m.Start < info+infoStructSize {
			t.Errorf("information structure at %#x overlaps module %d %+v", info, i, m)
		}
	}
}

func TestLoadELF32(t *testing.T) {
	s := elf32Spec()
	cfg := LoadConfig{
		Kernel:  buildELF(t, s),
		Cmdline: "msr.flat -smp 1 console=ttyS0",
		Modules: testModules(),
		RAM:     pcRAM(128 << 20),
		Name:    "big-iron",
	}
	if _, err := elf.NewFile(bytes.NewReader(cfg.Kernel)); err != nil {
		t.Fatalf("the test's ELF writer is wrong: %v", err)
	}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ld.Entry != 0x400010 || ld.Info != LowInfoAddr || ld.KernelStart != 0x400000 || ld.KernelEnd != 0x407000 {
		t.Errorf("Loaded = entry %#x info %#x kernel [%#x, %#x)", ld.Entry, ld.Info, ld.KernelStart, ld.KernelEnd)
	}
	if want := []uint64{0x407000, 0x408000, 0x40b000}; ld.Modules[0].Start != want[0] || ld.Modules[1].Start != want[1] || ld.Modules[2].Start != want[2] {
		t.Errorf("modules at %+v, want starts %#x", ld.Modules, want)
	}
	checkSegmentsLoaded(t, mem, []wantSeg{
		{0x400000, s.segs[0].data, 0x1234},
		{0x402000, s.segs[1].data, 0x5000},
	})
	checkInfo(t, mem, cfg, ld, 639, (128<<10)-1024)
}

func TestLoadELF64HigherHalf(t *testing.T) {
	s := elf64Spec()
	cfg := LoadConfig{Kernel: buildELF(t, s), Cmdline: "", RAM: pcRAM(64 << 20), Name: "big-iron"}
	if _, err := elf.NewFile(bytes.NewReader(cfg.Kernel)); err != nil {
		t.Fatalf("the test's ELF writer is wrong: %v", err)
	}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ld.Entry != 0x100040 || ld.KernelStart != 0x100000 || ld.KernelEnd != 0x124000 || len(ld.Modules) != 0 {
		t.Errorf("Loaded = %+v", ld)
	}
	checkSegmentsLoaded(t, mem, []wantSeg{
		{0x100000, s.segs[0].data, 0x3000},
		{0x104000, s.segs[1].data, 0x20000},
	})
	checkInfo(t, mem, cfg, ld, 639, (64<<10)-1024)
	raw := mem.mustRead(t, uint64(ld.Info), infoStructSize)
	if le := binary.LittleEndian; le.Uint32(raw[offModsCount:]) != 0 || le.Uint32(raw[offModsAddr:]) != 0 {
		t.Errorf("mods_count/mods_addr = %d/%#x without modules", le.Uint32(raw[offModsCount:]), le.Uint32(raw[offModsAddr:]))
	}
}

func TestLoadELF64Identity(t *testing.T) {
	s := elfSpec{
		class: elf.ELFCLASS64, entry: 0x200100, header: Header{Flags: HeaderVideoMode, Width: 80, Height: 25, ModeType: 1},
		segs: []testSeg{{paddr: 0x200000, data: pattern(0x400, 7), memsz: 0x1000, flags: elf.PF_R | elf.PF_X}},
	}
	cfg := LoadConfig{Kernel: buildELF(t, s), Cmdline: "x", Modules: testModules()[:1], RAM: pcRAM(16 << 20), Name: "n"}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatalf("video mode request (flag 2) must be accepted: %v", err)
	}
	if ld.Entry != 0x200100 || ld.Modules[0].Start != 0x201000 {
		t.Errorf("Loaded = %+v", ld)
	}
	checkSegmentsLoaded(t, mem, []wantSeg{{0x200000, s.segs[0].data, 0x1000}})
	checkInfo(t, mem, cfg, ld, 639, (16<<10)-1024)
}

func TestLoadAOutKludge(t *testing.T) {
	h := aoutHeader()
	img := aoutImageBytes(t, h, 0x3000)
	cfg := LoadConfig{Kernel: img, Cmdline: "bigiron.node=2", Modules: testModules(), RAM: pcRAM(32 << 20), Name: "big-iron"}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ld.Entry != 0x110040 || ld.KernelStart != 0x110000 || ld.KernelEnd != 0x116000 || ld.Info != LowInfoAddr {
		t.Errorf("Loaded = %+v", ld)
	}
	checkSegmentsLoaded(t, mem, []wantSeg{{0x110000, img, 0x6000}})
	checkInfo(t, mem, cfg, ld, 639, (32<<10)-1024)
}

func TestLoadAOutHeaderInsideLoadEndZero(t *testing.T) {
	// The header 0x100 bytes into the loaded area, load_end_addr 0 (the
	// rest of the file), no bss.
	h := Header{Flags: HeaderAddressFields, HeaderAddr: 0x200100, LoadAddr: 0x200000, EntryAddr: 0x200200}
	img := pattern(0x1800, 9)
	b, _ := h.MarshalBinary()
	copy(img[0x100:], b)
	cfg := LoadConfig{Kernel: img, RAM: pcRAM(8 << 20)}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ld.KernelStart != 0x200000 || ld.KernelEnd != 0x201800 || ld.Entry != 0x200200 {
		t.Errorf("Loaded = %+v", ld)
	}
	checkSegmentsLoaded(t, mem, []wantSeg{{0x200000, img, 0x1800}})
	checkInfo(t, mem, cfg, ld, 639, (8<<10)-1024)
}

func TestLoadInfoFallsBackAfterModules(t *testing.T) {
	// A kernel at 32 KiB covers LowInfoAddr: the information block goes
	// after the last module.
	h := Header{Flags: HeaderAddressFields, HeaderAddr: 0x8000, LoadAddr: 0x8000, LoadEndAddr: 0xA000, EntryAddr: 0x8100}
	cfg := LoadConfig{Kernel: aoutImageBytes(t, h, 0x2000), Cmdline: "low", Modules: testModules(), RAM: pcRAM(4 << 20), Name: "big-iron"}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := ld.Modules[len(ld.Modules)-1]
	if ld.Modules[0].Start != 0xA000 || uint64(ld.Info) < last.End || ld.Info%ModuleAlign != 0 {
		t.Errorf("modules %+v, info at %#x: want modules from 0xa000 and the info after them", ld.Modules, ld.Info)
	}
	checkInfo(t, mem, cfg, ld, 639, (4<<10)-1024)

	// No low memory at all: the same.
	cfg = LoadConfig{Kernel: buildELF(t, elf32Spec()), Modules: testModules()[:1], RAM: pcRAM(16 << 20)[3:4], Name: "x"}
	mem = newFakeMem(cfg.RAM)
	if ld, err = Load(mem, cfg); err != nil {
		t.Fatal(err)
	}
	if ld.Info != 0x408000 {
		t.Errorf("info at %#x, want 0x408000 (after the module at 0x407000)", ld.Info)
	}
	checkInfo(t, mem, cfg, ld, 0, (16<<10)-1024)
}

func TestLoadModulesSkipHoles(t *testing.T) {
	ram := memmap.Map{
		{Start: 0, Size: 0x9FC00, Type: memmap.Usable},
		{Start: 0x100000, Size: 0x100000, Type: memmap.Usable},
		{Start: 0x200000, Size: 0x200000, Type: memmap.Reserved},
		{Start: 0x400000, Size: 0x400000, Type: memmap.Usable},
	}
	s := elfSpec{class: elf.ELFCLASS32, entry: 0x100000, segs: []testSeg{
		{paddr: 0x100000, data: pattern(0x100, 1), memsz: 0x80000, flags: elf.PF_X}}}
	mods := []GuestModule{{Data: pattern(0x100000, 2), Cmdline: "big"}, {Data: pattern(0x10, 3), Cmdline: "small"}}
	cfg := LoadConfig{Kernel: buildELF(t, s), Modules: mods, RAM: ram}
	mem := newFakeMem(ram)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ld.Modules[0].Start != 0x400000 || ld.Modules[1].Start != 0x500000 {
		t.Errorf("modules %+v: want the 1 MiB one past the hole at 0x400000, the next at 0x500000", ld.Modules)
	}
	checkInfo(t, mem, cfg, ld, 639, 1024)
}

func TestLoadWriteError(t *testing.T) {
	cfg := LoadConfig{Kernel: buildELF(t, elf32Spec()), RAM: pcRAM(16 << 20)}
	mem := newFakeMem(cfg.RAM)
	mem.failAt = 1
	_, err := Load(mem, cfg)
	if err == nil || !strings.Contains(err.Error(), "multiboot: writing kernel segment 0 at 0x400000: fake memory: injected failure") {
		t.Fatalf("err = %v", err)
	}
}

// refusal is a configuration Load must refuse with an error containing
// want, writing nothing.
type refusal struct {
	name string
	cfg  func(t *testing.T) LoadConfig
	want string
}

// elfCfg returns a valid configuration around the ELF built from s after
// mutate.
func elfCfg(mutate func(*elfSpec)) func(t *testing.T) LoadConfig {
	return func(t *testing.T) LoadConfig {
		s := elf32Spec()
		mutate(&s)
		return LoadConfig{Kernel: buildELF(t, s), Cmdline: "c", Modules: testModules(), RAM: pcRAM(64 << 20), Name: "n"}
	}
}

// cfgWith returns a valid ELF32 configuration after mutate.
func cfgWith(mutate func(*LoadConfig)) func(t *testing.T) LoadConfig {
	return func(t *testing.T) LoadConfig {
		cfg := elfCfg(func(*elfSpec) {})(t)
		mutate(&cfg)
		return cfg
	}
}

// aoutCfg returns a configuration around an a.out-kludge image with h.
func aoutCfg(h Header, n int) func(t *testing.T) LoadConfig {
	return func(t *testing.T) LoadConfig {
		return LoadConfig{Kernel: aoutImageBytes(t, h, n), RAM: pcRAM(64 << 20)}
	}
}

func imageRefusals() []refusal {
	return []refusal{
		{"no header", cfgWith(func(c *LoadConfig) { c.Kernel = make([]byte, 0x4000) }), "multiboot: no header in the first 8192 bytes"},
		{"bad checksum", cfgWith(func(c *LoadConfig) { c.Kernel[52+2*32+8]++ }), "no header"},
		{"unknown required flag", elfCfg(func(s *elfSpec) { s.header.Flags |= 1 << 3 }), "unknown required flags 0x8"},
		{"not ELF, no address fields", cfgWith(func(c *LoadConfig) { c.Kernel[1] = 'X' }), "not ELF and its header has no address fields"},
		{"big-endian ELF", cfgWith(func(c *LoadConfig) { c.Kernel[5] = byte(elf.ELFDATA2MSB) }), "not little-endian"},
		{"bad ELF class", cfgWith(func(c *LoadConfig) { c.Kernel[4] = 3 }), "ELF class 3"},
		{"wrong machine", elfCfg(func(s *elfSpec) { s.machine = elf.EM_AARCH64 }), "ELF machine 183 is neither EM_386 nor EM_X86_64"},
		{"not executable", cfgWith(func(c *LoadConfig) { c.Kernel[16] = byte(elf.ET_REL) }), "ELF type 1"},
		{"too many program headers", cfgWith(func(c *LoadConfig) { binary.LittleEndian.PutUint16(c.Kernel[44:], 200) }), "200 ELF program headers, the limit is 128"},
		{"program headers past the end", cfgWith(func(c *LoadConfig) { binary.LittleEndian.PutUint32(c.Kernel[28:], 0x7fff0000) }), "program header table [0x7fff0000, +0x40) runs past the end"},
		{"short program headers", cfgWith(func(c *LoadConfig) { binary.LittleEndian.PutUint16(c.Kernel[42:], 16) }), "program header size 16 is below 32"},
		{"no PT_LOAD", elfCfg(func(s *elfSpec) { s.segs[0].typ, s.segs[1].typ = elf.PT_NOTE, elf.PT_NOTE }), "no loadable segment"},
		{"segment outside usable RAM", elfCfg(func(s *elfSpec) { s.segs[1].paddr = 0x9F000 }), "kernel segment 1 [0x9f000, 0xa4000) is not inside usable RAM"},
		{"segment beyond RAM", elfCfg(func(s *elfSpec) { s.segs[1].paddr = 64<<20 - 0x1000 }), "kernel segment 1 [0x3fff000, 0x4004000) is not inside usable RAM"},
		{"segments overlap", elfCfg(func(s *elfSpec) { s.segs[1].paddr = 0x401000 }), "kernel segments 0 [0x400000, 0x401234) and 1 [0x401000, 0x406000) overlap"},
		{"memsz below filesz", elfCfg(func(s *elfSpec) { s.segs[1].memsz = 0x7ff }), "program header 1: p_filesz 0x800 exceeds p_memsz 0x7ff"},
		{"file range outside the file", elfCfg(func(s *elfSpec) { s.segs[1].off = 0x100000 }), "program header 1: file range [0x100000, +0x800) runs past the end"},
		{"entry outside the image", elfCfg(func(s *elfSpec) { s.entry = 0x300000 }), "ELF entry point 0x300000 is not inside an executable loaded segment"},
		{"entry in a data segment", elfCfg(func(s *elfSpec) { s.entry = 0x402000 }), "ELF entry point 0x402000"},
		{"ELF64 segment at 4 GiB", func(t *testing.T) LoadConfig {
			s := elf64Spec()
			s.segs[1].paddr = 1 << 32
			return LoadConfig{Kernel: buildELF(t, s), RAM: pcRAM(64 << 20)}
		}, "program header 1: segment [0x100000000, +0x20000) is not below 4 GiB"},
		{"ELF64 segment crossing 4 GiB", func(t *testing.T) LoadConfig {
			s := elf64Spec()
			s.segs[1].paddr = 1<<32 - 0x1000
			return LoadConfig{Kernel: buildELF(t, s), RAM: pcRAM(64 << 20)}
		}, "segment [0xfffff000, +0x20000) is not below 4 GiB"},
		{"a.out load area in the BIOS hole", aoutCfg(Header{Flags: HeaderAddressFields, HeaderAddr: 0xA0000, LoadAddr: 0xA0000, LoadEndAddr: 0xA1000, EntryAddr: 0xA0040}, 0x1000),
			"kernel segment 0 [0xa0000, 0xa1000) is not inside usable RAM"},
		{"a.out bss beyond RAM", aoutCfg(Header{Flags: HeaderAddressFields, HeaderAddr: 0x100000, LoadAddr: 0x100000, LoadEndAddr: 0x101000, BSSEndAddr: 0x8000000, EntryAddr: 0x100040}, 0x1000),
			"kernel segment 0 [0x100000, 0x8000000) is not inside usable RAM"},
		{"a.out entry outside", aoutCfg(Header{Flags: HeaderAddressFields, HeaderAddr: 0x100000, LoadAddr: 0x100000, LoadEndAddr: 0x101000, EntryAddr: 0x102000}, 0x1000),
			"entry_addr 0x102000 is outside the loaded area"},
		{"a.out load past the file", aoutCfg(Header{Flags: HeaderAddressFields, HeaderAddr: 0x100000, LoadAddr: 0x100000, LoadEndAddr: 0x109000, EntryAddr: 0x100040}, 0x1000),
			"runs past the 4096-byte image"},
	}
}

func configRefusals() []refusal {
	big := strings.Repeat("x", MaxStringLen+1)
	return []refusal{
		{"too many modules", cfgWith(func(c *LoadConfig) { c.Modules = make([]GuestModule, MaxModules+1) }), "257 modules, the limit is 256"},
		{"command line too long", cfgWith(func(c *LoadConfig) { c.Cmdline = big }), "command line of 65537 bytes exceeds the limit of 65536"},
		{"NUL in the command line", cfgWith(func(c *LoadConfig) { c.Cmdline = "a\x00b" }), "command line holds a NUL byte at offset 1"},
		{"module string too long", cfgWith(func(c *LoadConfig) { c.Modules[2].Cmdline = big }), "module 2 string of 65537 bytes"},
		{"loader name too long", cfgWith(func(c *LoadConfig) { c.Name = big }), "boot loader name of 65537 bytes"},
		{"memory map too long", cfgWith(func(c *LoadConfig) { c.RAM = make(memmap.Map, 3000) }), "the memory map has 3000 regions, the limit is 2730"},
		{"no room for modules", cfgWith(func(c *LoadConfig) {
			c.RAM = pcRAM(0x408000)
			c.Modules[1].Data = make([]byte, 0x2000)
		}), "no room for module 1 (8192 bytes) in usable RAM between 0x408000 and 4 GiB"},
		{"no room for the information", cfgWith(func(c *LoadConfig) {
			c.RAM = pcRAM(0x40B000)[3:4] // RAM ends where the modules do, no low memory
		}), "no room for the 221-byte boot information in usable RAM at 0x9000 or between 0x40b000 and 4 GiB"},
		{"no RAM", cfgWith(func(c *LoadConfig) { c.RAM = nil }), "not inside usable RAM"},
	}
}

func TestLoadRefusals(t *testing.T) {
	for _, tc := range append(imageRefusals(), configRefusals()...) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(t)
			mem := newFakeMem(cfg.RAM)
			ld, err := Load(mem, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "multiboot: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if len(mem.writes) != 0 || len(mem.violations) != 0 || len(mem.pages) != 0 {
				t.Fatalf("refused load wrote %v (violations %v)", mem.writes, mem.violations)
			}
			if ld.Entry != 0 || ld.Modules != nil {
				t.Fatalf("refused load returned %+v", ld)
			}
		})
	}
}

func TestCheckPlan(t *testing.T) {
	usable := pcRAM(16 << 20).Subtract()
	for _, tc := range []struct {
		name   string
		writes []write
		want   string
	}{
		{"module over the kernel", []write{
			{what: "kernel segment 0", addr: 0x100000, data: make([]byte, 0x2000)},
			{what: "module 0", addr: 0x101000, data: make([]byte, 0x10)},
		}, "module 0 [0x101000, 0x101010) overlaps kernel segment 0 [0x100000, 0x102000)"},
		{"modules overlap", []write{
			{what: "module 1", addr: 0x200800, zero: 0x1000},
			{what: "module 0", addr: 0x200000, data: make([]byte, 0x1000)},
		}, "module 1 [0x200800, 0x201800) overlaps module 0 [0x200000, 0x201000)"},
		{"above 4 GiB", []write{{what: "module 0", addr: 1 << 32, data: []byte{1}}}, "module 0 [0x100000000, +0x1) is not inside usable RAM below 4 GiB"},
		{"in the hole", []write{{what: "boot information", addr: 0x9FF00, data: make([]byte, 0x200)}}, "boot information [0x9ff00, +0x200) is not inside usable RAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPlan(tc.writes, usable)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	ok := []write{{what: "a", addr: 0x1000, data: []byte{1}}, {what: "b", addr: 0x1001, zero: 0xFFF}, {what: "c", addr: 0x1000, zero: 0}}
	if err := checkPlan(ok, usable); err != nil {
		t.Fatalf("adjacent writes: %v", err)
	}
}

func TestMemLowerUpper(t *testing.T) {
	for _, tc := range []struct {
		ram          memmap.Map
		lower, upper uint32
	}{
		{pcRAM(128 << 20), 639, 130048},
		{memmap.Map{{Start: 0, Size: 1 << 30, Type: memmap.Usable}}, 640, (1 << 20) - 1024},
		{memmap.Map{{Start: 0x1000, Size: 0x9E000, Type: memmap.Usable}, {Start: 0x200000, Size: 1 << 20, Type: memmap.Usable}}, 0, 0},
		{memmap.Map{{Start: 0x100000, Size: 1 << 44, Type: memmap.Usable}}, 0, 1<<32 - 1},
	} {
		u := tc.ram.Subtract()
		if l, h := memLower(u), memUpper(u); l != tc.lower || h != tc.upper {
			t.Errorf("%v: mem_lower/upper = %d/%d, want %d/%d", tc.ram, l, h, tc.lower, tc.upper)
		}
	}
}

// kutFlat is a kvm-unit-tests x86 test binary: an ELF32 i386 image with a
// Multiboot header without address fields, loaded at 4 MiB.
const kutFlat = "/work/kut/kvm-unit-tests-v2026-04-17/x86/msr.flat"

func TestLoadKVMUnitTests(t *testing.T) {
	img, err := os.ReadFile(kutFlat)
	if err != nil {
		t.Skipf("kvm-unit-tests binary %s not available: %v", kutFlat, err)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	env := GuestModule{Data: []byte("KVM_UNIT_TESTS_ENV_OLD=1\nQEMU_ACCEL=kvm\n"), Cmdline: "env"}
	cfg := LoadConfig{Kernel: img, Cmdline: "msr.flat", Modules: []GuestModule{env}, RAM: pcRAM(256 << 20), Name: "big-iron"}
	mem := newFakeMem(cfg.RAM)
	ld, err := Load(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(ld.Entry) != f.Entry {
		t.Errorf("entry %#x, debug/elf says %#x", ld.Entry, f.Entry)
	}
	var segs []wantSeg
	start, end := ^uint64(0), uint64(0)
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		segs = append(segs, wantSeg{addr: p.Paddr, data: img[p.Off : p.Off+p.Filesz], memsz: p.Memsz})
		start, end = min(start, p.Paddr), max(end, p.Paddr+p.Memsz)
	}
	if ld.KernelStart != start || ld.KernelEnd != end || start != 0x4000b0 {
		t.Errorf("kernel [%#x, %#x), debug/elf says [%#x, %#x)", ld.KernelStart, ld.KernelEnd, start, end)
	}
	checkSegmentsLoaded(t, mem, segs)
	checkInfo(t, mem, cfg, ld, 639, (256<<10)-1024)
	t.Logf("msr.flat: entry %#x, kernel [%#x, %#x), env module at %#x, info at %#x", ld.Entry, ld.KernelStart, ld.KernelEnd, ld.Modules[0].Start, ld.Info)
}
