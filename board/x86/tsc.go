// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import "errors"

// 8254 programmable interval timer, as wired on every PC (Intel 8254 data
// sheet; IBM PC/AT technical reference for port 0x61).
const (
	pitHz        = 1193182
	pitChannel2  = 0x42
	pitCommand   = 0x43
	pitPortB     = 0x61 // system control port B
	portBGate2   = 1 << 0
	portBSpeaker = 1 << 1
	portBOut2    = 1 << 5

	// channel 2, access lobyte/hibyte, mode 0 (interrupt on terminal
	// count), binary
	pitCh2Mode0 = 0b10_11_000_0
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

// TSCFromPIT measures the TSC frequency in Hz against PIT channel 2 over
// about 50 ms. It fails when the PIT does not count (no PIT, or gated
// off), detected by a TSC budget.
func TSCFromPIT() (uint64, error) {
	const ticks = pitHz / 20 // 50 ms

	b := In8(pitPortB)
	Out8(pitPortB, (b&^portBSpeaker)|portBGate2)
	Out8(pitCommand, pitCh2Mode0)
	Out8(pitChannel2, uint8(ticks&0xff))
	Out8(pitChannel2, uint8(ticks>>8))

	start := RDTSC()
	for In8(pitPortB)&portBOut2 == 0 {
		// 2^36 TSC cycles is over 10 s at 6 GHz: the PIT is absent
		if RDTSC()-start > 1<<36 {
			Out8(pitPortB, b)
			return 0, errors.New("PIT channel 2 did not count")
		}
	}
	end := RDTSC()
	Out8(pitPortB, b)

	return (end - start) * pitHz / ticks, nil
}
