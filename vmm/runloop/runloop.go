// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package runloop is the one vCPU run loop of the hyperkernel: load the
// vCPU on this core, inject pending events, enter the guest, decode the
// exit, dispatch it, handle the result, and again. Every kind of guest
// runs in it: the built-in test guest, an operating system on one node,
// and a node's share of a distributed VM.
//
// The loop sees the virtualization hardware through CPU (VT-x today, its
// VMCS kept by package hv) and what differs between guests through Guest,
// a small set of strategies: how a memory fault is served, where devices
// are, what a halt means, what the environment has to do before each
// entry (messages from other nodes, device accesses to forward), and how
// the vCPU leaves for another node. Both are interfaces, so the loop is
// tested on the host with fakes (runloop_test.go).
//
// Pinning: between CPU.Load and CPU.Put the calling goroutine is pinned
// to its core and must not block. The loop calls Guest methods that may
// block (Service, Fault, Halt, Other, Yield, Depart) in either state;
// those that block call CPU.Put first. The loop leaves the core after
// Slice cycles even if the guest's exits never yield, so that the Go
// runtime's stop-the-world always gets the core.
package runloop

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// EventType is how an event is delivered, in the encoding of VT-x's
// interruption-information fields (Intel SDM Vol. 3C 25.8.3 Table
// 25-17). AMD-V's EVENTINJ (AMD APM Vol. 2 15.20) shares types 0, 2, 3
// and 4; it has none for 5 and 6, which its backend delivers as
// exceptions after moving RIP past the instruction (svm.FromRunloop).
type EventType uint8

// Event types.
const (
	ExternalInterrupt  EventType = 0
	NMI                EventType = 2
	HardwareException  EventType = 3
	SoftwareInterrupt  EventType = 4
	PrivilegedSoftware EventType = 5 // INT1
	SoftwareException  EventType = 6 // INT3, INTO
)

// Event is an interrupt or exception to deliver to the guest at entry.
type Event struct {
	Vector       uint8
	Type         EventType
	HasErrorCode bool
	ErrorCode    uint32
	// InstructionLength is the length of the instruction that raised a
	// software interrupt or exception (delivery pushes the address after
	// it); 0 for other types.
	InstructionLength uint32
}

// Fault reports whether ev is a fault-class exception, one that restarts
// the instruction that raised it (Intel SDM Vol. 3A, 6.15 "Exception and
// Interrupt Reference"): #DE, #BR, #UD, #NM, #TS, #NP, #SS, #GP, #PF,
// #MF, #AC, #XM, #VE, #CP. Delivering one pushes RFLAGS with RF set
// (Vol. 3B, 18.3.1.1), so that an instruction breakpoint on the restarted
// instruction does not hit twice; event injection pushes the guest's
// RFLAGS as they are, so a backend sets RF before it injects a fault.
// #DB is left out: as an instruction breakpoint it is a fault that
// leaves RF clear.
func (ev Event) Fault() bool {
	if ev.Type != HardwareException {
		return false
	}
	switch ev.Vector {
	case 0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21:
		return true
	}
	return false
}

// RFLAGSRF is RFLAGS.RF, the resume flag (Intel SDM Vol. 1, 3.4.3.3).
const RFLAGSRF = 1 << 16

// VM-entry interruption-information bits (Intel SDM Vol. 3C 25.8.3).
const (
	infoErrorValid = 1 << 11
	infoValid      = 1 << 31
)

// EventFromInfo decodes a VT-x interruption-information word (the VM-entry
// field, or IDT-vectoring information) and its error code.
func EventFromInfo(info, code uint32) (Event, bool) {
	if info&infoValid == 0 {
		return Event{}, false
	}
	ev := Event{Vector: uint8(info), Type: EventType(info >> 8 & 7)}
	if info&infoErrorValid != 0 {
		ev.HasErrorCode, ev.ErrorCode = true, code
	}
	return ev, true
}

// Info encodes e as a VT-x VM-entry interruption-information word.
func (e Event) Info() uint32 {
	info := uint32(e.Vector) | uint32(e.Type)<<8 | infoValid
	if e.HasErrorCode {
		info |= infoErrorValid
	}
	return info
}

