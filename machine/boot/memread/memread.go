// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package memread reads what firmware and boot loaders leave in physical
// memory (ACPI tables, the Multiboot information, the PVH start info)
// through a ReadFunc, so that their parsers run on bare metal and hosted
// in tests alike. What it reads is untrusted: lengths are checked against
// the address space, the ReadFunc's answer against its contract, and
// strings against a bound.
package memread

import (
	"errors"
	"fmt"
)

// ReadFunc returns the n bytes of physical memory starting at addr. It must
// return exactly n bytes or an error.
type ReadFunc func(addr uint64, n int) ([]byte, error)

// Exact calls read and checks that it kept its contract.
func Exact(read ReadFunc, addr uint64, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative read length %d", n)
	}
	if n > 0 && addr > ^uint64(0)-uint64(n-1) {
		return nil, fmt.Errorf("range of %d bytes at %#x wraps around the address space", n, addr)
	}
	b, err := read(addr, n)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("read of %d bytes at %#x returned %d", n, addr, len(b))
	}
	return b, nil
}

// chunk is the alignment of CString's reads.
const chunk = 256

// CString reads a NUL-terminated string of at most limit bytes (without the
// NUL) at addr. It reads in pieces that end on 256-byte boundaries so that
// it never asks for memory far beyond the terminator, and falls back to
// single bytes when a piece cannot be read (a string that ends just before
// the end of readable memory). Address 0 is refused: a loader writes 0
// for "no string".
func CString(read ReadFunc, addr uint64, limit int) (string, error) {
	if addr == 0 {
		return "", errors.New("string address is 0")
	}
	var s []byte
	bytewise := false
	for a := addr; ; {
		n := chunk - int(a%chunk)
		if bytewise {
			n = 1
		}
		b, err := Exact(read, a, n)
		if err != nil && n > 1 {
			bytewise = true
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading string at %#x: %w", addr, err)
		}
		for i, c := range b {
			if c == 0 {
				return string(append(s, b[:i]...)), nil
			}
		}
		s = append(s, b...)
		if len(s) > limit {
			return "", fmt.Errorf("string at %#x is not terminated within %d bytes", addr, limit)
		}
		a += uint64(n)
	}
}
