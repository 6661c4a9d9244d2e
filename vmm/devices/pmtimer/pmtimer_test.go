// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package pmtimer

import "testing"

func TestCountFollowsTheTSC(t *testing.T) {
	const hz = 2_600_000_000
	tsc := uint64(0)
	tm := New(func() uint64 { return tsc }, hz)
	if c := tm.Count(); c != 0 {
		t.Fatalf("count at TSC 0: %d", c)
	}
	tsc = hz / 1000 // 1 ms
	if c := tm.Count(); c != Frequency/1000 {
		t.Errorf("count after 1 ms: %d, want %d", c, Frequency/1000)
	}
	// 24 bits wrap after about 4.69 s.
	tsc = hz * 5
	if c, want := tm.Count(), uint32(Frequency*5)&Mask; c != want {
		t.Errorf("count after 5 s: %d, want %d (wrapped)", c, want)
	}
	if tm.In(0x608, 4) != tm.Count() || tm.In(0x608, 1) != tm.Count()&0xFF {
		t.Error("port reads disagree with the count")
	}
	// A TSC near the top of its range neither overflows nor panics.
	tsc = ^uint64(0)
	_ = tm.Count()
}

// Calibrating the TSC against the timer, as Linux does, finds the TSC's
// frequency.
func TestCalibration(t *testing.T) {
	const hz = 3_000_000_000
	tsc := uint64(123456789)
	tm := New(func() uint64 { return tsc }, hz)
	c0 := tm.Count()
	tsc += hz / 20 // 50 ms
	c1 := tm.Count()
	ticks := uint64((c1 - c0) & Mask)
	if got := ticks * hz / 20 * 20 / (hz / Frequency * 20); got == 0 {
		t.Fatal("no ticks")
	}
	khz := (hz / 20) * Frequency / ticks / 1000
	if khz < 2_999_000 || khz > 3_001_000 {
		t.Errorf("calibrated %d kHz, want 3000000", khz)
	}
}
