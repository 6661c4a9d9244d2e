// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package devices

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// TestIRQLineLateCall: a goroutine lowers the line and its call to the
// controller runs late, while another raises it. The controller must end
// with the line high, as the device wants it.
func TestIRQLineLateCall(t *testing.T) {
	var mu sync.Mutex
	var ctrl atomic.Bool
	var blockLow atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	q := NewIRQLine(func(level bool) {
		if !level && blockLow.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		ctrl.Store(level)
	})
	mu.Lock()
	q.Update(&mu, true)
	blockLow.Store(true)
	done := make(chan struct{})
	go func() {
		mu.Lock()
		q.Update(&mu, false) // an ACK
		close(done)
	}()
	<-entered
	mu.Lock()
	q.Update(&mu, true) // new work: the late caller tells it
	close(release)
	<-done
	mu.Lock()
	want := q.Level()
	mu.Unlock()
	if !want || !ctrl.Load() {
		t.Errorf("device level %v, controller %v: want both high", want, ctrl.Load())
	}
}

// TestIRQLineRiseWhileTelling: while one goroutine tells the
// controller the line is high, another lowers it and raises it again (a
// 16550's IIR read, then the guest's next THR write). An edge-triggered
// controller must see that rise: told only "high", it would wait for
// an edge for ever.
func TestIRQLineRiseWhileTelling(t *testing.T) {
	for _, c := range []struct {
		name      string
		meanwhile []bool // the levels set while it tells
		want      []bool // what the controller is told, in order
	}{
		{"fall and rise", []bool{false, true}, []bool{true, false, true}},
		{"fall, rise, fall", []bool{false, true, false}, []bool{true, false, true, false}},
		{"fall only", []bool{false}, []bool{true, false}},
		{"nothing", nil, []bool{true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []bool
			entered, release := make(chan struct{}), make(chan struct{})
			first := true
			q := NewIRQLine(func(level bool) {
				calls = append(calls, level)
				if first {
					first = false
					close(entered)
					<-release
				}
			})
			done := make(chan struct{})
			go func() {
				mu.Lock()
				q.Update(&mu, true) // the operator types: told while the vCPU runs
				close(done)
			}()
			<-entered
			for _, level := range c.meanwhile {
				mu.Lock()
				q.Update(&mu, level)
			}
			close(release)
			<-done
			if !slices.Equal(calls, c.want) {
				t.Errorf("the controller was told %v, want %v", calls, c.want)
			}
		})
	}
}

// TestIRQLineStress: many goroutines change the level; once they stop,
// the controller has the device's level, and it was never told the same
// level twice in a row.
func TestIRQLineStress(t *testing.T) {
	var mu sync.Mutex
	var calls []bool
	q := NewIRQLine(func(level bool) { calls = append(calls, level) }) // one caller at a time
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				mu.Lock()
				q.Update(&mu, (i+g)%3 == 0)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 || calls[len(calls)-1] != q.Level() {
		t.Fatalf("the controller was last told %v, the device's level is %v", calls[len(calls)-1:], q.Level())
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] == calls[i-1] {
			t.Fatalf("call %d repeats the level %v", i, calls[i])
		}
	}
}

// TestIRQLineNoAllocs: Update allocates nothing (it runs on every
// register access that changes the line).
func TestIRQLineNoAllocs(t *testing.T) {
	var mu sync.Mutex
	q := NewIRQLine(func(bool) {})
	level := false
	if n := testing.AllocsPerRun(100, func() {
		level = !level
		mu.Lock()
		q.Update(&mu, level)
	}); n != 0 {
		t.Errorf("%v allocations per Update", n)
	}
}
