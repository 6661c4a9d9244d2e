// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import "testing"

func TestIOPM(t *testing.T) {
	var m IOPM
	m.InterceptAll()
	if !m.Intercepted(0x3F8, 1) {
		t.Error("all-intercept map passes 0x3F8")
	}
	m.PassPort(0x3F8) // byte 0x7F, bit 0
	if m[0x7F] != 0xFE || m.Intercepted(0x3F8, 1) {
		t.Errorf("byte 0x7F = %#x", m[0x7F])
	}
	if !m.Intercepted(0x3F8, 2) { // 0x3F9 is still intercepted
		t.Error("word access at 0x3F8 passes")
	}
	m.PassPort(0xCFF) // byte 0x19F, bit 7
	if m[0x19F] != 0x7F {
		t.Errorf("byte 0x19F = %#x", m[0x19F])
	}
	// A word at 0xFFFF also reads bit 0x10000: byte 0x2000, in the
	// third page.
	m.PassPort(0xFFFF)
	if m[0x1FFF] != 0x7F || !m.Intercepted(0xFFFF, 2) || m.Intercepted(0xFFFF, 1) {
		t.Errorf("byte 0x1FFF = %#x", m[0x1FFF])
	}
	m[0x2000] = 0
	if m.Intercepted(0xFFFF, 2) {
		t.Error("word at 0xFFFF intercepted with bits 0xFFFF and 0x10000 clear")
	}
	if m.Intercepted(0xFFFE, 4) != true { // 0xFFFE is still set
		t.Error("dword at 0xFFFE passes")
	}
	m.InterceptPort(0x3F8)
	if m[0x7F] != 0xFF {
		t.Errorf("byte 0x7F = %#x after InterceptPort", m[0x7F])
	}
}

func TestMSRPM(t *testing.T) {
	var m MSRPM
	m.InterceptAll()
	for _, tc := range []struct {
		msr  uint32
		byt  int
		mask byte // read and write bits
	}{
		{0x10, 0x004, 0x03},        // TSC: bits 32, 33
		{0x1FFF, 0x7FF, 0xC0},      // last of range 0: bits 0x3FFE, 0x3FFF
		{0xC0000080, 0x820, 0x03},  // EFER: range 1, bit 2*0x80 = 256
		{0xC0000102, 0x840, 0x30},  // KERNEL_GS_BASE: bit 2*0x102 = 0x204
		{0xC0010114, 0x1045, 0x03}, // VM_CR: range 2, bit 2*0x114 = 0x228
	} {
		if err := m.PassMSR(tc.msr); err != nil {
			t.Fatal(err)
		}
		if got := m[tc.byt]; got != 0xFF&^tc.mask {
			t.Errorf("MSR %#x: byte %#x = %#x, want %#x", tc.msr, tc.byt, got, 0xFF&^tc.mask)
		}
		if r, w := m.Intercepts(tc.msr); r || w {
			t.Errorf("MSR %#x still intercepted (%v, %v)", tc.msr, r, w)
		}
	}
	if err := m.SetMSR(0xC0000080, false, true); err != nil || m[0x820] != 0xFE {
		t.Errorf("EFER write-only intercept: byte %#x, %v", m[0x820], err)
	}
	for _, msr := range []uint32{0x2000, 0x40000000, 0xC0002000, 0xC0012000} {
		if err := m.PassMSR(msr); err == nil {
			t.Errorf("MSR %#x outside the ranges passed", msr)
		}
		if r, w := m.Intercepts(msr); !r || !w {
			t.Errorf("MSR %#x outside the ranges not intercepted", msr)
		}
	}
	for i := 0x1800; i < MSRPMSize; i++ {
		if m[i] != 0xFF {
			t.Fatalf("reserved byte %#x touched", i)
		}
	}
}
