// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package pmtimer is the ACPI power-management timer a guest reads from
// a port (ACPI 6.5, 4.8.3.3 "Power Management Timer (PM_TMR)"): a 24-bit
// counter at 3.579545 MHz that wraps, derived here from the guest's TSC,
// so that a guest with no other clock to calibrate its TSC against (an
// AMD processor gives no CPUID leaf 0x15) finds one that agrees with it.
package pmtimer

import "math/bits"

// Frequency is the PM timer's rate in Hz.
const Frequency = 3579545

// Mask is the counter's width: 24 bits (the FADT's TMR_VAL_EXT clear).
const Mask = 1<<24 - 1

// Timer is a PM timer over a TSC.
type Timer struct {
	now func() uint64
	hz  uint64
}

// New returns a timer that reads the guest's TSC with now, counting
// tscHz per second.
func New(now func() uint64, tscHz uint64) *Timer { return &Timer{now: now, hz: max(tscHz, 1)} }

// Count is the counter now: TSC * Frequency / tscHz, 24 bits.
func (t *Timer) Count() uint32 {
	hi, lo := bits.Mul64(t.now(), Frequency)
	if hi >= t.hz {
		hi %= t.hz // the TSC has run for centuries: only the low bits matter
	}
	q, _ := bits.Div64(hi, lo, t.hz)
	return uint32(q) & Mask
}

// In reads the counter (a 32-bit access to the timer's port; narrower
// reads get its low bytes).
func (t *Timer) In(port uint16, size uint8) uint32 {
	v := t.Count()
	switch size {
	case 1:
		return v & 0xFF
	case 2:
		return v & 0xFFFF
	}
	return v
}

// Out is ignored: the timer is read-only.
func (t *Timer) Out(port uint16, size uint8, value uint32) {}
