// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package ioapic

import (
	"testing"
)

type msg struct {
	dest         uint32
	logical      bool
	mode, vector uint8
	level        bool
}

type sink struct{ got []msg }

func (s *sink) Interrupt(dest uint32, logical bool, mode, vector uint8, level bool) {
	s.got = append(s.got, msg{dest, logical, mode, vector, level})
}

func write(a *IOAPIC, idx, v uint32) {
	a.WriteMMIO(regSelect, 4, uint64(idx))
	a.WriteMMIO(regWindow, 4, uint64(v))
}

func read(a *IOAPIC, idx uint32) uint32 {
	a.WriteMMIO(regSelect, 4, uint64(idx))
	return uint32(a.ReadMMIO(regWindow, 4))
}

func TestRegisters(t *testing.T) {
	s := &sink{}
	a := New(1, s)
	if got := read(a, idxID); got != 1<<24 {
		t.Errorf("ID %#x", got)
	}
	if got := read(a, idxVersion); got != 0x170020 {
		t.Errorf("version %#x, want 0x170020", got)
	}
	for pin := uint32(0); pin < Pins; pin++ {
		if got := read(a, idxRedir+2*pin); got&rteMasked == 0 {
			t.Errorf("pin %d not masked at reset: %#x", pin, got)
		}
	}
	// Read-only bits are kept.
	write(a, idxRedir+8, 0xFFFFFFFF)
	if got := read(a, idxRedir+8); got != uint32(rteWritable&0xFFFFFFFF) {
		t.Errorf("low word %#x", got)
	}
	write(a, idxRedir+9, 0xFFFFFFFF)
	if got := read(a, idxRedir+9); got != 0xFF000000 {
		t.Errorf("high word %#x", got)
	}
	if got := a.ReadMMIO(regWindow, 1); got != 0xFF {
		t.Errorf("byte read %#x, want all ones", got)
	}
	if len(s.got) != 0 {
		t.Errorf("messages without a pin raised: %v", s.got)
	}
}

func TestEdge(t *testing.T) {
	s := &sink{}
	a := New(0, s)
	write(a, idxRedir+2*4+1, 3<<24)
	write(a, idxRedir+2*4, 0x34) // fixed, physical, edge, unmasked
	a.SetIRQ(4, true)
	a.SetIRQ(4, true) // no new edge
	a.SetIRQ(4, false)
	a.SetIRQ(4, true)
	want := msg{dest: 3, mode: modeFixed, vector: 0x34}
	if len(s.got) != 2 || s.got[0] != want || s.got[1] != want {
		t.Fatalf("got %v, want two %v", s.got, want)
	}
	write(a, idxRedir+2*4, 0x34|rteMasked)
	a.SetIRQ(4, false)
	a.SetIRQ(4, true)
	if len(s.got) != 2 {
		t.Errorf("masked pin sent: %v", s.got)
	}
}

func TestLevelAndEOI(t *testing.T) {
	s := &sink{}
	a := New(0, s)
	write(a, idxRedir+2*9, 0x41|rteTriggerLevel|rteDestLogical|rteMasked)
	a.SetIRQ(9, true)
	if len(s.got) != 0 {
		t.Fatal("masked level pin sent")
	}
	write(a, idxRedir+2*9, 0x41|rteTriggerLevel|rteDestLogical) // unmask while asserted
	if len(s.got) != 1 || !s.got[0].level || !s.got[0].logical || s.got[0].vector != 0x41 {
		t.Fatalf("unmasking an asserted level pin: %v", s.got)
	}
	if read(a, idxRedir+2*9)&rteRemoteIRR == 0 {
		t.Error("remote IRR not set")
	}
	a.SetIRQ(9, true)
	if len(s.got) != 1 {
		t.Fatal("sent again before EOI")
	}
	a.EOI(0x41) // still asserted: fires again
	if len(s.got) != 2 {
		t.Fatalf("EOI with the line asserted: %d messages", len(s.got))
	}
	a.SetIRQ(9, false)
	a.WriteMMIO(regEOI, 4, 0x41)
	if len(s.got) != 2 || read(a, idxRedir+2*9)&rteRemoteIRR != 0 {
		t.Errorf("EOI with the line low: %d messages, entry %#x", len(s.got), read(a, idxRedir+2*9))
	}
	a.EOI(0x99) // unrelated vector: nothing
	if len(s.got) != 2 {
		t.Error("unrelated EOI sent")
	}
}

func TestInvalidMode(t *testing.T) {
	s := &sink{}
	a := New(0, s)
	write(a, idxRedir, 0x30|modeExtINT<<rteModeShift)
	a.SetIRQ(0, true)
	if len(s.got) != 0 || a.Dropped() != 1 {
		t.Errorf("ExtINT: %v sent, %d dropped", s.got, a.Dropped())
	}
	a.SetIRQ(-1, true)
	a.SetIRQ(Pins, true)
}

func TestNoAllocations(t *testing.T) {
	a := New(0, nopSink{})
	write(a, idxRedir+2*4, 0x34)
	n := testing.AllocsPerRun(100, func() {
		a.SetIRQ(4, true)
		a.SetIRQ(4, false)
		a.WriteMMIO(regSelect, 4, idxRedir+8)
		_ = a.ReadMMIO(regWindow, 4)
	})
	if n != 0 {
		t.Errorf("%v allocations per interrupt", n)
	}
}

type nopSink struct{}

func (nopSink) Interrupt(uint32, bool, uint8, uint8, bool) {}

func FuzzMMIO(f *testing.F) {
	f.Add([]byte{0x00, 0x10, 0x10, 0x34, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := New(0, nopSink{})
		for len(ops) >= 6 {
			off := uint64(ops[0]) & 0x7F
			size := 1 << (ops[1] & 3)
			v := uint64(ops[2]) | uint64(ops[3])<<8 | uint64(ops[4])<<16 | uint64(ops[5])<<24
			switch ops[1] >> 6 {
			case 0:
				a.WriteMMIO(off, size, v)
			case 1:
				_ = a.ReadMMIO(off, size)
			case 2:
				a.SetIRQ(int(ops[2])-8, ops[3]&1 == 1)
			case 3:
				a.EOI(ops[2])
			}
			ops = ops[6:]
		}
		for pin := 0; pin < Pins; pin++ {
			if e := a.rte[pin]; e&^(rteWritable|rteRemoteIRR) != 0 {
				t.Fatalf("pin %d entry %#x has bits outside the register", pin, e)
			}
		}
	})
}
