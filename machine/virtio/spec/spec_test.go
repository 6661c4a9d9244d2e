// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package spec

import (
	"encoding/binary"
	"testing"
)

func TestMagic(t *testing.T) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], MagicValue)
	if string(b[:]) != "virt" {
		t.Errorf("MagicValue reads %q, want \"virt\"", b[:])
	}
}

// TestRegisters checks the layout's invariants: 32-bit registers,
// naturally aligned, below the configuration space.
func TestRegisters(t *testing.T) {
	for _, r := range []int{RegMagic, RegVersion, RegDeviceID, RegVendorID, RegDeviceFeatures,
		RegDeviceFeatSel, RegDriverFeatures, RegDriverFeatSel, RegQueueSel, RegQueueNumMax,
		RegQueueNum, RegQueueReady, RegQueueNotify, RegInterrupt, RegInterruptACK, RegStatus,
		RegQueueDescLow, RegQueueDescHigh, RegQueueDrvLow, RegQueueDrvHigh, RegQueueDevLow,
		RegQueueDevHigh, RegSHMLenLow, RegSHMLenHigh, RegConfigGen} {
		if r%4 != 0 || r >= RegConfig {
			t.Errorf("register at %#x", r)
		}
	}
}
