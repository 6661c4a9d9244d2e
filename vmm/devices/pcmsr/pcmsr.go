// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package pcmsr emulates the model-specific registers a PC operating
// system reads and writes during boot that belong to no device: memory
// type range registers, PAT, miscellaneous enables, feature control,
// microcode signature. Each vCPU has its own copy, as on hardware.
//
// MSRs with a device (x2APIC, TSC deadline) belong to that device's
// model; MSRs that VMX switches itself (EFER, FS/GS base, SYSENTER) or
// that the hypervisor loads around entry (SYSCALL MSRs) are not here. An
// MSR nobody claims raises #GP in the guest, as an unimplemented MSR does
// on hardware; Linux probes optional MSRs with rdmsr_safe and copes.
package pcmsr

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/spinlock"
)

// MSR indexes (Intel SDM Vol. 4, Table 2-2 "IA-32 Architectural MSRs").
const (
	PlatformID    uint32 = 0x17  // IA32_PLATFORM_ID
	FeatureCtl    uint32 = 0x3A  // IA32_FEATURE_CONTROL
	BIOSUpdtTrig  uint32 = 0x79  // IA32_BIOS_UPDT_TRIG
	BIOSSignID    uint32 = 0x8B  // IA32_BIOS_SIGN_ID
	MTRRCap       uint32 = 0xFE  // IA32_MTRRCAP
	MCGCap        uint32 = 0x179 // IA32_MCG_CAP
	MCGStatus     uint32 = 0x17A // IA32_MCG_STATUS
	MiscEnable    uint32 = 0x1A0 // IA32_MISC_ENABLE
	DebugCtl      uint32 = 0x1D9 // IA32_DEBUGCTL
	MTRRPhysBase0 uint32 = 0x200 // IA32_MTRR_PHYSBASE0; PHYSMASKn at 0x201+2n
	MTRRFix64K    uint32 = 0x250 // IA32_MTRR_FIX64K_00000
	MTRRFix16K8   uint32 = 0x258 // IA32_MTRR_FIX16K_80000
	MTRRFix16KA   uint32 = 0x259 // IA32_MTRR_FIX16K_A0000
	MTRRFix4KC0   uint32 = 0x268 // IA32_MTRR_FIX4K_C0000 .. F8000 at 0x26F
	PAT           uint32 = 0x277 // IA32_PAT
	MTRRDefType   uint32 = 0x2FF // IA32_MTRR_DEF_TYPE
	// SysCfg is AMD's system configuration register (AMD APM Vol. 2,
	// 7.9.1 "Extended Fixed-Range MTRR Type-Field Encodings" and its
	// SYSCFG figure), which Linux reads with a plain RDMSR on AMD
	// processors while it reads the fixed-range MTRRs.
	SysCfg uint32 = 0xC0010010
	// IntPend is the interrupt pending message register of AMD family
	// 0Fh and 10h processors (BKDG for family 10h, MSRC001_0055), which
	// Linux reads on those families (erratum 400) to see whether C1E is
	// on; QEMU's emulated AMD processor is family 0Fh.
	IntPend uint32 = 0xC0010055
	// PerfEvtSel0 and PerfCtr0 are the first of the four legacy
	// performance event selects (MSRC001_0000-3) and counters
	// (MSRC001_0004-7) every AMD64 processor has (AMD APM Vol. 2, 13.2.1
	// "Performance Counter MSRs"); software that knows no better, such as
	// kvm-unit-tests' start-up code, clears them unconditionally.
	PerfEvtSel0 uint32 = 0xC0010000
	PerfCtr0    uint32 = 0xC0010004
	// amdLegacyCounters is how many of each there are.
	amdLegacyCounters = 4
)

