// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package spinlock provides the lock that device models and other state
// shared with running vCPUs use. A vCPU handles its exits with its
// goroutine pinned to the core that holds its VMCS, and a pinned
// goroutine must never park: a contended sync.Mutex would park it, and
// the Go runtime then dies with "schedule: holding locks". A Lock never
// parks. Its holder is pinned too (preemption is off while it is held),
// so a waiter spins only while the holder runs its short critical
// section on another core, as with a kernel spinlock.
//
// Critical sections must be short, must not block (no channel receives,
// no sleeping, no sync.Mutex, no I/O that waits) and must not allocate:
// an allocation may start a garbage collection, whose stop-the-world
// then waits for a core that spins on the lock this goroutine holds.
package spinlock

import (
	"sync/atomic"
	_ "unsafe" // go:linkname
)

// Pin disables preemption of the calling goroutine, keeping it on its
// thread and so on its core, until the matching Unpin; it returns the
// processor's id. Pins nest. This package owns the runtime's pinning for
// the hyperkernel: a Lock pins its holder, and a vCPU pins itself to the
// core that holds its VMCS.
//
//go:linkname Pin runtime.procPin
func Pin() int

// Unpin undoes one Pin.
//
//go:linkname Unpin runtime.procUnpin
func Unpin()

// Lock is a spin lock. The zero value is unlocked.
type Lock struct {
	held atomic.Uint32
}

// Lock pins the caller to its processor and takes the lock, spinning
// while another core holds it.
func (l *Lock) Lock() {
	Pin()
	for !l.held.CompareAndSwap(0, 1) {
		for l.held.Load() != 0 {
		}
	}
}

// TryLock takes the lock if it is free, pinning the caller; it reports
// whether it did.
func (l *Lock) TryLock() bool {
	Pin()
	if l.held.CompareAndSwap(0, 1) {
		return true
	}
	Unpin()
	return false
}

// Unlock releases the lock and unpins the caller.
func (l *Lock) Unlock() {
	if l.held.Swap(0) == 0 {
		panic("spinlock: unlock of an unlocked lock")
	}
	Unpin()
}
