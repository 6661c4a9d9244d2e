// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"fmt"
	"math/bits"
	"strings"
)

// CPUIDFunc executes CPUID for a leaf and sub-leaf. On bare metal it is the
// board's CPUID; hosted tests pass recorded values.
type CPUIDFunc func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// MSRReader reads one MSR. ReadCapabilities asks it for VM_CR only when
// CPUID reports SVM, so a bare-metal reader never faults on an Intel CPU.
type MSRReader func(msr uint32) (uint64, error)

// CPUID leaves and bits (APM Vol. 3, Appendix E; Vol. 2, 15.4).
const (
	LeafExtMax      = 0x80000000 // EAX: highest extended leaf
	LeafExtFeatures = 0x80000001 // ECX[2]: SVM
	LeafAddrSizes   = 0x80000008 // EAX[7:0]: physical-address width
	LeafSVM         = 0x8000000A // SVM revision, ASIDs, features

	// ExtFeaturesECXSVM is CPUID Fn8000_0001_ECX[2], "SVM: secure
	// virtual machine" (APM Vol. 2, 15.4 "Enabling SVM").
	ExtFeaturesECXSVM = 1 << 2
)

// MSRs of SVM (APM Vol. 2, 15.30 "SVM Related MSRs").
const (
	MSRVMCR      uint32 = 0xC0010114 // VM_CR (15.30.1)
	MSRVMHsavePA uint32 = 0xC0010117 // VM_HSAVE_PA (15.30.4)
	MSRTSCRatio  uint32 = 0xC0000104 // TSC_RATIO (15.30.5), with TscRateMsr
	MSREFER      uint32 = 0xC0000080 // EFER; SVME is bit 12
)

// VM_CR bits (APM Vol. 2, 15.30.1 "VM_CR MSR").
const (
	VMCRDPD     uint64 = 1 << 0 // debug port disable
	VMCRRInit   uint64 = 1 << 1 // INIT redirected to #SX
	VMCRDisA20M uint64 = 1 << 2 // A20 masking disabled
	VMCRLock    uint64 = 1 << 3 // SVMDIS is read-only
	VMCRSVMDis  uint64 = 1 << 4 // EFER.SVME cannot be set
)

// Feature is CPUID Fn8000_000A_EDX, the optional SVM features (APM Vol. 3,
// Appendix E.4.9; Vol. 2, 15.4 and the sections named per bit).
type Feature uint32

// Fn8000_000A_EDX bits.
const (
	FeatNP                    Feature = 1 << 0  // nested paging (15.25)
	FeatLbrVirt               Feature = 1 << 1  // LBR virtualization (15.23)
	FeatSVML                  Feature = 1 << 2  // SVM lock (15.30.1)
	FeatNRIPS                 Feature = 1 << 3  // next RIP saved on #VMEXIT (15.7.1)
	FeatTscRateMsr            Feature = 1 << 4  // TSC ratio MSR (15.30.5)
	FeatVmcbClean             Feature = 1 << 5  // VMCB clean bits (15.15)
	FeatFlushByAsid           Feature = 1 << 6  // TLB_CONTROL flush by ASID (15.16.1)
	FeatDecodeAssists         Feature = 1 << 7  // decode assists (15.33)
	FeatPauseFilter           Feature = 1 << 10 // PAUSE intercept filter (15.14.4)
	FeatPauseFilterThreshold  Feature = 1 << 12 // PAUSE filter cycle threshold (15.14.4)
	FeatAVIC                  Feature = 1 << 13 // advanced virtual interrupt controller (15.29)
	FeatVMSAVEVirt            Feature = 1 << 15 // VMSAVE/VMLOAD virtualization (15.33.1 in older editions)
	FeatVGIF                  Feature = 1 << 16 // virtual global interrupt flag (15.33)
	FeatGMET                  Feature = 1 << 17 // guest mode execute trap
	FeatX2AVIC                Feature = 1 << 18 // AVIC in x2APIC mode
	FeatSSSCheck              Feature = 1 << 19 // supervisor shadow stack restrictions
	FeatSpecCtrl              Feature = 1 << 20 // SPEC_CTRL virtualization
	FeatROGPT                 Feature = 1 << 21 // read-only guest page tables
	FeatHostMCEOverride       Feature = 1 << 23 // guest #MC with host CR4.MCE=1 does not shut down
	FeatTlbiCtl               Feature = 1 << 24 // INVLPGB/TLBSYNC enable and intercept
	FeatVNMI                  Feature = 1 << 25 // virtual NMI
	FeatIbsVirt               Feature = 1 << 26 // IBS virtualization
	FeatExtLvtAvicAccessChg   Feature = 1 << 27 // extended LVT AVIC access changes
	FeatNestedVirtVmcbAddrChk Feature = 1 << 28 // guest VMCB address check
	FeatBusLockThreshold      Feature = 1 << 29 // bus lock threshold
	FeatIdleHltIntercept      Feature = 1 << 30 // idle HLT intercept
)

