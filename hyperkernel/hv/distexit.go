// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"sync"
	"sync/atomic"

	"github.com/big-iron/big-iron/cluster/dvm"
)

// This file holds the parts of a distributed VM's exit handling that need
// no hardware, so that they are tested with stock Go.

// distICR is the x2APIC interrupt command register seen by a vCPU: an
// IPI is held until the vCPU has left its core, then sent to wherever its
// destination runs. Fixed delivery and startup IPIs to one destination
// are modelled; other writes (shorthands, other delivery modes, illegal
// vectors) are ignored, as a LAPIC drops what it cannot deliver.
type distICR struct {
	pending bool
	startup bool // a startup IPI, not an interrupt
	dest    uint32
	vector  uint8
}

// ICR fields and delivery modes (Intel SDM Vol. 3A, 11.6.1, Figure
// 11-12).
const (
	icrDeliveryMode = 7 << 8
	icrShorthand    = 3 << 18
	icrFixed        = 0 << 8
	icrINIT         = 5 << 8
	icrStartup      = 6 << 8
)

func (c *distICR) ReadMSR(int, uint32) (uint64, bool) { return 0, true }
func (c *distICR) WriteMSR(_ int, _ uint32, v uint64) bool {
	if v&icrShorthand != 0 {
		return true
	}
	switch v & icrDeliveryMode {
	case icrFixed:
		if uint8(v) >= dvm.MinVector {
			c.pending, c.startup, c.dest, c.vector = true, false, uint32(v>>32), uint8(v)
		}
	case icrStartup:
		c.pending, c.startup, c.dest, c.vector = true, true, uint32(v>>32), uint8(v)
	case icrINIT:
		// An application processor waits for its startup IPI from the
		// VM's creation on: INIT has nothing to do. Resetting a running
		// vCPU is not modelled.
	}
	return true
}

// setIn puts the value of an IN of size bytes into rax, as the processor
// does (a 32-bit IN zero-extends into RAX).
func setIn(rax *uint64, size uint8, v uint32) {
	switch size {
	case 1:
		*rax = *rax&^0xFF | uint64(v&0xFF)
	case 2:
		*rax = *rax&^0xFFFF | uint64(v&0xFFFF)
	default:
		*rax = uint64(v)
	}

}

// portForwarder is the device behind every port on a node without the
// devices: it records the access, which the exit loop forwards once the
// vCPU has left its core; a read returns all ones until then and is
// patched with the device node's answer.
type portForwarder struct {
	read, write bool
	port        uint16
	size        uint8
	value       uint32
}

func (p *portForwarder) In(port uint16, size uint8) uint32 {
	p.read, p.port, p.size = true, port, size
	return ^uint32(0)
}

func (p *portForwarder) Out(port uint16, size uint8, v uint32) {
	p.write, p.port, p.size, p.value = true, port, size, v
}

func (p *portForwarder) pending() bool { return p.read || p.write }

// guestClock is a node's guest TSC in a distributed VM: the host's TSC
// plus an offset. The offset only grows: when another node's guest clock
// is ahead, this one jumps forward to it, so guest time never goes back
// and the nodes stay within a clock period's drift (plus a message's
// flight) of each other. Its methods are safe for concurrent use.
type guestClock struct {
	offset atomic.Uint64
	// ups counts the jumps, skipped the ticks jumped in all, refused
	// the readings too far ahead to believe.
	ups, skipped, refused atomic.Uint64
	// far is the latest reading too far ahead to follow alone, with the
	// host TSC when it came (farSet once there is one).
	mu            sync.Mutex
	farT, farHost uint64
	farSet        bool
}

// now returns the guest TSC when the host's reads host.
func (c *guestClock) now(host uint64) uint64 { return host + c.offset.Load() }

// observe takes another node's guest TSC t, read when this node's host
// TSC reads host. A reading more than maxJump ticks ahead is followed
// only when it continues the previous such reading (the two differ by
// the host time between them, within maxJump): one confused reading
// must not throw the guest's time far forward, but a node that fell far
// behind must catch up. (Under Bochs each node's TSC counts its own
// instructions; a node that fell 24 s behind refused every reading, and
// its guest CPU's timers stalled for the rest of the run.)
func (c *guestClock) observe(t, host, maxJump uint64) {
	for {
		off := c.offset.Load()
		own := host + off
		if int64(t-own) <= 0 {
			return
		}
		if t-own > maxJump && !c.corroborated(t, host, maxJump) {
			c.refused.Add(1)
			return
		}
		if c.offset.CompareAndSwap(off, off+(t-own)) {
			c.ups.Add(1)
			c.skipped.Add(t - own)
			return
		}
	}
}

// corroborated records t, a reading too far ahead to follow alone, and
// reports whether it continues the previous one: as far ahead of it as
// the host's TSC moved between them, within maxJump.
func (c *guestClock) corroborated(t, host, maxJump uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	prevT, prevHost, ok := c.farT, c.farHost, c.farSet
	c.farT, c.farHost, c.farSet = t, host, true
	if !ok {
		return false
	}
	d := int64((t - prevT) - (host - prevHost))
	return d <= int64(maxJump) && -d <= int64(maxJump)
}
