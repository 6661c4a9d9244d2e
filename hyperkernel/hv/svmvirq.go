// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/svm"
)

// virqInjection is how an AMD-V vCPU gives its guest external interrupts
// and asks for interrupt windows, both through the VMCB's V_IRQ: an
// interrupt to deliver (svm.SetVirtualInterrupt says why not EVENTINJ),
// or, with the VINTR intercept, a request for an exit once the guest can
// take one (APM Vol. 2, 15.21.4). An interrupt in V_IRQ goes first: the
// run loop injects one only when the guest can take it at once, and
// looks again for a window at the exit after it.
//
// Like nmiMask it is a policy of the loop's CPU that touches only the
// VMCB, and is tested on the host.
type virqInjection struct {
	// injected: V_IRQ carries an interrupt to deliver at the next entry.
	injected bool
}

// inject puts external interrupt vector in V_IRQ for the next VMRUN.
func (q *virqInjection) inject(v *svm.VMCB, vector uint8) {
	svm.SetVirtualInterrupt(v, vector)
	q.injected = true
}

// window asks for a VINTR exit as soon as the guest can take an
// interrupt (on), or stops asking, unless V_IRQ carries an injected
// interrupt, which it leaves alone.
func (q *virqInjection) window(v *svm.VMCB, on bool) {
	if !q.injected {
		svm.SetInterruptWindow(v, on)
	}
}

// exited ends an injection at #VMEXIT. cut is the event the exit cut
// short (EXITINTINFO), if any. It returns the event to deliver again at
// the next entry: cut, or else the injected interrupt if the guest had
// not taken it yet (a physical interrupt exited first, say).
func (q *virqInjection) exited(v *svm.VMCB, cut runloop.Event, hasCut bool) (runloop.Event, bool) {
	if !q.injected {
		return cut, hasCut
	}
	q.injected = false
	vec, pending := svm.TakeVirtualInterrupt(v)
	if hasCut || !pending {
		return cut, hasCut
	}
	return runloop.Event{Vector: vec, Type: runloop.ExternalInterrupt}, true
}
