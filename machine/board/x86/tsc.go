// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import "errors"

// 8254 programmable interval timer ports and commands (Intel 8254 data
// sheet, "Control Word Format" and "Counter Latch Command").
const (
	pitHz       = 1193182
	pitChannel0 = 0x40
	pitCommand  = 0x43

	// channel 0, access lobyte/hibyte, mode 2 (rate generator), binary
	pitCh0Mode2 = 0b00_11_010_0
	// channel 0 counter latch
	pitCh0Latch = 0b00_00_000_0
)

// CPUIDFunc runs CPUID for a leaf and sub-leaf.
type CPUIDFunc func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// TSCFromCPUID returns the TSC frequency in Hz that CPUID leaf 0x15 (with
// leaf 0x16 for the crystal where 0x15 leaves it out) states, or 0 (Intel
// SDM Vol. 2A, CPUID leaf 15H "Time Stamp Counter and Nominal Core Crystal
// Clock Information").
func TSCFromCPUID(cpuid CPUIDFunc) uint64 {
	max, _, _, _ := cpuid(0, 0)
	if max < 0x15 {
		return 0
	}
	den, num, crystal, _ := cpuid(0x15, 0)
	if den == 0 || num == 0 {
		return 0
	}
	if crystal == 0 {
		if max < 0x16 {
			return 0
		}
		base, _, _, _ := cpuid(0x16, 0)
		// the processor base frequency (MHz) is the nominal TSC rate
		return uint64(base&0xffff) * 1e6
	}
	return uint64(crystal) * uint64(num) / uint64(den)
}

// TSCFromPIT measures the TSC frequency in Hz against PIT channel 0 over
// about 50 ms, polling its latched count (channel 0 counts without a gate,
// so this works on machines without the PC speaker port 0x61, such as QEMU
// microvm with pit=on). Channel 0 is left as a free-running 18.2 Hz rate
// generator; its interrupt stays masked (PIC masked at entry, IOAPIC pins
// masked). It fails when the counter does not move.
func TSCFromPIT() (uint64, error) {
	const want = pitHz / 20 // 50 ms of PIT ticks

	Out8(pitCommand, pitCh0Mode2)
	Out8(pitChannel0, 0) // reload 0 means 65536
	Out8(pitChannel0, 0)

	read := func() uint16 {
		Out8(pitCommand, pitCh0Latch)
		lo := In8(pitChannel0)
		hi := In8(pitChannel0)
		return uint16(hi)<<8 | uint16(lo)
	}

	prev := read()
	start := RDTSC()
	var elapsed uint64
	for elapsed < want {
		cur := read()
		elapsed += uint64(prev - cur) // counts down, wraps at 65536
		prev = cur
		// 2^36 TSC cycles is over 10 s at 6 GHz: no PIT here
		if RDTSC()-start > 1<<36 {
			return 0, errors.New("PIT channel 0 does not count")
		}
	}
	end := RDTSC()
	return (end - start) * pitHz / elapsed, nil
}

// ACPI power-management timer: a 24-bit (or 32-bit) counter at 3.579545
// MHz (ACPI 6.5, 4.8.3.3 "Power Management Timer"); its I/O port is the
// FADT's PM_TMR_BLK (5.2.9, byte offset 76).
const (
	pmTimerHz       = 3579545
	fadtPMTimerPort = 76
)

// PMTimerPort returns the PM timer I/O port from a whole FADT, or 0.
func PMTimerPort(fadt []byte) uint16 {
	const off = fadtPMTimerPort
	if len(fadt) < off+4 {
		return 0
	}
	port := le32(fadt[off:])
	if port == 0 || port > 0xffff {
		return 0
	}
	return uint16(port)
}

// TSCFromPMTimer measures the TSC frequency in Hz against the ACPI PM timer
// at port over about 50 ms. The timer wraps only every 4.7 s, so a poll
// delayed by the host (emulators under load) does not lose ticks, unlike
// the PIT's 55 ms wrap.
func TSCFromPMTimer(port uint16) (uint64, error) {
	const (
		mask = 0xffffff
		want = pmTimerHz / 20
	)
	a := In32(port) & mask
	start := RDTSC()
	var b uint32
	for {
		b = In32(port) & mask
		if (b-a)&mask >= want {
			break
		}
		if RDTSC()-start > 1<<36 {
			return 0, errors.New("ACPI PM timer does not count")
		}
	}
	end := RDTSC()
	return (end - start) * pmTimerHz / uint64((b-a)&mask), nil
}
