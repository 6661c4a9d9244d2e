// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import "fmt"

// Sizes of the permission maps: the IOPM is 12 KiB (three pages, 4 KiB
// aligned), the MSRPM 8 KiB (two pages, 4 KiB aligned) (APM Vol. 2,
// 15.10.1 and 15.11).
const (
	IOPMSize  = 12 << 10
	MSRPMSize = 8 << 10
)

// IOPM is the I/O permission map: bit p intercepts port p. An access of n
// bytes at port p is intercepted if any of bits p..p+n-1 is set, so
// accesses that run past port 0xFFFF read bits 0x10000-0x10002, which lie
// in the map's third page (APM Vol. 2, 15.10.1).
type IOPM [IOPMSize]byte

// InterceptAll sets every bit, the extra ones past port 0xFFFF included.
func (m *IOPM) InterceptAll() {
	for i := range m {
		m[i] = 0xFF
	}
}

// InterceptPort intercepts every access that touches port.
func (m *IOPM) InterceptPort(port uint16) { m[port/8] |= 1 << (port % 8) }

// PassPort lets accesses that touch only passed ports run without exit.
func (m *IOPM) PassPort(port uint16) { m[port/8] &^= 1 << (port % 8) }

// Intercepted reports whether an access of size bytes (1, 2 or 4) at port
// exits, as the processor decides it.
func (m *IOPM) Intercepted(port uint16, size int) bool {
	for i := 0; i < size; i++ {
		bit := int(port) + i // up to 0x10002: the third page
		if m[bit/8]&(1<<(bit%8)) != 0 {
			return true
		}
	}
	return false
}

// MSRPM is the MSR permission map: two bits per MSR, the read intercept at
// an even bit and the write intercept after it, for three ranges of 8192
// MSRs, 2 KiB each; the fourth 2 KiB is reserved. MSRs outside the ranges
// always exit (APM Vol. 2, 15.11, Table 15-5).
type MSRPM [MSRPMSize]byte

// The MSRPM's ranges: the first MSR of each and its byte offset in the map.
var msrRanges = [...]struct{ first, offset uint32 }{
	{0x00000000, 0x0000},
	{0xC0000000, 0x0800},
	{0xC0010000, 0x1000},
}

// msrBit returns the index of msr's read bit in the map.
func msrBit(msr uint32) (int, error) {
	for _, r := range msrRanges {
		if msr-r.first < 0x2000 {
			return int(r.offset)*8 + int(msr-r.first)*2, nil
		}
	}
	return 0, fmt.Errorf("MSR %#x is outside the MSR permission map's ranges: it always exits", msr)
}

// InterceptAll sets every bit: every RDMSR and WRMSR exits.
func (m *MSRPM) InterceptAll() {
	for i := range m {
		m[i] = 0xFF
	}
}

// SetMSR sets whether reads and writes of msr exit.
func (m *MSRPM) SetMSR(msr uint32, read, write bool) error {
	bit, err := msrBit(msr)
	if err != nil {
		return err
	}
	set := func(b int, on bool) {
		if on {
			m[b/8] |= 1 << (b % 8)
		} else {
			m[b/8] &^= 1 << (b % 8)
		}
	}
	set(bit, read)
	set(bit+1, write)
	return nil
}

// PassMSR lets the guest read and write msr without exit.
func (m *MSRPM) PassMSR(msr uint32) error { return m.SetMSR(msr, false, false) }

// Intercepts reports whether reads and writes of msr exit.
func (m *MSRPM) Intercepts(msr uint32) (read, write bool) {
	bit, err := msrBit(msr)
	if err != nil {
		return true, true
	}
	return m[bit/8]&(1<<(bit%8)) != 0, m[(bit+1)/8]&(1<<((bit+1)%8)) != 0
}
