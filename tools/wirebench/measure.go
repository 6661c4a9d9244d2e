//go:build linux

package main

import (
	"fmt"
	"runtime"
	"time"
)

// series says how to measure one figure: warm operations first, then n
// timed ones. prepare, if set, runs before each operation, untimed and
// with its allocations left out; run is the operation.
type series struct {
	warm, n int
	prepare func() error
	run     func() error
}

// measure runs s. Allocations are counted with runtime.MemStats around
// the whole timed loop, or around each operation when there is a
// prepare step to leave out.
func measure(s series) (sample, error) {
	for i := 0; i < s.warm; i++ {
		if err := s.step(); err != nil {
			return sample{}, fmt.Errorf("warm-up %d: %w", i, err)
		}
	}
	out := sample{lat: make([]time.Duration, s.n)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range out.lat {
		d, err := s.timed(&out.allocs)
		if err != nil {
			return sample{}, fmt.Errorf("operation %d: %w", i, err)
		}
		out.lat[i] = d
	}
	if s.prepare == nil {
		runtime.ReadMemStats(&after)
		out.allocs = after.Mallocs - before.Mallocs
	}
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

// timed runs one operation and returns its duration; with a prepare step
// it adds the operation's allocations to allocs.
func (s series) timed(allocs *uint64) (time.Duration, error) {
	if s.prepare == nil {
		start := time.Now()
		err := s.run()
		return time.Since(start), err
	}
	if err := s.prepare(); err != nil {
		return 0, err
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := s.run()
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	*allocs += after.Mallocs - before.Mallocs
	return d, err
}
