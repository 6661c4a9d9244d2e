// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// Register claims IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC MSR
// range in m for every APIC of the bus (the vCPU index picks the APIC).
func (b *Bus) Register(m *exits.MSRTable) error {
	for _, r := range []struct {
		first, last uint32
		name        string
	}{
		{MSRAPICBase, MSRAPICBase, "IA32_APIC_BASE"},
		{MSRTSCDeadline, MSRTSCDeadline, "IA32_TSC_DEADLINE"},
		{MSRTSC, MSRTSC, "IA32_TIME_STAMP_COUNTER"},
		{msrFirst, msrLast, "x2APIC registers"},
	} {
		if err := m.Register(r.first, r.last, r.name, b); err != nil {
			return fmt.Errorf("lapic: %w", err)
		}
	}
	return nil
}

// ReadMSR implements exits.MSRHandler.
func (b *Bus) ReadMSR(i int, msr uint32) (uint64, bool) {
	if i < 0 || i >= len(b.apics) {
		return 0, false
	}
	return b.apics[i].readMSR(msr)
}

// WriteMSR implements exits.MSRHandler.
func (b *Bus) WriteMSR(i int, msr uint32, v uint64) bool {
	if i < 0 || i >= len(b.apics) {
		return false
	}
	return b.apics[i].writeMSR(msr, v)
}

func (a *LAPIC) readMSR(msr uint32) (uint64, bool) {
	if msr == MSRTSC {
		return a.clock() + a.tscAdjust.Load(), true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch msr {
	case MSRAPICBase:
		return a.s.Base, true
	case MSRTSCDeadline:
		if a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask != timerTSCDeadline {
			return 0, true
		}
		if a.deadline == 0 {
			return 0, true
		}
		return a.deadline + a.tscAdjust.Load(), true
	}
	// Outside x2APIC mode, and for registers it lacks (reserved, xAPIC
	// only, write-only), the x2APIC MSRs #GP (11.12.1.2, 11.12.1.3).
	r, ok := x2Reg(msr)
	if !ok || a.modeLocked() != ModeX2APIC || !r.can(x2Read) {
		return 0, false
	}
	return a.readRegLocked(r, true), true
}

// writeTSCLocked sets the vCPU's TSC to v, which takes any value (SDM
// Vol. 3B, 18.17): it counts on from v. An armed TSC deadline stays at
// the same TSC value, and so moves in the clock's time.
func (a *LAPIC) writeTSCLocked(v uint64) {
	old := a.tscAdjust.Load()
	adj := v - a.clock()
	a.tscAdjust.Store(adj)
	if a.deadline != 0 {
		a.deadline = max(a.deadline+old-adj, 1)
	}
}

// x2Reg returns the register an x2APIC MSR stands for.
func x2Reg(msr uint32) (reg, bool) {
	if msr < msrFirst || msr > msrLast {
		return 0, false
	}
	return reg(msr - msrFirst), true
}

func (a *LAPIC) currentCountLocked() uint32 {
	mode := a.s.LVT[vcpu.LVTTimer] & vcpu.LVTTimerModeMask
	if mode == timerTSCDeadline || a.countStart == 0 || a.s.TimerInitial == 0 {
		return 0
	}
	a.fireTimerLocked()
	if a.countStart == 0 {
		return 0
	}
	elapsed := (a.clock() - a.countStart) / a.ticksPerCount()
	if elapsed >= uint64(a.s.TimerInitial) {
		return 0
	}
	return a.s.TimerInitial - uint32(elapsed)
}

// writeMSR applies a write; false raises #GP (reserved bits, read-only
// register, a mode transition IA32_APIC_BASE does not allow), as an
// x2APIC does (SDM Vol. 3A, 11.12.1.3).
func (a *LAPIC) writeMSR(msr uint32, v uint64) bool {
	a.mu.Lock()
	if msr == MSRTSC {
		a.writeTSCLocked(v)
		a.mu.Unlock()
		a.events.Kick() // a TSC deadline may have come or gone
		return true
	}
	ok, ipi, icr := a.writeMSRLocked(msr, v)
	a.unlockAndSend(ipi, icr)
	return ok
}

func (a *LAPIC) writeMSRLocked(msr uint32, v uint64) (ok, ipi bool, icr uint64) {
	switch msr {
	case MSRAPICBase:
		return a.writeBaseLocked(v), false, 0
	case MSRTSCDeadline:
		if a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask == timerTSCDeadline {
			a.deadline = 0
			if v != 0 {
				a.deadline = max(v-a.tscAdjust.Load(), 1)
			}
		}
		return true, false, 0
	}
	r, ok := x2Reg(msr)
	if !ok || a.modeLocked() != ModeX2APIC || !r.can(x2Write) {
		return false, false, 0
	}
	return a.writeRegLocked(r, v, true)
}

// unlockAndSend drops the lock a register write took, then sends the IPI
// the write asked for (icr in x2APIC form) and reports the EOI of a
// level-triggered vector. Both run unlocked: they reach other APICs, and
// this one.
func (a *LAPIC) unlockAndSend(ipi bool, icr uint64) {
	eoi, levelEOI := a.levelEOI, a.hasLevelEOI
	a.hasLevelEOI = false
	a.mu.Unlock()
	if ipi {
		a.bus.send(a, icr)
	}
	if levelEOI && a.bus.eoi != nil {
		a.bus.eoi(eoi)
	}
}
