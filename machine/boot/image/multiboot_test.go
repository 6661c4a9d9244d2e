// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/multiboot"
)

var (
	realELFOnce sync.Once
	realELF     []byte
	realELFErr  error
)

// goLinkedELF builds a small Go program for linux/amd64 with the linker
// flags the bare-metal image uses (-T 0x10010000 -R 0x1000) and returns the
// ELF. The layout (several PT_LOAD segments, text at 0x10010000, ELF
// headers in the page below) is the Go linker's, as for the real image.
func goLinkedELF(t *testing.T) []byte {
	t.Helper()
	realELFOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mkimage-test")
		if err != nil {
			realELFErr = err
			return
		}
		defer os.RemoveAll(dir)
		src := "package main\n\nvar data = [4096]byte{1: 0xaa}\nvar bss [1 << 20]byte\n\nfunc main() { bss[len(bss)-1] = data[1]; println(bss[len(bss)-1]) }\n"
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			realELFErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
			realELFErr = err
			return
		}
		out := filepath.Join(dir, "tiny.elf")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath",
			"-ldflags", "-T 0x10010000 -R 0x1000", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			realELFErr = &buildError{err: err, out: string(b)}
			return
		}
		realELF, realELFErr = os.ReadFile(out)
	})
	if realELFErr != nil {
		t.Fatalf("building test ELF: %v", realELFErr)
	}
	return realELF
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func TestBuildMultibootRealELF(t *testing.T) {
	elfBytes := goLinkedELF(t)
	f, err := elf.NewFile(bytes.NewReader(elfBytes))
	if err != nil {
		t.Fatal(err)
	}
	var loads []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p)
		}
	}
	if len(loads) < 2 {
		t.Fatalf("test ELF has %d PT_LOAD segments; the test needs several", len(loads))
	}

	img, h, err := BuildMultiboot(elfBytes)
	if err != nil {
		t.Fatal(err)
	}

	// The header a loader finds is the one returned, at offset 0.
	found, off, err := multiboot.FindHeader(img)
	if err != nil {
		t.Fatal(err)
	}
	if found != h || off != 0 {
		t.Fatalf("FindHeader = %+v at %d, BuildMultiboot said %+v", found, off, h)
	}
	le := binary.LittleEndian
	if le.Uint32(img[0:]) != multiboot.HeaderMagic || le.Uint32(img[0:])+le.Uint32(img[4:])+le.Uint32(img[8:]) != 0 {
		t.Fatalf("bad magic or checksum: % x", img[:12])
	}
	if h.Flags != multiboot.HeaderPageAlign|multiboot.HeaderMemoryInfo|multiboot.HeaderAddressFields {
		t.Errorf("flags = %#x", h.Flags)
	}
	if uint64(h.EntryAddr) != f.Entry {
		t.Errorf("entry_addr %#x, ELF entry %#x", h.EntryAddr, f.Entry)
	}
	if want := loads[0].Paddr&^0xfff - 0x1000; uint64(h.LoadAddr) != want || h.HeaderAddr != h.LoadAddr {
		t.Errorf("load_addr %#x header_addr %#x, want both %#x", h.LoadAddr, h.HeaderAddr, want)
	}
	if loads[0].Paddr != 0x1000f000 {
		t.Logf("note: first PT_LOAD at %#x", loads[0].Paddr)
	}
	last := loads[len(loads)-1]
	if want := last.Paddr + last.Memsz; uint64(h.BSSEndAddr) != want {
		t.Errorf("bss_end_addr %#x, want %#x", h.BSSEndAddr, want)
	}
	if want := last.Paddr + last.Filesz; uint64(h.LoadEndAddr) != want || uint64(len(img)) != want-uint64(h.LoadAddr) {
		t.Errorf("load_end_addr %#x (image %d bytes), want %#x", h.LoadEndAddr, len(img), want)
	}
	// Every segment's file bytes are at paddr - load_addr; the gaps are zero.
	covered := make([]bool, len(img))
	for i := range 0x1000 {
		covered[i] = true // header page
	}
	for i, p := range loads {
		want, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		o := p.Paddr - uint64(h.LoadAddr)
		if !bytes.Equal(img[o:o+p.Filesz], want) {
			t.Errorf("segment %d bytes differ at file offset %#x", i, o)
		}
		for j := o; j < o+p.Filesz; j++ {
			covered[j] = true
		}
	}
	for i, c := range covered {
		if !c && img[i] != 0 {
			t.Fatalf("gap byte at offset %#x is %#x, want 0", i, img[i])
		}
	}
	if !bytes.Equal(img[len(hdrBytes(t, h)):0x1000], make([]byte, 0x1000-len(hdrBytes(t, h)))) {
		t.Error("header page is not zero after the header")
	}
}

