// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/svm"
)

// nmiVMCB is a VMCB in host memory for the mask's tests.
func nmiVMCB() *svm.VMCB {
	return svm.NewVMCB(new([svm.VMCBSize]byte))
}

// An injected NMI blocks NMIs until its IRET has run: the IRET is
// intercepted; an NMI waiting there makes the guest step over it, and
// the step's trap ends blocking, leaving the guest's RFLAGS and DR6 as
// the IRET left them.
func TestNMIMaskStepsOverIRET(t *testing.T) {
	v, m := nmiVMCB(), &nmiMask{}
	m.delivered(v)
	if !m.masked || !v.Intercepted(svm.InterceptIRET) {
		t.Fatalf("after an NMI: masked %v, IRET intercepted %v", m.masked, v.Intercepted(svm.InterceptIRET))
	}
	if own, _ := m.exited(v, svm.ExitMSR, 0x1000); own || !m.masked {
		t.Fatalf("an unrelated exit: own %v, masked %v", own, m.masked)
	}
	m.window(v, true) // an NMI waits: the IRET's intercept will come
	if v.Intercepted(svm.InterceptException(vectorDB)) {
		t.Fatal("stepping before the IRET was reached")
	}
	if own, _ := m.exited(v, svm.ExitIRET, 0x2000); !own || !m.masked || v.Intercepted(svm.InterceptIRET) {
		t.Fatalf("the IRET's exit: own %v, masked %v, still intercepted %v", own, m.masked, v.Intercepted(svm.InterceptIRET))
	}
	// an interrupt exit before the IRET ran: still blocked
	if own, _ := m.exited(v, svm.ExitINTR, 0x2000); own || !m.masked {
		t.Fatalf("an exit before the IRET ran: own %v, masked %v", own, m.masked)
	}
	v.Write(svm.SaveRFLAGS, 0x2)
	v.Write(svm.SaveDR6, 0xFFFF0FF0)
	m.window(v, true)
	if v.Read(svm.SaveRFLAGS)&rflagsTF == 0 || !v.Intercepted(svm.InterceptException(vectorDB)) {
		t.Fatalf("stepping over the IRET: RFLAGS %#x, #DB intercepted %v", v.Read(svm.SaveRFLAGS), v.Intercepted(svm.InterceptException(vectorDB)))
	}
	// the IRET popped RFLAGS without TF; the trap set DR6.BS
	v.Write(svm.SaveRFLAGS, 0x202)
	v.Write(svm.SaveDR6, 0xFFFF0FF0|dr6BS)
	own, trap := m.exited(v, svm.ExitException+vectorDB, 0x3000)
	if !own || trap || m.masked || m.stepping {
		t.Fatalf("the step's trap: own %v, guest's %v, masked %v, stepping %v", own, trap, m.masked, m.stepping)
	}
	if v.Read(svm.SaveRFLAGS) != 0x202 || v.Read(svm.SaveDR6) != 0xFFFF0FF0 || v.Intercepted(svm.InterceptException(vectorDB)) {
		t.Errorf("after the step: RFLAGS %#x, DR6 %#x, #DB intercepted %v", v.Read(svm.SaveRFLAGS), v.Read(svm.SaveDR6),
			v.Intercepted(svm.InterceptException(vectorDB)))
	}
}

// With no NMI waiting at the IRET, blocking ends at the first exit
// after it ran, with no step.
func TestNMIMaskEndsAfterIRET(t *testing.T) {
	v, m := nmiVMCB(), &nmiMask{}
	m.delivered(v)
	m.exited(v, svm.ExitIRET, 0x2000)
	m.window(v, false)
	if m.stepping {
		t.Fatal("stepping with no NMI waiting")
	}
	if own, _ := m.exited(v, svm.ExitHLT, 0x4000); own || m.masked {
		t.Errorf("an exit after the IRET ran: own %v, masked %v", own, m.masked)
	}
	// an IRET with no NMI in service is the guest's own business
	if own, _ := m.exited(v, svm.ExitIRET, 0x5000); own {
		t.Error("an IRET exit with NMIs unblocked taken as the mask's")
	}
}

// A guest single-stepping itself over the IRET gets its trap: the step
// is its own too.
func TestNMIMaskLeavesTheGuestsTrap(t *testing.T) {
	v, m := nmiVMCB(), &nmiMask{}
	m.delivered(v)
	m.exited(v, svm.ExitIRET, 0x2000)
	v.Write(svm.SaveRFLAGS, 0x302)
	m.window(v, true)
	v.Write(svm.SaveDR6, 0xFFFF4FF0)
	if own, trap := m.exited(v, svm.ExitException+vectorDB, 0x3000); !own || !trap {
		t.Errorf("the guest's own step: own %v, guest's %v", own, trap)
	}
	if v.Read(svm.SaveDR6) != 0xFFFF4FF0 {
		t.Errorf("DR6 %#x, want the trap's", v.Read(svm.SaveDR6))
	}
}

// An NMI waiting in an STI shadow goes in after the instruction the
// shadow covers: the guest steps over it.
func TestNMIMaskStepsOverTheShadow(t *testing.T) {
	v, m := nmiVMCB(), &nmiMask{}
	m.window(v, true)
	if m.stepping {
		t.Fatal("stepping with NMIs not blocked")
	}
	v.Write(svm.CtlInterruptShadow, svm.InterruptShadow)
	v.Write(svm.SaveRFLAGS, 0x202)
	m.window(v, true)
	if !m.stepping || v.Read(svm.SaveRFLAGS)&rflagsTF == 0 {
		t.Fatalf("in a shadow: stepping %v, RFLAGS %#x", m.stepping, v.Read(svm.SaveRFLAGS))
	}
	v.Write(svm.CtlInterruptShadow, 0)
	v.Write(svm.SaveRFLAGS, 0x302) // TF stays set after a plain instruction
	if own, trap := m.exited(v, svm.ExitException+vectorDB, 0x1004); !own || trap {
		t.Fatalf("the step's trap: own %v, guest's %v", own, trap)
	}
	if v.Read(svm.SaveRFLAGS)&rflagsTF != 0 {
		t.Errorf("RFLAGS %#x: the step's TF left set", v.Read(svm.SaveRFLAGS))
	}
}

// An NMI injected while a step is under way (the stepped instruction was
// emulated, so no trap came) ends the step first: the TF the step set
// must not go into the NMI's frame.
func TestNMIMaskEndsAStepAtDelivery(t *testing.T) {
	v, m := nmiVMCB(), &nmiMask{}
	v.Write(svm.CtlInterruptShadow, svm.InterruptShadow)
	v.Write(svm.SaveRFLAGS, 0x202)
	m.window(v, true)
	if !m.stepping {
		t.Fatal("no step in a shadow")
	}
	v.Write(svm.CtlInterruptShadow, 0)
	m.delivered(v)
	if m.stepping || v.Read(svm.SaveRFLAGS)&rflagsTF != 0 || v.Intercepted(svm.InterceptException(vectorDB)) {
		t.Errorf("after delivery: stepping %v, RFLAGS %#x, #DB intercepted %v", m.stepping, v.Read(svm.SaveRFLAGS),
			v.Intercepted(svm.InterceptException(vectorDB)))
	}
}
