// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// A guest's CR4 takes what its CPUID offers: XSAVE hidden, OSXSAVE takes
// #GP, as on a processor without it.
func TestCR4AllowedFollowsCPUID(t *testing.T) {
	cpuid := map[uint32]exits.CPUIDResult{
		exits.LeafFeatures:    {ECX: 1 << 17},             // PCID, no XSAVE
		exits.LeafExtFeatures: {EBX: 1<<7 | 1<<20 | 1<<0}, // SMEP, SMAP, FSGSBASE
	}
	allowed := cr4Allowed(func(leaf, _ uint32) exits.CPUIDResult { return cpuid[leaf] })
	for _, c := range []struct {
		name string
		bit  uint64
		want bool
	}{
		{"PAE", vcpu.CR4PAE, true}, {"PGE", vcpu.CR4PGE, true}, {"OSFXSR", vcpu.CR4OSFXSR, true},
		{"PCIDE", vcpu.CR4PCIDE, true}, {"SMEP", vcpu.CR4SMEP, true}, {"SMAP", vcpu.CR4SMAP, true}, {"FSGSBASE", vcpu.CR4FSGSBASE, true},
		{"OSXSAVE", vcpu.CR4OSXSAVE, false}, {"PKE", vcpu.CR4PKE, false}, {"LA57", vcpu.CR4LA57, false}, {"UMIP", vcpu.CR4UMIP, false},
		{"VMXE", 1 << 13, false}, {"SMXE", 1 << 14, false}, {"reserved 15", 1 << 15, false}, {"reserved 63", 1 << 63, false},
	} {
		if got := allowed&c.bit != 0; got != c.want {
			t.Errorf("%s allowed %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCR4WriteRules(t *testing.T) {
	const all = ^uint64(0)
	lm := uint64(vcpu.CR4PAE | vcpu.CR4PGE)
	for _, c := range []struct {
		name     string
		allowed  uint64
		old, v   uint64
		longMode bool
		cr3      uint64
		want     bool
	}{
		{"toggle PGE", all, lm, lm &^ vcpu.CR4PGE, true, 0x1000, true},
		{"a bit not offered", cr4Always, lm, lm | vcpu.CR4OSXSAVE, true, 0x1000, false},
		{"clear PAE in long mode", all, lm, vcpu.CR4PGE, true, 0x1000, false},
		{"clear PAE outside it", all, lm, vcpu.CR4PGE, false, 0x1000, true},
		{"set LA57 in long mode", all, lm, lm | vcpu.CR4LA57, true, 0x1000, false},
		{"PCIDE with CR3[11:0] 0", all, lm, lm | vcpu.CR4PCIDE, true, 0x1000, true},
		{"PCIDE with a PCID in CR3", all, lm, lm | vcpu.CR4PCIDE, true, 0x1001, false},
		{"PCIDE outside long mode", all, vcpu.CR4PAE, vcpu.CR4PAE | vcpu.CR4PCIDE, false, 0, false},
		{"PCIDE kept", all, lm | vcpu.CR4PCIDE, lm | vcpu.CR4PCIDE | vcpu.CR4SMEP, true, 0x1005, true},
	} {
		if got := cr4Write(c.allowed, c.old, c.v, c.longMode, c.cr3); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDecodeMovToCR(t *testing.T) {
	for _, c := range []struct {
		code            []byte
		mode            int
		cr, gpr, length int
		bad             bool
	}{
		{[]byte{0x0F, 0x22, 0xE0}, 64, 4, 0, 3, false},        // mov %rax,%cr4
		{[]byte{0x41, 0x0F, 0x22, 0xE5}, 64, 4, 13, 4, false}, // mov %r13,%cr4
		{[]byte{0x0F, 0x22, 0xE3, 0x90}, 32, 4, 3, 3, false},  // mov %ebx,%cr4; nop
		{[]byte{0x0F, 0x22, 0xC1}, 64, 0, 1, 3, false},        // mov %rcx,%cr0
		{[]byte{0x0F, 0x20, 0xE0}, 64, 0, 0, 0, true},         // mov %cr4,%rax
		{[]byte{0x90}, 64, 0, 0, 0, true},                     // nop
		{[]byte{0x0F}, 64, 0, 0, 0, true},                     // truncated
	} {
		cr, gpr, n, err := decodeMovToCR(c.code, c.mode)
		if c.bad {
			if err == nil {
				t.Errorf("% x: decoded as CR%d from %d, want an error", c.code, cr, gpr)
			}
			continue
		}
		if err != nil || cr != c.cr || gpr != c.gpr || n != c.length {
			t.Errorf("% x: CR%d from %d, %d bytes, %v; want CR%d from %d, %d bytes", c.code, cr, gpr, n, err, c.cr, c.gpr, c.length)
		}
	}
}

// FuzzDecodeMovToCR feeds the decoder what a guest may have at its RIP
// when a CR write exits: it never panics, and what it accepts names a
// control register, a general register and a length within the bytes.
func FuzzDecodeMovToCR(f *testing.F) {
	f.Add([]byte{0x0F, 0x22, 0xE0}, 64)
	f.Add([]byte{0x41, 0x0F, 0x22, 0xE5}, 64)
	f.Add([]byte{0x0F, 0x22, 0xE3}, 32)
	f.Add([]byte{0xF0, 0x0F, 0x22, 0xC0}, 16)
	f.Fuzz(func(t *testing.T, code []byte, mode int) {
		mode = []int{16, 32, 64}[uint(mode)%3]
		if len(code) > 15 {
			code = code[:15]
		}
		cr, gpr, n, err := decodeMovToCR(code, mode)
		if err != nil {
			return
		}
		if cr < 0 || cr > 15 || gpr < 0 || gpr > 15 || n < 2 || n > len(code) {
			t.Fatalf("% x (%d-bit): CR%d from %d, %d bytes", code, mode, cr, gpr, n)
		}
	})
}
