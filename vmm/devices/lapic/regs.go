// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import "github.com/big-iron/big-iron/vmm/vcpu"

// reg indexes a local APIC register the same way in both modes: its
// xAPIC MMIO offset divided by 16 (SDM Vol. 3A, 11.4.1, Table 11-1), or
// its x2APIC MSR minus 0x800 (11.12.1.2, Table 11-6). One implementation
// of each register serves both interfaces; regAccess says which mode has
// it.
type reg uint32

// Registers (SDM Vol. 3A, Table 11-1 and Table 11-6).
const (
	regID        reg = 0x02
	regVersion   reg = 0x03
	regTPR       reg = 0x08
	regAPR       reg = 0x09 // xAPIC only
	regPPR       reg = 0x0A
	regEOI       reg = 0x0B
	regRRD       reg = 0x0C // xAPIC only
	regLDR       reg = 0x0D
	regDFR       reg = 0x0E // xAPIC only
	regSVR       reg = 0x0F
	regISR0      reg = 0x10
	regTMR0      reg = 0x18
	regIRR0      reg = 0x20
	regESR       reg = 0x28
	regLVTCMCI   reg = 0x2F
	regICR       reg = 0x30 // x2APIC: all 64 bits; xAPIC: bits 31:0
	regICRHigh   reg = 0x31 // xAPIC only: ICR bits 63:32
	regLVTTimer  reg = 0x32
	regLVTTherm  reg = 0x33
	regLVTPerf   reg = 0x34
	regLVTLINT0  reg = 0x35
	regLVTLINT1  reg = 0x36
	regLVTError  reg = 0x37
	regInitCount reg = 0x38
	regCurCount  reg = 0x39
	regDivide    reg = 0x3E
	regSelfIPI   reg = 0x3F // x2APIC only
	numRegs          = 0x40
)

// access says what software may do with a register in each mode.
type access uint8

const (
	xRead   access = 1 << iota // readable through the xAPIC page
	xWrite                     // writable through the xAPIC page
	x2Read                     // readable with RDMSR in x2APIC mode
	x2Write                    // writable with WRMSR in x2APIC mode

	rw       = xRead | xWrite | x2Read | x2Write
	readOnly = xRead | x2Read
)

// regAccess is Table 11-1 and Table 11-6 of SDM Vol. 3A; a register
// missing from it is reserved in both modes. The xAPIC ID is read-only
// (read/write only before Nehalem, 11.4.1 note to Table 11-1); the x2APIC
// LDR is read-only (11.12.10.2); APR and RRD read as 0 (not supported
// since the Pentium 4, Table 11-1 footnote 1).
var regAccess = [numRegs]access{
	regID: readOnly, regVersion: readOnly, regTPR: rw, regAPR: xRead,
	regPPR: readOnly, regEOI: xWrite | x2Write, regRRD: xRead,
	regLDR: xRead | xWrite | x2Read, regDFR: xRead | xWrite, regSVR: rw,
	regISR0: readOnly, regISR0 + 1: readOnly, regISR0 + 2: readOnly, regISR0 + 3: readOnly,
	regISR0 + 4: readOnly, regISR0 + 5: readOnly, regISR0 + 6: readOnly, regISR0 + 7: readOnly,
	regTMR0: readOnly, regTMR0 + 1: readOnly, regTMR0 + 2: readOnly, regTMR0 + 3: readOnly,
	regTMR0 + 4: readOnly, regTMR0 + 5: readOnly, regTMR0 + 6: readOnly, regTMR0 + 7: readOnly,
	regIRR0: readOnly, regIRR0 + 1: readOnly, regIRR0 + 2: readOnly, regIRR0 + 3: readOnly,
	regIRR0 + 4: readOnly, regIRR0 + 5: readOnly, regIRR0 + 6: readOnly, regIRR0 + 7: readOnly,
	regESR: rw, regLVTCMCI: rw, regICR: rw, regICRHigh: xRead | xWrite,
	regLVTTimer: rw, regLVTTherm: rw, regLVTPerf: rw, regLVTLINT0: rw, regLVTLINT1: rw,
	regLVTError: rw, regInitCount: rw, regCurCount: readOnly, regDivide: rw,
	regSelfIPI: x2Write,
}

