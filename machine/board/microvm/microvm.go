// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Package microvm is big-iron's board support for the QEMU microvm machine
// (PVH boot with -kernel, virtio-mmio devices, no PCI). Start QEMU with
// pit=on so the TSC can be calibrated under TCG, and acpi=on so the MADT
// describes the cores. It is imported for its side effects by the image's
// main package when built with the `microvm` tag; early initialization is
// machine/board/x86's (x86.Machine).
//
// It must be built with the `linkcpuinit` tag (big-iron's own entry point,
// machine/board/x86) and the `linkprintk` tag (console output goes to COM1 here).
package microvm

import (
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/x86"
)

// QEMU microvm places its virtio-mmio transports from 0xfeb00000,
// 512 bytes apart (QEMU hw/i386/microvm.c).
const (
	virtioMMIOBase   = 0xfeb00000
	virtioMMIOSlots  = 24
	virtioMMIOStride = 0x200
)

// machine is a microvm: network cards on virtio-mmio.
var machine = x86.Machine{Name: "microvm", NICs: func() []board.NIC {
	return x86.VirtioMMIONICs(virtioMMIOBase, virtioMMIOSlots, virtioMMIOStride)
}}

// plat is set during board init.
var plat *board.Platform

func init() {
	plat = machine.Start()
}

// Platform returns the description of this machine.
func Platform() *board.Platform {
	return plat
}
