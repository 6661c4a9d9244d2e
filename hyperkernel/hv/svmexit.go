// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// Fixed lengths of the instructions whose exits AMD-V reports without a
// next RIP where the CPU has no NRIP save (QEMU's TCG): CPUID (0F A2),
// RDMSR/WRMSR (0F 32, 0F 30), HLT (F4), XSETBV (0F 01 D1). A prefixed form would be longer;
// none of the guests here use one.
const (
	lenCPUID  = 2
	lenMSR    = 2
	lenHLT    = 1
	lenXSETBV = 3 // 0F 01 D1
)

// exitFromSVM translates a decoded #VMEXIT into the exit the dispatcher
// (package exits) handles, in VT-x's terms, so that both backends share
// one dispatcher and one run loop. nrip is the next RIP the CPU saved (0
// where it has no NRIP save) and rip the guest's RIP at the exit. An exit
// the hyperkernel does not handle keeps its SVM code in the
// qualification, under reason svmUnhandled.
func exitFromSVM(x *svm.Exit, rip, nrip uint64, e *exits.Exit) {
	*e = exits.Exit{}
	length := func(fixed uint32) uint32 {
		if nrip > rip && nrip-rip <= 15 {
			return uint32(nrip - rip)
		}
		return fixed
	}
	switch x.Kind {
	case svm.KindCPUID:
		e.Reason, e.InstructionLength = uint64(vmx.ExitCPUID), length(lenCPUID)
	case svm.KindHLT:
		e.Reason, e.InstructionLength = uint64(vmx.ExitHLT), length(lenHLT)
	case svm.KindMSR:
		e.Reason, e.InstructionLength = uint64(vmx.ExitRDMSR), length(lenMSR)
		if x.MSR.Write {
			e.Reason = uint64(vmx.ExitWRMSR)
		}
	case svm.KindIO:
		e.Reason = uint64(vmx.ExitIOInstruction)
		e.Qualification = ioQualification(&x.IO)
		if x.IO.NextRIP > rip {
			e.InstructionLength = uint32(x.IO.NextRIP - rip)
		}
	case svm.KindNPF:
		e.Reason = uint64(vmx.ExitEPTViolation)
		e.GuestPhysical = x.NPF.GPA
		e.Qualification = eptQualification(&x.NPF)
	case svm.KindShutdown:
		e.Reason = uint64(vmx.ExitTripleFault)
	case svm.KindInvalid:
		e.Reason = 1<<31 | uint64(vmx.ExitInvalidGuestState)
	case svm.KindSVMInsn:
		// the guest sees no SVM: the dispatcher makes these #UD
		e.Reason = uint64(vmx.ExitVMCALL)
	case svm.KindInterrupt:
		e.Reason = uint64(vmx.ExitExternalInterrupt)
		if x.Code == svm.ExitVINTR {
			e.Reason = uint64(vmx.ExitInterruptWindow)
		}
	default:
		e.Reason, e.Qualification = svmUnhandled, uint64(x.Code)
		if x.Code == svm.ExitXSETBV {
			e.Reason, e.Qualification, e.InstructionLength = uint64(vmx.ExitXSETBV), 0, length(lenXSETBV)
		}
	}
}

// svmUnhandled is the reason of an AMD-V exit with no VT-x counterpart
// the dispatcher knows (it reaches the guest's Other strategy).
const svmUnhandled = uint64(0xFFFF)

// ioQualification encodes an I/O exit as VT-x's exit qualification (Intel
// SDM Vol. 3C, Table 28-5): size-1 in 2:0, IN in 3, string 4, REP 5, port
// 31:16.
func ioQualification(io *svm.IOExit) uint64 {
	q := uint64(io.Size-1) | uint64(io.Port)<<16
	if io.In {
		q |= 1 << 3
	}
	if io.String {
		q |= 1 << 4
	}
	if io.Rep {
		q |= 1 << 5
	}
	return q
}

// eptQualification encodes a nested page fault as VT-x's EPT-violation
// qualification (SDM Vol. 3C, Table 28-7): the access in 2:0 (read,
// write, fetch), whether the entry allowed reading in 3, a valid guest
// linear address in 7, a final translation in 8.
func eptQualification(f *svm.NPFExit) uint64 {
	var q uint64
	switch {
	case f.Write:
		q |= 1 << 1
	case f.Fetch:
		q |= 1 << 2
	default:
		q |= 1 << 0
	}
	if f.Present {
		q |= 1 << 3
	}
	if f.Final || f.TableWalk {
		q |= 1 << 7
	}
	if f.Final {
		q |= 1 << 8
	}
	return q
}
