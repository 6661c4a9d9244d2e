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
