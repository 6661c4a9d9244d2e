// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"fmt"
	"time"

	"github.com/usbarmory/tamago/dma"
	"github.com/usbarmory/tamago/soc/intel/pci"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/nic"
)

func mmioRead8(addr uint64) uint8
func mmioRead16(addr uint64) uint16
func mmioRead32(addr uint64) uint32
func mmioWrite8(addr uint64, v uint8)
func mmioWrite16(addr uint64, v uint16)
func mmioWrite32(addr uint64, v uint32)

// MMIO is a register window in the identity map (below 4 GiB; the top
// GiB, where PCI places memory BARs, is mapped uncached).
type MMIO struct {
	Base uint64
	Size uint64
}

// Read8 implements nic.Regs.
func (m MMIO) Read8(off uint32) uint8 { return mmioRead8(m.Base + uint64(off)) }

// Read16 implements nic.Regs.
func (m MMIO) Read16(off uint32) uint16 { return mmioRead16(m.Base + uint64(off)) }

// Read32 implements nic.Regs.
func (m MMIO) Read32(off uint32) uint32 { return mmioRead32(m.Base + uint64(off)) }

// Write8 implements nic.Regs.
func (m MMIO) Write8(off uint32, v uint8) { mmioWrite8(m.Base+uint64(off), v) }

// Write16 implements nic.Regs.
func (m MMIO) Write16(off uint32, v uint16) { mmioWrite16(m.Base+uint64(off), v) }

// Write32 implements nic.Regs.
func (m MMIO) Write32(off uint32, v uint32) { mmioWrite32(m.Base+uint64(off), v) }

// PCI configuration space: command register and its bits (PCI Local Bus
// Specification 3.0, 6.2.2 "Device Control"), base address registers
// (6.2.5.1).
const (
	pciCommand            = 0x04
	pciCommandMemory      = 1 << 1
	pciCommandBusMaster   = 1 << 2
	pciCommandIntxDisable = 1 << 10
	pciBAR0               = 0x10
	pciBARIO              = 1 << 0
	pciBARType64          = 2 << 1
	pciBARTypeMask        = 3 << 1
)

// pciConfig is nic.PCIConfig over configuration mechanism #1.
type pciConfig struct{ d *pci.Device }

func (c pciConfig) ReadConfig32(off uint8) uint32     { return c.d.Read(0, uint32(off&^3)) }
func (c pciConfig) WriteConfig32(off uint8, v uint32) { c.d.Write(0, uint32(off&^3), v) }

// pciBAR maps memory BAR i of d.
func pciBAR(c pciConfig, i int) (nic.Regs, error) {
	if i < 0 || i > 5 {
		return nil, fmt.Errorf("BAR %d does not exist", i)
	}
	off := uint8(pciBAR0 + 4*i)
	lo := c.ReadConfig32(off)
	if lo&pciBARIO != 0 {
		return nil, fmt.Errorf("BAR %d is an I/O port BAR", i)
	}
	addr := uint64(lo &^ 0xf)
	if lo&pciBARTypeMask == pciBARType64 {
		if i == 5 {
			return nil, fmt.Errorf("BAR 5 claims to be 64-bit")
		}
		addr |= uint64(c.ReadConfig32(off+4)) << 32
	}
	if addr == 0 {
		return nil, fmt.Errorf("BAR %d is not assigned", i)
	}
	if addr >= 4<<30 {
		return nil, fmt.Errorf("BAR %d at %#x is above 4 GiB, outside the identity map", i, addr)
	}
	return MMIO{Base: addr}, nil
}

// DMA is nic.DMA over a tamago dma.Region outside the Go heap.
type DMA struct{ R *dma.Region }

// Alloc implements nic.DMA. The identity map makes bus and CPU addresses
// equal.
func (d DMA) Alloc(size, align int) ([]byte, uint64, error) {
	if size <= 0 {
		return nil, 0, fmt.Errorf("DMA: size %d", size)
	}
	addr, buf := d.R.Reserve(size, align)
	if buf == nil || addr == 0 {
		return nil, 0, fmt.Errorf("DMA: %d bytes: region of %d bytes exhausted", size, d.R.Size())
	}
	clear(buf)
	return buf, uint64(addr), nil
}

// NICHardware gives a driver the registers, configuration space and DMA
// memory of n. For a PCI function it turns on memory decoding and bus
// mastering and masks INTx (drivers poll).
func NICHardware(n board.NIC, region *dma.Region) (nic.Hardware, error) {
	hw := nic.Hardware{
		DMA:   DMA{R: region},
		Sleep: func(ns int64) { time.Sleep(time.Duration(ns)) },
	}
	switch {
	case n.MMIO != 0:
		hw.Regs = MMIO{Base: n.MMIO}
	case n.PCI:
		c := pciConfig{d: &pci.Device{Bus: uint32(n.Bus), Slot: uint32(n.Slot), Vendor: n.Vendor, Device: n.Device}}
		cmd := c.ReadConfig32(pciCommand)
		c.WriteConfig32(pciCommand, cmd&0xffff|pciCommandMemory|pciCommandBusMaster|pciCommandIntxDisable)
		hw.Config = c
		hw.BAR = func(i int) (nic.Regs, error) { return pciBAR(c, i) }
		bar0, err := pciBAR(c, 0)
		if err != nil {
			return hw, fmt.Errorf("%s: %w", n.Where, err)
		}
		hw.Regs = bar0
	default:
		return hw, fmt.Errorf("%s: neither PCI nor MMIO", n.Where)
	}
	return hw, nil
}
