// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package lapic emulates a vCPU's local APIC (Intel SDM Vol. 3A, chapter
// 11 "Advanced Programmable Interrupt Controller (APIC)") in both of its
// modes, plus IA32_APIC_BASE and IA32_TSC_DEADLINE:
//
//   - x2APIC mode (11.12 "Extended XAPIC (x2APIC)"): the registers are
//     MSRs 0x800-0x8FF, reserved bits and registers raise #GP, IDs are 32
//     bits and the logical ID derives from the ID. NewBus powers the
//     APICs on in this mode, as firmware may leave them, which is what
//     the Linux guest runs with.
//   - xAPIC mode (11.4 "Local APIC"): the registers are a 4-KiB page,
//     0xFEE00000 unless IA32_APIC_BASE moves it, reached through
//     ReadMMIO and WriteMMIO; IDs are 8 bits, the LDR and DFR are the
//     guest's (flat or cluster logical destinations), errors latch into
//     the ESR. Bus.PowerOn(ModeXAPIC) powers the APICs on in this mode,
//     as a real processor comes out of reset (kvm-unit-tests expects it).
//
// IA32_APIC_BASE moves an APIC between these modes and the globally
// disabled state as 11.12.5.1 allows (see Mode). The hypervisor routes a
// vCPU's accesses to the page MMIOBase reports to that vCPU's own APIC.
//
// The state lives in a vcpu.LAPIC so that it travels with the vCPU. The
// hypervisor asks Pending for a vector to inject, calls Accept when it
// injects it, and arms its timer from Deadline.
package lapic

