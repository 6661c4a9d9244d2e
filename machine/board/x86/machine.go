// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"runtime/debug"
	"runtime/goos"
	"time"
	_ "unsafe" // go:linkname

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/soc/intel/uart"

	"github.com/big-iron/big-iron/machine/board"
)

// The runtime's board hooks (tamago's runtime/goos) for every x86 machine
// big-iron runs on: the early start-up, the clock and the console are the
// same on all of them, and only what Machine describes differs. They need
// the `linkprintk` tag (console output goes to COM1 here) and, for the
// entry point, `linkcpuinit`.

// COM1 is the first 16550 UART's I/O base (PC/AT convention).
const COM1 = 0x3f8

// Board-owned hardware instances; the only package-level state, set up
// during board init.
var (
	cpu  = &amd64.CPU{TimerMultiplier: 1}
	com1 = &uart.UART{Index: 1, Base: COM1}

	muted     bool
	tscHz     uint64
	tscSource string
)

// Go runtime memory: tamago places the runtime at 0x10000000 (its
// ramStart); this is how much RAM from there the runtime owns. Guests get
// what the memory map leaves outside it. Sized from `mem`: the image
// with the Linux guest embedded ends 60 MiB in (its BSS included), and the runtime had
// obtained 79 MiB (40 MiB of heap in use) with a 1200 MiB guest running,
// so 256 MiB leaves the collector twice that and room for more VMs.
//
//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = 0x10000000 // 256 MiB

// imageRoom is what the image itself takes of ramSize (text, data and
// the embedded guest: 60 MiB with Linux), kept out of the runtime's
// memory limit.
const imageRoom = 64 << 20

// The collector's memory limit: without one the heap grows to twice
// what is live before a collection, and a distributed VM's coherence
// state is about 100 bytes per guest page on every node (60 MB for
// 2.5 GiB), so a node running a 2.5 GiB guest ran out of memory at
// 197 MB in use. With the limit the collector works harder near it
// instead (runtime/debug.SetMemoryLimit).
func setMemoryLimit() { debug.SetMemoryLimit(int64(ramSize) - imageRoom) }

//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	if !muted {
		com1.Tx(c)
	}
}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	t := cpu.GetTime()
	if w := watchdog.Load(); w != nil {
		w.poll(t)
	}
	return t
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
	tscHz, tscSource = CalibrateTSC(cpu)
	goos.Exit = func(int32) { Halt() }
}

// Machine describes one family of x86 machines: what its board package
// (board/pc, board/microvm) says and this package does not.
type Machine struct {
	// Name is the platform's name (board.Platform.Name).
	Name string
	// NICs lists the machine's network cards (PCINICs,
	// VirtioMMIONICs).
	NICs func() []board.NIC
}

// Start brings the machine up (Bring), with the console on COM1, and
// returns its description. A board package calls it once, from its init.
func (m Machine) Start() *board.Platform {
	cpu.EnableExceptions()
	setMemoryLimit()
	lapicHz := startIdleHalt(tscHz)
	p := Bring(cpu, m.Name, tscHz, tscSource)
	p.LAPICTimerHz = lapicHz
	p.Console = &Console{UART: com1, Poll: time.Millisecond}
	p.NICs = m.NICs()
	p.WakeVector = WakeVector
	p.Watchdog = setWatchdog
	return p
}
