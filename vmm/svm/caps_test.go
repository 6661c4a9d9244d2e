// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"errors"
	"strings"
	"testing"
)

// fakeCPU answers CPUID from a table and VM_CR from a value.
type fakeCPU struct {
	leaves map[uint32][4]uint32
	vmcr   uint64
	vmcrOK bool
	reads  []uint32
}

func (f *fakeCPU) cpuid(leaf, _ uint32) (uint32, uint32, uint32, uint32) {
	r := f.leaves[leaf]
	return r[0], r[1], r[2], r[3]
}

func (f *fakeCPU) rdmsr(msr uint32) (uint64, error) {
	f.reads = append(f.reads, msr)
	if msr != MSRVMCR || !f.vmcrOK {
		return 0, errors.New("#GP")
	}
	return f.vmcr, nil
}

// QEMU 7.2 TCG with -cpu max: target/i386/cpu.c answers Fn8000_000A with
// EAX=1 (revision), EBX=0x10 (16 ASIDs), EDX=TCG_SVM_FEATURES = NPT |
// VGIF | SVME_ADDR_CHK; the TCG RDMSR helper returns 0 for VM_CR, an MSR
// it does not implement; phys-bits defaults to 40.
func qemuTCG() *fakeCPU {
	return &fakeCPU{leaves: map[uint32][4]uint32{
		LeafExtMax:      {0x8000000A, 0, 0, 0},
		LeafExtFeatures: {0, 0, ExtFeaturesECXSVM | 1<<0, 0},
		LeafAddrSizes:   {0x3028, 0, 0, 0},
		LeafSVM:         {1, 0x10, 0, uint32(FeatNP | FeatVGIF | FeatNestedVirtVmcbAddrChk)},
	}, vmcrOK: true}
}

// A Zen-like EPYC: every feature big-iron uses, 32768 ASIDs, 48-bit
// physical addresses.
func zen() *fakeCPU {
	edx := FeatNP | FeatLbrVirt | FeatSVML | FeatNRIPS | FeatTscRateMsr | FeatVmcbClean |
		FeatFlushByAsid | FeatDecodeAssists | FeatPauseFilter | FeatPauseFilterThreshold |
		FeatAVIC | FeatVMSAVEVirt | FeatVGIF
	return &fakeCPU{leaves: map[uint32][4]uint32{
		LeafExtMax:      {0x80000020, 0, 0, 0},
		LeafExtFeatures: {0, 0, ExtFeaturesECXSVM, 0},
		LeafAddrSizes:   {0x3030, 0, 0, 0},
		LeafSVM:         {1, 0x8000, 0, uint32(edx)},
	}, vmcrOK: true}
}

func TestCapabilities(t *testing.T) {
	disabled := zen()
	disabled.vmcr = VMCRSVMDis | VMCRLock
	intel := &fakeCPU{leaves: map[uint32][4]uint32{
		LeafExtMax:      {0x80000008, 0, 0, 0},
		LeafExtFeatures: {0, 0, 1, 0},
		LeafAddrSizes:   {0x3027, 0, 0, 0},
	}}
	noNP := qemuTCG()
	noNP.leaves[LeafSVM] = [4]uint32{1, 0x10, 0, 0}
	for _, tc := range []struct {
		name   string
		cpu    *fakeCPU
		usable bool
		want   []string // substrings of Describe
		absent []string
	}{
		{"QEMU 7.2 TCG -cpu max", qemuTCG(), true, []string{
			"VM_CR 0x0: SVM enabled, not locked",
			"revision 1, 16 ASIDs, physical addresses 40 bits",
			"features: nested paging, virtual GIF, guest VMCB address check",
			"missing: NRIP save, decode assists, VMCB clean bits, flush by ASID, AVIC, PAUSE filter",
			"instruction lengths by decoding (no NRIP save)",
			"operands by decoding (no decode assists)",
			"big-iron: usable",
		}, []string{"missing: nested paging"}},
		{"Zen-like", zen(), true, []string{
			"32768 ASIDs",
			"NRIP save", "decode assists", "AVIC", "flush by ASID",
			"missing: nothing big-iron uses",
			"big-iron: usable",
		}, []string{"by decoding", "so big-iron does"}},
		{"SVM disabled by BIOS (VM_CR.SVMDIS)", disabled, false, []string{
			"VM_CR 0x18: SVM disabled by BIOS (VM_CR.SVMDIS), locked",
			"cannot run guests: SVM disabled by BIOS (VM_CR.SVMDIS, locked)",
		}, nil},
		{"Intel (no SVM)", intel, false, []string{"SVM: no", "CPUID Fn8000_0001_ECX.SVM=0"}, nil},
		{"no nested paging", noNP, false, []string{"missing: nested paging", "no nested paging"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ReadCapabilities(tc.cpu.cpuid, tc.cpu.rdmsr)
			if ok, why := c.Usable(); ok != tc.usable {
				t.Errorf("Usable = %v (%s), want %v", ok, why, tc.usable)
			}
			d := c.Describe()
			for _, w := range tc.want {
				if !strings.Contains(d, w) {
					t.Errorf("Describe lacks %q:\n%s", w, d)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(d, w) {
					t.Errorf("Describe has %q:\n%s", w, d)
				}
			}
		})
	}
	// VM_CR is never read where CPUID reports no SVM: it would #GP.
	if ReadCapabilities(intel.cpuid, intel.rdmsr); len(intel.reads) != 0 {
		t.Errorf("read MSRs %#x on a CPU without SVM", intel.reads)
	}
}

func TestCapabilitiesVMCRUnreadable(t *testing.T) {
	cpu := qemuTCG()
	cpu.vmcrOK = false
	c := ReadCapabilities(cpu.cpuid, cpu.rdmsr)
	if ok, why := c.Usable(); ok || !strings.Contains(why, "VM_CR unreadable") {
		t.Errorf("Usable = %v, %q", ok, why)
	}
	if !strings.Contains(c.Describe(), "VM_CR: unreadable") {
		t.Errorf("Describe:\n%s", c.Describe())
	}
}

func TestFeatureString(t *testing.T) {
	if got := Feature(0).String(); got != "none" {
		t.Errorf("Feature(0) = %q", got)
	}
	if got := (FeatNP | 1<<9).String(); got != "nested paging, bit 9" {
		t.Errorf("got %q", got)
	}
}
