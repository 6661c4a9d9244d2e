// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/devices/lapic"
)

// The guest's CR8 writes (V_TPR) reach the APIC, the APIC's TPR writes
// reach V_TPR, and a fresh VMCB takes the APIC's value.
func TestVTPRSync(t *testing.T) {
	var tsc uint64
	b := lapic.NewBus(1, func() uint64 { return tsc }, func(int) lapic.Events { return nopEvents{} })
	a := b.APIC(0)
	var s vtprSync
	a.SetCR8(7)
	if got := s.sync(0, a); got != 7 {
		t.Fatalf("first entry: V_TPR %d, want the APIC's 7", got)
	}
	if got := s.sync(3, a); got != 3 || a.CR8() != 3 {
		t.Errorf("after the guest wrote CR8 3: V_TPR %d, APIC %d", got, a.CR8())
	}
	a.SetCR8(12) // an APIC TPR write
	if got := s.sync(3, a); got != 12 {
		t.Errorf("after a TPR write of 12: V_TPR %d", got)
	}
	if got := s.sync(12, a); got != 12 || a.CR8() != 12 {
		t.Errorf("nothing changed: V_TPR %d, APIC %d", got, a.CR8())
	}
}

type nopEvents struct{}

func (nopEvents) Kick()         {}
func (nopEvents) INIT()         {}
func (nopEvents) Startup(uint8) {}
func (nopEvents) NMI()          {}
