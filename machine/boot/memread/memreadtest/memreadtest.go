// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package memreadtest is a fake physical memory for testing the parsers
// that read through a memread.ReadFunc.
package memreadtest

import "fmt"

// Mem is a sparse physical memory: segments of bytes keyed by their
// address. A read must fall entirely inside one segment.
type Mem map[uint64][]byte

// Read is a memread.ReadFunc over the segments.
func (m Mem) Read(addr uint64, n int) ([]byte, error) {
	for base, b := range m {
		if addr >= base && addr-base <= uint64(len(b)) && uint64(n) <= uint64(len(b))-(addr-base) {
			off := addr - base
			return b[off : off+uint64(n)], nil
		}
	}
	return nil, fmt.Errorf("no memory at [%#x, +%d)", addr, n)
}
