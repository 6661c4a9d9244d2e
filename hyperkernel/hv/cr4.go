// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

const (
	// cr4Always are the CR4 bits every x86-64 processor has.
	cr4Always = vcpu.CR4VME | vcpu.CR4PVI | vcpu.CR4TSD | vcpu.CR4DE | vcpu.CR4PSE | vcpu.CR4PAE | vcpu.CR4MCE |
		vcpu.CR4PGE | vcpu.CR4PCE | vcpu.CR4OSFXSR | vcpu.CR4OSXMMEXCPT
	// cr4Flush are the bits whose change invalidates the TLB (SDM Vol.
	// 3A, 4.10.4.1 "Operations that Invalidate TLBs and Paging-Structure
	// Caches"), with SMAP and PKE, which change what a cached
	// translation allows.
	cr4Flush = vcpu.CR4PSE | vcpu.CR4PAE | vcpu.CR4PGE | vcpu.CR4LA57 | vcpu.CR4PCIDE | vcpu.CR4SMEP |
		vcpu.CR4SMAP | vcpu.CR4PKE
)

// cr4Features ties each optional CR4 bit to the CPUID flag that offers
// it (SDM Vol. 2A, CPUID, Tables 3-10, 3-11 and leaf 7): leaf 1 ECX, or
// leaf 7 EBX or ECX.
func cr4Features(leaf1, leaf7 exits.CPUIDResult) uint64 {
	var bits uint64
	for _, f := range []struct {
		bit uint64
		reg uint32
		has uint32
	}{
		{vcpu.CR4PCIDE, leaf1.ECX, 1 << 17},
		{vcpu.CR4OSXSAVE, leaf1.ECX, 1 << 26},
		{vcpu.CR4FSGSBASE, leaf7.EBX, 1 << 0},
		{vcpu.CR4SMEP, leaf7.EBX, 1 << 7},
		{vcpu.CR4SMAP, leaf7.EBX, 1 << 20},
		{vcpu.CR4UMIP, leaf7.ECX, 1 << 2},
		{vcpu.CR4PKE, leaf7.ECX, 1 << 3},
		{vcpu.CR4LA57, leaf7.ECX, 1 << 16},
		{vcpu.CR4PKS, leaf7.ECX, 1 << 31},
	} {
		if f.reg&f.has != 0 {
			bits |= f.bit
		}
	}
	return bits
}

// cr4Allowed returns the CR4 bits a guest whose CPUID is lookup may set:
// those every processor has and those its CPUID offers. The rest (VMXE
// and SMXE among them: no nested virtualization) take #GP.
func cr4Allowed(lookup func(leaf, sub uint32) exits.CPUIDResult) uint64 {
	return cr4Always | cr4Features(lookup(exits.LeafFeatures, 0), lookup(exits.LeafExtFeatures, 0))
}

// cr4Write reports whether MOV to CR4 may change it from old to v, or
// takes #GP (SDM Vol. 2B, MOV—Move to/from Control Registers,
// "Protected Mode Exceptions" and "64-Bit Mode Exceptions"): a bit the
// guest may not set, PAE cleared or LA57 changed in IA-32e mode, PCIDE
// set outside IA-32e mode or with CR3[11:0] not zero.
func cr4Write(allowed, old, v uint64, longMode bool, cr3 uint64) bool {
	switch {
	case v&^allowed != 0:
		return false
	case longMode && (v&vcpu.CR4PAE == 0 || (v^old)&vcpu.CR4LA57 != 0):
		return false
	case v&vcpu.CR4PCIDE != 0 && old&vcpu.CR4PCIDE == 0 && (!longMode || cr3&0xFFF != 0):
		return false
	}
	return true
}

// decodeMovToCR decodes code as MOV to a control register in the given
// mode (16, 32 or 64 bits), as a processor without decode assists
// leaves the hypervisor to: it returns the control register's number,
// the source register's (0 RAX ... 15 R15), and the instruction's
// length.
func decodeMovToCR(code []byte, mode int) (cr, gpr, length int, err error) {
	in, err := x86asm.Decode(code, mode)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("decoding % x: %w", code, err)
	}
	dst, ok1 := in.Args[0].(x86asm.Reg)
	src, ok2 := in.Args[1].(x86asm.Reg)
	if in.Op != x86asm.MOV || !ok1 || !ok2 || dst < x86asm.CR0 || dst > x86asm.CR15 {
		return 0, 0, 0, fmt.Errorf("%v is no MOV to a control register", in)
	}
	switch {
	case src >= x86asm.RAX && src <= x86asm.R15:
		gpr = int(src - x86asm.RAX)
	case src >= x86asm.EAX && src <= x86asm.R15L:
		gpr = int(src - x86asm.EAX)
	default:
		return 0, 0, 0, fmt.Errorf("%v: source %v is no general register", in, src)
	}
	return int(dst - x86asm.CR0), gpr, in.Len, nil
}
