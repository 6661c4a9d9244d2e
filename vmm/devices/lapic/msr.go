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

var lvtByMSR = map[uint32]vcpu.LVT{
	msrLVTCMCI: vcpu.LVTCMCI, msrLVTTimer: vcpu.LVTTimer, msrLVTThermal: vcpu.LVTThermal,
	msrLVTPerf: vcpu.LVTPerf, msrLVTLINT0: vcpu.LVTLINT0, msrLVTLINT1: vcpu.LVTLINT1, msrLVTError: vcpu.LVTError,
}

// lvtIndex maps an LVT MSR to its entry without a map lookup's cost
// being an issue (the map is read-only).
func lvtIndex(msr uint32) (vcpu.LVT, bool) {
	l, ok := lvtByMSR[msr]
	return l, ok
}

func (a *LAPIC) readMSR(msr uint32) (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case msr == MSRAPICBase:
		return a.s.Base, true
	case msr == MSRTSCDeadline:
		if a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask != timerTSCDeadline {
			return 0, true
		}
		return a.deadline, true
	case msr == msrID:
		return uint64(a.s.ID), true
	case msr == msrVersion:
		return version, true
	case msr == msrTPR:
		return uint64(a.s.TPR), true
	case msr == msrPPR:
		return uint64(a.ppr()), true
	case msr == msrLDR:
		return uint64(a.s.LDR), true
	case msr == msrSVR:
		return uint64(a.s.SVR), true
	case msr >= msrISR0 && msr < msrISR0+8:
		return uint64(word(&a.s.ISR, msr-msrISR0)), true
	case msr >= msrTMR0 && msr < msrTMR0+8:
		return uint64(word(&a.s.TMR, msr-msrTMR0)), true
	case msr >= msrIRR0 && msr < msrIRR0+8:
		a.fireTimerLocked()
		return uint64(word(&a.s.IRR, msr-msrIRR0)), true
	case msr == msrESR:
		return uint64(a.s.ESR), true
	case msr == msrICR:
		return a.s.ICR, true
	case msr == msrInitCount:
		return uint64(a.s.TimerInitial), true
	case msr == msrCurCount:
		return uint64(a.currentCountLocked()), true
	case msr == msrDivide:
		return uint64(a.s.TimerDivide), true
	}
	if l, ok := lvtIndex(msr); ok {
		return uint64(a.s.LVT[l]), true
	}
	return 0, false // EOI and self IPI are write-only; the rest reserved
}

// word returns 32-bit word i of a 256-bit register.
func word(v *vcpu.Vec256, i uint32) uint32 { return uint32(v[i/2] >> (32 * (i % 2))) }

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
// register), as an x2APIC does (SDM Vol. 3A, 11.12.1.3).
func (a *LAPIC) writeMSR(msr uint32, v uint64) bool {
	a.mu.Lock()
	ok, ipi := a.writeLocked(msr, v)
	eoi, levelEOI := a.levelEOI, a.hasLevelEOI
	a.hasLevelEOI = false
	a.mu.Unlock()
	// Both run unlocked: they reach other APICs, and this one.
	if ipi {
		a.bus.send(a, v)
	}
	if levelEOI && a.bus.eoi != nil {
		a.bus.eoi(eoi)
	}
	return ok
}

func (a *LAPIC) writeLocked(msr uint32, v uint64) (ok, ipi bool) {
	switch {
	case msr == MSRAPICBase:
		// Leaving x2APIC mode, or disabling the APIC, is not emulated.
		const fixed = vcpu.APICBaseEnable | vcpu.APICBaseX2APIC
		if v&fixed != fixed || v&^(vcpu.APICBaseBSP|fixed|vcpu.APICBaseAddress) != 0 || (v^a.s.Base)&vcpu.APICBaseBSP != 0 {
			return false, false
		}
		a.s.Base = v
		return true, false
	case msr == MSRTSCDeadline:
		if a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask == timerTSCDeadline {
			a.deadline = v
		}
		return true, false
	case msr == msrTPR:
		if v > 0xFF {
			return false, false
		}
		a.s.TPR = uint32(v)
		return true, false
	case msr == msrEOI:
		if v != 0 {
			return false, false
		}
		if vec, ok := a.s.ISR.Highest(); ok {
			a.s.ISR.Clear(vec)
			if a.s.TMR.Has(vec) {
				a.levelEOI, a.hasLevelEOI = vec, true
			}
		}
		return true, false
	case msr == msrSVR:
		if v&^0x11FF != 0 {
			return false, false
		}
		a.s.SVR = uint32(v)
		if a.s.SVR&vcpu.SVREnable == 0 {
			for i := range a.s.LVT {
				a.s.LVT[i] |= vcpu.LVTMasked
			}
		}
		return true, false
	case msr == msrESR:
		if v != 0 {
			return false, false
		}
		a.s.ESR = 0
		return true, false
	case msr == msrICR:
		if v&^0xFFFFFFFF_000CCFFF != 0 {
			return false, false
		}
		a.s.ICR = v
		return true, true
	case msr == msrInitCount:
		if v > 0xFFFFFFFF {
			return false, false
		}
		a.s.TimerInitial = uint32(v)
		a.countStart = 0
		if v != 0 && a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask != timerTSCDeadline {
			a.countStart = a.clock()
		}
		return true, false
	case msr == msrDivide:
		if v&^0xB != 0 {
			return false, false
		}
		a.s.TimerDivide = uint32(v)
		return true, false
	case msr == msrSelfIPI:
		if v > 0xFF {
			return false, false
		}
		a.deliverLocked(uint8(v), false)
		return true, false
	}
	if l, ok := lvtIndex(msr); ok {
		allowed := lvtWritable[l]
		if uint32(v)&^allowed != 0 || v > 0xFFFFFFFF {
			return false, false
		}
		old := a.s.LVT[l]
		val := uint32(v)
		if a.s.SVR&vcpu.SVREnable == 0 {
			val |= vcpu.LVTMasked
		}
		a.s.LVT[l] = val
		if l == vcpu.LVTTimer && (old^val)&vcpu.LVTTimerModeMask != 0 {
			a.deadline, a.countStart = 0, 0 // a mode change disarms (11.5.4.1)
		}
		return true, false
	}
	return false, false
}

