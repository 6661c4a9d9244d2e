// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

// In8 reads a byte from an I/O port.
func In8(port uint16) uint8

// Out8 writes a byte to an I/O port.
func Out8(port uint16, val uint8)

// In32 reads a doubleword from an I/O port.
func In32(port uint16) uint32

// Out32 writes a doubleword to an I/O port.
func Out32(port uint16, val uint32)

// RDTSC reads the time-stamp counter (serialized with LFENCE).
func RDTSC() uint64

// Halt stops the calling core for good: interrupts off, HLT forever.
func Halt()

// Out16 writes a word to an I/O port.
func Out16(port uint16, val uint16)
