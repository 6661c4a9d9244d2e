// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package debugexit

import "testing"

func TestOut(t *testing.T) {
	for _, c := range []struct {
		size uint8
		v    uint32
		want uint32
	}{
		{4, 0, 0}, {4, 1, 1}, {4, 0x12345678, 0x12345678}, {2, 0x12345678, 0x5678}, {1, 0x1ff, 0xff},
	} {
		var got []uint32
		d := New(func(code uint32) { got = append(got, code) })
		d.Out(Port, c.size, c.v)
		d.Out(Port, c.size, 7) // a second write: the VM has ended
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("out%d %#x: exit called with %v, want once with %#x", c.size, c.v, got, c.want)
		}
		if d.In(Port, 4) != 0 {
			t.Errorf("a read returned non-zero")
		}
	}
}

func TestStatus(t *testing.T) {
	// kvm-unit-tests' run scripts read QEMU's status: 1 for a pass (code
	// 0), 3 for failures (code 1).
	for code, want := range map[uint32]uint32{0: 1, 1: 3, 38: 77} {
		if got := Status(code); got != want {
			t.Errorf("Status(%d) = %d, want %d", code, got, want)
		}
	}
}
