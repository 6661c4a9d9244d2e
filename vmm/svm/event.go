// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/runloop"
)

// Event is the 64-bit EVENTINJ field (what VMRUN delivers to the guest)
// and EXITINTINFO (the event whose delivery an exit cut short): vector
// 7:0, type 10:8, error code valid 11, valid 31, error code 63:32 (APM
// Vol. 2, 15.20 "Event Injection", Figure 15-6, and 15.7.2).
type Event uint64

// EventType is EVENTINJ.TYPE.
type EventType uint8

// Event types; 1 and 5-7 are reserved (VMRUN refuses them).
const (
	EventIntr      EventType = 0 // external or virtual interrupt
	EventNMI       EventType = 2
	EventException EventType = 3 // fault or trap, INT3 and INTO included
	EventSoftInt   EventType = 4 // INTn
)

// Event bits.
const (
	EventErrorValid Event = 1 << 11
	EventValid      Event = 1 << 31
	eventReserved   Event = 0x7FFFF000 // bits 30:12
)

// NewEvent encodes a valid event; errorCode is used when hasErrorCode.
func NewEvent(vector uint8, t EventType, hasErrorCode bool, errorCode uint32) Event {
	e := Event(vector) | Event(t&7)<<8 | EventValid
	if hasErrorCode {
		e |= EventErrorValid | Event(errorCode)<<32
	}
	return e
}

// Valid reports bit 31.
func (e Event) Valid() bool { return e&EventValid != 0 }

// Vector is bits 7:0.
func (e Event) Vector() uint8 { return uint8(e) }

// Type is bits 10:8.
func (e Event) Type() EventType { return EventType(e >> 8 & 7) }

// HasErrorCode reports bit 11.
func (e Event) HasErrorCode() bool { return e&EventErrorValid != 0 }

// ErrorCode is bits 63:32.
func (e Event) ErrorCode() uint32 { return uint32(e >> 32) }

// String describes the event.
func (e Event) String() string {
	if !e.Valid() {
		return "none"
	}
	s := fmt.Sprintf("%s vector %d", e.Type(), e.Vector())
	if e.HasErrorCode() {
		s += fmt.Sprintf(" error code %#x", e.ErrorCode())
	}
	return s
}

// String names the type.
func (t EventType) String() string {
	switch t {
	case EventIntr:
		return "interrupt"
	case EventNMI:
		return "NMI"
	case EventException:
		return "exception"
	case EventSoftInt:
		return "software interrupt"
	}
	return fmt.Sprintf("reserved type %d", uint8(t))
}

// Injection is a run-loop event as VMRUN must be given it: the EVENTINJ
// value, and how far RIP must first move. SVM has no types for INT1, INT3
// and INTO, and pushes the VMCB's RIP as the return address of every
// event: for a software interrupt or exception the hypervisor moves RIP
// past the instruction before VMRUN (with NRIP save it may instead put
// RIP+length in NextRIP for INTn, as KVM does).
type Injection struct {
	Event      Event
	AdvanceRIP uint32
}

// FromRunloop encodes a run-loop event for EVENTINJ. runloop's EventType
// values equal EVENTINJ's types for external interrupts (0), NMIs (2),
// hardware exceptions (3) and software interrupts (4); its privileged
// software exception (5, INT1) and software exception (6, INT3/INTO) have
// no EVENTINJ type and become exceptions after RIP moves past the
// instruction. Other types are refused.
func FromRunloop(ev runloop.Event) (Injection, error) {
	var t EventType
	var adv uint32
	switch ev.Type {
	case runloop.ExternalInterrupt:
		t = EventIntr
	case runloop.NMI:
		t = EventNMI
	case runloop.HardwareException:
		t = EventException
	case runloop.SoftwareInterrupt:
		t, adv = EventSoftInt, ev.InstructionLength
	case runloop.PrivilegedSoftware, runloop.SoftwareException:
		t, adv = EventException, ev.InstructionLength
	default:
		return Injection{}, fmt.Errorf("event type %d has no EVENTINJ encoding", ev.Type)
	}
	if ev.HasErrorCode && t != EventException {
		return Injection{}, fmt.Errorf("%v vector %d with an error code", t, ev.Vector)
	}
	return Injection{Event: NewEvent(ev.Vector, t, ev.HasErrorCode, ev.ErrorCode), AdvanceRIP: adv}, nil
}

// Runloop decodes EXITINTINFO (or EVENTINJ) as a run-loop event to deliver
// again; ok is false when no valid event is there or its type is
// reserved. A software interrupt comes back with InstructionLength 0: the
// hypervisor knows it from NextRIP (NRIP save) or by decoding. INT3 and
// INTO come back as hardware exceptions, as SVM reports them. An
// "exception" of vector 32 or above is an external interrupt: no
// exception has such a vector, and QEMU's TCG (7.2, handle_even_inj)
// reports a virtual interrupt whose delivery an exit cut short so.
func (e Event) Runloop() (ev runloop.Event, ok bool) {
	if !e.Valid() {
		return runloop.Event{}, false
	}
	switch e.Type() {
	case EventIntr:
		ev.Type = runloop.ExternalInterrupt
	case EventNMI:
		ev.Type = runloop.NMI
	case EventException:
		ev.Type = runloop.HardwareException
		if e.Vector() >= 32 {
			return runloop.Event{Vector: e.Vector(), Type: runloop.ExternalInterrupt}, true
		}
	case EventSoftInt:
		ev.Type = runloop.SoftwareInterrupt
	default:
		return runloop.Event{}, false
	}
	ev.Vector = e.Vector()
	if e.HasErrorCode() {
		ev.HasErrorCode, ev.ErrorCode = true, e.ErrorCode()
	}
	return ev, true
}

// exceptionVectors are the vectors EVENTINJ may carry as exceptions: the
// architecturally defined exceptions (APM Vol. 2, 8.2); 2 (NMI), 9, 15,
// 20, 22-27 and 31 are not. #VC (29) needs SEV-ES, which big-iron does not
// use. The same list as KVM's nested_svm_event_inj_valid_exept.
const exceptionVectors uint32 = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 |
	1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<16 | 1<<17 | 1<<18 | 1<<19 | 1<<21 | 1<<28 | 1<<30

// Check says why VMRUN would refuse e as EVENTINJ (APM Vol. 2, 15.20), or
// returns "" if it would not.
func (e Event) Check() string {
	if !e.Valid() {
		return ""
	}
	switch t := e.Type(); {
	case t != EventIntr && t != EventNMI && t != EventException && t != EventSoftInt:
		return fmt.Sprintf("type %d is reserved", t)
	case e&eventReserved != 0:
		return fmt.Sprintf("reserved bits 30:12 set (%#x)", uint64(e&eventReserved))
	case t == EventException && (e.Vector() >= 32 || exceptionVectors&(1<<e.Vector()) == 0):
		return fmt.Sprintf("vector %d is not an exception", e.Vector())
	}
	return ""
}
