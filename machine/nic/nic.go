// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package nic is the contract between network-card drivers and the rest of
// the hyperkernel: a Device is a link.Link that is polled, counts what it
// does, and reaches its hardware only through Regs and DMA. Drivers are
// pure Go over these interfaces, so each is tested hosted against a model
// of its device; the board supplies real registers (MMIO in the identity
// map) and DMA memory (tamago's dma package) on bare metal.
package nic

import (
	"errors"

	"github.com/big-iron/big-iron/machine/link"
)

// Device is a network card driven by polling. Transmit (from link.Link)
// and Poll may be called from different goroutines; drivers serialize
// them internally. Neither allocates.
type Device interface {
	link.Link
	// Driver names the driver and model, e.g. "e1000 (82540EM)".
	Driver() string
	// Poll hands up to budget received frames to the receiver, returns
	// finished transmit buffers to the driver, and refreshes the link
	// state. It returns the number of frames received.
	Poll(budget int) int
	// Stats returns the counters so far.
	Stats() Stats
}

// Stats counts a device's traffic.
type Stats struct {
	RxFrames, RxBytes uint64
	// RxDropped counts frames lost for want of a receiver or buffer;
	// RxErrors frames the hardware flagged bad (CRC, length).
	RxDropped, RxErrors uint64
	TxFrames, TxBytes   uint64
	// TxDropped counts frames refused because the ring was full.
	TxDropped, TxErrors uint64
}

// Regs is a device's register window (a PCI memory BAR or a virtio-mmio
// region). Offsets are bytes from the window's start. Accesses are of the
// width named and must be naturally aligned.
type Regs interface {
	Read8(off uint32) uint8
	Read16(off uint32) uint16
	Read32(off uint32) uint32
	Write8(off uint32, v uint8)
	Write16(off uint32, v uint16)
	Write32(off uint32, v uint32)
}

// DMA hands out memory the device can reach by bus address.
type DMA interface {
	// Alloc returns size bytes aligned to align (a power of two), zeroed,
	// as the CPU sees them and at the bus address the device uses. Memory
	// is never returned: drivers allocate their rings and buffers once.
	Alloc(size, align int) (buf []byte, addr uint64, err error)
}

// PCIConfig is a PCI function's configuration space (PCI Local Bus
// Specification 3.0, 6.1).
type PCIConfig interface {
	ReadConfig32(off uint8) uint32
	WriteConfig32(off uint8, v uint32)
}

// Hardware is what a driver gets from the board for one device.
type Hardware struct {
	// Regs is the main register window: BAR 0 of a PCI function, or the
	// virtio-mmio region.
	Regs Regs
	// BAR maps PCI memory BAR i (nil where the device is not on PCI).
	BAR func(i int) (Regs, error)
	// Config is the PCI configuration space (nil off PCI).
	Config PCIConfig
	// DMA allocates descriptor rings and packet buffers.
	DMA DMA
	// Sleep waits about d nanoseconds (reset and link polling delays).
	Sleep func(ns int64)
}

// Errors shared by drivers.
var (
	// ErrNoDevice means the registers do not belong to the expected
	// device (wrong magic, id or version).
	ErrNoDevice = errors.New("nic: not the expected device")
	// ErrReset means the device did not come out of reset in time.
	ErrReset = errors.New("nic: device did not complete reset")
	// ErrRingFull is returned by Transmit when no descriptor is free; the
	// frame is counted in TxDropped.
	ErrRingFull = errors.New("nic: transmit ring full")
)
