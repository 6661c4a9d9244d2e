// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import "github.com/big-iron/big-iron/vmm/vcpu"

// Mode is a local APIC's state as IA32_APIC_BASE's EN and EXTD bits set
// it (SDM Vol. 3A, 11.12.5.1, Figure 11-28).
type Mode uint8

// The three valid states; EN=0 with EXTD=1 is invalid and cannot be
// entered (11.12.5.1).
const (
	// ModeX2APIC (EN=1, EXTD=1): registers are MSRs 0x800-0x8FF
	// (11.12.1); the APIC page is not decoded. NewBus powers on here.
	ModeX2APIC Mode = iota
	// ModeXAPIC (EN=1, EXTD=0): registers are the 4-KiB page at the
	// base IA32_APIC_BASE gives (11.4.1, 11.4.4); the x2APIC MSRs #GP.
	// A real processor comes out of reset here (11.12.5.1).
	ModeXAPIC
	// ModeDisabled (EN=0, EXTD=0): globally disabled (11.4.3): no
	// registers, no interrupts.
	ModeDisabled
)

var modeNames = [...]string{ModeX2APIC: "x2APIC", ModeXAPIC: "xAPIC", ModeDisabled: "disabled"}

// String returns the mode's name.
func (m Mode) String() string {
	if int(m) >= len(modeNames) {
		return "Mode(?)"
	}
	return modeNames[m]
}

// baseMode is IA32_APIC_BASE's EN and EXTD.
const baseMode = vcpu.APICBaseEnable | vcpu.APICBaseX2APIC

// modeOf returns the mode IA32_APIC_BASE value base selects and whether
// it is a valid one.
func modeOf(base uint64) (Mode, bool) {
	switch base & baseMode {
	case baseMode:
		return ModeX2APIC, true
	case vcpu.APICBaseEnable:
		return ModeXAPIC, true
	case 0:
		return ModeDisabled, true
	}
	return ModeDisabled, false // EXTD without EN
}

func (a *LAPIC) modeLocked() Mode {
	m, _ := modeOf(a.s.Base)
	return m
}

// Mode returns the APIC's current mode.
func (a *LAPIC) Mode() Mode {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.modeLocked()
}

// PowerOn puts every APIC of the bus in its power-on state (SDM Vol. 3A,
// 11.4.7.1) in mode m: base 0xFEE00000, the BSP bit on APIC 0, ID i for
// vCPU i, the registers at their reset values (in x2APIC mode the LDR
// holds the logical x2APIC ID, 11.12.10.2). An APIC whose ID does not
// fit in 8 bits powers on in x2APIC mode whatever m, as vcpu.State.Reset
// does: only an x2APIC can hold its ID. NewBus calls PowerOn(ModeX2APIC);
// a hypervisor that wants the real processor's reset state, as the
// kvm-unit-tests start-up code expects, calls PowerOn(ModeXAPIC) before
// the vCPUs run (or at a VM reset, with them stopped).
func (b *Bus) PowerOn(m Mode) {
	for i, a := range b.apics {
		id := uint32(i)
		base := DefaultBase | vcpu.APICBaseEnable | vcpu.APICBaseX2APIC
		switch {
		case id > 0xFF:
		case m == ModeXAPIC:
			base = DefaultBase | vcpu.APICBaseEnable
		case m == ModeDisabled:
			base = DefaultBase
		}
		if i == 0 {
			base |= vcpu.APICBaseBSP
		}
		a.mu.Lock()
		a.s.ID = id
		a.resetLocked(base)
		a.hasLevelEOI = false
		a.mu.Unlock()
	}
}

