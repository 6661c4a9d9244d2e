// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package debugexit emulates QEMU's isa-debug-exit device: a write to
// its port ends the virtual machine with an exit status made of the
// value written, (value << 1) | 1, as QEMU exits with that status
// (QEMU hw/misc/debugexit.c). Test suites written for QEMU, such as
// kvm-unit-tests, report their result through it: `outl code, 0xf4`.
package debugexit

import "sync"

// Port and Ports are where kvm-unit-tests expects the device
// (iobase=0xf4, iosize=4).
const (
	Port  uint16 = 0xF4
	Ports uint16 = 4
)

// Device is the debug-exit port. It ends the VM once, on the first
// write; later writes and every read do nothing (reads return 0).
type Device struct {
	once sync.Once
	exit func(code uint32)
}

// New returns a device that calls exit with the value the guest writes
// (the guest's code, not QEMU's shifted status: see Status).
func New(exit func(code uint32)) *Device { return &Device{exit: exit} }

// Status is the exit status QEMU gives for a guest's code: (code << 1) | 1.
func Status(code uint32) uint32 { return code<<1 | 1 }

// In implements exits.PortDevice.
func (d *Device) In(port uint16, size uint8) uint32 { return 0 }

// Out implements exits.PortDevice: the value written, of the access's
// size, is the guest's code.
func (d *Device) Out(port uint16, size uint8, v uint32) {
	switch size {
	case 1:
		v &= 0xFF
	case 2:
		v &= 0xFFFF
	}
	d.once.Do(func() { d.exit(v) })
}
