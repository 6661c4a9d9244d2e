// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/big-iron/big-iron/vmm/exits"
)

// CR4 bits (Intel SDM Vol. 3A, 2.5, Figure 2-7).
const (
	cr4VME        = 1 << 0
	cr4PVI        = 1 << 1
	cr4TSD        = 1 << 2
	cr4DE         = 1 << 3
	cr4PSE        = 1 << 4
	cr4PAE        = 1 << 5
	cr4MCE        = 1 << 6
	cr4PGE        = 1 << 7
	cr4PCE        = 1 << 8
	cr4OSFXSR     = 1 << 9
	cr4OSXMMEXCPT = 1 << 10
	cr4UMIP       = 1 << 11
	cr4LA57       = 1 << 12
	cr4FSGSBASE   = 1 << 16
	cr4PCIDE      = 1 << 17
	cr4OSXSAVE    = 1 << 18
	cr4SMEP       = 1 << 20
	cr4SMAP       = 1 << 21
	cr4PKE        = 1 << 22
	cr4PKS        = 1 << 24

	// cr4Always are the bits every x86-64 processor has.
	cr4Always = cr4VME | cr4PVI | cr4TSD | cr4DE | cr4PSE | cr4PAE | cr4MCE | cr4PGE | cr4PCE |
		cr4OSFXSR | cr4OSXMMEXCPT
	// cr4Flush are the bits whose change invalidates the TLB (SDM Vol.
	// 3A, 4.10.4.1 "Operations that Invalidate TLBs and Paging-Structure
	// Caches"), with SMAP and PKE, which change what a cached
	// translation allows.
	cr4Flush = cr4PSE | cr4PAE | cr4PGE | cr4LA57 | cr4PCIDE | cr4SMEP | cr4SMAP | cr4PKE
)

// cr4Feature ties a CR4 bit to the CPUID feature flag that offers it
// (SDM Vol. 2A, CPUID, Tables 3-10, 3-11 and leaf 7).
var cr4Feature = []struct {
	bit      uint64
	leaf     uint32
	reg      byte // 'b', 'c' or 'd'
	cpuidBit uint32
}{
	{cr4UMIP, exits.LeafExtFeatures, 'c', 1 << 2},
	{cr4LA57, exits.LeafExtFeatures, 'c', 1 << 16},
	{cr4FSGSBASE, exits.LeafExtFeatures, 'b', 1 << 0},
	{cr4PCIDE, exits.LeafFeatures, 'c', 1 << 17},
	{cr4OSXSAVE, exits.LeafFeatures, 'c', 1 << 26},
	{cr4SMEP, exits.LeafExtFeatures, 'b', 1 << 7},
	{cr4SMAP, exits.LeafExtFeatures, 'b', 1 << 20},
	{cr4PKE, exits.LeafExtFeatures, 'c', 1 << 3},
	{cr4PKS, exits.LeafExtFeatures, 'c', 1 << 31},
}

// cr4Allowed returns the CR4 bits a guest whose CPUID is lookup may set:
// those every processor has and those its CPUID offers. The rest (VMXE
// and SMXE among them: no nested virtualization) take #GP.
func cr4Allowed(lookup func(leaf, sub uint32) exits.CPUIDResult) uint64 {
	allowed := uint64(cr4Always)
	for _, f := range cr4Feature {
		r := lookup(f.leaf, 0)
		v := map[byte]uint32{'b': r.EBX, 'c': r.ECX, 'd': r.EDX}[f.reg]
		if v&f.cpuidBit != 0 {
			allowed |= f.bit
		}
	}
	return allowed
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
	case longMode && (v&cr4PAE == 0 || (v^old)&cr4LA57 != 0):
		return false
	case v&cr4PCIDE != 0 && old&cr4PCIDE == 0 && (!longMode || cr3&0xFFF != 0):
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
