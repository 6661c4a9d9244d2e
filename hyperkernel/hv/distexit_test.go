// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "testing"

func TestDistICR(t *testing.T) {
	for _, c := range []struct {
		name    string
		write   uint64
		pending bool
		startup bool
		dest    uint32
		vector  uint8
	}{
		{"fixed IPI to vCPU 1", 1<<32 | 0x41, true, false, 1, 0x41},
		{"fixed IPI, level and trigger bits", 3<<32 | 0xC000 | 0xEC, true, false, 3, 0xEC},
		{"startup IPI at 0x8000", 1<<32 | 0x4608, true, true, 1, 0x08},
		{"INIT", 1<<32 | 0xC500, false, false, 0, 0},
		{"illegal vector 3", 1<<32 | 0x03, false, false, 0, 0},
		{"all-excluding-self shorthand", 3<<18 | 0x41, false, false, 0, 0},
		{"NMI", 1<<32 | 4<<8, false, false, 0, 0},
	} {
		var icr distICR
		if !icr.WriteMSR(0, 0x830, c.write) {
			t.Errorf("%s: the write faulted", c.name)
		}
		if icr.pending != c.pending || icr.pending && (icr.startup != c.startup || icr.dest != c.dest || icr.vector != c.vector) {
			t.Errorf("%s: %+v, want pending %v startup %v dest %d vector %#x", c.name, icr, c.pending, c.startup, c.dest, c.vector)
		}
	}
	var icr distICR
	if v, ok := icr.ReadMSR(0, 0x830); !ok || v != 0 {
		t.Errorf("ICR read %#x %v", v, ok)
	}
}

func TestSetIn(t *testing.T) {
	for _, c := range []struct {
		size uint8
		v    uint32
		want uint64
	}{
		{1, 0x12345678, 0xFFFFFFFF_FFFFFF78},
		{2, 0x12345678, 0xFFFFFFFF_FFFF5678},
		{4, 0x12345678, 0x12345678}, // zero-extended
	} {
		rax := ^uint64(0)
		setIn(&rax, c.size, c.v)
		if rax != c.want {
			t.Errorf("IN of %d bytes: RAX %#x, want %#x", c.size, rax, c.want)
		}
	}
}