// can reports whether register r allows what; registers beyond the
// table (MMIO offsets 0x400-0xFF0, MSRs 0x840-0x8FF) are reserved.
func (r reg) can(what access) bool {
	return r < numRegs && regAccess[r]&what != 0
}

// Register bits (SDM Vol. 3A, chapter 11).
const (
	tprWritable    uint64 = 0xFF                  // 11.8.3.1, Figure 11-18
	svrWritable    uint64 = 0x11FF                // 11.9, Figure 11-23
	divideWritable uint64 = 0xB                   // 11.5.4, Figure 11-10
	countWritable  uint64 = 0xFFFFFFFF            // 11.5.4, Figure 11-11
	xapicRegister  uint64 = 0xFFFFFFFF            // an xAPIC register is 32 bits (11.4.1)
	ldrXAPIC       uint64 = 0xFF000000            // 11.6.2.2, Figure 11-13: logical APIC ID
	dfrModelShift         = 28                    // 11.6.2.2, Figure 11-14
	icrWritable    uint64 = 0xFFFFFFFF_000CCFFF   // 11.6.1, Figure 11-12 (not delivery status)
	icrLow         uint64 = 0xFFFFFFFF            // the ICR half at 0x300
	icrXAPICDest   uint64 = 0xFF000000            // 0x310 bits 31:24: the destination
	icrXAPICDestAt        = 56                    // the xAPIC destination's place in ICR
	x2Broadcast    uint64 = 0xFFFFFFFF            // 11.12.9
	xBroadcast     uint64 = 0xFF                  // 11.6.2.1, 11.6.2.2
	esrRecvIllegal uint32 = 1 << 6                // 11.5.3, Figure 11-9
	esrIllegalReg  uint32 = 1 << 7                // 11.5.3: access to a reserved register
	timerModeRsvd  uint32 = vcpu.LVTTimerModeMask // timer mode 11b is reserved (11.5.1)
)

// fit checks v, written to a register whose writable bits are
// writable: an x2APIC refuses a value with reserved bits set (#GP,
// 11.12.1.3); an xAPIC drops those bits and takes the rest.
func fit(v, defined uint64, x2 bool) (uint64, bool) {
	if v&^defined == 0 {
		return v, true
	}
	return v & defined, !x2
}

// lvtIndex maps an LVT register to its entry.
func lvtIndex(r reg) (vcpu.LVT, bool) {
	switch r {
	case regLVTCMCI:
		return vcpu.LVTCMCI, true
	case regLVTTimer:
		return vcpu.LVTTimer, true
	case regLVTTherm:
		return vcpu.LVTThermal, true
	case regLVTPerf:
		return vcpu.LVTPerf, true
	case regLVTLINT0:
		return vcpu.LVTLINT0, true
	case regLVTLINT1:
		return vcpu.LVTLINT1, true
	case regLVTError:
		return vcpu.LVTError, true
	}
	return 0, false
}

// word returns 32-bit word i of a 256-bit register.
func word(v *vcpu.Vec256, i reg) uint32 { return uint32(v[i/2] >> (32 * (i % 2))) }

// readRegLocked returns register r as software sees it in the APIC's
// mode (x2 for x2APIC mode); the caller checked that r is readable
// there. Write-only registers read as 0.
func (a *LAPIC) readRegLocked(r reg, x2 bool) uint64 {
	switch {
	case r == regID:
		if x2 {
			return uint64(a.s.ID)
		}
		return uint64(a.s.ID) << 24 // 8-bit xAPIC ID in bits 31:24 (11.4.6)
	case r == regVersion:
		return version
	case r == regTPR:
		return uint64(a.s.TPR)
	case r == regPPR:
		return uint64(a.ppr())
	case r == regLDR:
		return uint64(a.s.LDR)
	case r == regDFR:
		return uint64(a.s.DFR)
	case r == regSVR:
		return uint64(a.s.SVR)
	case r >= regISR0 && r < regISR0+8:
		return uint64(word(&a.s.ISR, r-regISR0))
	case r >= regTMR0 && r < regTMR0+8:
		return uint64(word(&a.s.TMR, r-regTMR0))
	case r >= regIRR0 && r < regIRR0+8:
		a.fireTimerLocked()
		return uint64(word(&a.s.IRR, r-regIRR0))
	case r == regESR:
		return uint64(a.s.ESR)
	case r == regICR && x2:
		return a.s.ICR
	case r == regICR:
		return a.s.ICR & icrLow
	case r == regICRHigh:
		return a.s.ICR >> 32
	case r == regInitCount:
		return uint64(a.s.TimerInitial)
	case r == regCurCount:
		return uint64(a.currentCountLocked())
	case r == regDivide:
		return uint64(a.s.TimerDivide)
	}
	if l, ok := lvtIndex(r); ok {
		return uint64(a.s.LVT[l])
	}
	return 0 // APR, RRD; EOI and self IPI are write-only
}