import (
	"sync/atomic"

	"github.com/big-iron/big-iron/vmm/spinlock"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// MSR indexes (SDM Vol. 3A, 11.12.1.2, Table 11-6): the x2APIC ones are
// 0x800 plus the register's index.
const (
	MSRAPICBase    uint32 = 0x1B
	MSRTSCDeadline uint32 = 0x6E0
	// MSRTSC is IA32_TIME_STAMP_COUNTER, the vCPU's TSC (SDM Vol. 3B,
	// 18.17 "Time-Stamp Counter"). It is here because the APIC's timer
	// runs on it: a vCPU that writes its TSC moves its TSC deadlines.
	MSRTSC       uint32 = 0x10
	msrFirst     uint32 = 0x800
	msrID               = msrFirst + uint32(regID)
	msrVersion          = msrFirst + uint32(regVersion)
	msrTPR              = msrFirst + uint32(regTPR)
	msrPPR              = msrFirst + uint32(regPPR)
	msrEOI              = msrFirst + uint32(regEOI)
	msrLDR              = msrFirst + uint32(regLDR)
	msrSVR              = msrFirst + uint32(regSVR)
	msrESR              = msrFirst + uint32(regESR)
	msrICR              = msrFirst + uint32(regICR)
	msrLVTTimer         = msrFirst + uint32(regLVTTimer)
	msrLVTLINT0         = msrFirst + uint32(regLVTLINT0)
	msrLVTLINT1         = msrFirst + uint32(regLVTLINT1)
	msrLVTError         = msrFirst + uint32(regLVTError)
	msrInitCount        = msrFirst + uint32(regInitCount)
	msrCurCount         = msrFirst + uint32(regCurCount)
	msrDivide           = msrFirst + uint32(regDivide)
	msrSelfIPI          = msrFirst + uint32(regSelfIPI)
	msrLast      uint32 = 0x8FF

	// version: 0x14 (an integrated APIC) with 7 LVT entries (max LVT
	// entry 6, CMCI included) and no EOI-broadcast suppression (11.4.8,
	// Figure 11-7).
	version = 0x14 | 6<<16

	// DefaultBase is IA32_APIC_BASE's address field at reset.
	DefaultBase = 0xFEE00000

	// MMIOSize is the size of the xAPIC register page (11.4.1).
	MMIOSize = 0x1000
)

// ICR fields (SDM Vol. 3A, 11.6.1, Figure 11-12).
const (
	icrVector        = 0xFF
	icrDeliveryShift = 8
	icrDestLogical   = 1 << 11
	icrLevelAssert   = 1 << 14
	icrTriggerLevel  = 1 << 15
	icrShorthand     = 3 << 18
	shorthandNone    = 0
	shorthandSelf    = 1 << 18
	shorthandAll     = 2 << 18
	shorthandOthers  = 3 << 18

	deliveryFixed    = 0
	deliveryLowest   = 1
	deliverySMI      = 2
	deliveryNMI      = 4
	deliveryINIT     = 5
	deliveryStartup  = 6
	timerOneShot     = 0
	timerPeriodic    = 1 << 17
	timerTSCDeadline = 2 << 17
)

// Clock reads the guest's TSC, as every vCPU sees it until it writes its
// own (MSRTSC).
type Clock func() uint64

// Events receives what an APIC sends to its vCPU's runner: Kick says an
// interrupt became pending (wake a halted vCPU), INIT and Startup are the
// INIT and SIPI messages addressed to the vCPU, NMI an NMI. The bus calls
// them without any APIC's lock held. A runner that performs the INIT
// resets the APIC with LAPIC.INITReset.
type Events interface {
	Kick()
	INIT()
	Startup(vector uint8)
	NMI()
}

// LAPIC is one vCPU's local APIC. Its methods are safe for concurrent
// use: its own vCPU accesses it through MSRs or its page while others
// send it IPIs.
type LAPIC struct {
	mu     spinlock.Lock
	s      vcpu.LAPIC
	bus    *Bus
	events Events
	clock  Clock
	// tscAdjust is what this vCPU's TSC adds to clock's: set by a write
	// of its TSC, read by its runner at every entry. The timer keeps
	// clock's time; IA32_TSC_DEADLINE is converted as it is accessed.
	tscAdjust atomic.Uint64
	// timer: TSC-deadline value, or for one-shot/periodic the TSC at
	// which the count started and the TSC ticks per count.
	deadline   uint64
	countStart uint64
	// levelEOI is the vector of a level-triggered interrupt an EOI
	// write just ended, for the IOAPIC (told after the lock is dropped).
	levelEOI    uint8
	hasLevelEOI bool
	// esrPending holds the errors an xAPIC detected since the last ESR
	// write, which the next write latches into the ESR (11.5.3). It is
	// not part of vcpu.LAPIC and does not migrate.
	esrPending uint32
	// stats
	illegal uint64
}

// Bus connects the local APICs of one VM so that IPIs reach their
// destinations.
type Bus struct {
	apics []*LAPIC
	eoi   func(vector uint8)
	// remote, if set, takes the interrupts and IPIs for the vCPUs that
	// run on other nodes (see SetRemote).
	remote Remote
	// baseAddress are IA32_APIC_BASE's address bits below MAXPHYADDR
	// (see SetMaxPhysAddr; 0 for the architectural maximum).
	baseAddress uint64
}

// Remote reaches the vCPUs of a distributed VM that run on other nodes.
// Elsewhere reports whether vCPU i runs on another node now; Send takes
// an interrupt or IPI for it: delivery mode (fixed, lowest priority,
// NMI, INIT, startup, as in the ICR) and vector. Send is called from the
// sender's exit handler or a device's interrupt path: it must not block.
//
// The bus picks the destinations of a message with the APIC state it has
// here for every vCPU. For a vCPU away, that is the state it left with
// (or, if it never ran here, its power-on state): a mode, xAPIC LDR or
// DFR it set, or a global disable it did, on another node is not seen
// here, so logical destinations, broadcasts and disabled APICs are
// judged by that older state. Physical destinations are right whatever
// happened (the ID never changes).
type Remote interface {
	Elsewhere(i int) bool
	Send(i int, mode, vector uint8)
}

// SetRemote makes the bus hand the interrupts for vCPUs that run on other
// nodes to r instead of their local APICs here, which hold no live state
// while their vCPUs are away.
func (b *Bus) SetRemote(r Remote) { b.remote = r }

// NewBus creates n local APICs with x2APIC ids 0..n-1, vCPU 0 the boot
// processor, powered on in x2APIC mode (see PowerOn for xAPIC mode).
// events(i) receives vCPU i's events.
func NewBus(n int, clock Clock, events func(i int) Events) *Bus {
	b := &Bus{apics: make([]*LAPIC, n)}
	for i := range b.apics {
		b.apics[i] = &LAPIC{bus: b, events: events(i), clock: clock}
	}
	b.PowerOn(ModeX2APIC)
	return b
}

// APIC returns vCPU i's local APIC.
func (b *Bus) APIC(i int) *LAPIC { return b.apics[i] }

// Len returns the number of local APICs.
func (b *Bus) Len() int { return len(b.apics) }

// State returns a copy of the register state (for migration).
func (a *LAPIC) State() vcpu.LAPIC {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.s
}

// CR8 reads the task priority as CR8 shows it: TPR bits 7:4 (SDM Vol.
// 3A, 11.8.6 "Task Priority in IA-32e Mode").
func (a *LAPIC) CR8() uint8 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return uint8(a.s.TPR >> 4 & 0xF)
}

