// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

// Virtual interrupts (AMD APM Vol. 2, 15.21.4 "Injecting Virtual (INTR)
// Interrupts"). With V_IRQ set, the processor delivers the interrupt of
// vector V_INTR_VECTOR at the guest's first instruction boundary where
// RFLAGS.IF is set and no interrupt shadow holds (V_INTR_MASKING on, and
// V_IGN_TPR: the hypervisor's APIC model has already ranked it against
// the task priority), and clears V_IRQ as it does; #VMEXIT writes V_IRQ
// back, so the hypervisor sees whether the guest took it. A delivery
// that an exit cuts short shows in EXITINTINFO like an EVENTINJ one.
//
// big-iron gives external interrupts this way, not through EVENTINJ:
// QEMU's TCG (7.2, target/i386/tcg/sysemu/svm_helper.c, helper_vmrun)
// delivers an EVENTINJ interrupt at VMRUN but leaves its vector as the
// pending exception, and delivers it a second time wherever the guest is
// when the emulator next leaves its translated code (a kick from another
// thread, a timer): a handler that runs with IF clear is entered again
// inside itself. Its virtual interrupts take the emulator's ordinary
// interrupt path and are delivered once.

// SetVirtualInterrupt makes the next VMRUN deliver external interrupt
// vector through V_IRQ, and turns the VINTR intercept off (with it the
// processor would exit instead of delivering).
func SetVirtualInterrupt(v *VMCB, vector uint8) {
	x := v.Read(CtlVIntr) &^ (VIntrIRQ | VIntrPrioMask)
	v.Write(CtlVIntr, x|VIntrIRQ|VIntrIgnoreTPR|uint64(vector>>4)<<VIntrPrioShift)
	v.Write(CtlVIntrVector, uint64(vector))
	v.SetIntercept(InterceptVINTR, false)
}

// TakeVirtualInterrupt ends a SetVirtualInterrupt after #VMEXIT: it
// clears V_IRQ, V_IGN_TPR and the priority, and reports the vector and
// true if the guest had not taken the interrupt yet.
func TakeVirtualInterrupt(v *VMCB) (vector uint8, pending bool) {
	x := v.Read(CtlVIntr)
	v.Write(CtlVIntr, x&^(VIntrIRQ|VIntrIgnoreTPR|VIntrPrioMask))
	return uint8(v.Read(CtlVIntrVector)), x&VIntrIRQ != 0
}

// SetInterruptWindow asks for a VINTR exit as soon as the guest can take
// an interrupt (on): V_IRQ set with V_IGN_TPR, and the VINTR intercept
// catching it before delivery; or stops asking (off).
func SetInterruptWindow(v *VMCB, on bool) {
	x := v.Read(CtlVIntr) &^ (VIntrIRQ | VIntrIgnoreTPR)
	if on {
		x |= VIntrIRQ | VIntrIgnoreTPR
	}
	v.Write(CtlVIntr, x)
	v.SetIntercept(InterceptVINTR, on)
}
