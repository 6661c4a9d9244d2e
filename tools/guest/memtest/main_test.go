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
