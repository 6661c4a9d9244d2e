// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

#include "textflag.h"

// func rdrand64() (v uint64, ok bool)
TEXT ·rdrand64(SB),NOSPLIT,$0-9
	// RDRAND RAX (REX.W 0F C7 /6)
	BYTE	$0x48; BYTE $0x0F; BYTE $0xC7; BYTE $0xF0
	SETCS	ok+8(FP)
	MOVQ	AX, v+0(FP)
	RET
