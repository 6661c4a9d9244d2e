// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package vcpu

import "testing"

func TestVec256String(t *testing.T) {
	var s Vec256
	if got := s.String(); got != "-" {
		t.Errorf("empty set: %q, want -", got)
	}
	for _, v := range []uint8{0xec, 0x21, 0xff, 0x00} {
		s.Set(v)
	}
	if got, want := s.String(), "0x00 0x21 0xec 0xff"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
