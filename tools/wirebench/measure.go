//go:build linux

package main

import (
	"fmt"
	"runtime"
	"time"
)

// series says how to measure one figure: warm operations first, then n
// timed ones, then allocOps more whose heap allocations are counted.
// prepare, if set, runs before each operation, untimed and with its
// allocations left out; run is the operation.
//
// Latency and allocations are measured in separate passes because
// runtime.ReadMemStats stops the world: read around each timed
// operation, it would leave the runtime's threads just woken and
// competing for the cores as the operation starts, and time that.
type series struct {
	warm, n, allocOps int
	// idle is slept between each timed operation's prepare step and
	// the operation, so that both sides have fallen idle when it
	// starts (-idle).
	idle    time.Duration
	prepare func() error
	run     func() error
	// readStats reads the allocation counters; nil means
	// runtime.ReadMemStats. Tests replace it to see when it runs.
	readStats func(*runtime.MemStats)
	// peerMallocs, if set, returns the serving process's count of heap
	// allocations so far, so that the allocation pass counts both
	// sides of an operation.
	peerMallocs func() (uint64, error)
}

// defaultAllocOps is how many operations a series counts allocations
// over when it does not say.
const defaultAllocOps = 200

// measure runs s.
func measure(s series) (sample, error) {
	if s.readStats == nil {
		s.readStats = runtime.ReadMemStats
	}
	if s.allocOps == 0 {
		s.allocOps = min(s.n, defaultAllocOps)
	}
	for i := 0; i < s.warm; i++ {
		if err := s.step(); err != nil {
			return sample{}, fmt.Errorf("warm-up %d: %w", i, err)
		}
	}
	out := sample{lat: make([]time.Duration, s.n)}
	for i := range out.lat {
		d, err := s.timed()
		if err != nil {
			return sample{}, fmt.Errorf("operation %d: %w", i, err)
		}
		out.lat[i] = d
	}
	var err error
	out.allocs, err = s.countAllocs()
	if err != nil {
		return sample{}, err
	}
	out.allocOps = s.allocOps
	return out, nil
}

// step runs one operation, prepared, untimed.
func (s series) step() error {
	if s.prepare != nil {
		if err := s.prepare(); err != nil {
			return err
		}
	}
	return s.run()
}

// timed prepares and runs one operation, idle in between, and returns
// the run's duration.
func (s series) timed() (time.Duration, error) {
	if s.prepare != nil {
		if err := s.prepare(); err != nil {
			return 0, err
		}
	}
	if s.idle > 0 {
		time.Sleep(s.idle)
	}
	start := time.Now()
	err := s.run()
	return time.Since(start), err
}

// countAllocs runs allocOps operations and returns the heap allocations
// their runs made, on this side and on the peer's if peerMallocs is set:
// counted around the whole loop, or around each run when there is a
// prepare step to leave out.
func (s series) countAllocs() (uint64, error) {
	if s.prepare == nil {
		return s.counted(func() error {
			for i := 0; i < s.allocOps; i++ {
				if err := s.run(); err != nil {
					return fmt.Errorf("allocation count %d: %w", i, err)
				}
			}
			return nil
		})
	}
	var total uint64
	for i := 0; i < s.allocOps; i++ {
		if err := s.prepare(); err != nil {
			return 0, fmt.Errorf("allocation count %d: %w", i, err)
		}
		n, err := s.counted(s.run)
		if err != nil {
			return 0, fmt.Errorf("allocation count %d: %w", i, err)
		}
		total += n
	}
	return total, nil
}

// counted runs f and returns the heap allocations made meanwhile on this
// side, and on the peer's if peerMallocs is set.
func (s series) counted(f func() error) (uint64, error) {
	var peerBefore, peerAfter uint64
	var err error
	if s.peerMallocs != nil {
		if peerBefore, err = s.peerMallocs(); err != nil {
			return 0, err
		}
	}
	var before, after runtime.MemStats
	s.readStats(&before)
	err = f()
	s.readStats(&after)
	if err != nil {
		return 0, err
	}
	if s.peerMallocs != nil {
		if peerAfter, err = s.peerMallocs(); err != nil {
			return 0, err
		}
	}
	return after.Mallocs - before.Mallocs + peerAfter - peerBefore, nil
}
