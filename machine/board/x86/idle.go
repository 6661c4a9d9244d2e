// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"runtime/goos"
	"unsafe"
)

// An idle core halts until its next timer instead of spinning: tamago's
// own idle governor returns at once whenever a timer is pending (the
// receive loop's is, always), so an idle node kept every core busy. On a
// server that is power; under an emulator it is the host's cores, which
// the emulators of the other nodes and their network need (two idle
// QEMU nodes on two host cores took milliseconds to pass a frame).
//
// The core's local-APIC timer (one-shot, divide by 1) raises WakeVector
// when the halt should end; its handler only acknowledges it. Any other
// interrupt (a startup NMI, an IPI) ends the halt too, and the scheduler
// then looks again. A halt lasts at most maxHalt, so that work another
// core readies for this one waits no longer than that (Intel SDM Vol. 3A,
// 11.5.4 "APIC Timer").
const (
	// WakeVector is the interrupt vector of the idle and slice timers;
	// its handler (InstallWakeHandler) only acknowledges it.
	WakeVector = 0xEE

	lapicBase      = 0xFEE00000
	lapicLVTTimer  = 0x320
	lapicInitCount = 0x380
	lapicCurCount  = 0x390
	lapicDivide    = 0x3E0
	lapicSpurious  = 0xF0
	apicEnabled    = 1 << 8 // in the spurious-interrupt vector register
	divideBy1      = 0xB
	lvtMasked      = 1 << 16

	minHalt = 20_000  // ns: shorter waits spin
	maxHalt = 200_000 // ns
)

// idleTimer halts idle cores (goos.Idle).
type idleTimer struct {
	perNs float64 // local-APIC timer counts per nanosecond
}

// lapicReg returns local-APIC register off of the calling core (xAPIC).
func lapicReg(off uintptr) *uint32 {
	return (*uint32)(physPtr(lapicBase + uint64(off)))
}

// calibrateLAPICTimer measures the local-APIC timer's rate (divide by 1)
// against the TSC over about a millisecond, the timer masked.
func calibrateLAPICTimer(tscHz uint64) float64 {
	*lapicReg(lapicDivide) = divideBy1
	*lapicReg(lapicLVTTimer) = WakeVector | lvtMasked
	*lapicReg(lapicInitCount) = 0xFFFFFFFF
	start := cpu.Counter()
	for cpu.Counter()-start < tscHz/1000 {
	}
	counted := 0xFFFFFFFF - *lapicReg(lapicCurCount)
	*lapicReg(lapicInitCount) = 0
	return float64(counted) * float64(tscHz) / float64(cpu.Counter()-start) / 1e9
}

// idle is goos.Idle: it halts the core until the runtime's next timer
// (at most maxHalt), or returns at once when that is near.
func (t *idleTimer) idle(until int64) {
	d := until - nanotime()
	if d < minHalt || *lapicReg(lapicSpurious)&apicEnabled == 0 {
		return
	}
	d = min(d, maxHalt)
	lvt := *lapicReg(lapicLVTTimer)
	*lapicReg(lapicDivide) = divideBy1
	*lapicReg(lapicLVTTimer) = WakeVector
	haltFor(lapicReg(lapicInitCount), uint32(float64(d)*t.perNs)+1)
	*lapicReg(lapicInitCount) = 0
	*lapicReg(lapicLVTTimer) = lvt
}

// startIdleHalt installs the wake handler and the idle governor, and
// returns the local-APIC timer's rate at divide by 1 (0 if it has none).
func startIdleHalt(tscHz uint64) (lapicHz uint64) {
	InstallWakeHandler(WakeVector)
	t := &idleTimer{perNs: calibrateLAPICTimer(tscHz)}
	if t.perNs <= 0 {
		return 0 // no timer: keep spinning
	}
	goos.Idle = t.idle
	return uint64(t.perNs * 1e9)
}

// InstallWakeHandler points vector of this core's IDT (shared by every
// core) at a handler that only acknowledges the interrupt at the local
// APIC and returns: for interrupts whose only job is to end a halt or a
// guest's turn. The gate is a 64-bit interrupt gate (Intel SDM Vol. 3A,
// 6.14.1; AMD APM Vol. 2, 4.8.4).
func InstallWakeHandler(vector uint8) {
	var idtr [10]byte
	sidt(&idtr)
	base := *(*uint64)(unsafe.Pointer(&idtr[2]))
	addr := wakeHandlerAddr()
	gate := (*[16]byte)(physPtr(base + 16*uint64(vector)))
	*gate = [16]byte{
		0: byte(addr), 1: byte(addr >> 8),
		2: byte(readCS()), 3: byte(readCS() >> 8),
		5: 0x8E, // present, DPL 0, 64-bit interrupt gate
		6: byte(addr >> 16), 7: byte(addr >> 24),
		8: byte(addr >> 32), 9: byte(addr >> 40), 10: byte(addr >> 48), 11: byte(addr >> 56),
	}
}

func sidt(dst *[10]byte)
func readCS() uint16
func wakeHandlerAddr() uint64

// haltFor writes count to the timer register reg and halts, interrupts
// off in between so that the timer cannot fire before the halt.
//
//go:noescape
func haltFor(reg *uint32, count uint32)