var featureNames = []struct {
	bit  Feature
	name string
}{
	{FeatNP, "nested paging"},
	{FeatLbrVirt, "LBR virtualization"},
	{FeatSVML, "SVM lock"},
	{FeatNRIPS, "NRIP save"},
	{FeatTscRateMsr, "TSC ratio MSR"},
	{FeatVmcbClean, "VMCB clean bits"},
	{FeatFlushByAsid, "flush by ASID"},
	{FeatDecodeAssists, "decode assists"},
	{FeatPauseFilter, "PAUSE filter"},
	{FeatPauseFilterThreshold, "PAUSE filter threshold"},
	{FeatAVIC, "AVIC"},
	{FeatVMSAVEVirt, "VMSAVE/VMLOAD virtualization"},
	{FeatVGIF, "virtual GIF"},
	{FeatGMET, "guest mode execute trap"},
	{FeatX2AVIC, "x2AVIC"},
	{FeatSSSCheck, "supervisor shadow stack check"},
	{FeatSpecCtrl, "SPEC_CTRL virtualization"},
	{FeatROGPT, "read-only guest page tables"},
	{FeatHostMCEOverride, "host MCE override"},
	{FeatTlbiCtl, "INVLPGB/TLBSYNC control"},
	{FeatVNMI, "virtual NMI"},
	{FeatIbsVirt, "IBS virtualization"},
	{FeatExtLvtAvicAccessChg, "extended LVT AVIC access change"},
	{FeatNestedVirtVmcbAddrChk, "guest VMCB address check"},
	{FeatBusLockThreshold, "bus lock threshold"},
	{FeatIdleHltIntercept, "idle HLT intercept"},
}

// Has reports whether all features in want are present.
func (f Feature) Has(want Feature) bool { return f&want == want }

