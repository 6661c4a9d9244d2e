// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package trace records what a node's share of a distributed VM does,
// event by event, in a fixed-size ring: remote faults and how long they
// waited, invalidations, vCPU migrations, forwarded device reads. It is
// built for the hot path: recording allocates nothing and takes no lock,
// and while tracing is off it costs the caller one predictable branch
// (On). Readers take a consistent copy of the events still in the ring
// while writers go on.
package trace

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Kind is what an event records.
type Kind uint8

// Event kinds.
const (
	// KindFault: a fault on guest-physical Addr (Write: for writing) of
	// vCPU VCPU (-1: not known) that waited Wait for node(s) elsewhere.
	KindFault Kind = iota + 1
	// KindInvalidate: this node's copy of the page at Addr was taken
	// away by node Node.
	KindInvalidate
	// KindMigrateOut: vCPU VCPU left for node Node, Bytes of state.
	KindMigrateOut
	// KindMigrateIn: vCPU VCPU arrived from node Node, Bytes of state.
	KindMigrateIn
	// KindDeviceRead: a device read at Addr forwarded to node Node,
	// answered after Wait.
	KindDeviceRead
	numKinds
)

var kindNames = [numKinds]string{"", "fault", "invalidate", "migrate-out", "migrate-in", "device-read"}

