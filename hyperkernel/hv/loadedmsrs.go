// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "github.com/big-iron/big-iron/vmm/vcpu"

// MSRs a vCPU on AMD-V has its own value of that the guest uses without
// an exit, so that the value must be in the core while the guest runs:
// it is loaded before each VMRUN where the core holds another (svmCPU.
// Enter), RDMSR and WRMSR exit to the vCPU's copy (vmLoadedMSR), and it
// travels in the vCPU state's MSR list.
const (
	// msrTSCAux is IA32_TSC_AUX, which RDTSCP and RDPID read (Intel SDM
	// Vol. 4, Table 2-2; AMD APM Vol. 2, 13.2.4 as TSC_AUX).
	msrTSCAux = 0xC0000103
	// msrPKRS is IA32_PKRS, the supervisor protection-key rights, which
	// the processor applies to the guest's supervisor pages while it
	// runs with CR4.PKS (Intel SDM Vol. 3A, 4.6.2; Vol. 4, Table 2-2).
	// The host runs with CR4.PKS clear, where the MSR does nothing.
	msrPKRS = 0x6E1
)

// loadedMSR numbers those MSRs.
type loadedMSR int

const (
	loadedTSCAux loadedMSR = iota
	loadedPKRS
	numLoadedMSRs
)

// loadedMSRIndex is each loaded MSR's index.
var loadedMSRIndex = [numLoadedMSRs]uint32{msrTSCAux, msrPKRS}

// vcpuMSRs are a vCPU's values of the loaded MSRs.
type vcpuMSRs [numLoadedMSRs]uint64

// coreMSRs are a core's: each value plus one as a vCPU last loaded it, 0
// before. Only the goroutine pinned to the core uses them.
type coreMSRs [numLoadedMSRs]uint64

// load writes into the core, through write, each MSR that on says the
// core has and whose value there differs from v's.
func (c *coreMSRs) load(v *vcpuMSRs, on *[numLoadedMSRs]bool, write func(msr uint32, val uint64)) {
	for i := range c {
		if on[i] && c[i] != v[i]+1 {
			write(loadedMSRIndex[i], v[i])
			c[i] = v[i] + 1
		}
	}
}

// fromState takes the loaded MSRs' values from st's MSR list, 0 where
// it has none.
func (v *vcpuMSRs) fromState(st *vcpu.State) {
	*v = vcpuMSRs{}
	for _, m := range st.MSRs[:st.NumMSRs] {
		for i, idx := range loadedMSRIndex {
			if m.Index == idx {
				v[i] = m.Value
			}
		}
	}
}

// save appends to st's MSR list the loaded MSRs whose value is not 0
// (their reset value), as far as the list has room.
func (v *vcpuMSRs) save(st *vcpu.State) {
	for i, val := range v {
		if val != 0 && st.NumMSRs < vcpu.MaxMSRs {
			st.MSRs[st.NumMSRs] = vcpu.MSR{Index: loadedMSRIndex[i], Value: val}
			st.NumMSRs++
		}
	}
}

// write32 sets the vCPU's value of MSR m to val, refusing (#GP) a value
// with bits 63:32 set, which both MSRs reserve.
func (v *vcpuMSRs) write32(m loadedMSR, val uint64) bool {
	if val>>32 != 0 {
		return false
	}
	v[m] = val
	return true
}
