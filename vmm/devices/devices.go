// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package devices holds the contracts between the guest platform's device
// models (UART, RTC, i8042, PIT, PIC, LAPIC, IOAPIC, virtio, ACPI) and the
// hypervisor that runs them. Each model lives in a subpackage, is pure Go
// over these interfaces, and is tested hosted; the hypervisor's exit
// handlers call the models and supply guest memory, interrupt lines and
// time.
//
// Everything a guest writes to a device is hostile input: models check
// addresses, lengths and indices, report misuse to the guest as a device
// error, and never panic.
package devices

import "errors"

// GuestMemory reads and writes guest-physical memory. Accesses may span
// pages; an access that touches memory the guest does not have fails with
// an error wrapping ErrBadAddress and copies nothing.
type GuestMemory interface {
	ReadAt(p []byte, gpa uint64) error
	WriteAt(p []byte, gpa uint64) error
}

// Prefetcher is implemented by a GuestMemory whose pages may be held
// elsewhere (a distributed VM's, on other nodes): Prefetch asks for the
// pages of n bytes at gpa, for writing if write, without waiting for
// them, so that a device about to copy a request's scattered buffers
// waits about once for all of them rather than once per buffer. It is
// a hint: it reports nothing, and the accesses that follow check
// addresses as ever.
type Prefetcher interface {
	Prefetch(gpa, n uint64, write bool)
}

// ErrBadAddress is wrapped by GuestMemory errors for addresses outside the
// guest's memory.
var ErrBadAddress = errors.New("guest-physical address outside guest memory")

// IRQSink receives a device's interrupt line changes: gsi is the global
// system interrupt number the line is wired to (the IOAPIC input; ISA
// IRQ n is GSI n unless an ACPI interrupt source override says otherwise).
// Edge-triggered devices pulse: SetIRQ(gsi, true) then SetIRQ(gsi, false).
type IRQSink interface {
	SetIRQ(gsi int, level bool)
}

// MMIODevice is a device's memory-mapped register window. off is the byte
// offset from the window's base; size is 1, 2, 4 or 8. Reads return the
// value in the low size bytes. Handlers may be called concurrently from
// several vCPUs and must serialize themselves.
type MMIODevice interface {
	ReadMMIO(off uint64, size int) uint64
	WriteMMIO(off uint64, size int, value uint64)
}

// Settler is an MMIO device whose register write may leave work under
// way that has to end before the write counts as done: a virtio reset
// that overtakes its worker's round, which would otherwise go on writing
// guest memory the driver has already taken back (a driver frees its
// rings once its reset write returns: Linux's virtio-mmio does not read
// the status back). After every write to such a device, the vCPU asks
// Unsettled, which neither blocks nor allocates (it may be pinned), and
// if it reports true, leaves the core and calls Settle, which waits
// until that work has ended. A write forwarded from another node is
// settled by the device node before it performs the next access.
type Settler interface {
	Unsettled() bool
	Settle()
}

// Clock gives device models the guest's time: Now is nanoseconds since an
// arbitrary fixed start, monotonic.
type Clock interface {
	Now() int64
}
