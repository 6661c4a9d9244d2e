// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// hostXCR0 is the XCR0 the hyperkernel gives each core that runs guests
// (vmx.EnableXSAVE): x87 and SSE, the state it switches with FXSAVE,
// where the processor has XSAVE (CPUID.1:ECX.XSAVE, and leaf 0xD
// enumerating both components; Intel SDM Vol. 1, 13.2); 0 where it has
// not, and guests' FPU state is switched with FXSAVE alone. The Go
// runtime, which enabled AVX only if XCR0 had it, keeps to SSE.
func hostXCR0(cpuid func(leaf, sub uint32) exits.CPUIDResult) uint64 {
	const x87SSE = vcpu.XCR0X87 | vcpu.XCR0SSE
	if cpuid(0, 0).EAX < exits.LeafXSAVE || cpuid(exits.LeafFeatures, 0).ECX&exits.Leaf1ECXXSAVE == 0 {
		return 0
	}
	if uint64(cpuid(exits.LeafXSAVE, 0).EAX)&x87SSE != x87SSE {
		return 0
	}
	return x87SSE
}

// hasPKU reports whether the processor has protection keys for user
// pages (CPUID.7.0:ECX.PKU; Intel SDM Vol. 3A, 4.6.2).
func hasPKU(cpuid func(leaf, sub uint32) exits.CPUIDResult) bool {
	return cpuid(0, 0).EAX >= exits.LeafExtFeatures && cpuid(exits.LeafExtFeatures, 0).ECX&exits.Leaf7ECXPKU != 0
}

// hasPKS reports whether the processor has protection keys for
// supervisor pages (CPUID.7.0:ECX.PKS; IA32_PKRS).
func hasPKS(cpuid func(leaf, sub uint32) exits.CPUIDResult) bool {
	return cpuid(0, 0).EAX >= exits.LeafExtFeatures && cpuid(exits.LeafExtFeatures, 0).ECX&exits.Leaf7ECXPKS != 0
}

// guestFPU gives a vCPU the FPU area its CPUID asks for, and its own PKRU
// (reset, 0) where the CPUID offers protection keys: an XSAVE area
// for every component the policy offers beyond SSE, its XCR0 switched at
// each entry and exit, or an FXSAVE image where XSAVE is hidden (or the
// area would not travel in a vcpu.State); the host's image either way.
func guestFPU(regs *vmx.GuestRegs, policy *exits.CPUIDPolicy, host uint64) {
	regs.HostFPU = vmx.NewFXArea()
	regs.PKRU, regs.SwitchPKRU = 0, 0
	if policy.PKU() {
		regs.SwitchPKRU = 1
	}
	if x := policy.XCR0Offered(); x != 0 && host != 0 && policy.XSAVESize(x) <= vcpu.MaxXSAVE {
		regs.UseXSAVE(policy.XSAVESize(x), x, host)
		return
	}
	regs.FPU = vmx.NewFXArea()
	regs.XCR0, regs.HostXCR0, regs.XSAVESize, regs.XCR0Max = 0, 0, 0, 0
}