func hdrBytes(t *testing.T, h multiboot.Header) []byte {
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seg describes a segment for the hand-made ELFs of the error tests.
type seg struct {
	typ          elf.ProgType
	flags        elf.ProgFlag
	vaddr, paddr uint64
	data         []byte
	memsz        uint64
}

// makeELF writes a minimal ELF64 executable: header, program headers,
// then each segment's data.
func makeELF(class elf.Class, machine elf.Machine, typ elf.Type, entry uint64, segs []seg) []byte {
	le := binary.LittleEndian
	const ehsize, phsize = 64, 56
	var b []byte
	b = append(b, 0x7f, 'E', 'L', 'F', byte(class), byte(elf.ELFDATA2LSB), 1, 0)
	b = append(b, make([]byte, 8)...)
	b = le.AppendUint16(b, uint16(typ))
	b = le.AppendUint16(b, uint16(machine))
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, entry)
	b = le.AppendUint64(b, ehsize) // phoff
	b = le.AppendUint64(b, 0)      // shoff
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, phsize)
	b = le.AppendUint16(b, uint16(len(segs)))
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	off := uint64(ehsize + phsize*len(segs))
	for _, s := range segs {
		b = le.AppendUint32(b, uint32(s.typ))
		b = le.AppendUint32(b, uint32(s.flags))
		b = le.AppendUint64(b, off)
		b = le.AppendUint64(b, s.vaddr)
		b = le.AppendUint64(b, s.paddr)
		b = le.AppendUint64(b, uint64(len(s.data)))
		b = le.AppendUint64(b, s.memsz)
		b = le.AppendUint64(b, 0x1000)
		off += uint64(len(s.data))
	}
	for _, s := range segs {
		b = append(b, s.data...)
	}
	return b
}

func TestBuildMultibootSynthetic(t *testing.T) {
	text := bytes.Repeat([]byte{0x90}, 0x234)
	data := []byte("data!")
	segs := []seg{
		{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200100, 0x200100, text, 0x234},
		{elf.PT_LOAD, elf.PF_R | elf.PF_W, 0x203000, 0x203000, data, 0x5000},
	}
	img, h, err := BuildMultiboot(makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200110, segs))
	if err != nil {
		t.Fatal(err)
	}
	want := multiboot.Header{
		Flags:      MultibootFlags,
		HeaderAddr: 0x1ff000, LoadAddr: 0x1ff000,
		LoadEndAddr: 0x203005, BSSEndAddr: 0x208000, EntryAddr: 0x200110,
	}
	if h != want {
		t.Fatalf("header %+v, want %+v", h, want)
	}
	if len(img) != 0x4005 || !bytes.Equal(img[0x1100:0x1334], text) || !bytes.Equal(img[0x4000:], data) {
		t.Fatalf("image layout wrong (%d bytes)", len(img))
	}
}

func TestBuildMultibootRejects(t *testing.T) {
	text := []byte{0xf4}
	okSeg := seg{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200000, 0x200000, text, 1}
	for _, tc := range []struct {
		name string
		elf  []byte
		want string
	}{
		{"not ELF", []byte("MZ not an elf file at all, sorry"), "reading ELF"},
		{"ELF32", makeELF(elf.ELFCLASS32, elf.EM_386, elf.ET_EXEC, 0x200000, nil), "reading ELF"},
		{"wrong machine", makeELF(elf.ELFCLASS64, elf.EM_AARCH64, elf.ET_EXEC, 0x200000, []seg{okSeg}), "want ELFCLASS64 EM_X86_64"},
		{"shared object", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_DYN, 0x200000, []seg{okSeg}), "ET_EXEC"},
		{"no segments", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, nil), "no PT_LOAD"},
		{"above 4 GiB", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, []seg{
			okSeg, {elf.PT_LOAD, elf.PF_R, 0xffffff00, 0xffffff00, nil, 0x200},
		}), "above 4 GiB"},
		{"unordered", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, []seg{
			okSeg, {elf.PT_LOAD, elf.PF_R, 0x100000, 0x100000, []byte{1}, 1},
		}), "ascending"},
		{"overlapping", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, []seg{
			{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200000, 0x200000, text, 0x2000},
			{elf.PT_LOAD, elf.PF_R, 0x201000, 0x201000, []byte{1}, 1},
		}), "overlaps"},
		{"not identity", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, []seg{
			{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0xffffffff80200000, 0x200000, text, 1},
		}), "identity"},
		{"too low", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x100000, []seg{
			{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x100000, 0x100000, text, 1},
		}), "1 MiB"},
		{"entry outside", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x300000, []seg{okSeg}), "entry point"},
		{"entry in data", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x201000, []seg{
			okSeg, {elf.PT_LOAD, elf.PF_R | elf.PF_W, 0x201000, 0x201000, []byte{1, 2}, 2},
		}), "entry point"},
		{"filesz > memsz", makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200000, []seg{
			{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200000, 0x200000, []byte{1, 2}, 1},
		}), "exceeds memsz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := BuildMultiboot(tc.elf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzBuildMultiboot checks that arbitrary ELF input gives an error or an
// image whose header a loader accepts.
func FuzzBuildMultiboot(f *testing.F) {
	f.Add(makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200010, []seg{
		{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200000, 0x200000, bytes.Repeat([]byte{0x90}, 64), 64},
		{elf.PT_LOAD, elf.PF_R | elf.PF_W, 0x201000, 0x201000, []byte{1, 2, 3}, 0x100},
	}))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, h, err := BuildMultiboot(data)
		if err != nil {
			return
		}
		got, off, err := multiboot.FindHeader(img)
		if err != nil || off != 0 || got != h {
			t.Fatalf("built image's header: %+v at %d, %v; want %+v", got, off, err, h)
		}
	})
}
