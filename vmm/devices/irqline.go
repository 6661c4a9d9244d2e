// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package devices

import "sync"

// IRQLine is a device model's interrupt output: the level the device
// wants, changed under the device's own lock, and the calls that tell
// the interrupt controller, made outside it (the controller reaches the
// vCPUs, and a device's lock is taken under none of theirs).
//
// Two goroutines may change the level at once (a vCPU that reads or
// acknowledges a register lowers it while the device's worker, or the
// operator typing, raises it), and their calls to the controller could
// then arrive in either order: the controller left with a vCPU's low
// after the other's high holds the line low while the device asserts
// it, and a level-triggered line never interrupts again, nor an
// edge-triggered one that waits for its next rising edge. So one
// goroutine at a time tells the controller, each time the level as it
// is then, and tells it again if the level changed meanwhile; the
// others leave it that note. The controller always ends with the
// device's level.
//
// A rising edge is never lost in that note: if the level rose while the
// controller was being told something else, and telling it the level
// as it is now would show no rise (the line fell and rose again, or rose
// and fell), the controller is shown the pulse. An edge-triggered
// interrupt is the rise: a 16550 whose output was lowered by the
// guest's IIR read and raised again by its next THR write while the
// operator's typing was being told left the controller high throughout,
// and the guest, waiting for a rising edge, never heard from its
// console again.
type IRQLine struct {
	set func(level bool)
	// Under the device's lock: the level it wants, a goroutine telling
	// the controller, the level changed while it did, and it rose since
	// the telling goroutine last looked.
	level, driving, again, rose bool
	// told is the level last given to set: the telling goroutine's.
	told bool
}

// NewIRQLine returns a line that tells set its levels (nil: the device
// has no interrupt line).
func NewIRQLine(set func(level bool)) IRQLine { return IRQLine{set: set} }

// Level returns the level the device last set; the device's lock is
// held.
func (q *IRQLine) Level() bool { return q.level }

// Update sets the level with the device's lock mu held, unlocks mu, and
// tells the controller when it changed. It neither blocks nor allocates,
// and may run on a vCPU's pinned goroutine.
func (q *IRQLine) Update(mu sync.Locker, level bool) {
	changed := level != q.level
	q.level = level
	q.rose = q.rose || changed && level
	if !changed || q.set == nil || q.driving {
		q.again = q.again || changed
		mu.Unlock()
		return
	}
	q.driving = true
	for {
		level, rose := q.level, q.rose
		q.again, q.rose = false, false
		mu.Unlock()
		q.tell(level, rose)
		mu.Lock()
		if !q.again {
			break
		}
	}
	q.driving = false
	mu.Unlock()
}

// tell brings the controller to level, first showing it a rise it would
// not see otherwise. Only the driving goroutine calls it.
func (q *IRQLine) tell(level, rose bool) {
	if rose && (q.told || !level) {
		if q.told {
			q.set(false)
		}
		q.set(true)
		q.told = true
	}
	if level != q.told {
		q.told = level
		q.set(level)
	}
}
