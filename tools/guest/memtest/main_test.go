// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

package main

import (
	"strings"
	"testing"
)

func TestCheckFindsBadWords(t *testing.T) {
	w := make([]uint64, 4096)
	fill(w, 1)
	if err := check(w, 1, 0); err != nil {
		t.Fatal(err)
	}
	// Another CPU's pattern (a page mapped twice) and a lost write fail.
	if err := check(w, 2, 0); err == nil {
		t.Error("CPU 1's part passed as CPU 2's")
	}
	w[1000] ^= 1 << 17
	err := check(w, 1, 0)
	if err == nil || !strings.Contains(err.Error(), "word 1000 (byte 0x1f40)") {
		t.Errorf("flipped bit: %v", err)
	}
}

func TestRunSmall(t *testing.T) {
	if err := run(0, 8, 2); err != nil {
		t.Fatal(err)
	}
	if err := run(0, 1<<30, 2); err == nil || !strings.Contains(err.Error(), "available") {
		t.Errorf("a petabyte: %v", err)
	}
}

// TestShareTrimmedToAvailable is the size rule that once refused 90% of a
// Bochs guest's 1623 MiB because MemAvailable was 1474 MiB that boot: a
// share is trimmed to what is available, an explicit size is refused.
func TestShareTrimmedToAvailable(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		share       float64
		mib         int
		total       uint64
		avail       uint64
		size        uint64
		trimmed, ok bool
	}{
		{share: 0.9, total: 1623 * mib, avail: 1474 * mib, size: 1458 * mib, trimmed: true, ok: true},
		{share: 0.5, total: 1623 * mib, avail: 1474 * mib, size: uint64(0.5 * 1623 * mib), ok: true},
		{mib: 1400, total: 1623 * mib, avail: 1474 * mib, size: 1400 * mib, ok: true},
		{mib: 1460, total: 1623 * mib, avail: 1474 * mib},
		{share: 0.9, total: 64 * mib, avail: 8 * mib},
		{share: 1.5, total: 64 * mib, avail: 60 * mib},
		{share: 0, total: 64 * mib, avail: 60 * mib},
	} {
		size, trimmed, err := testSize(tc.share, tc.mib, tc.total, tc.avail)
		if (err == nil) != tc.ok || size != tc.size || trimmed != tc.trimmed {
			t.Errorf("testSize(%v, %d, %d MiB, %d MiB) = %d MiB, %v, %v; want %d MiB, %v, ok %v",
				tc.share, tc.mib, tc.total/mib, tc.avail/mib, size/mib, trimmed, err, tc.size/mib, tc.trimmed, tc.ok)
		}
	}
}
