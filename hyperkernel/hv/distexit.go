// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "github.com/big-iron/big-iron/hyperkernel/dvm"

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