// resetLocked puts every register but the ID in its power-up state
// (SDM Vol. 3A, 11.4.7.1 and 11.12.5.1), with IA32_APIC_BASE base: the
// state after power-up, after INIT, and after a global disable.
func (a *LAPIC) resetLocked(base uint64) {
	// The DFR has no meaning in x2APIC mode; it keeps its reset value
	// (all ones, the flat model), which a migrated state must carry.
	a.s = vcpu.LAPIC{ID: a.s.ID, Base: base, SVR: 0xFF, DFR: vcpu.DFRFlat}
	if base&vcpu.APICBaseX2APIC != 0 {
		a.s.LDR = vcpu.X2APICLogicalID(a.s.ID)
	}
	for i := range a.s.LVT {
		a.s.LVT[i] = vcpu.LVTMasked
	}
	a.deadline, a.countStart, a.esrPending = 0, 0, 0
}

// INITReset puts the APIC in the state an INIT leaves it in (SDM Vol.
// 3A, 11.4.7.3 and 11.12.5.1): every register as after power-up but the
// ID and IA32_APIC_BASE, so the mode and base stay and an x2APIC keeps
// its logical ID. The bus does not call it when it delivers an INIT (it
// tells Events.INIT); the hypervisor calls it when it performs the INIT
// on the vCPU.
func (a *LAPIC) INITReset() {
	a.mu.Lock()
	a.resetLocked(a.s.Base)
	a.mu.Unlock()
}

// SetMaxPhysAddr gives the bus the guest's physical-address width,
// MAXPHYADDR (CPUID.80000008H:EAX[7:0]): IA32_APIC_BASE's address bits
// from it up are reserved (SDM Vol. 3A, 11.4.4, Figure 11-5), so writes
// setting them #GP. Without it, or for a width outside 13-52, the bus
// takes the architectural maximum, 52 bits, which vcpu's validation
// accepts. Call it before the vCPUs run.
func (b *Bus) SetMaxPhysAddr(bits uint) {
	b.baseAddress = vcpu.APICBaseAddress
	if bits > 12 && bits < 52 {
		b.baseAddress &= 1<<bits - 1
	}
}

// writeBaseLocked writes IA32_APIC_BASE, following the transitions of
// SDM Vol. 3A, 11.12.5.1 and Figure 11-28; false raises #GP.
//
//   - reserved bits (11.4.4, Figure 11-5), or a changed BSP bit (read-only
//     here): #GP;
//   - EN=0 with EXTD=1, x2APIC to xAPIC, disabled to x2APIC: #GP;
//   - to or from disabled: every register but the ID is reset (11.4.3:
//     "the APIC may return to the state described in 11.4.7.1"), so
//     enabling again finds the power-up state, even if a disabled state
//     arrived by migration with requests in it. An APIC whose ID exceeds
//     8 bits cannot leave x2APIC mode here: a disabled or xAPIC state
//     cannot hold the ID (vcpu's validation refuses it);
//   - xAPIC to x2APIC: the LDR becomes the logical x2APIC ID and the ICR's
//     high half is not kept (11.12.5.1 "State Changes From xAPIC Mode to
//     x2APIC Mode"); errors not yet latched into the ESR show in it;
//   - the base address may change in any mode; it is decoded only in
//     xAPIC mode.
func (a *LAPIC) writeBaseLocked(v uint64) bool {
	addr := a.bus.baseAddress
	if addr == 0 {
		addr = vcpu.APICBaseAddress
	}
	if v&^(vcpu.APICBaseBSP|baseMode|addr) != 0 || (v^a.s.Base)&vcpu.APICBaseBSP != 0 {
		return false
	}
	from := a.modeLocked()
	to, valid := modeOf(v)
	switch {
	case !valid,
		from == ModeX2APIC && to == ModeXAPIC,
		from == ModeDisabled && to == ModeX2APIC,
		to != ModeX2APIC && a.s.ID > 0xFF:
		return false
	case from != to && (from == ModeDisabled || to == ModeDisabled):
		a.resetLocked(v)
		return true
	case from == ModeXAPIC && to == ModeX2APIC:
		a.s.LDR = vcpu.X2APICLogicalID(a.s.ID)
		a.s.ICR &= icrLow
		a.s.ESR |= a.esrPending
		a.esrPending = 0
	}
	a.s.Base = v
	return true
}
