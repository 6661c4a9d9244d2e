// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

#include "go_asm.h"
#include "textflag.h"

// apProbe runs on each application processor in 64-bit mode, on the
// trampoline stack, before the AP parks in tamago's start code waiting for
// a Go M: it records the core's CPUID facts in the next probe slot and then
// jumps to tamago's AP start routine (whose address StartAPs saved). No Go
// runtime state exists on this core yet: only registers and plain stores.
//
// Slot layout (probeSlotSize bytes): APIC id u32, CPUID.1:ECX u32,
// IA32_FEATURE_CONTROL u64 (zero when CPUID reports no VMX).
TEXT ·apProbe(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$·probeCount(SB), DI
	MOVL	$1, AX
	LOCK
	XADDL	AX, 0(DI)
	CMPL	AX, $const_maxProbes
	JCC	done
	SHLQ	$4, AX
	MOVQ	$·probeSlots(SB), DI
	ADDQ	AX, DI

	MOVL	$1, AX
	XORL	CX, CX
	CPUID
	SHRL	$24, BX
	MOVL	BX, 0(DI)
	MOVL	CX, 4(DI)
	MOVQ	$0, 8(DI)
	BTL	$5, CX
	JCC	done
	MOVL	$0x3a, CX	// IA32_FEATURE_CONTROL
	RDMSR
	MOVL	AX, 8(DI)
	MOVL	DX, 12(DI)
done:
	MOVQ	$·tamagoAPStart(SB), AX
	MOVQ	0(AX), AX
	JMP	AX

// func apProbeAddr() uintptr
TEXT ·apProbeAddr(SB),NOSPLIT,$0-8
	MOVQ	$·apProbe(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
