// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "github.com/big-iron/big-iron/vmm/svm"

// RFLAGS.TF, the trap flag (Intel SDM Vol. 1, 3.4.3.3).
const rflagsTF = 1 << 8

// dr6BS is DR6.BS: the #DB was a single step (SDM Vol. 3B, 18.2.3).
const dr6BS = 1 << 14

// nmiMask keeps a guest's NMI blocking on AMD-V, where the VMCB holds no
// such state (without the virtual-NMI feature, which QEMU's TCG and
// most processors lack): a guest's NMI handler would not survive the
// next exit blocked, so the hypervisor keeps it. As KVM does, blocking
// starts when an NMI is injected and ends once the guest's next IRET has
// run: the IRET is intercepted (exit before it runs); if an NMI waits
// then, the guest single-steps over the IRET (RFLAGS.TF, #DB
// intercepted), so the NMI goes in right after it, where hardware
// delivers it, and not a moment later. The trap of the step is taken on
// the TF in force when the IRET starts, whatever RFLAGS it pops (SDM Vol.
// 3B, 18.3.1.4).
//
// It lives in package hv, not svm, because it is a policy of the loop's
// CPU; it touches only the VMCB and is tested on the host.
type nmiMask struct {
	// masked: an NMI was injected and its IRET has not run.
	masked bool
	// atIRET: the IRET was intercepted at iretRIP and has not run yet.
	atIRET  bool
	iretRIP uint64
	// stepping: the guest single-steps over the IRET or a shadowed
	// instruction; guestTF is the TF it had, dr6 its DR6 before.
	stepping bool
	guestTF  bool
	dr6      uint64
	// overIRET: the step is over the IRET, which pops the RFLAGS the
	// guest goes on with; over any other instruction, TF stays as set.
	overIRET bool
}

// delivered notes an NMI injected into v: NMIs are blocked until IRET.
// A step still under way ends first: its TF must not go into the NMI's
// frame, where the handler's IRET would restore it after the step is
// forgotten.
func (m *nmiMask) delivered(v *svm.VMCB) {
	if m.stepping {
		m.endStep(v)
		if !m.guestTF {
			v.Write(svm.SaveRFLAGS, v.Read(svm.SaveRFLAGS)&^rflagsTF)
		}
	}
	m.masked, m.atIRET = true, false
	v.SetIntercept(svm.InterceptIRET, true)
}

// endStep stops single-stepping: #DB goes to the guest again.
func (m *nmiMask) endStep(v *svm.VMCB) {
	m.stepping = false
	v.SetIntercept(svm.InterceptException(vectorDB), false)
}

// window asks for an exit at the end of blocking, or stops asking. While
// the IRET has not been reached its intercept is that exit; once it has,
// the guest steps over it, as it steps over the instruction in an STI
// or MOV SS shadow, which also holds NMIs back.
func (m *nmiMask) window(v *svm.VMCB, on bool) {
	if !on || m.stepping || m.masked && !m.atIRET {
		return
	}
	if !m.masked && v.Read(svm.CtlInterruptShadow)&svm.InterruptShadow == 0 {
		return
	}
	rflags := v.Read(svm.SaveRFLAGS)
	m.stepping, m.guestTF, m.dr6 = true, rflags&rflagsTF != 0, v.Read(svm.SaveDR6)
	m.overIRET = m.masked
	v.Write(svm.SaveRFLAGS, rflags|rflagsTF)
	v.SetIntercept(svm.InterceptException(vectorDB), true)
}

// vectorDB is the debug exception's vector.
const vectorDB = 1

// exited follows the guest's NMI blocking through an exit of code at
// rip. It reports whether the exit was the mask's own (the IRET's
// intercept, or the step over it), which the loop sees as an NMI
// window: nothing to handle, the waiting NMI goes in at the next entry;
// and whether the step's trap is the guest's too (it was single-stepping
// itself), which must then be delivered to it.
func (m *nmiMask) exited(v *svm.VMCB, code svm.ExitCode, rip uint64) (own, guestTrap bool) {
	if m.atIRET && rip != m.iretRIP {
		m.masked, m.atIRET = false, false // the IRET ran
	}
	switch {
	case code == svm.ExitIRET && m.masked:
		v.SetIntercept(svm.InterceptIRET, false)
		m.atIRET, m.iretRIP = true, rip
		return true, false
	case code == svm.ExitException+vectorDB && m.stepping:
		m.endStep(v)
		if m.guestTF {
			return true, true
		}
		v.Write(svm.SaveDR6, m.dr6)
		if !m.overIRET {
			v.Write(svm.SaveRFLAGS, v.Read(svm.SaveRFLAGS)&^rflagsTF)
		}
		return true, false
	}
	return false, false
}
