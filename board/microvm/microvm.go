// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Package microvm is big-iron's board support for the QEMU microvm machine
// (PVH boot with -kernel, virtio-mmio devices, no PCI). Start QEMU with
// pit=on so the TSC can be calibrated under TCG, and acpi=on so the MADT
// describes the cores. It is imported for its side effects by the image's
// main package when built with the `microvm` tag.
//
// It must be built with the `linkcpuinit` tag (big-iron's own entry point,
// board/x86) and the `linkprintk` tag (console output goes to COM1 here).
package microvm

import (
	"runtime/goos"
	"time"
	_ "unsafe" // go:linkname

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/soc/intel/uart"

	"github.com/big-iron/big-iron/board"
	"github.com/big-iron/big-iron/board/x86"
)

// Peripheral addresses of the PC platform.
const (
	// COM1 is the first 16550 UART's I/O base (PC/AT convention).
	COM1 = 0x3f8

	// QEMU microvm places its virtio-mmio transports from 0xfeb00000,
	// 512 bytes apart (QEMU hw/i386/microvm.c).
	virtioMMIOBase   = 0xfeb00000
	virtioMMIOSlots  = 24
	virtioMMIOStride = 0x200
)

// Board-owned hardware instances; the only package-level state, set up
// during board init.
var (
	cpu  = &amd64.CPU{TimerMultiplier: 1}
	com1 = &uart.UART{Index: 1, Base: COM1}
	plat *board.Platform

	muted     bool
	tscHz     uint64
	tscSource string
)

// Go runtime memory: tamago places the runtime at 0x10000000 (its
// ramStart); this is how much RAM from there the runtime owns. Guests get
// what the memory map leaves outside it. Sized from `mem`: the image
// with the Linux guest embedded ends 56 MiB in, and the runtime had
// obtained 79 MiB (40 MiB of heap in use) with a 1200 MiB guest running,
// so 256 MiB leaves the collector twice that and room for more VMs.
//
//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = 0x10000000 // 256 MiB

//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	if !muted {
		com1.Tx(c)
	}
}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return cpu.GetTime()
}

// hwinit runs early in runtime start-up, before any goroutine.
//
//go:linkname hwinit runtime/goos.Hwinit1
func hwinit() {
	com1.Init()
	// tamago warns when it cannot find the TSC frequency; we calibrate
	// right after, so its warning is held back.
	muted = true
	cpu.Init()
	muted = false
	tscHz, tscSource = x86.CalibrateTSC(cpu)
	goos.Exit = func(int32) { x86.Halt() }
}

func init() {
	cpu.EnableExceptions()
	plat = x86.Bring(cpu, "microvm", tscHz, tscSource)
	plat.Console = &x86.Console{UART: com1, Poll: time.Millisecond}
	plat.NICs = x86.VirtioMMIONICs(virtioMMIOBase, virtioMMIOSlots, virtioMMIOStride)
}

// Platform returns the description of this machine.
func Platform() *board.Platform {
	return plat
}
