// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/vmm/spinlock"
)

// outItem is an interrupt (LAPIC delivery mode and vector) for vCPU
// vcpu, or with eoi an end of interrupt for the device node's IOAPIC.
type outItem struct {
	eoi          bool
	vcpu         int
	mode, vector uint8
}

// LAPIC delivery modes (Intel SDM Vol. 3A, 11.6.1, Figure 11-12).
const (
	deliveryFixed   = 0
	deliveryLowest  = 1
	deliveryNMI     = 4
	deliveryStartup = 6
)

// outSlots are the kinds of item outQueue tells apart per vCPU and
// vector: fixed, lowest priority, startup, NMI, any other mode.
const outSlots = 5

func outSlot(mode uint8) int {
	switch mode {
	case deliveryFixed:
		return 0
	case deliveryLowest:
		return 1
	case deliveryStartup:
		return 2
	case deliveryNMI:
		return 3
	}
	return 4
}

// maxOutItems bounds an outQueue: every interrupt kind of every vCPU and
// vector once, two NMIs per vCPU, and an EOI of every vector.
const maxOutItems = dvm.MaxVCPUs*((outSlots-1)*256+2) + 256

// outQueue holds the interrupts and EOIs a distributed VM's node sends to
// the others, queued where nothing may block (a vCPU's exit handler,
// pinned; a device) and sent by whoever next holds the runtime's lock.
// An item that is already waiting adds nothing: a LAPIC's IRR holds one
// interrupt per vector and an EOI of a vector is idempotent, so a guest
// that sends IPIs faster than they go out coalesces them, as the hardware
// would, instead of growing the queue. NMIs carry no vector: the queue
// numbers them 0 and 1 in its place, so that two wait for a vCPU, as the
// processor keeps two (one delivered, one latched). It never holds more than
// maxOutItems and allocates nothing once its buffers have grown.
type outQueue struct {
	mu    spinlock.Lock
	items []outItem // guarded by mu
	spare []outItem // guarded by mu
	// waiting has a bit per (vCPU, slot, vector) and eoi one per vector
	// for the items in items; guarded by mu.
	waiting [dvm.MaxVCPUs][outSlots][4]uint64
	eoi     [4]uint64
}

// push queues it and reports whether it was new.
func (q *outQueue) push(it outItem) bool {
	if !it.eoi && (it.vcpu < 0 || it.vcpu >= dvm.MaxVCPUs) {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !it.eoi && it.mode == deliveryNMI {
		it.vector = 0
		if q.waiting[it.vcpu][outSlot(it.mode)][0]&1 != 0 {
			it.vector = 1
		}
	}
	word, bit := it.vector/64, uint64(1)<<(it.vector%64)
	set := &q.eoi[word]
	if !it.eoi {
		set = &q.waiting[it.vcpu][outSlot(it.mode)][word]
	}
	if *set&bit != 0 {
		return false
	}
	*set |= bit
	q.items = append(q.items, it)
	return true
}

// pending reports whether items wait.
func (q *outQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0
}

// take returns the items waiting, in the order they came, and empties
// the queue; give the slice back with done.
func (q *outQueue) take() []outItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items, q.spare = q.spare[:0], nil
	for _, it := range items {
		word, bit := it.vector/64, uint64(1)<<(it.vector%64)
		if it.eoi {
			q.eoi[word] &^= bit
		} else {
			q.waiting[it.vcpu][outSlot(it.mode)][word] &^= bit
		}
	}
	return items
}

// done gives back a slice take returned.
func (q *outQueue) done(items []outItem) {
	q.mu.Lock()
	q.spare = items[:0]
	q.mu.Unlock()
}
