// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/runloop"
)

func TestVirtualInterrupt(t *testing.T) {
	var page [VMCBSize]byte
	v := NewVMCB(&page)
	v.Write(CtlVIntr, VIntrMasking|5) // V_TPR 5 stays
	v.SetIntercept(InterceptVINTR, true)
	SetVirtualInterrupt(v, 0xB3)
	x := v.Read(CtlVIntr)
	if x&VIntrIRQ == 0 || x&VIntrIgnoreTPR == 0 || x&VIntrMasking == 0 || x&VIntrTPRMask != 5 {
		t.Errorf("V_INTR %#x: want V_IRQ, V_IGN_TPR, V_INTR_MASKING and V_TPR 5", x)
	}
	if prio := x & VIntrPrioMask >> VIntrPrioShift; prio != 0xB {
		t.Errorf("V_INTR_PRIO %d, want 11", prio)
	}
	if got := v.Read(CtlVIntrVector); got != 0xB3 {
		t.Errorf("V_INTR_VECTOR %#x", got)
	}
	if v.Intercepted(InterceptVINTR) {
		t.Error("VINTR still intercepted: the processor would exit, not deliver")
	}

	// not taken: the processor left V_IRQ set
	if vec, pending := TakeVirtualInterrupt(v); !pending || vec != 0xB3 {
		t.Errorf("not taken: got %#x %v", vec, pending)
	}
	if x := v.Read(CtlVIntr); x != VIntrMasking|5 {
		t.Errorf("V_INTR %#x after take, want only V_INTR_MASKING and V_TPR", x)
	}

	// taken: the processor cleared V_IRQ
	SetVirtualInterrupt(v, 0x41)
	v.Write(CtlVIntr, v.Read(CtlVIntr)&^VIntrIRQ)
	if _, pending := TakeVirtualInterrupt(v); pending {
		t.Error("taken interrupt reported pending")
	}
}

// An interrupt cut short whose EXITINTINFO QEMU reports as an exception
// of its vector is delivered again as an interrupt.
func TestExceptionAbove31IsAnInterrupt(t *testing.T) {
	ev, ok := NewEvent(0x20, EventException, false, 0).Runloop()
	if !ok || ev != (runloop.Event{Vector: 0x20, Type: runloop.ExternalInterrupt}) {
		t.Errorf("got %+v %v", ev, ok)
	}
	ev, ok = NewEvent(14, EventException, true, 2).Runloop()
	if !ok || ev.Type != runloop.HardwareException || ev.ErrorCode != 2 {
		t.Errorf("#PF: got %+v %v", ev, ok)
	}
}

func TestInterruptWindow(t *testing.T) {
	var page [VMCBSize]byte
	v := NewVMCB(&page)
	v.Write(CtlVIntr, VIntrMasking|3)
	SetInterruptWindow(v, true)
	if x := v.Read(CtlVIntr); x != VIntrMasking|3|VIntrIRQ|VIntrIgnoreTPR || !v.Intercepted(InterceptVINTR) {
		t.Errorf("window on: V_INTR %#x, VINTR intercepted %v", x, v.Intercepted(InterceptVINTR))
	}
	SetInterruptWindow(v, false)
	if x := v.Read(CtlVIntr); x != VIntrMasking|3 || v.Intercepted(InterceptVINTR) {
		t.Errorf("window off: V_INTR %#x, VINTR intercepted %v", x, v.Intercepted(InterceptVINTR))
	}
}
