// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/runloop"
)

func TestEventEncoding(t *testing.T) {
	// #GP(0x18): vector 13, type 3, EV, V, error code in 63:32.
	e := NewEvent(13, EventException, true, 0x18)
	if uint64(e) != 0x18_8000_0B0D {
		t.Errorf("#GP = %#x", uint64(e))
	}
	if !e.Valid() || e.Vector() != 13 || e.Type() != EventException || !e.HasErrorCode() || e.ErrorCode() != 0x18 {
		t.Errorf("decoded %v", e)
	}
	if got := NewEvent(0x20, EventIntr, false, 0xFFFF); uint64(got) != 0x8000_0020 {
		t.Errorf("interrupt 0x20 = %#x", uint64(got))
	}
	if got := NewEvent(2, EventNMI, false, 0); uint64(got) != 0x8000_0202 {
		t.Errorf("NMI = %#x", uint64(got))
	}
}

// TestRunloopRoundTrip: runloop's EventType values 0, 2, 3, 4 are
// EVENTINJ's types (runloop.go says its values were chosen to match); 5
// and 6 are VT-x only and become exceptions.
func TestRunloopRoundTrip(t *testing.T) {
	for _, ev := range []runloop.Event{
		{Vector: 0x30, Type: runloop.ExternalInterrupt},
		{Vector: 2, Type: runloop.NMI},
		{Vector: 14, Type: runloop.HardwareException, HasErrorCode: true, ErrorCode: 6},
		{Vector: 6, Type: runloop.HardwareException},
		{Vector: 0x80, Type: runloop.SoftwareInterrupt},
	} {
		inj, err := FromRunloop(ev)
		if err != nil {
			t.Fatalf("%+v: %v", ev, err)
		}
		if uint8(inj.Event.Type()) != uint8(ev.Type) {
			t.Errorf("%+v: type %d", ev, inj.Event.Type())
		}
		if why := inj.Event.Check(); why != "" {
			t.Errorf("%+v: %s", ev, why)
		}
		back, ok := inj.Event.Runloop()
		if !ok || back != ev {
			t.Errorf("%+v came back as %+v (%v)", ev, back, ok)
		}
	}
	int3 := runloop.Event{Vector: 3, Type: runloop.SoftwareException, InstructionLength: 1}
	inj, err := FromRunloop(int3)
	if err != nil || inj.Event.Type() != EventException || inj.Event.Vector() != 3 || inj.AdvanceRIP != 1 {
		t.Errorf("INT3: %+v %v", inj, err)
	}
	intn := runloop.Event{Vector: 0x80, Type: runloop.SoftwareInterrupt, InstructionLength: 2}
	if inj, _ := FromRunloop(intn); inj.AdvanceRIP != 2 {
		t.Errorf("INT 0x80: %+v", inj)
	}
	if _, err := FromRunloop(runloop.Event{Type: 7}); err == nil {
		t.Error("type 7 accepted")
	}
	if _, err := FromRunloop(runloop.Event{Vector: 0x20, HasErrorCode: true}); err == nil {
		t.Error("interrupt with error code accepted")
	}
	if _, ok := Event(0).Runloop(); ok {
		t.Error("invalid EXITINTINFO decoded")
	}
	if _, ok := (EventValid | 5<<8).Runloop(); ok {
		t.Error("reserved type decoded")
	}
}

func TestEventCheck(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{0, ""},
		{NewEvent(14, EventException, true, 2), ""},
		{EventValid | 1<<8 | 0x20, "type 1 is reserved"},
		{EventValid | 6<<8 | 3, "type 6 is reserved"},
		{NewEvent(2, EventException, false, 0), "vector 2 is not an exception"},
		{NewEvent(15, EventException, false, 0), "vector 15 is not an exception"},
		{NewEvent(0x40, EventException, false, 0), "vector 64 is not an exception"},
		{NewEvent(0x20, EventIntr, false, 0) | 1<<20, "reserved bits 30:12 set (0x100000)"},
	} {
		if got := tc.e.Check(); got != tc.want {
			t.Errorf("%#x: %q, want %q", uint64(tc.e), got, tc.want)
		}
	}
}
