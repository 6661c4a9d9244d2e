// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package stress loads a node the way few workloads do on their own, to
// bring out faults that only show under load: a burn-in for new servers
// and a regression test for the board's scheduler hooks.
package stress

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// SchedulerResult is what a Scheduler run did.
type SchedulerResult struct {
	// Elapsed is how long the run took.
	Elapsed time.Duration
	// Stops counts the stop-the-world pauses the run made.
	Stops uint64
	// Handoffs counts the times a goroutine woke the next one of the ring.
	Handoffs uint64
}

// PerStop returns the mean time of one stop-the-world round, 0 if none.
func (r SchedulerResult) PerStop() time.Duration {
	if r.Stops == 0 {
		return 0
	}
	return r.Elapsed / time.Duration(r.Stops)
}

// Scheduler stops the world over and over for d, each pause short (a
// runtime.ReadMemStats), while a ring of goroutines, one more than the
// runtime has Ps, pass a token around so that every pause finds
// goroutines runnable on every P and Ms on their way to park. This is
// where a scheduler that finds no idle M asks its board for another
// hardware thread (machine/board/x86's SMP.task). It returns when d has
// passed and every goroutine it started has ended.
func Scheduler(d time.Duration) SchedulerResult {
	n := runtime.GOMAXPROCS(0) + 1
	ring := make([]chan struct{}, n)
	for i := range ring {
		ring[i] = make(chan struct{}, 1)
	}
	done := make(chan struct{})
	var handoffs atomic.Uint64
	var wg sync.WaitGroup
	for i := range ring {
		wg.Add(1)
		go func(in, out chan struct{}) {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case <-in:
				}
				handoffs.Add(1)
				out <- struct{}{}
			}
		}(ring[i], ring[(i+1)%n])
	}
	ring[0] <- struct{}{}

	var ms runtime.MemStats
	start := time.Now()
	var stops uint64
	for time.Since(start) < d {
		runtime.ReadMemStats(&ms)
		stops++
	}
	elapsed := time.Since(start)
	close(done)
	wg.Wait()
	return SchedulerResult{Elapsed: elapsed, Stops: stops, Handoffs: handoffs.Load()}
}
