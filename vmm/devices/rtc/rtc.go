// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package rtc emulates the PC's CMOS real-time clock (the Motorola
// MC146818A register model: index port 0x70, data port 0x71; datasheet
// "MC146818A Real-Time Clock Plus RAM", address map and registers A-D):
// the date and time read from a host clock in BCD or binary, 12- or
// 24-hour as register B says, and 114 bytes of battery-backed RAM. The
// clock never shows an update in progress; alarms and periodic
// interrupts are not generated (register C reads no flags).
package rtc

import (
	"time"

	"github.com/big-iron/big-iron/vmm/spinlock"
)

// Ports and register indexes.
const (
	PortIndex = 0x70
	PortData  = 0x71

	regSeconds = 0x00
	regMinutes = 0x02
	regHours   = 0x04
	regWeekday = 0x06
	regDay     = 0x07
	regMonth   = 0x08
	regYear    = 0x09
	regA       = 0x0A
	regB       = 0x0B
	regC       = 0x0C
	regD       = 0x0D
	// regCentury is the century byte where ACPI's FADT points by
	// convention (PC/AT BIOSes use 0x32).
	regCentury = 0x32
	ramSize    = 128

	bBinary = 1 << 2 // DM: data mode binary (else BCD)
	b24Hour = 1 << 1
	bSet    = 1 << 7 // SET: updates inhibited
	dValid  = 1 << 7 // VRT: valid RAM and time
	aDiv    = 0x26   // 32.768 kHz time base, 1024 Hz rate
	pmFlag  = 0x80   // hour byte, 12-hour mode
)

// RTC is the CMOS clock and RAM. Safe for concurrent use.
type RTC struct {
	mu    spinlock.Lock
	now   func() time.Time
	index uint8
	ram   [ramSize]byte
	// offset is what the guest set the clock to, relative to the host
	// clock.
	offset time.Duration
}

// New returns an RTC reading time from now, in 24-hour BCD mode as
// BIOSes leave it.
func New(now func() time.Time) *RTC {
	r := &RTC{now: now}
	r.ram[regA] = aDiv
	r.ram[regB] = b24Hour
	r.ram[regD] = dValid
	return r
}

// In implements exits.PortDevice.
func (r *RTC) In(port uint16, size uint8) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if port == PortIndex {
		return uint32(r.index)
	}
	return uint32(r.readLocked(r.index & 0x7F))
}

// Out implements exits.PortDevice. Bit 7 of the index is the NMI mask,
// which the model ignores.
func (r *RTC) Out(port uint16, size uint8, v uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if port == PortIndex {
		r.index = uint8(v) & 0x7F
		return
	}
	r.writeLocked(r.index, uint8(v))
}

func (r *RTC) time() time.Time { return r.now().Add(r.offset).UTC() }

func (r *RTC) encode(v int) uint8 {
	if r.ram[regB]&bBinary != 0 {
		return uint8(v)
	}
	return uint8(v/10<<4 | v%10)
}

func (r *RTC) decode(b uint8) int {
	if r.ram[regB]&bBinary != 0 {
		return int(b)
	}
	return int(b>>4)*10 + int(b&0xF)
}

func (r *RTC) readLocked(idx uint8) uint8 {
	t := r.time()
	switch idx {
	case regSeconds:
		return r.encode(t.Second())
	case regMinutes:
		return r.encode(t.Minute())
	case regHours:
		h := t.Hour()
		if r.ram[regB]&b24Hour != 0 {
			return r.encode(h)
		}
		pm := uint8(0)
		if h >= 12 {
			pm = pmFlag
		}
		if h = h % 12; h == 0 {
			h = 12
		}
		return r.encode(h) | pm
	case regWeekday:
		return r.encode(int(t.Weekday()) + 1)
	case regDay:
		return r.encode(t.Day())
	case regMonth:
		return r.encode(int(t.Month()))
	case regYear:
		return r.encode(t.Year() % 100)
	case regCentury:
		return r.encode(t.Year() / 100)
	case regC:
		return 0
	}
	return r.ram[idx]
}

func (r *RTC) writeLocked(idx, v uint8) {
	switch idx {
	case regSeconds, regMinutes, regHours, regDay, regMonth, regYear, regCentury:
		r.setField(idx, v)
	case regWeekday:
	case regA:
		r.ram[regA] = v & 0x7F // UIP is read-only
	case regB:
		r.ram[regB] = v
	case regC, regD:
		// read-only
	default:
		r.ram[idx] = v
	}
}

// setField sets one date or time field: the guest's clock moves by the
// difference, kept as an offset from the host clock.
func (r *RTC) setField(idx, v uint8) {
	t := r.time()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	switch idx {
	case regSeconds:
		sec = r.decode(v)
	case regMinutes:
		min = r.decode(v)
	case regHours:
		if r.ram[regB]&b24Hour != 0 {
			hour = r.decode(v)
		} else {
			hour = r.decode(v&^pmFlag) % 12
			if v&pmFlag != 0 {
				hour += 12
			}
		}
	case regDay:
		day = r.decode(v)
	case regMonth:
		month = time.Month(r.decode(v))
	case regYear:
		year = year/100*100 + r.decode(v)
	case regCentury:
		year = r.decode(v)*100 + year%100
	}
	if sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || month < 1 || month > 12 {
		return // a nonsense value leaves the clock alone
	}
	want := time.Date(year, month, day, hour, min, sec, t.Nanosecond(), time.UTC)
	r.offset += want.Sub(t)
}