// writeRegLocked writes v to register r in the APIC's mode (x2 for
// x2APIC mode); the caller checked that r is writable there. ok false
// means the value is refused: #GP in x2APIC mode, the write ignored in
// xAPIC mode. ipi asks the caller to send icr once the lock is dropped.
func (a *LAPIC) writeRegLocked(r reg, v uint64, x2 bool) (ok, ipi bool, icr uint64) {
	switch r {
	case regTPR:
		if v, ok = fit(v, tprWritable, x2); ok {
			a.s.TPR = uint32(v)
		}
	case regEOI:
		// Only 0 may be written in x2APIC mode (11.12.1.3); an xAPIC
		// takes any value (11.8.5).
		if ok = !x2 || v == 0; ok {
			a.eoiLocked()
		}
	case regLDR: // xAPIC only
		if v, ok = fit(v, ldrXAPIC, x2); ok {
			a.s.LDR = uint32(v)
		}
	case regDFR:
		ok = a.writeDFRLocked(v)
	case regSVR:
		ok = a.writeSVRLocked(v, x2)
	case regESR:
		ok = a.writeESRLocked(v, x2)
	case regICR, regICRHigh:
		return a.writeICRLocked(r, v, x2)
	case regInitCount:
		ok = a.writeInitCountLocked(v, x2)
	case regDivide:
		if v, ok = fit(v, divideWritable, x2); ok {
			a.s.TimerDivide = uint32(v)
		}
	case regSelfIPI:
		if ok = v <= 0xFF; ok {
			a.deliverLocked(uint8(v), false)
		}
	default:
		if l, isLVT := lvtIndex(r); isLVT {
			ok = a.writeLVTLocked(l, v, x2)
		}
	}
	return ok, false, 0
}

// eoiLocked ends the highest in-service vector (SDM Vol. 3A, 11.8.5); a
// level-triggered one is reported to the IOAPIC once the lock is dropped.
func (a *LAPIC) eoiLocked() {
	if vec, ok := a.s.ISR.Highest(); ok {
		a.s.ISR.Clear(vec)
		if a.s.TMR.Has(vec) {
			a.levelEOI, a.hasLevelEOI = vec, true
		}
	}
}

// writeDFRLocked sets the destination format model (SDM Vol. 3A,
// 11.6.2.2, Figure 11-14): bits 31:28 are 1111b (flat) or 0000b
// (cluster), bits 27:0 read as ones. Other models are undefined; such a
// write is ignored, so the register always holds one of the two.
func (a *LAPIC) writeDFRLocked(v uint64) bool {
	switch uint32(v) >> dfrModelShift {
	case vcpu.DFRFlat >> dfrModelShift:
		a.s.DFR = vcpu.DFRFlat
	case vcpu.DFRCluster >> dfrModelShift:
		a.s.DFR = vcpu.DFRCluster
	default:
		return false
	}
	return true
}

// writeSVRLocked sets the spurious-interrupt vector register; clearing
// its APIC-enable bit masks every LVT entry (SDM Vol. 3A, 11.4.7.2).
func (a *LAPIC) writeSVRLocked(v uint64, x2 bool) bool {
	v, ok := fit(v, svrWritable, x2)
	if !ok {
		return false
	}
	a.s.SVR = uint32(v)
	if a.s.SVR&vcpu.SVREnable == 0 {
		for i := range a.s.LVT {
			a.s.LVT[i] |= vcpu.LVTMasked
		}
	}
	return true
}

// writeESRLocked handles a write to the error status register. An xAPIC
// latches (SDM Vol. 3A, 11.5.3): the write makes the errors recorded
// since the previous write readable and starts a new record, whatever the
// value. In x2APIC mode only 0 may be written (11.12.1.3); it clears the
// register, into which this model records errors at once, as it did
// before it had an xAPIC mode (see recordErrorLocked).
func (a *LAPIC) writeESRLocked(v uint64, x2 bool) bool {
	if x2 {
		if v != 0 {
			return false
		}
		a.s.ESR = 0
		return true
	}
	a.s.ESR, a.esrPending = a.esrPending, 0
	return true
}