// CPU is the virtualization hardware as the loop of one vCPU sees it.
// Methods marked "loaded" need the vCPU on the core (after Load); the
// others work in either state.
type CPU interface {
	// Load puts the vCPU on the calling core, pinning the goroutine
	// there, and makes its state current; it does nothing if the vCPU
	// is loaded.
	Load() error
	// Put takes the vCPU off the core (any core may load it next) and
	// unpins the goroutine; it does nothing if the vCPU is not loaded.
	Put()
	// Loaded reports whether the vCPU is on a core.
	Loaded() bool
	// Core is the APIC id of the core the vCPU was last loaded on.
	Core() int
	// Now reads the host's time-stamp counter.
	Now() uint64

	// Enter runs the guest until its next exit and fills e (loaded).
	// An error means the entry itself failed (VMfail).
	Enter(e *exits.Exit) error
	// Regs is the guest's general-purpose registers kept in memory
	// (RSP and RIP are in the processor's state).
	Regs() *vmx.GuestRegs
	// RIP reads the guest's instruction pointer (loaded).
	RIP() uint64
	// Advance moves RIP past an instruction of n bytes (loaded).
	Advance(n uint32)

	// Inject queues an event for the next entry (loaded).
	Inject(ev Event)
	// Injecting reports whether an event is queued for the next entry.
	Injecting() bool
	// Interrupted returns the event whose delivery the latest exit cut
	// short: it must be delivered again.
	Interrupted() (Event, bool)
	// Interruptible reports whether the guest can take an external
	// interrupt now: RFLAGS.IF set and no STI or MOV SS shadow (loaded).
	Interruptible() bool
	// InterruptsEnabled reports RFLAGS.IF (loaded).
	InterruptsEnabled() bool
	// EndShadow ends an STI or MOV SS shadow, after HLT or another
	// instruction the hypervisor carried out (loaded).
	EndShadow()
	// StepTrap queues the single-step trap that an instruction the
	// hypervisor carried out owes a guest running with RFLAGS.TF set:
	// #DB with DR6.BS, taken before the next instruction (Intel SDM
	// Vol. 3B, 18.3.1.4; AMD APM Vol. 2, 13.1.3.5). With TF clear it
	// does nothing (loaded).
	StepTrap()
	// SetInterruptWindow asks for an exit as soon as the guest can take
	// an interrupt, or stops asking (loaded).
	SetInterruptWindow(on bool)
	// NMIBlocked reports whether the guest cannot take an NMI now, and
	// whether that is because it handles one: NMIs are blocked from the
	// delivery of an NMI until the next IRET completes (Intel SDM Vol.
	// 3A, 6.7.1 "Handling Multiple NMIs"), and in an STI or MOV SS
	// shadow (Vol. 3C, 25.4.2; AMD and KVM hold them back there too)
	// (loaded).
	NMIBlocked() (blocked, handling bool)
	// SetNMIWindow asks for an exit as soon as the guest's NMIs are no
	// longer blocked, or stops asking (loaded).
	SetNMIWindow(on bool)
	// SetTSCOffset sets what the guest's TSC adds to the host's (loaded).
	SetTSCOffset(off uint64)

	// Save writes the vCPU's architectural state to st, for migration
	// (loaded).
	Save(st *vcpu.State) error
	// Diagnose says, in words, why the hardware may refuse the guest's
	// state at entry (loaded).
	Diagnose() []string
}

// Step is what a strategy tells the loop to do next.
type Step uint8

// Steps.
const (
	// Continue: go on to the next entry.
	Continue Step = iota
	// Stop: the vCPU stops; the loop returns nil.
	Stop
	// Retry (from Resumed): do not complete the instruction that exited;
	// it runs again at the next entry, wherever the vCPU is then.
	Retry
)

