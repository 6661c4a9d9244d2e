// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// queueDepth submits depth requests at once and waits for all of them;
// its requests and channel are made once.
type queueDepth struct {
	c    *Client
	reqs []Request
	done chan *Request
}

func newQueueDepth(c *Client, depth, size int) *queueDepth {
	q := &queueDepth{c: c, reqs: make([]Request, depth), done: make(chan *Request, depth)}
	for i := range q.reqs {
		q.reqs[i] = Request{Offset: uint64(i * size), Data: make([]byte, size), Done: func(r *Request) { q.done <- r }}
	}
	return q
}

// round submits every request as op and waits for them; it returns the
// first error.
func (q *queueDepth) round(op Op) error {
	for i := range q.reqs {
		q.reqs[i].Op = op
		q.c.Submit(&q.reqs[i])
	}
	var err error
	for range q.reqs {
		if r := <-q.done; r.Err != nil && err == nil {
			err = r.Err
		}
	}
	return err
}

// TestNoAllocs: in steady state a request allocates nothing, submitted
// asynchronously one or sixteen at a time, or through the synchronous
// calls. The fake server allocates nothing either when it serves in
// order, so testing.AllocsPerRun sees the client's allocations.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := newFakeServer(t, 1<<20)
	c := dial(t, s.config())
	one := newQueueDepth(c, 1, 4096)
	sixteen := newQueueDepth(c, 16, 4096)
	buf := make([]byte, 4096)
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"Submit, write and read", func() error {
			if err := one.round(OpWrite); err != nil {
				return err
			}
			return one.round(OpRead)
		}},
		{"Submit, 16 in flight", func() error {
			if err := sixteen.round(OpWrite); err != nil {
				return err
			}
			return sixteen.round(OpRead)
		}},
		{"WriteAt, ReadAt, Flush", func() error {
			if _, err := c.WriteAt(buf, 8192); err != nil {
				return err
			}
			if _, err := c.ReadAt(buf, 8192); err != nil {
				return err
			}
			return c.Flush()
		}},
	} {
		var err error
		for range 50 { // warm up: buffers, pools, the server's map
			if err = tc.f(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		allocs := testing.AllocsPerRun(500, func() {
			if e := tc.f(); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, allocs)
		}
	}
}

// BenchmarkFake4K measures 4 KiB requests against the in-process server
// over loopback TCP: one at a time, and sixteen in flight.
func BenchmarkFake4K(b *testing.B) {
	s := newFakeServer(b, 1<<20)
	cfg := s.config()
	c, err := Dial(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchDepths(b, c)
}

// benchDepths runs 4 KiB reads and writes at queue depths 1 and 16, by
// rounds (submit depth requests, wait for all) and streaming (keep 16 in
// flight: each Done submits its request again).
func benchDepths(b *testing.B, c *Client) {
	defer benchStream(b, c)
	for _, depth := range []int{1, 16} {
		for _, op := range []Op{OpRead, OpWrite} {
			b.Run(op.String()+"/depth="+itoa(uint64(depth)), func(b *testing.B) {
				q := newQueueDepth(c, depth, 4096)
				b.SetBytes(int64(depth * 4096))
				b.ReportAllocs()
				before := c.Status().Latency
				for b.Loop() {
					if err := q.round(op); err != nil {
						b.Fatal(err)
					}
				}
				after := c.Status().Latency
				if n := after.Count - before.Count; n > 0 {
					mean := (after.Total - before.Total) / time.Duration(n)
					b.ReportMetric(float64(mean.Nanoseconds())/1e3, "µs/req")
				}
			})
		}
	}
}

// benchStream keeps 16 requests of 4 KiB in flight, each resubmitted by
// its Done, for b.N requests.
func benchStream(b *testing.B, c *Client) {
	for _, op := range []Op{OpRead, OpWrite} {
		b.Run(op.String()+"/stream=16", func(b *testing.B) {
			var remaining atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			reqs := make([]Request, 16)
			for i := range reqs {
				reqs[i] = Request{Op: op, Offset: uint64(i * 4096), Data: make([]byte, 4096), Done: func(r *Request) {
					if r.Err != nil {
						failed.Store(r.Err)
					} else if remaining.Add(-1) >= 0 {
						c.Submit(r)
						return
					}
					wg.Done()
				}}
			}
			b.SetBytes(4096)
			b.ReportAllocs()
			before := c.Status().Latency
			b.ResetTimer()
			remaining.Store(int64(b.N))
			for i := range reqs {
				if remaining.Add(-1) < 0 {
					break
				}
				wg.Add(1)
				c.Submit(&reqs[i])
			}
			wg.Wait()
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			after := c.Status().Latency
			if n := after.Count - before.Count; n > 0 {
				b.ReportMetric(float64(((after.Total-before.Total)/time.Duration(n)).Nanoseconds())/1e3, "µs/req")
			}
		})
	}
}