// String names the kind as the shell's filter and the JSON lines do.
func (k Kind) String() string {
	if k > 0 && k < numKinds {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// ParseKind reads a kind's name.
func ParseKind(s string) (Kind, error) {
	for k := Kind(1); k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("trace: unknown event kind %q (fault, invalidate, migrate-out, migrate-in, device-read)", s)
}

// Event is one recorded event.
type Event struct {
	// Seq numbers the events a ring recorded, from 0.
	Seq uint64
	// Time is when it happened, since the ring was made.
	Time time.Duration
	Kind Kind
	// Write: the fault was for writing.
	Write bool
	// VCPU is the vCPU concerned, -1 if none or not known.
	VCPU int32
	// Node is the other node concerned.
	Node uint16
	// Addr is the guest-physical address concerned.
	Addr uint64
	// Wait is how long the event waited for another node.
	Wait time.Duration
	// Bytes is the size of what moved.
	Bytes uint32
}

// slot is one event in the ring, as atomic words: seq is 2n+1 while
// event n is written and 2n+2 once it is.
type slot struct {
	seq  atomic.Uint64
	time atomic.Int64
	meta atomic.Uint64 // kind, write, node, vCPU
	addr atomic.Uint64
	wait atomic.Int64
	size atomic.Uint32
}

// Ring holds the latest events. Its methods are safe for concurrent use;
// a writer delayed for a whole ring of others' events can leave one
// event torn (fields of two), which readers cannot tell.
type Ring struct {
	on    atomic.Bool
	next  atomic.Uint64 // the number of events recorded
	epoch time.Time
	slots []slot
	mask  uint64
}

// NewRing returns a ring of the latest 2^bits events, off.
func NewRing(bits int) *Ring {
	if bits < 1 || bits > 24 {
		panic("trace: ring size out of range")
	}
	return &Ring{epoch: time.Now(), slots: make([]slot, 1<<bits), mask: 1<<bits - 1}
}

// On reports whether the ring records: check it before building an event.
// A nil ring is off.
func (r *Ring) On() bool { return r != nil && r.on.Load() }

// Start has the ring record; Stop stops it. Events recorded stay.
func (r *Ring) Start() { r.on.Store(true) }

// Stop stops recording.
func (r *Ring) Stop() { r.on.Store(false) }

// Len is the ring's capacity.
func (r *Ring) Len() int { return len(r.slots) }

// Recorded is the number of events recorded so far.
func (r *Ring) Recorded() uint64 { return r.next.Load() }

// Since returns the time of an event happening now, as Record wants it.
func (r *Ring) Since() time.Duration { return time.Since(r.epoch) }

// Record adds e (its Seq ignored), overwriting the oldest event when the
// ring is full, if the ring is on. It neither allocates nor blocks.
func (r *Ring) Record(e Event) {
	if !r.On() {
		return
	}
	n := r.next.Add(1) - 1
	s := &r.slots[n&r.mask]
	s.seq.Store(2*n + 1)
	s.time.Store(int64(e.Time))
	meta := uint64(e.Kind) | uint64(e.Node)<<16 | uint64(uint32(e.VCPU))<<32
	if e.Write {
		meta |= 1 << 8
	}
	s.meta.Store(meta)
	s.addr.Store(e.Addr)
	s.wait.Store(int64(e.Wait))
	s.size.Store(e.Bytes)
	s.seq.Store(2*n + 2)
}

// Filter selects events: a zero field selects all.
type Filter struct {
	Kind Kind
	// VCPU, if not nil, selects one vCPU's events.
	VCPU *int32
	// MinWait selects events that waited at least this long.
	MinWait time.Duration
}

// Match reports whether f selects e.
func (f Filter) Match(e *Event) bool {
	return (f.Kind == 0 || e.Kind == f.Kind) && (f.VCPU == nil || e.VCPU == *f.VCPU) && e.Wait >= f.MinWait
}

// Events appends to dst the events still in the ring with Seq at least
// from that f selects, oldest first, at most max of the newest (0: all),
// and returns the Seq to ask from next time. Events overwritten while
// it reads are left out.
func (r *Ring) Events(dst []Event, from uint64, f Filter, max int) ([]Event, uint64) {
	end := r.next.Load()
	first := from
	if size := uint64(len(r.slots)); end > size && first < end-size {
		first = end - size
	}
	start := len(dst)
	for n := first; n < end; n++ {
		e, ok := r.read(n)
		if ok && f.Match(&e) {
			dst = append(dst, e)
		}
	}
	if got := dst[start:]; max > 0 && len(got) > max {
		copy(got, got[len(got)-max:])
		dst = dst[:start+max]
	}
	return dst, end
}

// read copies event n if it is still in its slot, whole.
func (r *Ring) read(n uint64) (Event, bool) {
	s := &r.slots[n&r.mask]
	if s.seq.Load() != 2*n+2 {
		return Event{}, false
	}
	meta := s.meta.Load()
	e := Event{Seq: n, Time: time.Duration(s.time.Load()), Kind: Kind(meta), Write: meta&(1<<8) != 0,
		Node: uint16(meta >> 16), VCPU: int32(uint32(meta >> 32)), Addr: s.addr.Load(),
		Wait: time.Duration(s.wait.Load()), Bytes: s.size.Load()}
	if s.seq.Load() != 2*n+2 {
		return Event{}, false // overwritten while read
	}
	return e, true
}

// AppendJSON appends e as one JSON object (no newline).
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"t_ns":`...)
	b = strconv.AppendInt(b, int64(e.Time), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, `","vcpu":`...)
	b = strconv.AppendInt(b, int64(e.VCPU), 10)
	b = append(b, `,"node":`...)
	b = strconv.AppendUint(b, uint64(e.Node), 10)
	b = append(b, `,"gpa":`...)
	b = strconv.AppendUint(b, e.Addr, 10)
	b = append(b, `,"write":`...)
	b = strconv.AppendBool(b, e.Write)
	b = append(b, `,"wait_ns":`...)
	b = strconv.AppendInt(b, int64(e.Wait), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendUint(b, uint64(e.Bytes), 10)
	return append(b, '}')
}

// String formats e for the shell: time, kind and what it concerns.
func (e *Event) String() string {
	s := fmt.Sprintf("%12.6f %-11s", e.Time.Seconds(), e.Kind)
	if e.VCPU >= 0 {
		s += fmt.Sprintf(" vcpu %d", e.VCPU)
	}
	switch e.Kind {
	case KindFault:
		rw := "read"
		if e.Write {
			rw = "write"
		}
		s += fmt.Sprintf(" gpa %#x %s, waited %v", e.Addr, rw, e.Wait)
	case KindInvalidate:
		s += fmt.Sprintf(" gpa %#x by node %d", e.Addr, e.Node)
	case KindMigrateOut, KindMigrateIn:
		dir := "to"
		if e.Kind == KindMigrateIn {
			dir = "from"
		}
		s += fmt.Sprintf(" %s node %d, %d bytes", dir, e.Node, e.Bytes)
	case KindDeviceRead:
		s += fmt.Sprintf(" addr %#x on node %d, waited %v", e.Addr, e.Node, e.Wait)
	}
	return s
}