// Values (SDM Vol. 3A, 12.11 "Memory Type Range Registers", 12.12 "PAT";
// Vol. 4 for IA32_MISC_ENABLE and IA32_FEATURE_CONTROL).
const (
	// VariableMTRRs is the number of variable-range MTRR pairs offered.
	VariableMTRRs = 8
	// mtrrCap: VCNT = 8, FIX (bit 8), WC (bit 10); no SMRR.
	mtrrCap = VariableMTRRs | 1<<8 | 1<<10
	// defTypeInit: MTRRs enabled (E, bit 11), fixed ranges enabled (FE,
	// bit 10), default type write-back (6), as firmware leaves them.
	defTypeInit  = 1<<11 | 1<<10 | 6
	defTypeValid = 1<<11 | 1<<10 | 0xFF
	// fixedWB is a fixed-range MTRR with all eight ranges write-back.
	fixedWB = 0x0606060606060606
	// patInit is IA32_PAT's power-on value (SDM Vol. 3A, Table 12-12).
	patInit = 0x0007040600070406
	// featureCtlLocked: lock bit set, VMX in and outside SMX off.
	featureCtlLocked = 1
	// SYSCFG bits (AMD APM Vol. 2, 7.9.1): the fixed-range MTRRs'
	// RdMem/WrMem extension enable (18) and its modify enable (19), the
	// variable-range DRAM enable (20), TOP_MEM2 (21). A guest may change
	// only these; the rest (SMEE, secure nested paging, ...) is not
	// emulated and stays 0. Firmware leaves the modify enable clear.
	sysCfgFixDramEn    = 1 << 18
	sysCfgFixDramModEn = 1 << 19
	sysCfgVarDramEn    = 1 << 20
	sysCfgTom2En       = 1 << 21
	sysCfgInit         = sysCfgFixDramEn | sysCfgVarDramEn
	sysCfgWritable     = sysCfgFixDramEn | sysCfgFixDramModEn | sysCfgVarDramEn | sysCfgTom2En
	// miscEnableInit: fast strings (0), BTS unavailable (11), PEBS
	// unavailable (12).
	miscEnableInit = 1 | 1<<11 | 1<<12
	// miscEnableWritable are the bits a guest may change (SDM Vol. 4,
	// Table 2-2): fast strings (0), automatic thermal control (3),
	// Enhanced SpeedStep (16), ENABLE MONITOR FSM (18), limit CPUID
	// maxval (22), xTPR message disable (23), XD bit disable (34). They
	// are kept, and read back as written; none changes what the vCPU
	// does (CPUID keeps its leaves, MONITOR and NX), as under KVM
	// without its quirks. Bits 7, 11 and 12 are read-only, the rest
	// reserved.
	miscEnableWritable = 1 | 1<<3 | 1<<16 | 1<<18 | 1<<22 | 1<<23 | 1<<34
)

// memType reports whether t is a valid memory type encoding for MTRRs (0 UC,
// 1 WC, 4 WT, 5 WP, 6 WB) or, with pat, for PAT entries (plus 7 UC-).
func memType(t uint64, pat bool) bool {
	return t == 0 || t == 1 || t == 4 || t == 5 || t == 6 || pat && t == 7
}

type perVCPU struct {
	pat, miscEnable, defType, sysCfg uint64
	fixed                            [11]uint64
	variable                         [2 * VariableMTRRs]uint64
}

// Table holds every vCPU's platform MSRs.
type Table struct {
	mu        spinlock.Lock
	vcpus     []perVCPU
	physMask  uint64 // bits at or above the guest's physical-address width
	refused   uint64
	microcode uint64
}

// New returns the MSRs of n vCPUs in their reset state. physBits is the
// guest's physical-address width (CPUID 0x80000008 EAX[7:0]); MTRR base
// and mask bits above it are reserved.
func New(n int, physBits uint) (*Table, error) {
	if n < 1 || physBits < 32 || physBits > 52 {
		return nil, fmt.Errorf("pcmsr: %d vCPUs, %d physical-address bits", n, physBits)
	}
	t := &Table{vcpus: make([]perVCPU, n), physMask: ^uint64(0) << physBits}
	for i := range t.vcpus {
		v := &t.vcpus[i]
		v.pat, v.miscEnable, v.defType, v.sysCfg = patInit, miscEnableInit, defTypeInit, sysCfgInit
		for j := range v.fixed {
			v.fixed[j] = fixedWB
		}
	}
	return t, nil
}

// Register claims the table's MSRs in m.
func (t *Table) Register(m *exits.MSRTable) error {
	for _, r := range []struct {
		first, last uint32
		name        string
	}{
		{PlatformID, PlatformID, "IA32_PLATFORM_ID"},
		{FeatureCtl, FeatureCtl, "IA32_FEATURE_CONTROL"},
		{BIOSUpdtTrig, BIOSUpdtTrig, "IA32_BIOS_UPDT_TRIG"},
		{BIOSSignID, BIOSSignID, "IA32_BIOS_SIGN_ID"},
		{MTRRCap, MTRRCap, "IA32_MTRRCAP"},
		{MCGCap, MCGStatus, "IA32_MCG_CAP/STATUS"},
		{MiscEnable, MiscEnable, "IA32_MISC_ENABLE"},
		{DebugCtl, DebugCtl, "IA32_DEBUGCTL"},
		{MTRRPhysBase0, MTRRPhysBase0 + 2*VariableMTRRs - 1, "variable-range MTRRs"},
		{MTRRFix64K, MTRRFix64K, "IA32_MTRR_FIX64K"},
		{MTRRFix16K8, MTRRFix16KA, "IA32_MTRR_FIX16K"},
		{MTRRFix4KC0, MTRRFix4KC0 + 7, "IA32_MTRR_FIX4K"},
		{PAT, PAT, "IA32_PAT"},
		{MTRRDefType, MTRRDefType, "IA32_MTRR_DEF_TYPE"},
	} {
		if err := m.Register(r.first, r.last, r.name, t); err != nil {
			return fmt.Errorf("pcmsr: %w", err)
		}
	}
	return nil
}

