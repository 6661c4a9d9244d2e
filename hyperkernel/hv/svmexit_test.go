// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// AMD-V exits reach the dispatcher as the VT-x exits it handles: the same
// action and, for I/O and nested page faults, the same decoded fields.
func TestExitFromSVM(t *testing.T) {
	const rip = 0x1000
	for _, tc := range []struct {
		name         string
		code         svm.ExitCode
		info1, info2 uint64
		nrip         uint64
		kind         exits.ActionKind
		reason       vmx.ExitReason
		advance      uint32
		check        func(*testing.T, *exits.Action, *exits.Exit)
	}{
		{name: "CPUID without NRIP save", code: svm.ExitCPUID, kind: exits.ActionResume, reason: vmx.ExitCPUID, advance: 2},
		{name: "CPUID with NRIP save", code: svm.ExitCPUID, nrip: rip + 3, kind: exits.ActionResume, reason: vmx.ExitCPUID, advance: 3},
		{name: "HLT", code: svm.ExitHLT, kind: exits.ActionHalt, reason: vmx.ExitHLT, advance: 1},
		{name: "XSETBV without NRIP save", code: svm.ExitXSETBV, kind: exits.ActionInject, reason: vmx.ExitXSETBV,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if e.InstructionLength != 3 {
					t.Errorf("XSETBV length %d, want 3", e.InstructionLength)
				}
			}},
		{name: "OUT DX, AL", code: svm.ExitIOIO, info1: 0x80<<16 | 1<<4, info2: rip + 1, kind: exits.ActionResume, reason: vmx.ExitIOInstruction, advance: 1,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if io, _ := vmx.DecodeIOExit(e.Qualification); io.Port != 0x80 || io.Size != 1 || io.In {
					t.Errorf("decoded %+v", io)
				}
			}},
		{name: "IN EAX, imm8", code: svm.ExitIOIO, info1: 0x71<<16 | 1<<6 | 1, info2: rip + 2, kind: exits.ActionResume, reason: vmx.ExitIOInstruction, advance: 2,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if io, _ := vmx.DecodeIOExit(e.Qualification); io.Port != 0x71 || io.Size != 4 || !io.In {
					t.Errorf("decoded %+v", io)
				}
			}},
		{name: "REP OUTSB", code: svm.ExitIOIO, info1: 0xE9<<16 | 1<<9 | 1<<4 | 1<<3 | 1<<2, info2: rip + 2, kind: exits.ActionUnhandled, reason: vmx.ExitIOInstruction,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if !a.IO.String || !a.IO.Rep {
					t.Errorf("string I/O decoded %+v", a.IO)
				}
			}},
		{name: "WRMSR", code: svm.ExitMSR, info1: 1, kind: exits.ActionInject, reason: vmx.ExitWRMSR}, // unknown MSR: #GP
		{name: "RDMSR", code: svm.ExitMSR, info1: 0, kind: exits.ActionInject, reason: vmx.ExitRDMSR},
		{name: "nested page fault on a write", code: svm.ExitNPF, info1: svm.NPFWrite | svm.NPFUser | svm.NPFFinal, info2: 0x7000, kind: exits.ActionEPTViolation, reason: vmx.ExitEPTViolation,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if e.GuestPhysical != 0x7000 || !a.EPT.Write || a.EPT.Read || !a.EPT.Translated {
					t.Errorf("gpa %#x decoded %+v", e.GuestPhysical, a.EPT)
				}
			}},
		{name: "fetch fault", code: svm.ExitNPF, info1: svm.NPFFetch | svm.NPFUser | svm.NPFTableWalk, info2: 0x9000, kind: exits.ActionEPTViolation, reason: vmx.ExitEPTViolation,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if !a.EPT.Fetch || a.EPT.Write || a.EPT.Translated {
					t.Errorf("decoded %+v", a.EPT)
				}
			}},
		{name: "shutdown", code: svm.ExitShutdown, kind: exits.ActionShutdown, reason: vmx.ExitTripleFault},
		{name: "VMRUN in the guest", code: svm.ExitVMRUN, kind: exits.ActionInject, reason: vmx.ExitVMCALL,
			check: func(t *testing.T, a *exits.Action, e *exits.Exit) {
				if a.Inject != vmx.InjectUD() {
					t.Errorf("inject %#x, want #UD", a.Inject)
				}
			}},
		{name: "INTR", code: svm.ExitINTR, kind: exits.ActionUnhandled, reason: vmx.ExitExternalInterrupt},
		{name: "VINTR", code: svm.ExitVINTR, kind: exits.ActionUnhandled, reason: vmx.ExitInterruptWindow},
		{name: "VMRUN refused", code: svm.ExitInvalid, kind: exits.ActionEntryFailed, reason: vmx.ExitInvalidGuestState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := svm.DecodeExit(tc.code, tc.info1, tc.info2, false)
			if err != nil {
				t.Fatal(err)
			}
			var e exits.Exit
			exitFromSVM(&x, rip, tc.nrip, &e)
			policy, err := exits.NewCPUIDPolicy(exits.CPUIDConfig{TSCKHz: 1000, VCPUs: 1}, func(leaf, sub uint32) exits.CPUIDResult {
				return exits.CPUIDResult{EAX: 0xD}
			})
			if err != nil {
				t.Fatal(err)
			}
			d := exits.Dispatcher{CPUID: policy, IO: exits.NewIOBus(), MSR: exits.NewMSRTable()}
			var regs vmx.GuestRegs
			a := d.Handle(&e, &regs)
			if a.Kind != tc.kind || a.Reason != tc.reason || a.AdvanceRIP != tc.advance {
				t.Fatalf("action %v %v advance %d, want %v %v advance %d", a.Kind, a.Reason, a.AdvanceRIP, tc.kind, tc.reason, tc.advance)
			}
			if tc.check != nil {
				tc.check(t, &a, &e)
			}
		})
	}
}

// Exits the dispatcher does not know keep their AMD-V code for the error
// that names them.
func TestUnknownSVMExitKeepsItsCode(t *testing.T) {
	x, err := svm.DecodeExit(svm.ExitRDTSC, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var e exits.Exit
	exitFromSVM(&x, 0, 0, &e)
	if e.Reason != svmUnhandled || e.Qualification != uint64(svm.ExitRDTSC) {
		t.Errorf("exit %+v", e)
	}
}
