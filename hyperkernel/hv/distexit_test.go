// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "testing"

func TestDistICR(t *testing.T) {
	for _, c := range []struct {
		name    string
		write   uint64
		pending bool
		startup bool
		dest    uint32
		vector  uint8
	}{
		{"fixed IPI to vCPU 1", 1<<32 | 0x41, true, false, 1, 0x41},
		{"fixed IPI, level and trigger bits", 3<<32 | 0xC000 | 0xEC, true, false, 3, 0xEC},
		{"startup IPI at 0x8000", 1<<32 | 0x4608, true, true, 1, 0x08},
		{"INIT", 1<<32 | 0xC500, false, false, 0, 0},
		{"illegal vector 3", 1<<32 | 0x03, false, false, 0, 0},
		{"all-excluding-self shorthand", 3<<18 | 0x41, false, false, 0, 0},
		{"NMI", 1<<32 | 4<<8, false, false, 0, 0},
	} {
		var icr distICR
		if !icr.WriteMSR(0, 0x830, c.write) {
			t.Errorf("%s: the write faulted", c.name)
		}
		if icr.pending != c.pending || icr.pending && (icr.startup != c.startup || icr.dest != c.dest || icr.vector != c.vector) {
			t.Errorf("%s: %+v, want pending %v startup %v dest %d vector %#x", c.name, icr, c.pending, c.startup, c.dest, c.vector)
		}
	}
	var icr distICR
	if v, ok := icr.ReadMSR(0, 0x830); !ok || v != 0 {
		t.Errorf("ICR read %#x %v", v, ok)
	}
}

func TestSetIn(t *testing.T) {
	for _, c := range []struct {
		size uint8
		v    uint32
		want uint64
	}{
		{1, 0x12345678, 0xFFFFFFFF_FFFFFF78},
		{2, 0x12345678, 0xFFFFFFFF_FFFF5678},
		{4, 0x12345678, 0x12345678}, // zero-extended
	} {
		rax := ^uint64(0)
		setIn(&rax, c.size, c.v)
		if rax != c.want {
			t.Errorf("IN of %d bytes: RAX %#x, want %#x", c.size, rax, c.want)
		}
	}
}

func TestGuestClock(t *testing.T) {
	var c guestClock
	if c.now(1000) != 1000 {
		t.Fatal("a new clock is the host's")
	}
	c.observe(900, 1000, 1<<20) // another node is behind: nothing changes
	if c.now(1000) != 1000 || c.ups.Load() != 0 {
		t.Fatalf("behind: now %d, %d jumps", c.now(1000), c.ups.Load())
	}
	c.observe(5000, 1000, 1<<20) // ahead by 4000: jump
	if got := c.now(1000); got != 5000 {
		t.Fatalf("ahead: now %d, want 5000", got)
	}
	c.observe(5500, 2000, 1<<20) // now 6000 here: still ahead of the other
	if got := c.now(2000); got != 6000 || c.ups.Load() != 1 || c.skipped.Load() != 4000 {
		t.Errorf("after: now %d, %d jumps, %d skipped", got, c.ups.Load(), c.skipped.Load())
	}
	// Guest time never goes back, whatever arrives.
	last := c.now(2000)
	for i, obs := range []uint64{0, 1 << 63, ^uint64(0), 1 << 40, 7000, 6500} {
		c.observe(obs, 2000+uint64(i), 1<<20)
		if n := c.now(2000 + uint64(i)); int64(n-last) < 0 {
			t.Fatalf("guest time went back from %d to %d after observing %d", last, n, obs)
		} else {
			last = n
		}
	}
	if c.refused.Load() != 2 || c.now(3000) > 1<<21 {
		t.Errorf("readings far ahead: %d refused, now %d", c.refused.Load(), c.now(3000))
	}
}

// TestGuestClockCatchesUpFromFarBehind: a node whose guest clock fell
// more than the jump bound behind (Bochs counts each node's own
// instructions) follows two readings that agree with each other; a
// lone reading far ahead, or two that disagree, move nothing. On the old
// code every reading was refused and the gap only grew.
func TestGuestClockCatchesUpFromFarBehind(t *testing.T) {
	const maxJump, gap = 1000, 24000
	var c guestClock
	c.observe(gap+100, 100, maxJump) // the other node is 24,000 ahead
	if c.now(100) != 100 || c.refused.Load() != 1 {
		t.Fatalf("one far reading: now %d, %d refused; want it refused", c.now(100), c.refused.Load())
	}
	c.observe(5*gap, 150, maxJump) // a reading that does not continue it
	if c.now(150) != 150 {
		t.Fatalf("two far readings that disagree: now %d, want 150", c.now(150))
	}
	c.observe(5*gap+60, 210, maxJump) // continues the last: 60 ticks on, 60 of host time
	if got := c.now(210); got != 5*gap+60 || c.ups.Load() != 1 {
		t.Fatalf("two far readings that agree: now %d (%d jumps), want %d", got, c.ups.Load(), 5*gap+60)
	}
}

func TestPortForwarderRecordsOneAccess(t *testing.T) {
	var p portForwarder
	if p.pending() {
		t.Fatal("pending before any access")
	}
	if v := p.In(0x3FD, 1); v != ^uint32(0) || !p.read || p.port != 0x3FD || p.size != 1 {
		t.Fatalf("In: %#x %+v", v, p)
	}
	p.read = false
	p.Out(0x3F8, 1, 'x')
	if !p.pending() || !p.write || p.value != 'x' {
		t.Fatalf("Out: %+v", p)
	}
}
