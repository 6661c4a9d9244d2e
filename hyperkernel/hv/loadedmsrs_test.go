// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/vcpu"
)

func TestLoadedMSRs(t *testing.T) {
	type write struct {
		msr uint32
		val uint64
	}
	var writes []write
	rec := func(msr uint32, val uint64) { writes = append(writes, write{msr, val}) }
	on := [numLoadedMSRs]bool{true, true}
	var core coreMSRs
	a, b := vcpuMSRs{}, vcpuMSRs{5, 0x55}

	core.load(&a, &on, rec) // a core's first load writes even zeros
	core.load(&a, &on, rec) // the same vCPU again: nothing
	if len(writes) != 2 || writes[0] != (write{msrTSCAux, 0}) || writes[1] != (write{msrPKRS, 0}) {
		t.Fatalf("loads of one vCPU twice: %v", writes)
	}
	writes = nil
	core.load(&b, &on, rec)
	if len(writes) != 2 || writes[0] != (write{msrTSCAux, 5}) || writes[1] != (write{msrPKRS, 0x55}) {
		t.Fatalf("another vCPU's load: %v", writes)
	}
	writes = nil
	var bare coreMSRs // a core without PKS never writes IA32_PKRS (#GP)
	bare.load(&b, &[numLoadedMSRs]bool{true, false}, rec)
	if len(writes) != 1 || writes[0].msr != msrTSCAux {
		t.Fatalf("a core without PKS: %v", writes)
	}

	if b.write32(loadedPKRS, 1<<32) || b[loadedPKRS] != 0x55 {
		t.Error("a reserved bit was taken")
	}
	if !b.write32(loadedTSCAux, 7) || b[loadedTSCAux] != 7 {
		t.Error("a valid value was refused")
	}

	var st vcpu.State
	st.Reset(0, true)
	st.MSRs[0] = vcpu.MSR{Index: 0x10, Value: 9} // another MSR stays
	st.NumMSRs = 1
	b.save(&st)
	var back vcpuMSRs
	back.fromState(&st)
	if back != b || st.NumMSRs != 3 {
		t.Errorf("round trip: %v from %d MSRs, want %v", back, st.NumMSRs, b)
	}
	st.NumMSRs = 1
	(&vcpuMSRs{}).save(&st)
	if st.NumMSRs != 1 {
		t.Errorf("reset values saved: %d MSRs", st.NumMSRs)
	}
}