// String lists the features in words; unnamed bits as "bit N".
func (f Feature) String() string {
	var parts []string
	known := Feature(0)
	for _, n := range featureNames {
		known |= n.bit
		if f&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	for rest := f &^ known; rest != 0; rest &= rest - 1 {
		parts = append(parts, fmt.Sprintf("bit %d", bits.TrailingZeros32(uint32(rest))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Capabilities is what CPUID and VM_CR say about SVM on one processor.
type Capabilities struct {
	MaxExtLeaf uint32 // CPUID Fn8000_0000_EAX
	SVM        bool   // CPUID Fn8000_0001_ECX[2]
	// Leaf8000000A is false when CPUID does not reach Fn8000_000A; the
	// fields below it are then zero.
	Leaf8000000A bool
	Revision     uint8   // Fn8000_000A_EAX[7:0], SVM revision
	ASIDs        uint32  // Fn8000_000A_EBX, number of ASIDs
	Features     Feature // Fn8000_000A_EDX
	// VMCR is the VM_CR MSR, read only when SVM is reported; VMCRErr
	// is set when that read failed.
	VMCR    uint64
	VMCRErr error
	// PhysAddrBits is Fn8000_0008_EAX[7:0], 0 if that leaf is absent.
	PhysAddrBits uint8
}

// ReadCapabilities reads the SVM capabilities through cpuid and readMSR.
// It reads VM_CR only when CPUID reports SVM, since the MSR does not exist
// otherwise. A failed VM_CR read is recorded, not returned: the other
// facts are still worth printing.
func ReadCapabilities(cpuid CPUIDFunc, readMSR MSRReader) *Capabilities {
	c := &Capabilities{}
	c.MaxExtLeaf, _, _, _ = cpuid(LeafExtMax, 0)
	if c.MaxExtLeaf >= LeafExtFeatures && c.MaxExtLeaf <= LeafExtMax+0xFFFF {
		_, _, ecx, _ := cpuid(LeafExtFeatures, 0)
		c.SVM = ecx&ExtFeaturesECXSVM != 0
	}
	if c.MaxExtLeaf >= LeafAddrSizes && c.MaxExtLeaf <= LeafExtMax+0xFFFF {
		eax, _, _, _ := cpuid(LeafAddrSizes, 0)
		c.PhysAddrBits = uint8(eax)
	}
	if !c.SVM {
		return c
	}
	if c.MaxExtLeaf >= LeafSVM && c.MaxExtLeaf <= LeafExtMax+0xFFFF {
		eax, ebx, _, edx := cpuid(LeafSVM, 0)
		c.Leaf8000000A = true
		c.Revision, c.ASIDs, c.Features = uint8(eax), ebx, Feature(edx)
	}
	c.VMCR, c.VMCRErr = readMSR(MSRVMCR)
	return c
}

// DisabledByFirmware reports VM_CR.SVMDIS: EFER.SVME cannot be set.
func (c *Capabilities) DisabledByFirmware() bool { return c.VMCRErr == nil && c.VMCR&VMCRSVMDis != 0 }

// Usable reports whether big-iron can run guests with this processor's
// SVM: it needs SVM enabled, the SVM leaf, nested paging and at least one
// guest ASID. why says what is missing.
func (c *Capabilities) Usable() (ok bool, why string) {
	switch {
	case !c.SVM:
		return false, "CPUID Fn8000_0001_ECX.SVM=0 (no AMD-V on this CPU or emulator)"
	case c.VMCRErr != nil:
		return false, "VM_CR unreadable: " + c.VMCRErr.Error()
	case c.DisabledByFirmware() && c.VMCR&VMCRLock != 0:
		return false, "SVM disabled by BIOS (VM_CR.SVMDIS, locked)"
	case c.DisabledByFirmware():
		return false, "SVM disabled (VM_CR.SVMDIS, not locked: software could clear it)"
	case !c.Leaf8000000A:
		return false, "CPUID does not reach Fn8000_000A (SVM features unknown)"
	case !c.Features.Has(FeatNP):
		return false, "no nested paging (Fn8000_000A_EDX.NP=0)"
	case c.ASIDs < 2:
		return false, fmt.Sprintf("%d ASIDs: none left for guests (ASID 0 is the host's)", c.ASIDs)
	}
	return true, ""
}

// wanted are the optional features big-iron uses when present; a missing
// one is named with what big-iron does instead.
var wanted = []struct {
	bit     Feature
	without string
}{
	{FeatNRIPS, "instruction lengths by decoding (no NRIP save)"},
	{FeatDecodeAssists, "MOV CR/DR, INVLPG and INTn operands by decoding (no decode assists)"},
	{FeatVmcbClean, "the whole VMCB reloaded at every VMRUN (no clean bits)"},
	{FeatFlushByAsid, "TLB flushes of every ASID (no flush by ASID)"},
	{FeatAVIC, "interrupts injected by software (no AVIC)"},
	{FeatVGIF, "GIF kept by software (no virtual GIF)"},
	{FeatPauseFilter, "every PAUSE intercepted or none (no PAUSE filter)"},
}

// Lines describes the capabilities in words, one fact a line: what the
// processor has, what it lacks, and whether big-iron can use it.
func (c *Capabilities) Lines() []string {
	if !c.SVM {
		_, why := c.Usable()
		return []string{"SVM: no", "big-iron: cannot run guests: " + why}
	}
	out := []string{"SVM: yes (CPUID Fn8000_0001_ECX.SVM=1)"}
	switch {
	case c.VMCRErr != nil:
		out = append(out, "VM_CR: unreadable: "+c.VMCRErr.Error())
	default:
		state := "SVM enabled"
		if c.DisabledByFirmware() {
			state = "SVM disabled by BIOS (VM_CR.SVMDIS)"
		}
		lock := "not locked"
		if c.VMCR&VMCRLock != 0 {
			lock = "locked"
		}
		out = append(out, fmt.Sprintf("VM_CR %#x: %s, %s", c.VMCR, state, lock))
	}
	if c.Leaf8000000A {
		out = append(out, fmt.Sprintf("revision %d, %d ASIDs, physical addresses %d bits", c.Revision, c.ASIDs, c.PhysAddrBits))
		out = append(out, "features: "+c.Features.String())
		var missing, instead []string
		if !c.Features.Has(FeatNP) {
			missing = append(missing, "nested paging")
		}
		for _, w := range wanted {
			if !c.Features.Has(w.bit) {
				missing = append(missing, featureName(w.bit))
				instead = append(instead, w.without)
			}
		}
		if len(missing) == 0 {
			missing = []string{"nothing big-iron uses"}
		}
		out = append(out, "missing: "+strings.Join(missing, ", "))
		if len(instead) > 0 {
			out = append(out, "so big-iron does: "+strings.Join(instead, "; "))
		}
	} else {
		out = append(out, fmt.Sprintf("CPUID stops at %#x: no SVM feature leaf", c.MaxExtLeaf))
	}
	if ok, why := c.Usable(); ok {
		out = append(out, "big-iron: usable (SVM with nested paging)")
	} else {
		out = append(out, "big-iron: cannot run guests: "+why)
	}
	return out
}

// Describe is Lines joined, one line each, for the shell's svm command.
func (c *Capabilities) Describe() string { return strings.Join(c.Lines(), "\n") + "\n" }

func featureName(f Feature) string {
	for _, n := range featureNames {
		if n.bit == f {
			return n.name
		}
	}
	return f.String()
}
