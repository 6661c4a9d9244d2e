// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package ioapic emulates an I/O APIC (Intel 82093AA, the register model
// of "82093AA I/O Advanced Programmable Interrupt Controller (IOAPIC)"
// datasheet, section 3): 24 input pins, each routed by a redirection
// table entry to local APICs as an interrupt message. The guest reaches
// it through a 4 KiB MMIO window (IOREGSEL at 0x00, IOWIN at 0x10, and the
// EOI register at 0x40 of version 0x20 parts); devices drive its pins
// through SetIRQ.
package ioapic

import "github.com/big-iron/big-iron/vmm/spinlock"

// Window layout and register indexes (82093AA datasheet, 3.0 and 3.2).
const (
	// DefaultBase is the guest-physical address of the register window.
	DefaultBase = 0xFEC00000
	// WindowSize is the size of the register window.
	WindowSize = 0x1000
	// Pins is the number of interrupt inputs.
	Pins = 24

	regSelect = 0x00
	regWindow = 0x10
	regEOI    = 0x40

	idxID      = 0x00
	idxVersion = 0x01
	idxArb     = 0x02
	idxRedir   = 0x10

	// version 0x20 (with the EOI register), maximum redirection entry 23.
	version = 0x20 | (Pins-1)<<16
)

// Redirection table entry bits (datasheet 3.2.4).
const (
	rteVector       = 0xFF
	rteModeShift    = 8
	rteDestLogical  = 1 << 11
	rteDelivStatus  = 1 << 12
	rtePolarityLow  = 1 << 13
	rteRemoteIRR    = 1 << 14
	rteTriggerLevel = 1 << 15
	rteMasked       = 1 << 16
	rteDestShift    = 56

	// rteWritable are the bits software may set; delivery status and
	// remote IRR are read-only.
	rteWritable = 0xFF<<rteDestShift | rteMasked | rteTriggerLevel | rtePolarityLow | rteDestLogical | 7<<rteModeShift | rteVector

	modeFixed   = 0
	modeLowest  = 1
	modeSMI     = 2
	modeNMI     = 4
	modeINIT    = 5
	modeExtINT  = 7
	modeInvalid = 3
)

// Sink takes the interrupt messages the IOAPIC sends: the local APIC bus.
type Sink interface {
	Interrupt(dest uint32, logical bool, mode, vector uint8, level bool)
}

// IOAPIC is one I/O APIC. Its methods are safe for concurrent use:
// vCPUs program it while device models raise its pins.
type IOAPIC struct {
	mu   spinlock.Lock
	id   uint32
	sel  uint32
	rte  [Pins]uint64
	line [Pins]bool
	sink Sink
	// Dropped counts messages not sent: an invalid delivery mode
	// programmed by the guest.
	dropped uint64
}

// New returns an IOAPIC with the given APIC id, every pin masked.
func New(id uint8, sink Sink) *IOAPIC {
	a := &IOAPIC{id: uint32(id&0xF) << 24, sink: sink}
	for i := range a.rte {
		a.rte[i] = rteMasked
	}
	return a
}

// ReadMMIO implements devices.MMIODevice. Only 32-bit accesses at the
// register offsets are meaningful (datasheet 3.0); anything else reads
// all ones, as an unclaimed bus cycle does.
func (a *IOAPIC) ReadMMIO(off uint64, size int) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if size != 4 {
		return ^uint64(0) >> (64 - 8*uint(min(max(size, 1), 8)))
	}
	switch off {
	case regSelect:
		return uint64(a.sel)
	case regWindow:
		return uint64(a.readLocked(a.sel))
	}
	return 0xFFFFFFFF
}

// WriteMMIO implements devices.MMIODevice.
func (a *IOAPIC) WriteMMIO(off uint64, size int, v uint64) {
	if size != 4 {
		return
	}
	var msgs [Pins]int
	n := 0
	a.mu.Lock()
	switch off {
	case regSelect:
		a.sel = uint32(v) & 0xFF
	case regWindow:
		if pin, ok := a.writeLocked(a.sel, uint32(v)); ok {
			msgs[0], n = pin, 1
		}
	case regEOI:
		n = a.eoiLocked(uint8(v), msgs[:])
	}
	a.mu.Unlock()
	a.send(msgs[:n])
}

