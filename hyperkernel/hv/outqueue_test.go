// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"slices"
	"testing"
)

func TestOutQueueCoalescesAndKeepsOrder(t *testing.T) {
	var q outQueue
	in := []outItem{
		{vcpu: 1, mode: deliveryFixed, vector: 0xf0},
		{eoi: true, vector: 0x30},
		{vcpu: 1, mode: deliveryFixed, vector: 0xf0}, // waiting already
		{vcpu: 1, mode: deliveryLowest, vector: 0xf0},
		{vcpu: 2, mode: deliveryFixed, vector: 0xf0},
		{eoi: true, vector: 0x30}, // waiting already
		{vcpu: 1, mode: deliveryStartup, vector: 0x9a},
		{vcpu: 1, mode: deliveryStartup, vector: 0x9a}, // the second SIPI
		{vcpu: 64, mode: deliveryFixed, vector: 0x40},  // no such vCPU
	}
	added := 0
	for _, it := range in {
		if q.push(it) {
			added++
		}
	}
	got := q.take()
	want := []outItem{in[0], in[1], in[3], in[4], in[6]}
	if !slices.Equal(got, want) || added != len(want) {
		t.Fatalf("taken %v (%d added), want %v", got, added, want)
	}
	q.done(got)
	if q.pending() {
		t.Fatal("items pending after take")
	}
	// Taken items may come again.
	if !q.push(in[0]) || !q.pending() {
		t.Fatal("an item sent before is refused after it went out")
	}
}

// NMIs to a vCPU wait two deep, as the processor keeps them; a third is
// lost; once taken, two may wait again.
func TestOutQueueKeepsTwoNMIs(t *testing.T) {
	var q outQueue
	nmi := outItem{vcpu: 3, mode: deliveryNMI, vector: 0x77} // the vector means nothing
	added := 0
	for i := 0; i < 3; i++ {
		if q.push(nmi) {
			added++
		}
	}
	q.push(outItem{vcpu: 4, mode: deliveryNMI})
	got := q.take()
	want := []outItem{{vcpu: 3, mode: deliveryNMI}, {vcpu: 3, mode: deliveryNMI, vector: 1}, {vcpu: 4, mode: deliveryNMI}}
	if !slices.Equal(got, want) || added != 2 {
		t.Fatalf("taken %v (%d of 3 added for vCPU 3), want %v", got, added, want)
	}
	q.done(got)
	if !q.push(nmi) || !q.push(nmi) || q.push(nmi) {
		t.Fatal("after the NMIs went out, two more do not wait")
	}
}

// A guest that sends IPIs as fast as it can, to every vCPU and vector,
// and EOIs, fills the queue to its bound and no further.
func TestOutQueueIsBounded(t *testing.T) {
	var q outQueue
	for round := 0; round < 3; round++ {
		for v := 0; v < 64; v++ {
			for vec := 0; vec < 256; vec++ {
				for _, mode := range []uint8{deliveryFixed, deliveryLowest, deliveryStartup, deliveryNMI, 5} {
					q.push(outItem{vcpu: v, mode: mode, vector: uint8(vec)})
				}
				q.push(outItem{eoi: true, vector: uint8(vec)})
			}
		}
	}
	got := q.take()
	if len(got) != maxOutItems {
		t.Fatalf("%d items after a flood, want the bound %d", len(got), maxOutItems)
	}
	q.done(got)
	allocs := testing.AllocsPerRun(100, func() {
		q.push(outItem{vcpu: 3, mode: deliveryFixed, vector: 0x41})
		q.push(outItem{eoi: true, vector: 0x41})
		q.done(q.take())
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations per push and take", allocs)
	}
}
