// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

// taskPriority is the local APIC's task priority as CR8 shows it.
type taskPriority interface {
	CR8() uint8
	SetCR8(v uint8)
}

// vtprSync keeps CR8 and the APIC's TPR one register on AMD-V, where the
// guest's CR8 is the VMCB's V_TPR, read and written without an exit (APM
// Vol. 2, 15.21.2 "Virtualizing APIC.TPR"). Before each entry, a value
// the guest wrote to V_TPR since the last entry goes to the APIC, whose
// priority then decides what is injected; the APIC's (an x2APIC or
// xAPIC TPR write) goes to V_TPR. At the first entry of a VMCB (set
// false) the APIC's wins.
type vtprSync struct {
	last uint8 // the V_TPR written at the last entry
	set  bool
}

// sync takes the V_TPR the guest left and returns the V_TPR to enter
// with.
func (s *vtprSync) sync(vtpr uint8, apic taskPriority) uint8 {
	if s.set && vtpr != s.last {
		apic.SetCR8(vtpr)
	}
	s.last, s.set = apic.CR8(), true
	return s.last
}
