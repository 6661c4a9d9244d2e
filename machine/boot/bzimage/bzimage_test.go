// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package bzimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// errBadAddress stands for the hypervisor's error for an access outside
// guest memory.
var errBadAddress = errors.New("guest-physical address outside guest memory")

// flatMemory is guest memory as one slice.
type flatMemory []byte

func (m flatMemory) ReadAt(p []byte, gpa uint64) error {
	if gpa > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-gpa {
		return errBadAddress
	}
	copy(p, m[gpa:])
	return nil
}

func (m flatMemory) WriteAt(p []byte, gpa uint64) error {
	if gpa > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-gpa {
		return errBadAddress
	}
	copy(m[gpa:], p)
	return nil
}

// synthetic builds a bzImage with setup sectors, a header and a
// recognizable protected-mode kernel.
func synthetic(kernel []byte) []byte {
	const sects = 3
	img := make([]byte, (sects+1)*512+len(kernel))
	le := binary.LittleEndian
	img[offSetupSects] = sects
	le.PutUint16(img[offBootFlag:], 0xAA55)
	img[offJump], img[offJump+1] = 0xEB, 0x66 // header ends at 0x268
	le.PutUint32(img[offHeader:], headerMagic)
	le.PutUint16(img[offVersion:], 0x020F)
	le.PutUint32(img[offInitrdAddrMax:], 0x7FFFFFFF)
	le.PutUint32(img[offKernelAlignment:], 0x200000)
	img[offRelocatable] = 1
	le.PutUint16(img[offXLoadFlags:], 0x7F)
	le.PutUint32(img[offCmdlineSize:], 2047)
	le.PutUint64(img[offPrefAddress:], 0x1000000)
	le.PutUint32(img[offInitSize:], 4<<20)
	copy(img[(sects+1)*512:], kernel)
	return img
}

func guestMap(size uint64) memmap.Map {
	return memmap.Map{
		{Start: 0, Size: 0x9FC00, Type: memmap.Usable},
		{Start: 0x9FC00, Size: 0x100000 - 0x9FC00, Type: memmap.Reserved},
		{Start: 0x100000, Size: size - 0x100000, Type: memmap.Usable},
	}
}

func TestLoad(t *testing.T) {
	kernel := bytes.Repeat([]byte("KERNEL.."), 1000)
	initrd := bytes.Repeat([]byte("cpio"), 3000)
	mem := make(flatMemory, 64<<20)
	e, err := Load(mem, Config{Kernel: synthetic(kernel), Initrd: initrd, Cmdline: "console=ttyS0", Memory: guestMap(64 << 20), RSDP: 0xE0000})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if e.RIP != 0x1000200 || e.RSI != ZeroPageAddr || e.CR3 != PML4Addr || e.CS != 0x10 || e.DS != 0x18 {
		t.Errorf("entry %+v", e)
	}
	if !bytes.Equal(mem[0x1000000:0x1000000+len(kernel)], kernel) {
		t.Error("kernel not at pref_address")
	}
	if e.InitrdAddr%4096 != 0 || e.InitrdAddr+uint64(len(initrd)) > 64<<20 || !bytes.Equal(mem[e.InitrdAddr:e.InitrdAddr+uint64(len(initrd))], initrd) {
		t.Errorf("initrd at %#x not intact", e.InitrdAddr)
	}
	zp := mem[ZeroPageAddr : ZeroPageAddr+4096]
	if le.Uint32(zp[offHeader:]) != headerMagic || zp[offTypeOfLoader] != 0xFF || zp[offLoadFlags]&loadedHigh == 0 {
		t.Error("setup header not copied into the zero page, or loader fields unset")
	}
	if le.Uint32(zp[offRamdiskImage:]) != uint32(e.InitrdAddr) || le.Uint32(zp[offRamdiskSize:]) != uint32(len(initrd)) {
		t.Error("ramdisk fields wrong")
	}
	if le.Uint64(zp[zpACPIRSDPAddr:]) != 0xE0000 {
		t.Error("RSDP address not passed")
	}
	if zp[zpE820Entries] != 3 || le.Uint64(zp[zpE820Table+40:]) != 0x100000 || le.Uint32(zp[zpE820Table+20+16:]) != uint32(memmap.Reserved) {
		t.Errorf("E820 table wrong: %d entries", zp[zpE820Entries])
	}
	ptr := le.Uint32(zp[offCmdLinePtr:])
	if got := string(mem[ptr : ptr+14]); got != "console=ttyS0\x00" {
		t.Errorf("command line %q", got)
	}
	// The page tables map every 2 MiB page below 4 GiB to itself.
	walk := func(va uint64) uint64 {
		pml4e := le.Uint64(mem[e.CR3+8*(va>>39&511):])
		pdpte := le.Uint64(mem[pml4e&^0xFFF+8*(va>>30&511):])
		pde := le.Uint64(mem[pdpte&^0xFFF+8*(va>>21&511):])
		if pde&0x81 != 0x81 {
			t.Fatalf("no 2 MiB page for %#x", va)
		}
		return pde&^0x1FFFFF&^(1<<63) | va&0x1FFFFF
	}
	for _, va := range []uint64{0, 0x1000200, 0x3FFFFFFF, 0x40000000, 0xFEE00000, 0xFFFFFFFF} {
		if pa := walk(va); pa != va {
			t.Errorf("%#x maps to %#x", va, pa)
		}
	}
	if got := le.Uint64(mem[GDTAddr+CodeSelector:]); got>>53&1 != 1 || got>>47&1 != 1 {
		t.Errorf("code descriptor %#x is not a present 64-bit segment", got)
	}
}

