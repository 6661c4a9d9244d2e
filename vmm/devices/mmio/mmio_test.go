// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mmio

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/vmx"
)

type flat []byte

func (m flat) ReadAt(p []byte, a uint64) error {
	if a > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-a {
		return devices.ErrBadAddress
	}
	copy(p, m[a:])
	return nil
}

func (m flat) WriteAt(p []byte, a uint64) error {
	if a > uint64(len(m)) || uint64(len(p)) > uint64(len(m))-a {
		return devices.ErrBadAddress
	}
	copy(m[a:], p)
	return nil
}

type recDev struct {
	off   uint64
	size  int
	value uint64
	write bool
}

func (d *recDev) ReadMMIO(off uint64, size int) uint64 {
	d.off, d.size, d.write = off, size, false
	return 0x1122334455667788
}

func (d *recDev) WriteMMIO(off uint64, size int, v uint64) {
	d.off, d.size, d.value, d.write = off, size, v, true
}

func TestEmulate(t *testing.T) {
	for _, c := range []struct {
		name   string
		code   []byte
		setup  func(r *vmx.GuestRegs)
		write  bool
		size   int
		value  uint64 // written to the device
		check  func(r *vmx.GuestRegs) bool
		length int
	}{
		{"mov eax,[rdi+disp32] (Linux apic read)", []byte{0x8B, 0x87, 0x00, 0xD0, 0x5F, 0xFF}, func(r *vmx.GuestRegs) { r.RAX = ^uint64(0) }, false, 4, 0,
			func(r *vmx.GuestRegs) bool { return r.RAX == 0x55667788 }, 6},
		{"mov [rdi+disp32],esi (Linux apic write)", []byte{0x89, 0xB7, 0x00, 0xD0, 0x5F, 0xFF}, func(r *vmx.GuestRegs) { r.RSI = 0xAAAA0000_000000B0 }, true, 4, 0xB0, nil, 6},
		{"mov rax,[rbx]", []byte{0x48, 0x8B, 0x03}, nil, false, 8, 0, func(r *vmx.GuestRegs) bool { return r.RAX == 0x1122334455667788 }, 3},
		{"mov [rbx],r9w", []byte{0x66, 0x44, 0x89, 0x0B}, func(r *vmx.GuestRegs) { r.R9 = 0x12345 }, true, 2, 0x2345, nil, 4},
		{"mov byte [rbx],0x7f", []byte{0xC6, 0x03, 0x7F}, nil, true, 1, 0x7F, nil, 3},
		{"mov dword [rbx],imm32", []byte{0xC7, 0x03, 0x78, 0x56, 0x34, 0x12}, nil, true, 4, 0x12345678, nil, 6},
		{"mov cl,[rbx]", []byte{0x8A, 0x0B}, func(r *vmx.GuestRegs) { r.RCX = 0xFFFF }, false, 1, 0, func(r *vmx.GuestRegs) bool { return r.RCX == 0xFF88 }, 2},
	} {
		var regs vmx.GuestRegs
		var rsp uint64
		if c.setup != nil {
			c.setup(&regs)
		}
		d := &recDev{}
		n, err := Emulate(c.code, d, 0x20, &regs, &rsp)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if n != c.length || d.off != 0x20 || d.size != c.size || d.write != c.write || c.write && d.value != c.value {
			t.Errorf("%s: length %d, access %+v", c.name, n, d)
		}
		if c.check != nil && !c.check(&regs) {
			t.Errorf("%s: registers %+v", c.name, regs)
		}
	}
}

