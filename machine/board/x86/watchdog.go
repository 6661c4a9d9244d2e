// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"sync/atomic"
	"time"
)

// clockWatch is board.Platform.Watchdog: a function the board calls from
// goos.Nanotime, the runtime's clock, about every period. Every core
// reads that clock often (its scheduler, its timers, its idle governor),
// and the runtime's stop-the-world reads it while it spins waiting for
// the last running core to stop (notetsleep), so the function runs
// even when no goroutine can: for a watch over cores that a guest may
// keep (hyperkernel/hv's slice watch).
type clockWatch struct {
	period int64 // ns
	fn     func()
	// next is the clock's reading at which fn is due; busy is held by
	// the core that runs fn, so that one core at a time does.
	next atomic.Int64
	busy atomic.Bool
}

// watchdog is the board's clockWatch, nil until setWatchdog: set by the
// hyperkernel's start-up, read by every clock read.
var watchdog atomic.Pointer[clockWatch]

// setWatchdog is board.Platform.Watchdog.
func setWatchdog(period time.Duration, fn func()) {
	watchdog.Store(&clockWatch{period: int64(period), fn: fn})
}

// poll runs fn if it is due at clock reading now and no other core runs
// it. The cost when it is not due is one atomic load.
func (w *clockWatch) poll(now int64) {
	if now < w.next.Load() || !w.busy.CompareAndSwap(false, true) {
		return
	}
	if now >= w.next.Load() {
		w.next.Store(now + w.period)
		w.fn()
	}
	w.busy.Store(false)
}
