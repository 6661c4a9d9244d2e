// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package nictest provides hosted stand-ins for the board's side of the
// nic contract: DMA memory with bus addresses, and register windows backed
// by a device model's callbacks, for testing drivers against models.
package nictest

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Memory is DMA memory in one byte slice at bus address Base. Device
// models reach it by bus address through Slice.
type Memory struct {
	mu   sync.Mutex
	Base uint64
	buf  []byte
	next uint64
}

// NewMemory returns size bytes of DMA memory at bus address base.
func NewMemory(base uint64, size int) *Memory {
	return &Memory{Base: base, buf: make([]byte, size)}
}

// Alloc implements nic.DMA.
func (m *Memory) Alloc(size, align int) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if align <= 0 || align&(align-1) != 0 {
		return nil, 0, fmt.Errorf("nictest: alignment %d is not a power of two", align)
	}
	off := (m.next + uint64(align) - 1) &^ (uint64(align) - 1)
	if off+uint64(size) > uint64(len(m.buf)) {
		return nil, 0, fmt.Errorf("nictest: out of DMA memory (%d bytes asked, %d left)", size, uint64(len(m.buf))-off)
	}
	m.next = off + uint64(size)
	b := m.buf[off : off+uint64(size) : off+uint64(size)]
	clear(b)
	return b, m.Base + off, nil
}

// Slice returns n bytes at bus address addr, as the device sees them, or
// an error if the range is outside the memory (a driver bug the model
// reports).
func (m *Memory) Slice(addr uint64, n int) ([]byte, error) {
	if addr < m.Base || addr-m.Base+uint64(n) > uint64(len(m.buf)) || n < 0 {
		return nil, fmt.Errorf("nictest: DMA to %#x+%d outside memory [%#x, %#x)", addr, n, m.Base, m.Base+uint64(len(m.buf)))
	}
	o := addr - m.Base
	return m.buf[o : o+uint64(n)], nil
}

// Regs is a register window whose accesses call a device model. Unset
// callbacks read as zero and ignore writes.
type Regs struct {
	Read  func(off uint32, size int) uint64
	Write func(off uint32, size int, v uint64)
}

func (r *Regs) read(off uint32, size int) uint64 {
	if r.Read == nil {
		return 0
	}
	return r.Read(off, size)
}

func (r *Regs) write(off uint32, size int, v uint64) {
	if r.Write != nil {
		r.Write(off, size, v)
	}
}

// Read8 implements nic.Regs.
func (r *Regs) Read8(off uint32) uint8 { return uint8(r.read(off, 1)) }

// Read16 implements nic.Regs.
func (r *Regs) Read16(off uint32) uint16 { return uint16(r.read(off, 2)) }

// Read32 implements nic.Regs.
func (r *Regs) Read32(off uint32) uint32 { return uint32(r.read(off, 4)) }

// Write8 implements nic.Regs.
func (r *Regs) Write8(off uint32, v uint8) { r.write(off, 1, uint64(v)) }

// Write16 implements nic.Regs.
func (r *Regs) Write16(off uint32, v uint16) { r.write(off, 2, uint64(v)) }

// Write32 implements nic.Regs.
func (r *Regs) Write32(off uint32, v uint32) { r.write(off, 4, uint64(v)) }

// Config is a 256-byte PCI configuration space in memory.
type Config [256]byte

// ReadConfig32 implements nic.PCIConfig.
func (c *Config) ReadConfig32(off uint8) uint32 {
	return binary.LittleEndian.Uint32(c[off&^3:])
}

// WriteConfig32 implements nic.PCIConfig.
func (c *Config) WriteConfig32(off uint8, v uint32) {
	binary.LittleEndian.PutUint32(c[off&^3:], v)
}