// SetCR8 writes the task priority through CR8: TPR bits 7:4 take v's
// bits 3:0, bits 3:0 become 0 (11.8.6).
func (a *LAPIC) SetCR8(v uint8) {
	a.mu.Lock()
	a.s.TPR = uint32(v&0xF) << 4
	a.mu.Unlock()
}

// ppr computes the processor-priority register (SDM Vol. 3A, 11.8.3.1).
func (a *LAPIC) ppr() uint32 {
	isrv := uint32(0)
	if v, ok := a.s.ISR.Highest(); ok {
		isrv = uint32(v)
	}
	if a.s.TPR&0xF0 >= isrv&0xF0 {
		return a.s.TPR & 0xFF
	}
	return isrv & 0xF0
}

// Pending returns the vector the vCPU should take next, if any: the
// highest requested vector whose priority class is above the processor
// priority (SDM Vol. 3A, 11.8.3). A globally disabled APIC has none. It
// does not allocate.
func (a *LAPIC) Pending() (uint8, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.s.Base&vcpu.APICBaseEnable == 0 {
		return 0, false
	}
	a.fireTimerLocked()
	v, ok := a.s.IRR.Highest()
	if !ok || a.s.SVR&vcpu.SVREnable == 0 {
		return 0, false // software-disabled: requests wait (11.4.7.2)
	}
	if uint32(v)&0xF0 <= a.ppr()&0xF0 {
		return 0, false
	}
	return v, true
}

// Accept records that the vCPU took vector v: IRR to ISR (SDM Vol. 3A,
// 11.8.4).
func (a *LAPIC) Accept(v uint8) {
	a.mu.Lock()
	a.s.IRR.Clear(v)
	a.s.ISR.Set(v)
	a.mu.Unlock()
}

// Deliver requests vector v, as an IPI, the timer or the IOAPIC do.
// Vectors 0-15 are illegal and set the receive-illegal-vector error. A
// globally disabled APIC drops it (11.4.3).
func (a *LAPIC) Deliver(v uint8, level bool) {
	a.mu.Lock()
	if a.s.Base&vcpu.APICBaseEnable == 0 {
		a.mu.Unlock()
		return
	}
	a.deliverLocked(v, level)
	a.mu.Unlock()
	a.events.Kick()
}

func (a *LAPIC) deliverLocked(v uint8, level bool) {
	if v < 16 {
		a.recordErrorLocked(esrRecvIllegal)
		a.illegal++
		return
	}
	a.s.IRR.Set(v)
	if level {
		a.s.TMR.Set(v)
	} else {
		a.s.TMR.Clear(v)
	}
}

// Deadline returns the guest TSC at which the timer fires next, or 0 if
// it is not armed.
func (a *LAPIC) Deadline() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deadlineLocked()
}

