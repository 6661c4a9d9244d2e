// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"fmt"
	"unsafe"
)

// cpuinit's PML4 and page-directory-pointer table (entry_amd64.s).
const (
	pml4Addr = 0x9000
	pdptAddr = 0xa000
)

// defined in cr3_amd64.s
func reloadCR3()

// MapHigh extends the identity map from 4 GiB up to end (rounded up to a
// GiB) with 2 MiB write-back pages, using the 4 KiB frames at tables
// (HighTables(end) of them, inside the map already, set aside by the
// caller for good) as page directories. Every core shares cpuinit's
// tables; the new entries were not present before, which no core caches
// (Intel SDM Vol. 3A, 4.10.2.3), so only the calling core reloads CR3.
// Call it once at board init, before anything uses memory above 4 GiB.
func MapHigh(end uint64, tables []uint64) error {
	if pml4 := *(*uint64)(physPtr(pml4Addr)); pml4&^0xFFF != pdptAddr {
		return fmt.Errorf("x86: PML4[0] is %#x, not cpuinit's table at %#x: memory above 4 GiB stays unmapped", pml4, pdptAddr)
	}
	pds := make([]*[entries]uint64, len(tables))
	for i, a := range tables {
		pds[i] = (*[entries]uint64)(physPtr(a))
		*pds[i] = [entries]uint64{}
	}
	if err := mapHigh((*[entries]uint64)(unsafe.Pointer(physPtr(pdptAddr))), end, pds, tables); err != nil {
		return err
	}
	reloadCR3()
	return nil
}