func (a *IOAPIC) readLocked(idx uint32) uint32 {
	switch {
	case idx == idxID:
		return a.id
	case idx == idxVersion:
		return version
	case idx == idxArb:
		return a.id
	case idx >= idxRedir && idx < idxRedir+2*Pins:
		e := a.rte[(idx-idxRedir)/2]
		if idx%2 == 1 {
			return uint32(e >> 32)
		}
		return uint32(e)
	}
	return 0
}

// writeLocked updates a register; it reports a pin whose message must be
// sent (a level-triggered pin unmasked while asserted).
func (a *IOAPIC) writeLocked(idx, v uint32) (int, bool) {
	switch {
	case idx == idxID:
		a.id = v & (0xF << 24)
	case idx >= idxRedir && idx < idxRedir+2*Pins:
		pin := int(idx-idxRedir) / 2
		e := a.rte[pin]
		if idx%2 == 1 {
			e = e&0xFFFFFFFF | uint64(v)<<32
		} else {
			e = e&^0xFFFFFFFF | uint64(v)
		}
		a.rte[pin] = e&rteWritable | a.rte[pin]&rteRemoteIRR
		return pin, a.shouldFireLocked(pin)
	}
	return 0, false
}

// shouldFireLocked: a level-triggered pin is asserted, unmasked and not
// waiting for its EOI. It sets remote IRR when it says yes.
func (a *IOAPIC) shouldFireLocked(pin int) bool {
	e := a.rte[pin]
	if !a.line[pin] || e&rteMasked != 0 || e&rteTriggerLevel == 0 || e&rteRemoteIRR != 0 {
		return false
	}
	a.rte[pin] |= rteRemoteIRR
	return true
}

// eoiLocked clears remote IRR of every level-triggered entry with the
// vector, and returns the pins still asserted that fire again.
func (a *IOAPIC) eoiLocked(vector uint8, out []int) int {
	n := 0
	for pin := range a.rte {
		e := a.rte[pin]
		if e&rteTriggerLevel == 0 || uint8(e&rteVector) != vector || e&rteRemoteIRR == 0 {
			continue
		}
		a.rte[pin] &^= rteRemoteIRR
		if a.shouldFireLocked(pin) {
			out[n] = pin
			n++
		}
	}
	return n
}

// EOI is the local APICs' end of a level-triggered interrupt (their EOI
// broadcast), with the same effect as a write to the EOI register.
func (a *IOAPIC) EOI(vector uint8) {
	var msgs [Pins]int
	a.mu.Lock()
	n := a.eoiLocked(vector, msgs[:])
	a.mu.Unlock()
	a.send(msgs[:n])
}

// SetIRQ implements devices.IRQSink: a device drives pin gsi to level
// (true: asserted, whatever the programmed polarity). An edge-triggered
// pin sends on each rising edge; a level-triggered one while asserted,
// once per EOI. Pins out of range are ignored.
func (a *IOAPIC) SetIRQ(gsi int, level bool) {
	if gsi < 0 || gsi >= Pins {
		return
	}
	a.mu.Lock()
	rising := level && !a.line[gsi]
	a.line[gsi] = level
	e := a.rte[gsi]
	fire := false
	if e&rteTriggerLevel != 0 {
		fire = a.shouldFireLocked(gsi)
	} else {
		fire = rising && e&rteMasked == 0
	}
	a.mu.Unlock()
	if fire {
		a.send([]int{gsi})
	}
}

// send delivers the messages of pins, reading their entries afresh.
func (a *IOAPIC) send(pins []int) {
	for _, pin := range pins {
		a.mu.Lock()
		e := a.rte[pin]
		mode := uint8(e >> rteModeShift & 7)
		if mode == modeInvalid || mode == modeSMI || mode == 6 || mode == modeExtINT {
			a.dropped++
			a.mu.Unlock()
			continue
		}
		a.mu.Unlock()
		a.sink.Interrupt(uint32(e>>rteDestShift), e&rteDestLogical != 0, mode, uint8(e&rteVector), e&rteTriggerLevel != 0)
	}
}

// Dropped returns how many messages were not sent because the guest
// programmed a delivery mode the IOAPIC does not send (SMI, ExtINT,
// reserved).
func (a *IOAPIC) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}