// Guest is what differs between kinds of guests.
type Guest interface {
	// Service runs before every entry: it does what the vCPU's
	// environment needs (messages from other nodes, device accesses
	// recorded at the last exit to forward), and says whether the vCPU
	// is to stop.
	Service(c CPU) (Step, error)
	// Move returns the node the vCPU is asked to move to, if any. The
	// loop moves it (Save, then Depart) once no event is in delivery.
	Move() (node int, ok bool)
	// Depart sends the vCPU, whose state is st, to node and reports
	// whether it left; if it did not (its state cannot travel), the
	// request is dropped and the vCPU runs on here.
	Depart(node int, st *vcpu.State) (bool, error)

	// InterruptPending reports whether an external interrupt waits for
	// the vCPU.
	InterruptPending() bool
	// TakeInterrupt removes the highest-priority waiting interrupt and
	// returns its vector, the guest being about to take it.
	TakeInterrupt() (uint8, bool)
	// TSCOffset is what the guest's TSC adds to the host's.
	TSCOffset() uint64

	// Resumed runs after an exit the dispatcher completed (port I/O,
	// MSR, CPUID), before RIP moves past the instruction; mayMove says
	// whether the vCPU could leave now. Retry leaves the instruction to
	// run again (after the vCPU moved, say).
	Resumed(c CPU, mayMove bool) (Step, error)
	// Fault serves an access to guest-physical memory the second-level
	// tables do not allow: fetch the page, emulate a device access (and
	// advance RIP), or ask to move the vCPU where the page is (mayMove).
	Fault(c CPU, e *exits.Exit, mayMove bool) (Step, error)
	// Halt runs after HLT (RIP past it, the STI shadow ended):
	// interruptible is RFLAGS.IF. It returns when the vCPU should run
	// again, or Stop.
	Halt(c CPU, interruptible bool) (Step, error)
	// Other handles an exit the dispatcher left to the loop (a control
	// register access, say). It returns ErrUnhandled for one it does
	// not handle either.
	Other(c CPU, e *exits.Exit, a *exits.Action) (Step, error)
	// Yield runs after the loop left the core at the end of a time
	// slice: the guest lets go of its locks and the Go scheduler runs.
	Yield()
}

// ExitGuest is a Guest that acts on every exit before the loop handles
// it (a distributed VM's walk windows end at every exit that is not a
// page walk's fault).
type ExitGuest interface {
	Guest
	// Exited runs after every exit, decoded into e and a, before the
	// loop handles it; it may leave the core.
	Exited(c CPU, e *exits.Exit, a *exits.Action) error
}

// ErrUnhandled is returned by Guest.Other for an exit it does not handle.
var ErrUnhandled = errors.New("unhandled exit")

// ErrTripleFault is returned when the guest shuts down (triple fault).
var ErrTripleFault = errors.New("triple fault")

// EntryError is returned when the processor refused to enter the guest.
type EntryError struct {
	// Reason is the exit reason of a failed entry ("invalid guest
	// state", say), or empty when the entry instruction failed.
	Reason string
	// Err is the entry instruction's error, if it failed.
	Err error
	// Diagnosis is what the software checks of the guest state found.
	Diagnosis []string
}

func (e *EntryError) Error() string {
	if e.Err != nil {
		return "VM entry failed: " + e.Err.Error()
	}
	return "VM entry failed (" + e.Reason + ")"
}

func (e *EntryError) Unwrap() error { return e.Err }

// Loop runs one vCPU. Its counters may be read while it runs.
type Loop struct {
	CPU   CPU
	Guest Guest
	// Exits handles the exits the processor reports and counts them.
	Exits *exits.Dispatcher
	// Slice is how many TSC cycles the loop stays on a core at most
	// before it leaves it for the Go scheduler.
	Slice uint64

	count atomic.Uint64
	rip   atomic.Uint64
	core  atomic.Int32 // plus one; 0 before the first load
	// exit, action and state are the latest exit, what the dispatcher
	// made of it, and where a departing vCPU's state is saved: kept
	// here, since the strategies (interfaces) see them, so that the
	// loop allocates nothing.
	exit   exits.Exit
	action exits.Action
	state  vcpu.State
	// nmis is how many NMIs wait for the vCPU (at most two, see
	// latchNMIs); only the loop touches it.
	nmis int
}

// Count is how many exits the vCPU took in this loop.
func (l *Loop) Count() uint64 { return l.count.Load() }

// RIP is the guest's RIP at the latest exit.
func (l *Loop) RIP() uint64 { return l.rip.Load() }

// Core is the APIC id of the core the vCPU last ran on (-1 before it ran).
func (l *Loop) Core() int { return int(l.core.Load()) - 1 }