func (a *LAPIC) deadlineLocked() uint64 {
	lvt := a.s.LVT[vcpu.LVTTimer]
	switch lvt & vcpu.LVTTimerModeMask {
	case timerTSCDeadline:
		return a.deadline
	case timerOneShot, timerPeriodic:
		if a.s.TimerInitial == 0 || a.countStart == 0 {
			return 0
		}
		return a.countStart + uint64(a.s.TimerInitial)*a.ticksPerCount()
	}
	return 0
}

// ticksPerCount is the divide configuration's divisor (SDM Vol. 3A,
// 11.5.4, Figure 11-10): the timer counts at the TSC rate divided by it.
func (a *LAPIC) ticksPerCount() uint64 {
	d := a.s.TimerDivide&3 | a.s.TimerDivide>>1&4
	if d == 7 {
		return 1
	}
	return 2 << d
}

// fireTimerLocked delivers the timer interrupt if its time has come and
// re-arms a periodic timer.
func (a *LAPIC) fireTimerLocked() {
	d := a.deadlineLocked()
	if d == 0 {
		return
	}
	now := a.clock()
	if now < d {
		return
	}
	lvt := a.s.LVT[vcpu.LVTTimer]
	switch lvt & vcpu.LVTTimerModeMask {
	case timerTSCDeadline:
		a.deadline = 0
	case timerPeriodic:
		period := uint64(a.s.TimerInitial) * a.ticksPerCount()
		a.countStart = d + (now-d)/period*period
	default:
		a.countStart = 0
	}
	if lvt&vcpu.LVTMasked == 0 {
		a.deliverLocked(uint8(lvt), false)
	}
}

// Tick fires the timer if it is due; the hypervisor calls it when the
// deadline it armed passes.
func (a *LAPIC) Tick() {
	a.mu.Lock()
	a.fireTimerLocked()
	a.mu.Unlock()
}

// Save returns the APIC's state for migration: the registers with the
// timer's current count as of now, and the TSC deadline (0 if the timer
// is not armed in TSC-deadline mode).
func (a *LAPIC) Save() (s vcpu.LAPIC, tscDeadline uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s = a.s
	s.TimerCurrent = a.currentCountLocked()
	if a.s.LVT[vcpu.LVTTimer]&vcpu.LVTTimerModeMask == timerTSCDeadline {
		tscDeadline = a.deadline
	}
	return s, tscDeadline
}

// TSCAdjust is what the vCPU's TSC adds to the bus clock's: 0 until the
// guest writes its TSC. The runner adds it to the TSC offset at entry;
// it travels with the vCPU (SetTSCAdjust).
func (a *LAPIC) TSCAdjust() uint64 { return a.tscAdjust.Load() }

// SetTSCAdjust gives the vCPU the TSC adjustment TSCAdjust returned on
// another node.
func (a *LAPIC) SetTSCAdjust(v uint64) { a.tscAdjust.Store(v) }

// Restore gives the APIC the state Save returned on another node: its
// timer goes on from the saved current count, or fires at tscDeadline.
// Its ID stays this APIC's, and so, in x2APIC mode, does the logical ID
// derived from it; the mode, base, and an xAPIC's LDR and DFR (the
// guest's) come from s. Errors an xAPIC recorded since its last ESR
// write do not travel (vcpu.LAPIC has only the ESR).
func (a *LAPIC) Restore(s vcpu.LAPIC, tscDeadline uint64) {
	a.mu.Lock()
	id := a.s.ID
	a.s = s
	a.s.ID = id
	if m, _ := modeOf(s.Base); m == ModeX2APIC {
		a.s.LDR = vcpu.X2APICLogicalID(id)
	}
	a.deadline, a.countStart, a.esrPending = 0, 0, 0
	switch s.LVT[vcpu.LVTTimer] & vcpu.LVTTimerModeMask {
	case timerTSCDeadline:
		a.deadline = tscDeadline
	case timerOneShot, timerPeriodic:
		if s.TimerInitial != 0 && s.TimerCurrent != 0 && s.TimerCurrent <= s.TimerInitial {
			elapsed := uint64(s.TimerInitial-s.TimerCurrent) * a.ticksPerCount()
			a.countStart = a.clock() - elapsed
		}
	}
	a.mu.Unlock()
	a.events.Kick()
}