// lvtWritable are the bits software may set in each LVT entry (SDM
// Vol. 3A, 11.5.1, Figure 11-8; delivery status and remote IRR are
// read-only).
var lvtWritable = [vcpu.NumLVT]uint32{
	vcpu.LVTTimer:   0xFF | vcpu.LVTMasked | vcpu.LVTTimerModeMask,
	vcpu.LVTCMCI:    0xFF | 7<<8 | vcpu.LVTMasked,
	vcpu.LVTThermal: 0xFF | 7<<8 | vcpu.LVTMasked,
	vcpu.LVTPerf:    0xFF | 7<<8 | vcpu.LVTMasked,
	vcpu.LVTLINT0:   0xFF | 7<<8 | vcpu.LVTPolarityLow | vcpu.LVTTriggerLevel | vcpu.LVTMasked,
	vcpu.LVTLINT1:   0xFF | 7<<8 | vcpu.LVTPolarityLow | vcpu.LVTTriggerLevel | vcpu.LVTMasked,
	vcpu.LVTError:   0xFF | vcpu.LVTMasked,
}

// send delivers the IPI of an ICR write from src (SDM Vol. 3A, 11.6.1 and
// 11.12.9: in x2APIC mode the destination is the 32-bit field in bits
// 63:32; logical destinations use cluster addressing, 11.12.10.2).
func (b *Bus) send(src *LAPIC, icr uint64) {
	vec := uint8(icr & icrVector)
	mode := icr >> icrDeliveryShift & 7
	level := icr&icrTriggerLevel != 0
	dest := uint32(icr >> 32)
	for i, dst := range b.apics {
		switch icr & icrShorthand {
		case shorthandSelf:
			if dst != src {
				continue
			}
		case shorthandOthers:
			if dst == src {
				continue
			}
		case shorthandNone:
			if !dst.matches(dest, icr&icrDestLogical != 0) {
				continue
			}
		}
		if b.remote != nil && b.remote.Elsewhere(i) {
			b.remote.Send(i, uint8(mode), vec)
			continue
		}
		switch mode {
		case deliveryFixed, deliveryLowest:
			dst.Deliver(vec, level)
		case deliveryNMI:
			dst.events.NMI()
		case deliveryINIT:
			if icr&icrLevelAssert != 0 || !level {
				dst.events.INIT()
			}
		case deliveryStartup:
			dst.events.Startup(vec)
		}
	}
}

// matches reports whether the APIC is addressed by dest.
func (a *LAPIC) matches(dest uint32, logical bool) bool {
	if !logical {
		return dest == 0xFFFFFFFF || dest == a.s.ID
	}
	if dest == 0xFFFFFFFF {
		return true
	}
	ldr := a.s.LDR
	return dest>>16 == ldr>>16 && dest&ldr&0xFFFF != 0
}

// SetEOIHandler sets the function called when a level-triggered vector is
// ended, so the IOAPIC can clear its remote IRR.
func (b *Bus) SetEOIHandler(f func(vector uint8)) { b.eoi = f }

// Interrupt delivers an interrupt message from a device (the IOAPIC, or
// an MSI): delivery mode mode (fixed, lowest priority, NMI, INIT) and
// vector to the APICs dest names, physical or logical, edge or level
// triggered (SDM Vol. 3A, 11.6.2 "Determining IPI Destination").
func (b *Bus) Interrupt(dest uint32, logical bool, mode, vector uint8, level bool) {
	icr := uint64(vector) | uint64(mode&7)<<icrDeliveryShift | uint64(dest)<<32 | icrLevelAssert
	if logical {
		icr |= icrDestLogical
	}
	if level {
		icr |= icrTriggerLevel
	}
	b.send(nil, icr)
}
