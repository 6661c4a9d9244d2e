// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// cpuWith is a host CPUID with XSAVE (leaf 1 ECX bit 26) where xsave is
// set, the components xcr0 in leaf 0xD, and AVX at Intel's place.
func cpuWith(xsave bool, xcr0 uint32) func(leaf, sub uint32) exits.CPUIDResult {
	return func(leaf, sub uint32) exits.CPUIDResult {
		switch {
		case leaf == 0:
			return exits.CPUIDResult{EAX: 0x16}
		case leaf == 1 && xsave:
			return exits.CPUIDResult{ECX: 1 << 26}
		case leaf == 0xD && sub == 0 && xsave:
			return exits.CPUIDResult{EAX: xcr0}
		case leaf == 0xD && sub == 2 && xsave && xcr0&4 != 0:
			return exits.CPUIDResult{EAX: 256, EBX: 576}
		}
		return exits.CPUIDResult{}
	}
}

func TestHostXCR0(t *testing.T) {
	for _, c := range []struct {
		name  string
		xsave bool
		xcr0  uint32
		want  uint64
	}{
		{"XSAVE with AVX", true, 7, 3},
		{"XSAVE, x87 and SSE", true, 3, 3},
		{"no XSAVE", false, 0, 0},
		{"XSAVE without SSE state", true, 1, 0},
	} {
		if got := hostXCR0(cpuWith(c.xsave, c.xcr0)); got != c.want {
			t.Errorf("%s: hostXCR0 = %#x, want %#x", c.name, got, c.want)
		}
	}
}

func TestGuestFPU(t *testing.T) {
	policy := func(host func(leaf, sub uint32) exits.CPUIDResult) *exits.CPUIDPolicy {
		p, err := exits.NewCPUIDPolicy(exits.CPUIDConfig{TSCKHz: 1_000_000}, host)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var regs vmx.GuestRegs
	guestFPU(&regs, policy(cpuWith(true, 7)), 3)
	if regs.XSAVESize != 832 || regs.XCR0 != 1 || regs.HostXCR0 != 3 || regs.XCR0Max != 7 || regs.HostFPU == nil {
		t.Errorf("with AVX offered: area %d, XCR0 %#x, host %#x, max %#x; want 832, 1, 3, 7", regs.XSAVESize, regs.XCR0, regs.HostXCR0, regs.XCR0Max)
	}
	for name, c := range map[string]struct {
		host func(leaf, sub uint32) exits.CPUIDResult
		xcr0 uint64
	}{
		"no XSAVE":          {cpuWith(false, 0), 0},
		"host XCR0 not set": {cpuWith(true, 7), 0},
	} {
		regs := vmx.GuestRegs{XCR0: 9, XSAVESize: 9}
		guestFPU(&regs, policy(c.host), c.xcr0)
		if regs.FPU == nil || regs.HostFPU == nil || regs.XSAVESize != 0 || regs.XCR0 != 0 || regs.HostXCR0 != 0 {
			t.Errorf("%s: %+v, want an FXSAVE image and no XCR0 switching", name, regs)
		}
	}
}

// pkuCPU is cpuWith(true, 0x207) with protection keys: PKU in leaf 7 and
// the PKRU component at Intel's place.
func pkuCPU(leaf, sub uint32) exits.CPUIDResult {
	switch {
	case leaf == 7 && sub == 0:
		return exits.CPUIDResult{ECX: 1 << 3}
	case leaf == 0xD && sub == 9:
		return exits.CPUIDResult{EAX: 8, EBX: 2688}
	}
	return cpuWith(true, 0x207)(leaf, sub)
}

// TestGuestPKRU checks that a vCPU gets its own PKRU, switched by the
// entry routine, exactly where the CPUID offers protection keys, that a
// guest's PKRU travels with its state, and that a host has PKU only with
// CPUID's flag.
func TestGuestPKRU(t *testing.T) {
	if !hasPKU(pkuCPU) || hasPKU(cpuWith(true, 7)) {
		t.Fatalf("hasPKU: %v with the flag, %v without", hasPKU(pkuCPU), hasPKU(cpuWith(true, 7)))
	}
	pksCPU := func(leaf, sub uint32) exits.CPUIDResult {
		if leaf == 7 && sub == 0 {
			return exits.CPUIDResult{ECX: 1 << 31}
		}
		return cpuWith(true, 3)(leaf, sub)
	}
	if !hasPKS(pksCPU) || hasPKS(pkuCPU) {
		t.Fatalf("hasPKS: %v with the flag, %v without", hasPKS(pksCPU), hasPKS(pkuCPU))
	}
	for _, c := range []struct {
		name    string
		cfg     exits.CPUIDConfig
		switch_ uint32
		size    int
	}{
		{"PKU offered", exits.CPUIDConfig{TSCKHz: 1_000_000, PKU: true}, 1, 2696},
		{"PKU not asked for", exits.CPUIDConfig{TSCKHz: 1_000_000}, 0, 832},
	} {
		p, err := exits.NewCPUIDPolicy(c.cfg, pkuCPU)
		if err != nil {
			t.Fatal(err)
		}
		regs := vmx.GuestRegs{PKRU: 0x55555554, SwitchPKRU: 1}
		guestFPU(&regs, p, 3)
		if regs.SwitchPKRU != c.switch_ || regs.PKRU != 0 || regs.XSAVESize != c.size {
			t.Errorf("%s: SwitchPKRU %d, PKRU %#x, XSAVE area %d; want %d, 0 (reset), %d", c.name, regs.SwitchPKRU, regs.PKRU, regs.XSAVESize, c.switch_, c.size)
		}
	}
}
