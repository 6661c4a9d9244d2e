package vmx

import "fmt"

// MSR is the index of a model-specific register.
type MSR uint32

// VMX capability MSRs and IA32_FEATURE_CONTROL (SDM Vol. 3D, Appendix A;
// SDM Vol. 4, Table 2-2).
const (
	MSRFeatureControl      MSR = 0x3A  // IA32_FEATURE_CONTROL (SDM 23.7)
	MSRVMXBasic            MSR = 0x480 // IA32_VMX_BASIC (A.1)
	MSRVMXPinbasedCtls     MSR = 0x481 // IA32_VMX_PINBASED_CTLS (A.3.1)
	MSRVMXProcbasedCtls    MSR = 0x482 // IA32_VMX_PROCBASED_CTLS (A.3.2)
	MSRVMXExitCtls         MSR = 0x483 // IA32_VMX_EXIT_CTLS (A.4)
	MSRVMXEntryCtls        MSR = 0x484 // IA32_VMX_ENTRY_CTLS (A.5)
	MSRVMXMisc             MSR = 0x485 // IA32_VMX_MISC (A.6)
	MSRVMXCR0Fixed0        MSR = 0x486 // IA32_VMX_CR0_FIXED0 (A.7)
	MSRVMXCR0Fixed1        MSR = 0x487 // IA32_VMX_CR0_FIXED1 (A.7)
	MSRVMXCR4Fixed0        MSR = 0x488 // IA32_VMX_CR4_FIXED0 (A.8)
	MSRVMXCR4Fixed1        MSR = 0x489 // IA32_VMX_CR4_FIXED1 (A.8)
	MSRVMXVMCSEnum         MSR = 0x48A // IA32_VMX_VMCS_ENUM (A.9)
	MSRVMXProcbasedCtls2   MSR = 0x48B // IA32_VMX_PROCBASED_CTLS2 (A.3.3)
	MSRVMXEPTVPIDCap       MSR = 0x48C // IA32_VMX_EPT_VPID_CAP (A.10)
	MSRVMXTruePinbasedCtls MSR = 0x48D // IA32_VMX_TRUE_PINBASED_CTLS (A.3.1)
	MSRVMXTrueProcbasedCtl MSR = 0x48E // IA32_VMX_TRUE_PROCBASED_CTLS (A.3.2)
	MSRVMXTrueExitCtls     MSR = 0x48F // IA32_VMX_TRUE_EXIT_CTLS (A.4)
	MSRVMXTrueEntryCtls    MSR = 0x490 // IA32_VMX_TRUE_ENTRY_CTLS (A.5)
	MSRVMXVMFunc           MSR = 0x491 // IA32_VMX_VMFUNC (A.11)
)

// Architectural MSRs that the VMCS host/guest state or the checks refer to
// (SDM Vol. 4, Table 2-2).
const (
	MSRSysenterCS    MSR = 0x174
	MSRSysenterESP   MSR = 0x175
	MSRSysenterEIP   MSR = 0x176
	MSRDebugCtl      MSR = 0x1D9
	MSRPAT           MSR = 0x277
	MSRPerfGlobalCtl MSR = 0x38F
	MSREFER          MSR = 0xC0000080
	MSRFSBase        MSR = 0xC0000100
	MSRGSBase        MSR = 0xC0000101
)

var msrNames = map[MSR]string{
	MSRFeatureControl:      "IA32_FEATURE_CONTROL",
	MSRVMXBasic:            "IA32_VMX_BASIC",
	MSRVMXPinbasedCtls:     "IA32_VMX_PINBASED_CTLS",
	MSRVMXProcbasedCtls:    "IA32_VMX_PROCBASED_CTLS",
	MSRVMXExitCtls:         "IA32_VMX_EXIT_CTLS",
	MSRVMXEntryCtls:        "IA32_VMX_ENTRY_CTLS",
	MSRVMXMisc:             "IA32_VMX_MISC",
	MSRVMXCR0Fixed0:        "IA32_VMX_CR0_FIXED0",
	MSRVMXCR0Fixed1:        "IA32_VMX_CR0_FIXED1",
	MSRVMXCR4Fixed0:        "IA32_VMX_CR4_FIXED0",
	MSRVMXCR4Fixed1:        "IA32_VMX_CR4_FIXED1",
	MSRVMXVMCSEnum:         "IA32_VMX_VMCS_ENUM",
	MSRVMXProcbasedCtls2:   "IA32_VMX_PROCBASED_CTLS2",
	MSRVMXEPTVPIDCap:       "IA32_VMX_EPT_VPID_CAP",
	MSRVMXTruePinbasedCtls: "IA32_VMX_TRUE_PINBASED_CTLS",
	MSRVMXTrueProcbasedCtl: "IA32_VMX_TRUE_PROCBASED_CTLS",
	MSRVMXTrueExitCtls:     "IA32_VMX_TRUE_EXIT_CTLS",
	MSRVMXTrueEntryCtls:    "IA32_VMX_TRUE_ENTRY_CTLS",
	MSRVMXVMFunc:           "IA32_VMX_VMFUNC",
	MSREFER:                "IA32_EFER",
	MSRPAT:                 "IA32_PAT",
}

// String returns the SDM name of the MSR, or its index in hex.
func (m MSR) String() string {
	if n, ok := msrNames[m]; ok {
		return n
	}
	return fmt.Sprintf("MSR %#x", uint32(m))
}

// IA32_FEATURE_CONTROL bits (SDM Vol. 3C, 23.7 "Enabling and Entering VMX
// Operation").
const (
	FeatureControlLocked        uint64 = 1 << 0 // lock bit
	FeatureControlVMXInsideSMX  uint64 = 1 << 1 // enable VMXON inside SMX operation
	FeatureControlVMXOutsideSMX uint64 = 1 << 2 // enable VMXON outside SMX operation
)

// FeatureControlForVMXON tells what to do with IA32_FEATURE_CONTROL so that
// VMXON outside SMX is allowed. If the MSR is unlocked (firmware left it
// open, as Bochs and some BIOSes do) it returns the value to write (VMXON
// outside SMX enabled, locked) and write=true. If the MSR is locked with
// VMX outside SMX disabled, VMX was disabled by firmware and no write can
// change that: an error says so.
func FeatureControlForVMXON(current uint64) (value uint64, write bool, err error) {
	if current&FeatureControlLocked != 0 {
		if current&FeatureControlVMXOutsideSMX == 0 {
			return current, false, fmt.Errorf("IA32_FEATURE_CONTROL=%#x is locked with VMX outside SMX disabled (enable VT-x in firmware setup)", current)
		}
		return current, false, nil
	}
	return current | FeatureControlLocked | FeatureControlVMXOutsideSMX, true, nil
}
