// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

#include "textflag.h"

// func sidt(dst *[10]byte)
TEXT ·sidt(SB),NOSPLIT,$0-8
	MOVQ	dst+0(FP), AX
	SIDT	(AX)
	RET

// func readCS() uint16
TEXT ·readCS(SB),NOSPLIT,$0-2
	MOVW	CS, AX
	MOVW	AX, ret+0(FP)
	RET

// func haltFor(reg *uint32, count uint32)
//
// STI's shadow holds interrupts off until HLT has begun, so an interrupt
// that arrives after the count is written ends the halt (Intel SDM Vol.
// 2B, STI). tamago runs with interrupts on; they are on again after.
TEXT ·haltFor(SB),NOSPLIT,$0-12
	MOVQ	reg+0(FP), AX
	MOVL	count+8(FP), BX
	CLI
	MOVL	BX, (AX)
	STI
	HLT
	RET

// func wakeHandler()
//
// Acknowledges the interrupt at the local APIC (EOI, xAPIC register 0xB0)
// and returns.
TEXT ·wakeHandler(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	AX
	MOVQ	$0xFEE000B0, AX
	MOVL	$0, (AX)
	POPQ	AX
	IRETQ

// func wakeHandlerAddr() uint64
TEXT ·wakeHandlerAddr(SB),NOSPLIT,$0-8
	LEAQ	·wakeHandler(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
