// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import "github.com/big-iron/big-iron/vmm/vcpu"

// MMIOBase returns the guest-physical address of the APIC's register
// page (IA32_APIC_BASE's address field, SDM Vol. 3A, 11.4.4) and whether
// the APIC decodes it now: only in xAPIC mode. A globally disabled APIC
// decodes nothing (11.4.3), and in x2APIC mode the page behaves as on a
// disabled APIC (11.12.1). The hypervisor sends a vCPU's accesses to a
// decoded page to that vCPU's own APIC, and lets other accesses to the
// address fall through to whatever else is there.
func (a *LAPIC) MMIOBase() (base uint64, decoded bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.s.Base & vcpu.APICBaseAddress, a.modeLocked() == ModeXAPIC
}

// ReadMMIO implements devices.MMIODevice: a read at byte offset off of
// the APIC's page (SDM Vol. 3A, 11.4.1, Table 11-1). Registers are 32
// bits at 16-byte-aligned offsets; the SDM leaves other accesses
// undefined, and this model answers them with the register's bytes: bytes
// 0-3 of a slot are the register, bytes 4-15 read as 0. A reserved slot
// reads as 0 and records an illegal-register-address error (11.5.3);
// write-only registers read as 0. When the page is not decoded (see
// MMIOBase) every byte reads as 0xFF, as where nothing answers.
func (a *LAPIC) ReadMMIO(off uint64, size int) uint64 {
	if size < 1 || size > 8 {
		return 0
	}
	ones := ^uint64(0) >> (64 - 8*uint(size))
	a.mu.Lock()
	defer a.mu.Unlock()
	if off >= MMIOSize || a.modeLocked() != ModeXAPIC {
		return ones
	}
	r, at := reg(off/16), off%16
	switch {
	case !r.can(xRead | xWrite):
		a.recordErrorLocked(esrIllegalReg)
		return 0
	case !r.can(xRead):
		return 0
	}
	// Bytes 4-15 of the slot shift out of the 32-bit register as 0.
	return (a.readRegLocked(r, false) & xapicRegister >> (8 * at)) & ones
}

// WriteMMIO implements devices.MMIODevice: a write at byte offset off of
// the APIC's page (SDM Vol. 3A, 11.4.1, Table 11-1). Only an aligned
// 32-bit write (size 4, off a multiple of 16) reaches a register; this
// model ignores writes of other sizes or alignments, which the SDM
// leaves undefined. Reserved bits are dropped; writes to read-only
// registers (the ID among them, read-only since Nehalem) are ignored; a
// write to a reserved slot is ignored and records an
// illegal-register-address error (11.5.3). A write to ICR bits 31:0
// (0x300) sends the IPI before WriteMMIO returns. Nothing happens while
// the page is not decoded (see MMIOBase).
func (a *LAPIC) WriteMMIO(off uint64, size int, value uint64) {
	a.mu.Lock()
	ipi, icr := a.writeMMIOLocked(off, size, value)
	a.unlockAndSend(ipi, icr)
}

func (a *LAPIC) writeMMIOLocked(off uint64, size int, v uint64) (ipi bool, icr uint64) {
	if off >= MMIOSize || a.modeLocked() != ModeXAPIC {
		return false, 0
	}
	r := reg(off / 16)
	switch {
	case !r.can(xRead | xWrite):
		a.recordErrorLocked(esrIllegalReg)
		return false, 0
	case size != 4 || off%16 != 0 || !r.can(xWrite):
		return false, 0
	}
	_, ipi, icr = a.writeRegLocked(r, v&xapicRegister, false)
	return ipi, icr
}
