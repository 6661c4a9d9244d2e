// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

#include "textflag.h"

// func reloadCR3()
//
// Writes CR3 with its own value, which flushes the calling core's TLB and
// paging-structure caches of non-global entries (Intel SDM Vol. 3A,
// 4.10.4.1 "Operations that Invalidate TLBs and Paging-Structure Caches").
TEXT ·reloadCR3(SB),NOSPLIT,$0
	MOVQ	CR3, AX
	MOVQ	AX, CR3
	RET
