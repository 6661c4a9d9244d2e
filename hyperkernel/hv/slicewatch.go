// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"sync/atomic"
	"time"
)

// On AMD-V a guest's turn on a core ends when the core's local-APIC
// timer interrupts it (the slice timer, svmcpu_tamago.go). That is one
// way back to the core, and an interrupt can be lost: QEMU's TCG does
// not exit for a physical interrupt already pending at VMRUN (the x86
// hypervisor suite's svm tests show it, issue 18), and a vCPU that kept
// its core would keep the runtime's stop-the-world waiting, and the
// node with it. The slice watch is the second way: every watchPeriod
// the board calls it from the runtime's own clock reads on some other
// core (which go on while the runtime stops the world and waits for the
// vCPU's core; a goroutine would be stopped with the rest), and a turn
// older than the watch's limit gets an NMI, which AMD-V intercepts: an
// NMI exit, taken as the slice's end. VT-x needs no watch: its preemption timer is a
// count the processor checks itself, not an interrupt.

// coreTurn is what the slice watch knows of one core: when the guest's
// turn there began.
type coreTurn struct {
	// entered is the TSC at the VMRUN of the turn under way, 0 while
	// the core runs the hyperkernel. The vCPU pinned to the core writes
	// it (begin, end); the watch reads it.
	entered atomic.Uint64
	// kicked is entered as it was for the latest turn the watch sent an
	// NMI to. Only the watch touches it; scans run one at a time but for
	// one that the board let another core take over from (a stalled
	// holder, x86.clockWatch), so it is claimed by compare-and-swap.
	kicked atomic.Uint64
}

// begin records that a turn starts at TSC now; end that it is over.
func (t *coreTurn) begin(now uint64) { t.entered.Store(max(now, 1)) }
func (t *coreTurn) end()             { t.entered.Store(0) }

// overdue reports whether the turn under way began limit or more TSC
// ticks before now and got no NMI yet, and marks it as kicked: one NMI a
// turn, since a second would only wait behind the first, even from two
// scans at once. A turn that began after now was read is not overdue.
func (t *coreTurn) overdue(now, limit uint64) bool {
	e, k := t.entered.Load(), t.kicked.Load()
	if e == 0 || e == k || now < e || now-e < limit {
		return false
	}
	return t.kicked.CompareAndSwap(k, e)
}

// sliceWatch is a node's slice watch (see above). Its zero value has
// its timer on and watches nothing; newSliceWatch makes a working one.
type sliceWatch struct {
	// limit is how many TSC ticks a turn may last before an NMI ends it.
	limit uint64
	// cores are the cores watched, read-only after newSliceWatch.
	cores []watchedCore
	// regained counts the turns ended by the watch's NMI.
	regained atomic.Uint64
	// timerOff, set only to test the watch, keeps the slice timer from
	// being armed, as if every slice's interrupt were lost.
	timerOff atomic.Bool
}

// watchedCore is a core the watch looks at: its APIC id and its turn.
type watchedCore struct {
	apicID uint32
	turn   *coreTurn
}

// newSliceWatch makes a watch of cores that ends a turn after limit
// TSC ticks.
func newSliceWatch(limit uint64, cores []watchedCore) *sliceWatch {
	return &sliceWatch{limit: limit, cores: cores}
}

// scan checks every core's turn once at TSC now and sends an NMI with
// nmi to the APIC id of each overdue one. The board runs one scan at a
// time but after a stall (board.Platform.Watchdog); two at once still
// send one NMI a turn. It neither allocates,
// blocks nor writes a pointer: it runs inside the runtime's clock reads.
func (w *sliceWatch) scan(now uint64, nmi func(apicID uint32)) {
	for i := range w.cores {
		c := &w.cores[i]
		if c.turn.overdue(now, w.limit) {
			nmi(c.apicID)
			w.regained.Add(1)
		}
	}
}

// A turn gets the watch's NMI after watchSlices slices, and no sooner
// than a watchMinPerSecond-th of a second.
const (
	watchSlices       = 20
	watchMinPerSecond = 50
)

// sliceTicks is a slice's length in TSC ticks: a millisecond in
// TSC-deadline mode (or where the local-APIC timer's rate is unknown),
// else count ticks of the local-APIC timer at lapicHz. The timer's rate
// is the emulator's choice: 1 GHz in QEMU's TCG, where a slice is a
// millisecond, slower than the TSC in Bochs, where a slice is 10 ms,
// and a watch limit of 20 ms there ended turns the slice timer was
// still timing (TestBochsAMDV counted an exit more in one of two
// identical runs).
func sliceTicks(tscHz, lapicHz, count uint64, deadline bool) uint64 {
	if deadline || lapicHz == 0 {
		return tscHz / 1000
	}
	return count * tscHz / lapicHz
}

// watchLimit is the watch's limit in TSC ticks for slices of slice
// ticks.
func watchLimit(tscHz, slice uint64) uint64 {
	return max(tscHz/watchMinPerSecond, watchSlices*slice)
}

// SliceWatchStatus is what `vm slice` shows of a node's slice watch.
type SliceWatchStatus struct {
	// Watched says that the node has a slice watch (AMD-V).
	Watched bool
	// TimerOff says that the slice timer is off, to test the watch.
	TimerOff bool
	// Regained counts the guests' turns the watch's NMI ended.
	Regained uint64
	// Limit is how long a turn may last before the watch ends it.
	Limit time.Duration
}

// status reports the watch; w may be nil (VT-x), tscHz is the TSC's rate.
func (w *sliceWatch) status(tscHz uint64) SliceWatchStatus {
	if w == nil {
		return SliceWatchStatus{}
	}
	st := SliceWatchStatus{Watched: true, TimerOff: w.timerOff.Load(), Regained: w.regained.Load()}
	if tscHz > 0 {
		st.Limit = time.Duration(w.limit * uint64(time.Second) / tscHz)
	}
	return st
}