// recordErrorLocked notes an APIC error (SDM Vol. 3A, 11.5.3, Figure
// 11-9): an xAPIC shows it at the next ESR write; otherwise it shows at
// once.
func (a *LAPIC) recordErrorLocked(bit uint32) {
	if a.modeLocked() == ModeXAPIC {
		a.esrPending |= bit
		return
	}
	a.s.ESR |= bit
}

// writeICRLocked writes the interrupt command register (SDM Vol. 3A,
// 11.6.1). In x2APIC mode it is one 64-bit MSR whose write sends the IPI
// (11.12.9). In xAPIC mode 0x310 holds the 8-bit destination in bits
// 31:24 and a write to 0x300 sends, so the IPI goes at once and the
// delivery-status bit (12) always reads 0. The IPI is returned in x2APIC
// form, an xAPIC broadcast destination (0xFF) widened to the x2APIC one.
func (a *LAPIC) writeICRLocked(r reg, v uint64, x2 bool) (ok, ipi bool, icr uint64) {
	if x2 {
		if v, ok = fit(v, icrWritable, true); ok {
			a.s.ICR = v
		}
		return ok, ok, v
	}
	if r == regICRHigh {
		a.s.ICR = a.s.ICR&icrLow | (v&icrXAPICDest)<<32
		return true, false, 0
	}
	low, _ := fit(v, icrWritable&icrLow, false)
	a.s.ICR = a.s.ICR&^icrLow | low
	dest := a.s.ICR >> icrXAPICDestAt
	if dest == xBroadcast {
		dest = x2Broadcast
	}
	return true, true, low | dest<<32
}

// writeInitCountLocked sets the timer's initial count, which starts a
// one-shot or periodic count (SDM Vol. 3A, 11.5.4).
func (a *LAPIC) writeInitCountLocked(v uint64, x2 bool) bool {
	v, ok := fit(v, countWritable, x2)
	if !ok {
		return false
	}
	a.s.TimerInitial = uint32(v)
	a.countStart = 0
	if v != 0 && a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask != timerTSCDeadline {
		a.countStart = a.clock()
	}
	return true
}

// writeLVTLocked sets LVT entry l. A software-disabled APIC keeps every
// entry masked (SDM Vol. 3A, 11.4.7.2). Reserved timer and delivery
// modes (11.5.1, Figure 11-8) are refused like reserved bits in x2APIC
// mode; an xAPIC ignores such a write, so that the state stays one
// vcpu.LAPIC's validation accepts.
func (a *LAPIC) writeLVTLocked(l vcpu.LVT, v uint64, x2 bool) bool {
	v, ok := fit(v, uint64(lvtWritable[l]), x2)
	val := uint32(v)
	if !ok || !lvtModeValid(l, val) {
		return false
	}
	old := a.s.LVT[l]
	if a.s.SVR&vcpu.SVREnable == 0 {
		val |= vcpu.LVTMasked
	}
	a.s.LVT[l] = val
	if l == vcpu.LVTTimer && (old^val)&vcpu.LVTTimerModeMask != 0 &&
		(old&vcpu.LVTTimerModeMask == timerTSCDeadline || val&vcpu.LVTTimerModeMask == timerTSCDeadline) {
		// Entering or leaving TSC-deadline mode disarms the timer
		// (11.5.4.1); one-shot and periodic share the count.
		a.deadline, a.countStart = 0, 0
	}
	return true
}

// lvtModeValid reports whether an LVT value names a defined timer mode
// and delivery mode (SDM Vol. 3A, 11.5.1, Figure 11-8: delivery modes
// 001b, 011b and 110b and timer mode 11b are reserved).
func lvtModeValid(l vcpu.LVT, v uint32) bool {
	if l == vcpu.LVTTimer {
		return v&timerModeRsvd != timerModeRsvd
	}
	if lvtWritable[l]&vcpu.LVTDeliveryModeMask == 0 {
		return true
	}
	switch v & vcpu.LVTDeliveryModeMask >> vcpu.LVTDeliveryModeShift {
	case 1, 3, 6:
		return false
	}
	return true
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
