// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"strconv"
	"time"
)

// State is where the client's connection is.
type State uint8

// States.
const (
	// StateConnecting: before the first handshake.
	StateConnecting State = iota
	// StateConnected: a connection is in the transmission phase.
	StateConnected
	// StateReconnecting: the connection broke; the client dials again and
	// requests wait.
	StateReconnecting
	// StateFailed: no connection worked for Timeout; requests fail with
	// ErrTimeout while the client goes on dialing.
	StateFailed
	// StateClosed: Close was called and the client's goroutines are gone.
	StateClosed
)

// String names the state: "connecting", "connected", "reconnecting",
// "failed", "closed".
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "state " + strconv.Itoa(int(s))
}

// LatencyBuckets is the number of buckets of a Latency histogram.
const LatencyBuckets = 7

// LatencyBound returns the upper bound (exclusive) of histogram bucket i:
// 100 µs, 1 ms, 10 ms, 100 ms, 1 s, 10 s, and no bound (a negative
// duration) for the last one.
func LatencyBound(i int) time.Duration {
	if i < 0 || i >= LatencyBuckets-1 {
		return -1
	}
	d := 100 * time.Microsecond
	for ; i > 0; i-- {
		d *= 10
	}
	return d
}

// Latency sums up how long completed requests took, from Submit to Done
// (waits for a connection included).
type Latency struct {
	// Count is the number of requests.
	Count uint64
	// Total is their latencies summed, Max the longest.
	Total, Max time.Duration
	// Buckets counts the requests by latency: Buckets[i] those below
	// LatencyBound(i) and at least LatencyBound(i-1).
	Buckets [LatencyBuckets]uint64
}

// Mean is the average latency, 0 before any request.
func (l Latency) Mean() time.Duration {
	if l.Count == 0 {
		return 0
	}
	return l.Total / time.Duration(l.Count)
}

// add counts one request of latency d.
func (l *Latency) add(d time.Duration) {
	l.Count++
	l.Total += d
	l.Max = max(l.Max, d)
	i := 0
	for i < LatencyBuckets-1 && d >= LatencyBound(i) {
		i++
	}
	l.Buckets[i]++
}

// OpCounts counts requests by operation.
type OpCounts struct {
	Read, Write, Flush, Trim uint64 // of each operation
}

// counters are the client's running totals.
type counters struct {
	ops          OpCounts
	errors       uint64
	bytesRead    uint64
	bytesWritten uint64
	reconnects   uint64
	disconnects  uint64
	latency      Latency
}

// account counts r, completed with err at now. Client.mu is held.
func (c *Client) account(r *Request, err error, now time.Time) {
	st := &c.stats
	switch r.Op {
	case OpRead:
		st.ops.Read++
	case OpWrite:
		st.ops.Write++
	case OpFlush:
		st.ops.Flush++
	case OpTrim:
		st.ops.Trim++
	}
	switch {
	case err != nil:
		st.errors++
	case r.Op == OpRead:
		st.bytesRead += uint64(len(r.Data))
	case r.Op == OpWrite:
		st.bytesWritten += uint64(len(r.Data))
	}
	st.latency.add(now.Sub(r.start))
}

// Status is a snapshot of the client for an operator.
type Status struct {
	// Addr and Export are the server's address and the export's name,
	// from Config.
	Addr, Export string
	// Info is what the latest handshake said of the export (zero before
	// the first).
	Info Info
	// State is where the connection is.
	State State
	// InFlight is the number of requests sent and not yet answered,
	// Queued of those waiting to be sent.
	InFlight, Queued int
	// Completed counts the completed requests by operation.
	Completed OpCounts
	// Errors counts those that failed.
	Errors uint64
	// BytesRead and BytesWritten count the data of successful reads and
	// writes.
	BytesRead, BytesWritten uint64
	// Reconnects counts the handshakes after the first; Disconnects the
	// connections that broke.
	Reconnects, Disconnects uint64
	// LastError is why the latest connection broke or dial failed (nil if
	// none did).
	LastError error
	// Latency sums up the completed requests' latency.
	Latency Latency
}

// Status returns a snapshot of the client's state and counters.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		Addr:         c.cfg.Addr,
		Export:       c.cfg.Export,
		Info:         c.info,
		State:        c.state,
		InFlight:     len(c.slots) - len(c.free),
		Queued:       c.pending.n,
		Completed:    c.stats.ops,
		Errors:       c.stats.errors,
		BytesRead:    c.stats.bytesRead,
		BytesWritten: c.stats.bytesWritten,
		Reconnects:   c.stats.reconnects,
		Disconnects:  c.stats.disconnects,
		LastError:    c.lastErr,
		Latency:      c.stats.latency,
	}
}
