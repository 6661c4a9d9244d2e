// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

#include "textflag.h"

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	sub+4(FP), CX
	CPUID
	MOVL	AX, a+8(FP)
	MOVL	BX, b+12(FP)
	MOVL	CX, c+16(FP)
	MOVL	DX, d+20(FP)
	RET

// func xgetbv0() uint64
TEXT ·xgetbv0(SB),NOSPLIT,$0-8
	XORL	CX, CX
	XGETBV
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func ymmHold(in, out *[16][32]byte, spins uint64)
//
// Loads YMM0-YMM15 from in, counts spins down without touching them,
// and stores them to out.
TEXT ·ymmHold(SB),NOSPLIT,$0-24
	MOVQ	in+0(FP), SI
	MOVQ	out+8(FP), DI
	MOVQ	spins+16(FP), CX
	VMOVDQU	0(SI), Y0
	VMOVDQU	32(SI), Y1
	VMOVDQU	64(SI), Y2
	VMOVDQU	96(SI), Y3
	VMOVDQU	128(SI), Y4
	VMOVDQU	160(SI), Y5
	VMOVDQU	192(SI), Y6
	VMOVDQU	224(SI), Y7
	VMOVDQU	256(SI), Y8
	VMOVDQU	288(SI), Y9
	VMOVDQU	320(SI), Y10
	VMOVDQU	352(SI), Y11
	VMOVDQU	384(SI), Y12
	VMOVDQU	416(SI), Y13
	VMOVDQU	448(SI), Y14
	VMOVDQU	480(SI), Y15
spin:
	DECQ	CX
	JNZ	spin
	VMOVDQU	Y0, 0(DI)
	VMOVDQU	Y1, 32(DI)
	VMOVDQU	Y2, 64(DI)
	VMOVDQU	Y3, 96(DI)
	VMOVDQU	Y4, 128(DI)
	VMOVDQU	Y5, 160(DI)
	VMOVDQU	Y6, 192(DI)
	VMOVDQU	Y7, 224(DI)
	VMOVDQU	Y8, 256(DI)
	VMOVDQU	Y9, 288(DI)
	VMOVDQU	Y10, 320(DI)
	VMOVDQU	Y11, 352(DI)
	VMOVDQU	Y12, 384(DI)
	VMOVDQU	Y13, 416(DI)
	VMOVDQU	Y14, 448(DI)
	VMOVDQU	Y15, 480(DI)
	VZEROUPPER
	RET
