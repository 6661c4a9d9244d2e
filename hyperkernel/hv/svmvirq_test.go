// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/svm"
)

// The run loop injects, then stops asking for a window: the interrupt
// stays in V_IRQ, delivered, not intercepted.
func TestVIRQInjectionSurvivesTheWindowOff(t *testing.T) {
	v, q := nmiVMCB(), &virqInjection{}
	q.window(v, true) // the last entry asked for a window
	q.inject(v, 0x31)
	q.window(v, false)
	q.window(v, true) // an interrupt waits behind: not now
	if x := v.Read(svm.CtlVIntr); x&svm.VIntrIRQ == 0 || v.Read(svm.CtlVIntrVector) != 0x31 {
		t.Fatalf("V_INTR %#x, vector %#x: the injected interrupt is gone", x, v.Read(svm.CtlVIntrVector))
	}
	if v.Intercepted(svm.InterceptVINTR) {
		t.Fatal("VINTR intercepted: the guest would exit instead of taking the interrupt")
	}
}

// An interrupt the guest did not take goes in again; one it took does
// not; one whose delivery the exit cut short comes back as EXITINTINFO
// says, once.
func TestVIRQInjectionExited(t *testing.T) {
	want := runloop.Event{Vector: 0x31, Type: runloop.ExternalInterrupt}
	v, q := nmiVMCB(), &virqInjection{}

	q.inject(v, 0x31) // not taken: V_IRQ still set at the exit
	if ev, ok := q.exited(v, runloop.Event{}, false); !ok || ev != want {
		t.Errorf("not taken: %+v %v, want %+v", ev, ok, want)
	}
	if v.Read(svm.CtlVIntr)&svm.VIntrIRQ != 0 {
		t.Error("V_IRQ left set after the exit")
	}

	q.inject(v, 0x31) // taken: the processor cleared V_IRQ
	v.Write(svm.CtlVIntr, v.Read(svm.CtlVIntr)&^svm.VIntrIRQ)
	if ev, ok := q.exited(v, runloop.Event{}, false); ok {
		t.Errorf("taken, yet %+v comes back", ev)
	}

	q.inject(v, 0x31) // delivery cut short: EXITINTINFO has it
	v.Write(svm.CtlVIntr, v.Read(svm.CtlVIntr)&^svm.VIntrIRQ)
	if ev, ok := q.exited(v, want, true); !ok || ev != want {
		t.Errorf("cut short: %+v %v", ev, ok)
	}

	// no injection: the window's V_IRQ is the loop's to clear
	q.window(v, true)
	if ev, ok := q.exited(v, runloop.Event{}, false); ok || v.Read(svm.CtlVIntr)&svm.VIntrIRQ == 0 {
		t.Errorf("a window's exit: %+v %v, V_INTR %#x", ev, ok, v.Read(svm.CtlVIntr))
	}
}
