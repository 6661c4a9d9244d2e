// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nic

import (
	"runtime"
	"time"
)

// Poller is what a receive loop drives: Device.Poll, or any port that
// hands frames to its receiver when polled (machine/link/afpacket on a
// host). Poll returns how many frames it handed over.
type Poller interface {
	Poll(budget int) int
}

// Polling is how a receive loop paces its polls. After a frame it polls
// again at once for Hot, giving way to other goroutines between polls
// (an answer to a remote fault is usually a few microseconds behind its
// request, and a node whose loop slept would add the sleep to every
// fault it serves); then it sleeps Idle between polls, and Quiet once
// it has slept QuietAfter since the last frame, so that an idle node's
// cores halt. QuietAfter counts sleeps, not time, as the image's loop
// always did: where sleeps last longer than asked (under an emulator)
// the loop keeps its short pause for as many polls as on hardware.
type Polling struct {
	// Budget is the most frames one poll takes in.
	Budget int
	// Hot is how long after the last frame the loop polls without
	// sleeping; 0 sleeps after the first poll that finds nothing.
	Hot time.Duration
	// Idle is the sleep between polls once Hot has passed.
	Idle time.Duration
	// Quiet is the sleep between polls once the loop has slept
	// QuietAfter since the last frame.
	Quiet      time.Duration
	QuietAfter time.Duration
}

// DefaultPolling is a node's receive loop on real hardware: polled for
// 200 µs after each frame, then every 100 µs, and every millisecond
// once the link was quiet for 20 ms.
func DefaultPolling() Polling {
	return Polling{
		Budget: 64, Hot: 200 * time.Microsecond,
		Idle: 100 * time.Microsecond, Quiet: time.Millisecond, QuietAfter: 20 * time.Millisecond,
	}
}

// NodePolling is a node's receive-loop pacing: DefaultPolling, with the
// hot window the node's command line gives if it gives one (set), and
// without one under an emulator, whose host cores a spinning loop would
// take from the other emulated nodes.
func NodePolling(hot time.Duration, set, emulated bool) Polling {
	pol := DefaultPolling()
	switch {
	case set:
		pol.Hot = hot
	case emulated:
		pol.Hot = 0
	}
	return pol
}

// PollClock is a receive loop's view of time; tests give one that
// counts instead of waiting.
type PollClock interface {
	// Now is the time since some fixed start.
	Now() time.Duration
	// Sleep pauses the loop for d.
	Sleep(d time.Duration)
	// Yield lets other goroutines run before the next poll.
	Yield()
}

// SystemClock is the PollClock of a running program: the time package
// and the Go scheduler.
type SystemClock struct{ start time.Time }

// NewSystemClock returns a SystemClock that starts now.
func NewSystemClock() *SystemClock { return &SystemClock{start: time.Now()} }

// Now implements PollClock.
func (c *SystemClock) Now() time.Duration { return time.Since(c.start) }

// Sleep implements PollClock.
func (c *SystemClock) Sleep(d time.Duration) { time.Sleep(d) }

// Yield implements PollClock.
func (c *SystemClock) Yield() { runtime.Gosched() }

// PollLoop polls p, paced by pol on clock c, until stop is closed (nil:
// for ever). It does not allocate.
func PollLoop(p Poller, pol Polling, c PollClock, stop <-chan struct{}) {
	budget := pol.Budget
	if budget <= 0 {
		budget = 1
	}
	last := c.Now()
	var slept time.Duration // since the last frame
	for {
		select {
		case <-stop:
			return
		default:
		}
		if p.Poll(budget) > 0 {
			last, slept = c.Now(), 0
			continue
		}
		d := pol.pause(c.Now()-last, slept)
		if d == 0 {
			c.Yield()
			continue
		}
		c.Sleep(d)
		slept += d
	}
}

// pause is how long the loop waits after an empty poll, given the time
// since the last frame and how long it has slept since: 0 (a yield)
// inside the hot window.
func (pol Polling) pause(since, slept time.Duration) time.Duration {
	switch {
	case since < pol.Hot:
		return 0
	case slept < pol.QuietAfter:
		return pol.Idle
	default:
		return pol.Quiet
	}
}
