// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package page defines the 4 KiB page, the smallest page x86 paging and
// EPT map (Intel SDM Vol. 3A, 4.5 "4-Level Paging"; Vol. 3C, 29.3.2). It
// is the unit of the host's frames, of guest memory, of the coherence
// protocol's pages and of the EPT tables themselves, and the one place
// its size is written down. The constants are untyped, for use with any
// integer type.
package page

const (
	// Shift is log2(Size).
	Shift = 12
	// Size is the size of a page in bytes, 4 KiB.
	Size = 1 << Shift
)
