// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import "fmt"

// Control-register, EFER and DR bits the VMRUN checks use (APM Vol. 2,
// 3.1 "System-Control Registers", 3.1.7 "Extended Feature Enable
// Register", 13.1.1 "Debug Registers").
const (
	CR0PE uint64 = 1 << 0
	CR0NW uint64 = 1 << 29
	CR0CD uint64 = 1 << 30
	CR0PG uint64 = 1 << 31

	CR4PAE uint64 = 1 << 5

	EFERSCE   uint64 = 1 << 0
	EFERLME   uint64 = 1 << 8
	EFERLMA   uint64 = 1 << 10
	EFERNXE   uint64 = 1 << 11
	EFERSVME  uint64 = 1 << 12
	EFERLMSLE uint64 = 1 << 13
	EFERFFXSR uint64 = 1 << 14
	EFERTCE   uint64 = 1 << 15
)

// DefaultCR4Allowed is the CR4 bits an AMD64 processor may define: VME,
// PVI, TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT, UMIP, LA57,
// FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP, PKE, CET (APM Vol. 2, 3.1.3).
// Bit 13 (Intel's VMXE) is reserved on AMD.
const DefaultCR4Allowed uint64 = 0x1FFF | 1<<16 | 1<<17 | 1<<18 | 1<<20 | 1<<21 | 1<<22 | 1<<23

// DefaultEFERAllowed is the EFER bits of APM Vol. 2, 3.1.7: SCE, LME,
// LMA, NXE, SVME, LMSLE, FFXSR, TCE.
const DefaultEFERAllowed = EFERSCE | EFERLME | EFERLMA | EFERNXE | EFERSVME | EFERLMSLE | EFERFFXSR | EFERTCE

// Processor is what the VMRUN checks need to know of the processor.
type Processor struct {
	PhysAddrBits uint8  // CPUID Fn8000_0008_EAX[7:0]
	LongMode     bool   // CPUID Fn8000_0001_EDX.LM
	NP           bool   // nested paging
	CR4Allowed   uint64 // CR4 bits the processor implements
	EFERAllowed  uint64 // EFER bits the processor implements
}

// RunState is the part of a VMCB VMRUN checks before it enters a guest.
type RunState struct {
	CR0, CR3, CR4, DR6, DR7, EFER uint64
	CS                            Segment
	VMRUNIntercept                bool
	ASID                          uint32
	IOPMBase, MSRPMBase           uint64
	NestedCtl                     uint64
	EventInj                      Event
}

// RunStateOf reads the checked fields from v.
func RunStateOf(v *VMCB) RunState {
	return RunState{
		CR0: v.Read(SaveCR0), CR3: v.Read(SaveCR3), CR4: v.Read(SaveCR4),
		DR6: v.Read(SaveDR6), DR7: v.Read(SaveDR7), EFER: v.Read(SaveEFER),
		CS:             v.ReadSegment(SegCS),
		VMRUNIntercept: v.Intercepted(InterceptVMRUN),
		ASID:           uint32(v.Read(CtlGuestASID)),
		IOPMBase:       v.Read(CtlIOPMBase), MSRPMBase: v.Read(CtlMSRPMBase),
		NestedCtl: v.Read(CtlNestedCtl),
		EventInj:  Event(v.Read(CtlEventInj)),
	}
}

// Violation is one VMRUN consistency check that fails, named by its rule.
type Violation struct {
	Rule string // short name of the check ("EFER.SVME")
	Text string
}

// String returns "APM 15.5.1: rule: text".
func (v Violation) String() string { return "APM 15.5.1: " + v.Rule + ": " + v.Text }