// Run runs the vCPU until the guest stops it (nil), it moves to another
// node (nil; Depart said so), or an error ends it. The vCPU is off the
// core on return.
func (l *Loop) Run() error {
	c, g := l.CPU, l.Guest
	defer c.Put()
	eg, _ := g.(ExitGuest)
	e, a := &l.exit, &l.action
	var pinnedAt, exitAt uint64
	var last vmx.ExitReason
	for n := 0; ; n++ {
		if n > 0 {
			// handling time: from the exit to the next entry
			l.Exits.Stats.AddCycles(last, c.Now()-exitAt)
		}
		if step, err := g.Service(c); err != nil || step == Stop {
			return err
		}
		if node, ok := g.Move(); ok && l.mayMove() {
			gone, err := l.depart(node)
			if err != nil || gone {
				return err
			}
		}
		if c.Loaded() && c.Now()-pinnedAt > l.Slice {
			c.Put()
			g.Yield()
		}
		if !c.Loaded() {
			pinnedAt = c.Now()
		}
		if err := c.Load(); err != nil {
			return err
		}
		l.core.Store(int32(c.Core()) + 1)
		l.injectEvents()
		c.SetTSCOffset(g.TSCOffset())
		if err := c.Enter(e); err != nil {
			return &EntryError{Err: err, Diagnosis: c.Diagnose()}
		}
		exitAt = c.Now()
		l.count.Add(1)
		l.rip.Store(c.RIP())
		*a = l.Exits.Handle(e, c.Regs())
		last = a.Reason
		if eg != nil {
			if err := eg.Exited(c, e, a); err != nil {
				return err
			}
		}
		if step, err := l.dispatch(e, a); err != nil || step == Stop {
			return err
		}
	}
}

// mayMove reports whether the vCPU may leave now: not while an event is
// in delivery (queued for entry, or cut short by the latest exit), which
// would be lost or delivered twice.
func (l *Loop) mayMove() bool {
	_, interrupted := l.CPU.Interrupted()
	return !interrupted && !l.CPU.Injecting()
}

// depart saves the vCPU's state and hands it to the guest to send. The
// NMIs waiting for the vCPU go with it; they stay if it does.
func (l *Loop) depart(node int) (bool, error) {
	c := l.CPU
	if err := c.Load(); err != nil {
		return false, err
	}
	err := c.Save(&l.state)
	if ng, ok := l.Guest.(NMIGuest); ok && err == nil {
		l.latchNMIs(ng)
	}
	c.Put()
	if err != nil {
		return false, fmt.Errorf("saving the vCPU's state: %w", err)
	}
	l.state.Events.PendingNMIs = uint8(l.nmis)
	left, err := l.Guest.Depart(node, &l.state)
	if left {
		l.nmis = 0
	}
	return left, err
}

// NMIGuest is a Guest whose vCPUs can receive NMIs (an IPI with NMI
// delivery, the local APIC's LINT1). TakeNMIs returns how many NMIs were
// sent to the vCPU since it was last called, and forgets them.
type NMIGuest interface {
	Guest
	TakeNMIs() int
}

// nmiVector is the NMI's vector (Intel SDM Vol. 3A, 6.3.1, Table 6-1).
const nmiVector = 2

// injectEvents runs just before entry: an event whose delivery the latest
// exit cut short is delivered again; otherwise a waiting NMI, which
// RFLAGS.IF does not hold back, is injected unless NMIs are blocked; then
// the guest's highest pending interrupt is injected if it can take it
// now, or the loop asks for an exit as soon as it can.
func (l *Loop) injectEvents() {
	c, g := l.CPU, l.Guest
	if ev, ok := c.Interrupted(); ok && !c.Injecting() {
		c.Inject(ev)
	}
	nmiWindow := false
	if ng, ok := g.(NMIGuest); ok {
		nmiWindow = l.injectNMI(ng)
	}
	c.SetNMIWindow(nmiWindow)
	pending := g.InterruptPending()
	switch {
	case pending && !c.Injecting() && c.Interruptible():
		if vec, ok := g.TakeInterrupt(); ok {
			c.Inject(Event{Vector: vec, Type: ExternalInterrupt})
		}
		c.SetInterruptWindow(false)
	case pending:
		c.SetInterruptWindow(true)
	default:
		c.SetInterruptWindow(false)
	}
}

