// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nic

import (
	"testing"
	"time"
)

// stepClock is a PollClock that counts: a yield takes yieldCost, a sleep
// its duration, and a poll pollCost (charged by the poller).
type stepClock struct {
	now    time.Duration
	sleeps []time.Duration
	yields int
	// stretch, if not 0, makes every sleep last that many times what
	// was asked, as an emulator's do.
	stretch time.Duration
}

const (
	yieldCost = time.Microsecond
	pollCost  = time.Microsecond
)

func (c *stepClock) Now() time.Duration { return c.now }
func (c *stepClock) Sleep(d time.Duration) {
	c.sleeps = append(c.sleeps, d)
	c.now += d * max(c.stretch, 1)
}
func (c *stepClock) Yield() { c.yields++; c.now += yieldCost }

// scriptPoller delivers a frame at each of arrivals (times on clock),
// at the first poll at or after it, and closes stop at end.
type scriptPoller struct {
	clock    *stepClock
	arrivals []time.Duration
	end      time.Duration
	stop     chan struct{}
	// late is, for each frame, how long after its arrival it was
	// taken in.
	late []time.Duration
}

func (p *scriptPoller) Poll(budget int) int {
	p.clock.now += pollCost
	if p.clock.now >= p.end && p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	n := 0
	for len(p.arrivals) > 0 && p.arrivals[0] <= p.clock.now && n < budget {
		p.late = append(p.late, p.clock.now-p.arrivals[0])
		p.arrivals = p.arrivals[1:]
		n++
	}
	return n
}

func runScript(pol Polling, arrivals []time.Duration, end time.Duration) (*scriptPoller, *stepClock) {
	c := &stepClock{}
	stop := make(chan struct{})
	p := &scriptPoller{clock: c, arrivals: arrivals, end: end, stop: stop}
	PollLoop(p, pol, c, stop)
	return p, c
}

// TestPollLoopHotWindow: a frame that comes inside the hot window after
// the last one is taken in within a poll, where the loop without a hot
// window (the image's loop before it had one) slept 100 µs first.
func TestPollLoopHotWindow(t *testing.T) {
	arrivals := []time.Duration{10 * time.Microsecond, 60 * time.Microsecond, 150 * time.Microsecond}
	for _, tc := range []struct {
		hot     time.Duration
		maxLate time.Duration
	}{
		{DefaultPolling().Hot, 2 * pollCost},
		{0, DefaultPolling().Idle + 2*pollCost},
	} {
		pol := DefaultPolling()
		pol.Hot = tc.hot
		p, _ := runScript(pol, append([]time.Duration(nil), arrivals...), time.Millisecond)
		if len(p.late) != len(arrivals) {
			t.Fatalf("hot=%v: took in %d frames, want %d", tc.hot, len(p.late), len(arrivals))
		}
		worst := time.Duration(0)
		for _, l := range p.late[1:] { // the first comes before any frame
			worst = max(worst, l)
		}
		if worst > tc.maxLate {
			t.Errorf("hot=%v: a frame waited %v to be taken in, want at most %v", tc.hot, worst, tc.maxLate)
		}
		if tc.hot > 0 && worst > 2*pollCost {
			t.Errorf("hot=%v: frames inside the hot window waited %v", tc.hot, worst)
		}
	}
}

// TestPollLoopCoolsDown: after the hot window the loop sleeps Idle, and
// Quiet once nothing came for QuietAfter; a frame makes it hot again.
func TestPollLoopCoolsDown(t *testing.T) {
	pol := DefaultPolling()
	second := 50 * time.Millisecond
	p, c := runScript(pol, []time.Duration{0, second}, second+30*time.Millisecond)
	if len(p.late) != 2 {
		t.Fatalf("took in %d frames, want 2", len(p.late))
	}
	if p.late[1] > pol.Quiet+2*pollCost {
		t.Errorf("the frame after a quiet spell waited %v, want at most %v", p.late[1], pol.Quiet)
	}
	var idle, quiet int
	for _, d := range c.sleeps {
		switch d {
		case pol.Idle:
			idle++
		case pol.Quiet:
			quiet++
		default:
			t.Fatalf("slept %v, want %v or %v", d, pol.Idle, pol.Quiet)
		}
	}
	// Hot for 200 µs after each frame (about 100 yields of 2 µs with
	// the poll), Idle until 20 ms, then Quiet.
	hotPolls := int(pol.Hot / (yieldCost + pollCost))
	if c.yields < 2*hotPolls-4 || c.yields > 2*hotPolls+4 {
		t.Errorf("%d yields, want about %d (two hot windows)", c.yields, 2*hotPolls)
	}
	if idle < 2*150 || quiet < 2*20 {
		t.Errorf("%d idle sleeps and %d quiet ones, want about 2×198 and 2×30", idle, quiet)
	}
}

// TestPollLoopQuietCountsSleeps: where sleeps last ten times what was
// asked, the loop still sleeps Idle QuietAfter/Idle times before it goes
// quiet, as the image's loop did (it counted its sleeps), not a tenth
// of that.
func TestPollLoopQuietCountsSleeps(t *testing.T) {
	pol := DefaultPolling()
	c := &stepClock{stretch: 10}
	stop := make(chan struct{})
	p := &scriptPoller{clock: c, arrivals: []time.Duration{0}, end: 500 * time.Millisecond, stop: stop}
	PollLoop(p, pol, c, stop)
	idle := 0
	for _, d := range c.sleeps {
		if d == pol.Idle {
			idle++
		}
	}
	if want := int(pol.QuietAfter / pol.Idle); idle != want {
		t.Errorf("%d idle sleeps before going quiet, want %d", idle, want)
	}
}

// TestPollLoopNoAllocs: the loop allocates nothing per poll.
func TestPollLoopNoAllocs(t *testing.T) {
	c := &stepClock{sleeps: make([]time.Duration, 0, 1<<16)}
	allocs := testing.AllocsPerRun(10, func() {
		c.sleeps = c.sleeps[:0]
		stop := make(chan struct{})
		p := &scriptPoller{clock: c, end: c.now + 5*time.Millisecond, stop: stop}
		PollLoop(p, DefaultPolling(), c, stop)
	})
	// The run's own channel and poller: 2 allocations, none per poll.
	if allocs > 2 {
		t.Errorf("%.0f allocations per run of thousands of polls, want the run's own 2", allocs)
	}
}

// TestNodePolling: the command line's window wins; without it a node
// polls hot on hardware and not under an emulator.
func TestNodePolling(t *testing.T) {
	def := DefaultPolling().Hot
	for _, tc := range []struct {
		hot           time.Duration
		set, emulated bool
		want          time.Duration
	}{
		{0, false, false, def},
		{0, false, true, 0},
		{time.Millisecond, true, true, time.Millisecond},
		{0, true, false, 0},
	} {
		if got := NodePolling(tc.hot, tc.set, tc.emulated); got.Hot != tc.want || got.Idle != DefaultPolling().Idle {
			t.Errorf("NodePolling(%v, %v, %v): hot %v, idle %v; want hot %v", tc.hot, tc.set, tc.emulated, got.Hot, got.Idle, tc.want)
		}
	}
}