func TestRefusals(t *testing.T) {
	good := synthetic([]byte("k"))
	mut := func(f func([]byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	le := binary.LittleEndian
	for name, img := range map[string][]byte{
		"short":          good[:0x200],
		"no magic":       mut(func(b []byte) { b[offHeader] = 0 }),
		"old protocol":   mut(func(b []byte) { le.PutUint16(b[offVersion:], 0x020A) }),
		"32-bit only":    mut(func(b []byte) { le.PutUint16(b[offXLoadFlags:], 0) }),
		"setup too long": mut(func(b []byte) { b[offSetupSects] = 200 }),
		"no init_size":   mut(func(b []byte) { le.PutUint32(b[offInitSize:], 0) }),
	} {
		if _, err := Parse(img); !errors.Is(err, ErrNotBzImage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	mem := make(flatMemory, 32<<20)
	if _, err := Load(mem, Config{Kernel: good, Memory: guestMap(16 << 20)}); err == nil {
		t.Error("a kernel that does not fit in memory was loaded")
	}
	if _, err := Load(mem, Config{Kernel: good, Memory: guestMap(32 << 20), Cmdline: string(make([]byte, 3000))}); err == nil {
		t.Error("an over-long command line was accepted")
	}
	if _, err := Load(mem, Config{Kernel: good, Memory: guestMap(32 << 20), Initrd: make([]byte, 20<<20)}); err == nil {
		t.Error("an initramfs overlapping the kernel was accepted")
	}
}

// TestDebianKernel parses a real kernel where one is at hand.
func TestDebianKernel(t *testing.T) {
	path := os.Getenv("BIGIRON_VMLINUZ")
	if path == "" {
		_, file, _, _ := runtime.Caller(0)
		path = filepath.Join(filepath.Dir(file), "..", "..", "build", "guest", "vmlinuz")
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no kernel to parse: %v (make guest-kernel, or set BIGIRON_VMLINUZ)", err)
	}
	h, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: boot protocol %d.%02d, %d setup sectors, pref_address %#x, init_size %d MiB, alignment %#x, relocatable %v",
		path, h.Version>>8, h.Version&0xFF, h.SetupSectors, h.PrefAddress, h.InitSize>>20, h.KernelAlignment, h.Relocatable)
	mem := make(flatMemory, 256<<20)
	if _, err := Load(mem, Config{Kernel: img, Initrd: make([]byte, 8<<20), Cmdline: "console=ttyS0", Memory: guestMap(256 << 20)}); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(synthetic([]byte("kernel")))
	f.Fuzz(func(t *testing.T, img []byte) {
		h, err := Parse(img)
		if err != nil {
			return
		}
		if h.KernelOffset >= len(img) || h.InitSize == 0 {
			t.Fatalf("accepted header %+v for %d bytes", h, len(img))
		}
		mem := make(flatMemory, 20<<20)
		Load(mem, Config{Kernel: img, Memory: guestMap(20 << 20)}) // must not panic
	})
}

// TestE820AboveTheHole: a guest with RAM above 4 GiB (5 GiB: [0, 3 GiB)
// and [4 GiB, 6 GiB), the MMIO hole reserved) gets its whole map in the
// zero page, entry for entry, and the kernel goes in the low range.
func TestE820AboveTheHole(t *testing.T) {
	m := append(guestMap(3<<30),
		memmap.Region{Start: 3 << 30, Size: 1 << 30, Type: memmap.Reserved},
		memmap.Region{Start: 4 << 30, Size: 2 << 30, Type: memmap.Usable})
	mem := make(flatMemory, 32<<20)
	if _, err := Load(mem, Config{Kernel: synthetic([]byte("KERNEL")), Memory: m}); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	zp := mem[ZeroPageAddr : ZeroPageAddr+4096]
	if int(zp[zpE820Entries]) != len(m) {
		t.Fatalf("%d E820 entries, want %d", zp[zpE820Entries], len(m))
	}
	for i, r := range m {
		ent := zp[zpE820Table+20*i:]
		got := memmap.Region{Start: le.Uint64(ent), Size: le.Uint64(ent[8:]), Type: memmap.RegionType(le.Uint32(ent[16:]))}
		if got != r {
			t.Errorf("E820 entry %d: %v, want %v", i, got, r)
		}
	}
}
