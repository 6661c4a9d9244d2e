// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"testing"
	"time"
)

// TestEmulatedFailureTimeout: the default while every emulated core has
// a host core, a longer timeout beyond.
func TestEmulatedFailureTimeout(t *testing.T) {
	for _, tc := range []struct {
		cores, host int
		want        time.Duration
	}{{2, 2, 0}, {1, 4, 0}, {3, 2, 2 * time.Second}, {6, 4, 2 * time.Second}} {
		if got := emulatedFailureTimeout(tc.cores, tc.host); got != tc.want {
			t.Errorf("%d emulated cores on %d: %v, want %v", tc.cores, tc.host, got, tc.want)
		}
	}
}