func TestRefused(t *testing.T) {
	for name, code := range map[string][]byte{
		"add [rbx],eax":  {0x01, 0x03},
		"movsb":          {0xA4},
		"truncated":      {0x8B},
		"mov eax,ebx":    {0x89, 0xD8},
		"mov ah,[rbx]":   {0x8A, 0x23},
		"empty":          {},
		"mov [rbx],ymm?": {0xC5, 0xFD, 0x7F, 0x03},
	} {
		var regs vmx.GuestRegs
		var rsp uint64
		if _, err := Emulate(code, &recDev{}, 0, &regs, &rsp); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTranslate(t *testing.T) {
	mem := make(flat, 1<<20)
	le := binary.LittleEndian
	// PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 (2 MiB page) and PT 0x4000.
	le.PutUint64(mem[0x1000+8*511:], 0x2000|1)        // va bit 47.. index 511
	le.PutUint64(mem[0x2000+8*510:], 0x3000|1)        // PDPT index 510
	le.PutUint64(mem[0x3000+8*0:], 0x200000|1|1<<7)   // 2 MiB page
	le.PutUint64(mem[0x3000+8*1:], 0x4000|1)          // 4 KiB table
	le.PutUint64(mem[0x4000+8*5:], 0x7000|1)          // page 5 -> 0x7000
	le.PutUint64(mem[0x2000+8*1:], 0x40000000|1|1<<7) // 1 GiB page at index 1
	base := uint64(0xFFFFFFFF80000000)                // index 511, 510
	for va, want := range map[uint64]uint64{
		base + 0x1234:            0x201234,
		base + 0x200000 + 0x5ABC: 0x7ABC,
		0xFFFF800040000123:       0x40000123&^0 | 0, // PML4 index 256 not present: checked below
	} {
		got, err := Translate(mem, 0x1000, va)
		if va == 0xFFFF800040000123 {
			if !errors.Is(err, ErrPageFault) {
				t.Errorf("unmapped %#x: %#x, %v", va, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Translate(%#x) = %#x, %v; want %#x", va, got, err, want)
		}
	}
	if _, err := Translate(mem, 0x1000, base+0x200000+0x6000); !errors.Is(err, ErrPageFault) {
		t.Errorf("not-present PTE: %v", err)
	}
	le.PutUint64(mem[0x1000+8*511:], 0x80000000|1) // PDPT beyond memory
	if _, err := Translate(mem, 0x1000, base); !errors.Is(err, devices.ErrBadAddress) {
		t.Errorf("table outside memory: %v", err)
	}
}

func FuzzEmulate(f *testing.F) {
	f.Add([]byte{0x8B, 0x87, 0x00, 0xD0, 0x5F, 0xFF})
	f.Add([]byte{0x66, 0x44, 0x89, 0x0B})
	f.Fuzz(func(t *testing.T, code []byte) {
		var regs vmx.GuestRegs
		var rsp uint64
		d := &recDev{}
		n, err := Emulate(code, d, 0, &regs, &rsp)
		if err == nil && (n <= 0 || n > len(code) || n > 15) {
			t.Fatalf("length %d for % x", n, code)
		}
	})
}

func TestBus(t *testing.T) {
	var b Bus
	a, c := &recDev{}, &recDev{}
	if err := b.Register(0xFEC00000, 0x1000, "ioapic", a); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0xFEC00800, 0x1000, "overlap", c); err == nil {
		t.Error("overlapping window accepted")
	}
	if err := b.Register(0xFFFFFFFFFFFFF000, 0x2000, "wraps", c); err == nil {
		t.Error("wrapping window accepted")
	}
	if err := b.Register(0xD0000000, 0x200, "virtio", c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gpa uint64
		dev *recDev
		off uint64
	}{{0xFEC00010, a, 0x10}, {0xD00001FF, c, 0x1FF}, {0xD0000200, nil, 0}, {0xFEBFFFFF, nil, 0}} {
		d, off, ok := b.Lookup(tc.gpa)
		if tc.dev == nil {
			if ok {
				t.Errorf("%#x: found a device", tc.gpa)
			}
			continue
		}
		if !ok || d != tc.dev || off != tc.off {
			t.Errorf("%#x: %v at %#x", tc.gpa, ok, off)
		}
	}
}