// injectNMI latches the NMIs sent since the last entry and injects one
// if the guest can take it; it reports whether one waits for the end of
// NMI blocking. As on the processor, one NMI can wait while another is
// in service, and NMIs sent while one already waits are lost: two when
// none is in service (one delivered, one latched behind it), one while
// one is (Intel SDM Vol. 3A, 6.7.1; KVM keeps the same two).
func (l *Loop) injectNMI(ng NMIGuest) bool {
	c := l.CPU
	blocked := l.latchNMIs(ng)
	switch {
	case l.nmis == 0:
		return false
	case blocked:
		return true
	case c.Injecting():
		return false // after the event in delivery, at the next entry
	}
	c.Inject(Event{Vector: nmiVector, Type: NMI})
	l.nmis--
	return false
}

// latchNMIs adds the NMIs sent since the last look to those waiting, as
// many as the processor keeps (see injectNMI), and reports whether the
// guest's NMIs are blocked now.
func (l *Loop) latchNMIs(ng NMIGuest) (blocked bool) {
	blocked, handling := l.CPU.NMIBlocked()
	limit := vcpu.MaxPendingNMIs
	if handling {
		limit = 1
	}
	l.nmis = min(l.nmis+ng.TakeNMIs(), limit)
	return blocked
}

// skip moves RIP past an instruction of n bytes the hypervisor carried
// out for the guest. An STI or MOV SS shadow covers only the instruction
// after STI or MOV SS, so if that was this one the shadow ends with it
// (Intel SDM Vol. 3C, 25.4.2; KVM does the same), and an interrupt can go
// in at the next entry. A guest that single-steps (RFLAGS.TF) takes its
// #DB after the instruction as after any other.
func (l *Loop) skip(n uint32) {
	l.CPU.Advance(n)
	if n > 0 {
		l.CPU.EndShadow()
		l.CPU.StepTrap()
	}
}

// dispatch carries out what the dispatcher decided about exit e.
func (l *Loop) dispatch(e *exits.Exit, a *exits.Action) (Step, error) {
	c, g := l.CPU, l.Guest
	switch a.Kind {
	case exits.ActionResume:
		step, err := g.Resumed(c, l.mayMove())
		if err != nil || step == Stop {
			return step, err
		}
		if step != Retry {
			l.skip(a.AdvanceRIP)
		}
		return Continue, nil
	case exits.ActionInject:
		l.skip(a.AdvanceRIP)
		ev, _ := EventFromInfo(a.Inject, a.ErrorCode)
		c.Inject(ev)
		return Continue, nil
	case exits.ActionHalt:
		l.skip(a.AdvanceRIP) // HLT right after STI: the shadow ends with it
		return g.Halt(c, c.InterruptsEnabled())
	case exits.ActionShutdown:
		if ev, ok := c.Interrupted(); ok {
			// what the processor was delivering when it gave up
			return Stop, fmt.Errorf("%w at RIP %#x delivering vector %d (type %d)", ErrTripleFault, l.rip.Load(), ev.Vector, ev.Type)
		}
		return Stop, fmt.Errorf("%w at RIP %#x", ErrTripleFault, l.rip.Load())
	case exits.ActionEPTViolation:
		return g.Fault(c, e, l.mayMove())
	case exits.ActionEntryFailed:
		return Stop, &EntryError{Reason: a.Reason.String(), Diagnosis: c.Diagnose()}
	}
	switch a.Reason {
	case vmx.ExitPreemptionTimer, vmx.ExitExternalInterrupt:
		// the time slice ended: the Go scheduler (and a pending
		// stop-the-world) gets the core
		c.Put()
		g.Yield()
		return Continue, nil
	case vmx.ExitInterruptWindow, vmx.ExitNMIWindow:
		return Continue, nil // the guest can take its interrupt or NMI now
	}
	step, err := g.Other(c, e, a)
	if errors.Is(err, ErrUnhandled) {
		return Stop, fmt.Errorf("unhandled exit %v at RIP %#x (qualification %#x)", a.Reason, l.rip.Load(), e.Qualification)
	}
	return step, err
}
