// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"strings"
	"testing"
)

func TestLinuxFrames(t *testing.T) {
	for _, tc := range []struct {
		mem   uint64
		vcpus int
		want  int
	}{
		// 128 MiB: 32768 pages, 64 page tables, 1 directory, PDPT, PML4,
		// 3 bitmaps, 2 vCPUs x 2.
		{128 << 20, 2, 32768 + 64 + 1 + 2 + 3 + 4},
		{1536 << 20, 1, 393216 + 768 + 2 + 2 + 3 + 2},
		{16<<20 + 4096, 1, 4097 + 9 + 1 + 2 + 3 + 2},
		// 5 GiB: [0, 3 GiB) and [4 GiB, 6 GiB): 1536 + 1024 page tables,
		// 3 + 2 directories; nothing for the hole.
		{5 << 30, 1, 5<<18 + 2560 + 5 + 2 + 3 + 2},
		// 3 GiB and 4 KiB: the page above 4 GiB takes a table and a
		// directory of its own.
		{3<<30 + 4096, 1, 3<<18 + 1 + 1536 + 1 + 3 + 1 + 2 + 3 + 2},
	} {
		if got := linuxFrames(tc.mem, tc.vcpus); got != tc.want {
			t.Errorf("linuxFrames(%d MiB, %d) = %d, want %d", tc.mem>>20, tc.vcpus, got, tc.want)
		}
	}
}

func TestCheckRoom(t *testing.T) {
	const total = 126976 // 496 MiB of frames
	err := checkRoom(1<<30, 2, 1000, total)
	if err == nil {
		t.Fatal("1 GiB fits in 496 MiB")
	}
	for _, want := range []string{"1 GiB of guest RAM", "492 MiB free for guests", "3.9 MiB of 496 MiB in use", "at most 491 MiB of RAM fits"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("checkRoom: %v\nwant %q in it", err, want)
		}
	}
	// What it says fits, fits.
	// What it says fits, fits, and a MiB more does not.
	if err := checkRoom(491<<20, 2, 1000, total); err != nil {
		t.Errorf("the size checkRoom offered does not fit: %v", err)
	}
	if err := checkRoom(492<<20, 2, 1000, total); err == nil {
		t.Errorf("492 MiB fits too: checkRoom offered less than fits")
	}
	if err := checkRoom(128<<20, 2, 1000, total); err != nil {
		t.Errorf("128 MiB: %v", err)
	}
}

// TestCheckAddressWidth: RAM above 4 GiB must end within the processor's
// physical addresses, which the guest is shown.
func TestCheckAddressWidth(t *testing.T) {
	for _, c := range []struct {
		mem  uint64
		bits uint
		ok   bool
	}{
		{3 << 30, 32, true},
		{3<<30 + 4096, 32, false}, // a page at 4 GiB
		{5 << 30, 32, false},
		{5 << 30, 33, true}, // RAM ends at 6 GiB
		{1 << 40, 40, false},
		{1 << 40, 41, true},
	} {
		err := checkAddressWidth(c.mem, c.bits)
		if (err == nil) != c.ok {
			t.Errorf("checkAddressWidth(%#x, %d) = %v, want ok %v", c.mem, c.bits, err, c.ok)
		}
	}
	err := checkAddressWidth(5<<30, 32)
	if err == nil || !strings.Contains(err.Error(), "5 GiB of guest RAM is [0, 0xc0000000) + [0x100000000, 0x180000000), beyond the processor's 32-bit") {
		t.Errorf("checkAddressWidth: %v", err)
	}
}