// RegisterAMD claims in m the MSRs an AMD processor has beyond Register's
// (SYSCFG, the interrupt pending message register): a guest that sees AuthenticAMD reads them; on an Intel one
// they raise #GP, as they do on Intel hardware.
func (t *Table) RegisterAMD(m *exits.MSRTable) error {
	if err := m.Register(SysCfg, SysCfg, "SYSCFG", t); err != nil {
		return fmt.Errorf("pcmsr: %w", err)
	}
	if err := m.Register(IntPend, IntPend, "interrupt pending message", t); err != nil {
		return fmt.Errorf("pcmsr: %w", err)
	}
	if err := m.Register(PerfEvtSel0, PerfCtr0+amdLegacyCounters-1, "performance counters (none count)", t); err != nil {
		return fmt.Errorf("pcmsr: %w", err)
	}
	return nil
}

// amdCounter reports whether msr is one of the legacy AMD performance
// event selects or counters. The guest has no performance monitoring
// (CPUID shows no PerfCtrExtCore): they read as 0 and ignore writes,
// as KVM's do with its PMU off.
func amdCounter(msr uint32) bool {
	return msr >= PerfEvtSel0 && msr < PerfCtr0+amdLegacyCounters
}

// fixedIndex maps a fixed-range MTRR to its slot.
func fixedIndex(msr uint32) (int, bool) {
	switch {
	case msr == MTRRFix64K:
		return 0, true
	case msr == MTRRFix16K8 || msr == MTRRFix16KA:
		return 1 + int(msr-MTRRFix16K8), true
	case msr >= MTRRFix4KC0 && msr <= MTRRFix4KC0+7:
		return 3 + int(msr-MTRRFix4KC0), true
	}
	return 0, false
}

// ReadMSR implements exits.MSRHandler.
func (t *Table) ReadMSR(vcpu int, msr uint32) (uint64, bool) {
	if vcpu < 0 || vcpu >= len(t.vcpus) {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v := &t.vcpus[vcpu]
	switch msr {
	case PlatformID, MCGCap, MCGStatus, DebugCtl, IntPend:
		return 0, true // IntPend: C1E on halt (bits 27, 28) off
	case FeatureCtl:
		return featureCtlLocked, true
	case BIOSSignID:
		return t.microcode, true
	case MTRRCap:
		return mtrrCap, true
	case MiscEnable:
		return v.miscEnable, true
	case PAT:
		return v.pat, true
	case MTRRDefType:
		return v.defType, true
	case SysCfg:
		return v.sysCfg, true
	case BIOSUpdtTrig:
		return 0, false // write-only
	}
	if i, ok := fixedIndex(msr); ok {
		return v.fixed[i], true
	}
	if amdCounter(msr) {
		return 0, true
	}
	if msr >= MTRRPhysBase0 && msr < MTRRPhysBase0+2*VariableMTRRs {
		return v.variable[msr-MTRRPhysBase0], true
	}
	return 0, false
}

// WriteMSR implements exits.MSRHandler. Writes that set reserved bits or
// invalid memory types fail (#GP), as on hardware.
func (t *Table) WriteMSR(vcpu int, msr uint32, value uint64) bool {
	if vcpu < 0 || vcpu >= len(t.vcpus) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := t.write(&t.vcpus[vcpu], msr, value)
	if !ok {
		t.refused++
	}
	return ok
}

func (t *Table) write(v *perVCPU, msr uint32, value uint64) bool {
	switch msr {
	case BIOSUpdtTrig:
		return true // no microcode updates: ignored
	case BIOSSignID:
		return true // software writes 0 before CPUID to latch the id
	case MCGStatus, DebugCtl, IntPend:
		return value == 0
	case PlatformID, FeatureCtl, MTRRCap, MCGCap:
		return false // read-only (IA32_FEATURE_CONTROL is locked)
	case MiscEnable:
		if (value^v.miscEnable)&^miscEnableWritable != 0 {
			return false
		}
		v.miscEnable = value
		return true
	case PAT:
		for i := 0; i < 8; i++ {
			if !memType(value>>(8*i)&0xFF, true) {
				return false
			}
		}
		v.pat = value
		return true
	case MTRRDefType:
		if value&^defTypeValid != 0 || !memType(value&0xFF, false) {
			return false
		}
		v.defType = value
		return true
	case SysCfg:
		if value&^sysCfgWritable != 0 {
			return false
		}
		v.sysCfg = value
		return true
	}
	if amdCounter(msr) {
		return true
	}
	if i, ok := fixedIndex(msr); ok {
		for b := 0; b < 8; b++ {
			if !memType(value>>(8*b)&0xFF, false) {
				return false
			}
		}
		v.fixed[i] = value
		return true
	}
	if msr >= MTRRPhysBase0 && msr < MTRRPhysBase0+2*VariableMTRRs {
		i := msr - MTRRPhysBase0
		if i%2 == 0 { // PHYSBASE: type in 7:0, 11:8 reserved
			if value&t.physMask != 0 || value&0xF00 != 0 || !memType(value&0xFF, false) {
				return false
			}
		} else if value&t.physMask != 0 || value&0x7FF != 0 { // PHYSMASK: valid bit 11
			return false
		}
		v.variable[i] = value
		return true
	}
	return false
}

// Refused returns how many writes were refused with #GP.
func (t *Table) Refused() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refused
}