// CheckVMRUN runs in software the consistency checks under which VMRUN
// exits with VMEXIT_INVALID (APM Vol. 2, 15.5.1 "Basic Operation",
// "Canonicalization and Consistency Checks"), like vmx.CheckGuestState
// for VT-x, and returns every failed one in words. Where the APM leaves a
// detail open the checks follow KVM's nested VMRUN (arch/x86/kvm/svm/
// nested.c): CR3's MBZ bits are checked in long mode only, and so is
// nested paging without the NP feature. An empty result does not prove
// that VMRUN succeeds; a non-empty one says why it would not.
func CheckVMRUN(s *RunState, p Processor) []Violation {
	var out []Violation
	add := func(rule, format string, a ...any) {
		out = append(out, Violation{Rule: rule, Text: fmt.Sprintf(format, a...)})
	}
	phys := uint(p.PhysAddrBits)
	if phys == 0 || phys > maxPhysBits {
		phys = maxPhysBits
	}
	if s.EFER&EFERSVME == 0 {
		add("EFER.SVME", "EFER.SVME is zero")
	}
	if s.CR0&CR0CD == 0 && s.CR0&CR0NW != 0 {
		add("CR0.CD/NW", "CR0.CD is zero and CR0.NW is set")
	}
	if s.CR0>>32 != 0 {
		add("CR0[63:32]", "CR0[63:32] = %#x, not zero", s.CR0>>32)
	}
	longPaging := s.EFER&EFERLME != 0 && s.CR0&CR0PG != 0
	if longPaging && s.CR3>>phys != 0 {
		add("CR3 MBZ", "CR3 %#x sets bits at or above the physical-address width (%d)", s.CR3, phys)
	}
	if bad := s.CR4 &^ p.CR4Allowed; bad != 0 {
		add("CR4 MBZ", "CR4 %#x sets reserved bits %#x", s.CR4, bad)
	}
	if s.DR6>>32 != 0 {
		add("DR6[63:32]", "DR6[63:32] = %#x, not zero", s.DR6>>32)
	}
	if s.DR7>>32 != 0 {
		add("DR7[63:32]", "DR7[63:32] = %#x, not zero", s.DR7>>32)
	}
	if bad := s.EFER &^ p.EFERAllowed; bad != 0 {
		add("EFER MBZ", "EFER %#x sets reserved bits %#x", s.EFER, bad)
	}
	if s.EFER&(EFERLME|EFERLMA) != 0 && !p.LongMode {
		add("EFER.LME/LMA", "EFER.LME or LMA set on a processor without long mode")
	}
	if longPaging && s.CR4&CR4PAE == 0 {
		add("long mode without PAE", "EFER.LME and CR0.PG are set and CR4.PAE is zero")
	}
	if longPaging && s.CR0&CR0PE == 0 {
		add("long mode without PE", "EFER.LME and CR0.PG are set and CR0.PE is zero")
	}
	if longPaging && s.CR4&CR4PAE != 0 && s.CS.Attrib&AttrL != 0 && s.CS.Attrib&AttrDB != 0 {
		add("CS.L and CS.D", "in long mode CS.L and CS.D are both set")
	}
	if !s.VMRUNIntercept {
		add("VMRUN intercept", "the VMRUN intercept bit is clear")
	}
	for _, m := range []struct {
		name string
		base uint64
		size uint64
	}{{"MSRPM", s.MSRPMBase, MSRPMSize}, {"IOPM", s.IOPMBase, IOPMSize}} {
		last := m.base&^0xFFF + m.size - 1 // the low 12 bits are ignored
		if last>>phys != 0 || last < m.base&^0xFFF {
			add(m.name+" base", "the %s at %#x extends beyond the physical-address width (%d)", m.name, m.base, phys)
		}
	}
	if s.ASID == 0 {
		add("ASID", "the guest ASID is zero (the host's)")
	}
	if s.NestedCtl&NestedCtlNP != 0 && !p.NP {
		add("NP_ENABLE", "nested paging enabled on a processor without it")
	}
	if why := s.EventInj.Check(); why != "" {
		add("EVENTINJ", "illegal event injection (15.20): %s", why)
	}
	return out
}
