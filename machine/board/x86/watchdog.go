// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package x86

import "sync/atomic"

// clockWatch is board.Platform.Watchdog: a function the board calls from
// goos.Nanotime, the runtime's clock, about every period. Every core
// reads that clock often (its scheduler, its timers, its idle governor),
// and the runtime's stop-the-world reads it while it spins waiting for
// the last running core to stop (notetsleep), so the function runs
// even when no goroutine can: for a watch over cores that a guest may
// keep (hyperkernel/hv's slice watch).
//
// One core at a time runs fn, as a rule: the core that runs it holds
// the watch. A holder can be held up in turn (the runtime may preempt
// the goroutine whose clock read runs fn, and that goroutine then waits
// out a stop-the-world the watch was meant to see through), so a hold
// older than staleHolds periods is taken over by the next core that
// reads the clock. fn must therefore bear a second call while an
// earlier one is under way; that happens only after such a stall.
type clockWatch struct {
	period int64 // ns
	fn     func()
	// next is the clock's reading at which fn is due.
	next atomic.Int64
	// held is the clock's reading at which the core that runs fn took
	// the watch, 0 while no core runs it.
	held atomic.Int64
}

// staleHolds is how many periods a core may hold the watch before
// another takes it over.
const staleHolds = 4

// newClockWatch makes a watch that runs fn about every period ns.
func newClockWatch(period int64, fn func()) *clockWatch {
	return &clockWatch{period: period, fn: fn}
}

// poll runs fn if it is due at clock reading now and no other core has
// held the watch since less than staleHolds periods. The cost when it
// is not due is one atomic load.
func (w *clockWatch) poll(now int64) {
	if now < w.next.Load() {
		return
	}
	h := w.held.Load()
	if h != 0 && now-h < staleHolds*w.period {
		return
	}
	stamp := max(now, 1) // 0 means free
	if !w.held.CompareAndSwap(h, stamp) {
		return
	}
	if now >= w.next.Load() {
		w.next.Store(now + w.period)
		w.fn()
	}
	// A core that took the watch over from this one holds it now: leave
	// it to that core.
	w.held.CompareAndSwap(stamp, 0)
}
