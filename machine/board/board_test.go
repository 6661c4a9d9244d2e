// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package board

import "testing"

func TestEmulatorSign(t *testing.T) {
	for _, tc := range []struct {
		ecx  uint32
		oem  string
		want string
	}{
		{1 << 31, "DELL", "CPUID hypervisor bit"},
		{0, "BOCHS", "ACPI OEM BOCHS (QEMU or Bochs)"},
		{0x7ffefbff, "DELL", ""},
		{0, "", ""},
	} {
		if got := EmulatorSign(tc.ecx, tc.oem); got != tc.want {
			t.Errorf("EmulatorSign(%#x, %q) = %q, want %q", tc.ecx, tc.oem, got, tc.want)
		}
	}
}
