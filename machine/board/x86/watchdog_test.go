// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package x86

import (
	"sync/atomic"
	"testing"
)

const testPeriod = 5_000_000 // 5 ms, as the slice watch asks

func TestClockWatchRunsOnceAPeriod(t *testing.T) {
	var calls int
	w := newClockWatch(testPeriod, func() { calls++ })
	for _, now := range []int64{1000, 2000, testPeriod, testPeriod + 999, testPeriod + 1000, 3 * testPeriod} {
		w.poll(now)
	}
	if calls != 3 {
		t.Errorf("fn ran %d times, want 3 (at 1000, at 5 ms + 1000 and at 15 ms)", calls)
	}
}

func TestClockWatchOneCoreAtATime(t *testing.T) {
	var calls int
	var w *clockWatch
	w = newClockWatch(testPeriod, func() {
		calls++
		// Another core's clock read while this one runs fn, due but
		// within the hold's limit.
		w.poll(int64(calls) * 2 * testPeriod)
	})
	w.poll(testPeriod)
	if calls != 1 {
		t.Errorf("fn ran %d times, want 1: a second core ran it while the first held the watch", calls)
	}
}

// stalledWatch starts a watch whose first call of fn stalls until
// release is closed, as a holder preempted in fn would, and returns once
// that call is under way. Later calls count in calls.
func stalledWatch(t *testing.T, stallAt int64) (w *clockWatch, calls *atomic.Int32, release chan struct{}, done chan struct{}) {
	t.Helper()
	calls = new(atomic.Int32)
	release, done = make(chan struct{}), make(chan struct{})
	entered := make(chan struct{})
	w = newClockWatch(testPeriod, func() {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
	})
	go func() {
		w.poll(stallAt)
		close(done)
	}()
	<-entered
	return w, calls, release, done
}

func TestClockWatchTakenOverFromAStalledHolder(t *testing.T) {
	const at = 100 * testPeriod
	w, calls, release, done := stalledWatch(t, at)
	w.poll(at + (staleHolds-1)*testPeriod)
	if n := calls.Load(); n != 1 {
		t.Fatalf("fn ran %d times while the hold was %d periods old, want 1", n, staleHolds-1)
	}
	w.poll(at + staleHolds*testPeriod)
	if n := calls.Load(); n != 2 {
		t.Fatalf("fn ran %d times once the hold was %d periods old, want 2: nobody took the stalled watch over", n, staleHolds)
	}
	close(release)
	<-done
	w.poll(at + (staleHolds+1)*testPeriod)
	if n := calls.Load(); n != 3 {
		t.Errorf("fn ran %d times after both calls ended, want 3: the watch stayed held", n)
	}
}

func TestClockWatchStalledHolderKeepsOffTheCoreThatTookOver(t *testing.T) {
	const at = 100 * testPeriod
	w, calls, release, done := stalledWatch(t, at)
	// The core that takes over holds the watch through a nested call:
	// there the old holder comes back and lets go.
	var nested int
	w.fn = func() {
		if calls.Add(1) != 2 {
			return
		}
		close(release)
		<-done
		w.poll(at + (staleHolds+1)*testPeriod)
		nested = int(calls.Load())
	}
	w.poll(at + staleHolds*testPeriod)
	if nested != 2 {
		t.Errorf("fn ran %d times, want 2: the old holder, letting go, freed the watch the new one held", nested)
	}
}
