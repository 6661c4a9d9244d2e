// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"strings"
	"testing"
)

var testProcessor = Processor{PhysAddrBits: 48, LongMode: true, NP: true,
	CR4Allowed: DefaultCR4Allowed, EFERAllowed: DefaultEFERAllowed}

// longMode is a valid 64-bit guest as big-iron would start one.
func longMode() RunState {
	return RunState{
		CR0:            CR0PE | 1<<1 | 1<<4 | 1<<5 | 1<<16 | CR0PG,
		CR3:            0x200000,
		CR4:            CR4PAE | 1<<9 | 1<<10,
		DR6:            0xFFFF0FF0,
		DR7:            0x400,
		EFER:           EFERSCE | EFERLME | EFERLMA | EFERNXE | EFERSVME,
		CS:             Segment{Selector: 8, Attrib: AttrP | AttrS | 0xB | AttrL | AttrG, Limit: 0xFFFFFFFF},
		VMRUNIntercept: true,
		ASID:           1,
		IOPMBase:       0x100000,
		MSRPMBase:      0x104000,
		NestedCtl:      NestedCtlNP,
		EventInj:       NewEvent(14, EventException, true, 2),
	}
}

func TestCheckVMRUN(t *testing.T) {
	if v := CheckVMRUN(ptr(longMode()), testProcessor); len(v) != 0 {
		t.Fatalf("valid long-mode state: %v", v)
	}
	for _, tc := range []struct {
		rule  string
		spoil func(s *RunState, p *Processor)
	}{
		{"EFER.SVME", func(s *RunState, _ *Processor) { s.EFER &^= EFERSVME }},
		{"CR0.CD/NW", func(s *RunState, _ *Processor) { s.CR0 |= CR0NW }},
		{"CR0[63:32]", func(s *RunState, _ *Processor) { s.CR0 |= 1 << 32 }},
		{"CR3 MBZ", func(s *RunState, _ *Processor) { s.CR3 |= 1 << 48 }},
		{"CR4 MBZ", func(s *RunState, _ *Processor) { s.CR4 |= 1 << 13 }},
		{"DR6[63:32]", func(s *RunState, _ *Processor) { s.DR6 |= 1 << 40 }},
		{"DR7[63:32]", func(s *RunState, _ *Processor) { s.DR7 |= 1 << 63 }},
		{"EFER MBZ", func(s *RunState, _ *Processor) { s.EFER |= 1 << 9 }},
		{"EFER.LME/LMA", func(_ *RunState, p *Processor) { p.LongMode = false }},
		{"long mode without PAE", func(s *RunState, _ *Processor) { s.CR4 &^= CR4PAE }},
		{"long mode without PE", func(s *RunState, _ *Processor) { s.CR0 &^= CR0PE }},
		{"CS.L and CS.D", func(s *RunState, _ *Processor) { s.CS.Attrib |= AttrDB }},
		{"VMRUN intercept", func(s *RunState, _ *Processor) { s.VMRUNIntercept = false }},
		{"MSRPM base", func(s *RunState, _ *Processor) { s.MSRPMBase = 1<<48 - 0x1000 }},
		{"IOPM base", func(s *RunState, _ *Processor) { s.IOPMBase = 1<<48 - 0x2000 }},
		{"ASID", func(s *RunState, _ *Processor) { s.ASID = 0 }},
		{"NP_ENABLE", func(_ *RunState, p *Processor) { p.NP = false }},
		{"EVENTINJ", func(s *RunState, _ *Processor) { s.EventInj = NewEvent(2, EventException, false, 0) }},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			s, p := longMode(), testProcessor
			tc.spoil(&s, &p)
			v := CheckVMRUN(&s, p)
			if len(v) != 1 || v[0].Rule != tc.rule {
				t.Fatalf("got %v, want one violation of %q", v, tc.rule)
			}
			if !strings.HasPrefix(v[0].String(), "APM 15.5.1: "+tc.rule+": ") {
				t.Errorf("String = %q", v[0])
			}
		})
	}
}

// TestCheckVMRUNLegacy: a 32-bit protected-mode guest without paging
// passes; CR3's long-mode MBZ bits do not apply to it.
func TestCheckVMRUNLegacy(t *testing.T) {
	s := longMode()
	s.CR0, s.CR4, s.EFER, s.CR3 = CR0PE|1<<4, 0, EFERSVME, 1<<50
	s.CS.Attrib = AttrP | AttrS | 0xB | AttrDB | AttrG
	if v := CheckVMRUN(&s, testProcessor); len(v) != 0 {
		t.Errorf("32-bit guest: %v", v)
	}
}

func TestRunStateOf(t *testing.T) {
	var page [VMCBSize]byte
	v := NewVMCB(&page)
	want := longMode()
	v.Write(SaveCR0, want.CR0)
	v.Write(SaveCR3, want.CR3)
	v.Write(SaveCR4, want.CR4)
	v.Write(SaveDR6, want.DR6)
	v.Write(SaveDR7, want.DR7)
	v.Write(SaveEFER, want.EFER)
	v.WriteSegment(SegCS, want.CS)
	v.SetIntercept(InterceptVMRUN, true)
	v.Write(CtlGuestASID, uint64(want.ASID))
	v.Write(CtlIOPMBase, want.IOPMBase)
	v.Write(CtlMSRPMBase, want.MSRPMBase)
	v.Write(CtlNestedCtl, want.NestedCtl)
	v.Write(CtlEventInj, uint64(want.EventInj))
	if got := RunStateOf(v); got != want {
		t.Errorf("RunStateOf = %+v\nwant %+v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }
