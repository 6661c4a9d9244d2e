package ept

// Caps describes what the processor's second-stage translation supports.
// For EPT, CapsFromMSR fills it from IA32_VMX_EPT_VPID_CAP; for NPT,
// NPTCaps fills the fields that apply (MaxPhysAddr, Pages2M, Pages1G,
// NoExecute) and the EPT-only fields are ignored.
type Caps struct {
	// MaxPhysAddr is the physical-address width (CPUID.80000008H:EAX[7:0]),
	// 36 to 52.
	MaxPhysAddr uint
	// ExecuteOnly: entries may grant execute without read.
	ExecuteOnly bool
	// PageWalk4: 4-level EPT page walks are supported.
	PageWalk4 bool
	// UncacheableEPTP, WriteBackEPTP: the paging structures may be
	// accessed with that memory type.
	UncacheableEPTP bool
	WriteBackEPTP   bool
	// Pages2M, Pages1G: PDEs and PDPTEs may map large pages.
	Pages2M bool
	Pages1G bool
	// AccessDirty: accessed and dirty flags for EPT are supported.
	AccessDirty bool
	// InvEPTSingle, InvEPTAll: INVEPT supports the single-context and
	// all-context types.
	InvEPTSingle bool
	InvEPTAll    bool
	// NoExecute (NPT only): the host runs guests with EFER.NXE set, so
	// bit 63 of a nested page-table entry is the no-execute bit (nested
	// walks use the host's EFER, AMD APM Vol. 2, 15.25.5). Without it
	// bit 63 is reserved (APM 5.4.1), so every NPT mapping must be
	// executable. EPT encodes execute permission in bit 2 and ignores
	// this field.
	NoExecute bool
}

// Bits of IA32_VMX_EPT_VPID_CAP, MSR 0x48C (Intel SDM Vol. 3D, A.10).
const (
	MSRVMXEPTVPIDCap    uint32 = 0x48C
	CapExecuteOnly      uint64 = 1 << 0
	CapPageWalk4        uint64 = 1 << 6
	CapPageWalk5        uint64 = 1 << 7
	CapUncacheableEPTP  uint64 = 1 << 8
	CapWriteBackEPTP    uint64 = 1 << 14
	CapPages2M          uint64 = 1 << 16
	CapPages1G          uint64 = 1 << 17
	CapINVEPT           uint64 = 1 << 20
	CapAccessDirty      uint64 = 1 << 21
	CapAdvancedExitInfo uint64 = 1 << 22
	CapSupervisorShadow uint64 = 1 << 23
	CapINVEPTSingle     uint64 = 1 << 25
	CapINVEPTAll        uint64 = 1 << 26
)

// CapsFromMSR decodes the value of IA32_VMX_EPT_VPID_CAP together with the
// processor's physical-address width.
func CapsFromMSR(eptVPIDCap uint64, maxPhysAddr uint) Caps {
	has := func(bit uint64) bool { return eptVPIDCap&bit != 0 }
	inv := has(CapINVEPT)
	return Caps{
		MaxPhysAddr:     maxPhysAddr,
		ExecuteOnly:     has(CapExecuteOnly),
		PageWalk4:       has(CapPageWalk4),
		UncacheableEPTP: has(CapUncacheableEPTP),
		WriteBackEPTP:   has(CapWriteBackEPTP),
		Pages2M:         has(CapPages2M),
		Pages1G:         has(CapPages1G),
		AccessDirty:     has(CapAccessDirty),
		InvEPTSingle:    inv && has(CapINVEPTSingle),
		InvEPTAll:       inv && has(CapINVEPTAll),
	}
}

// physAddrMask returns the mask of address bits below MaxPhysAddr within
// bits 51:12.
func (c *Caps) physAddrMask() uint64 {
	return EntryAddr & (1<<c.MaxPhysAddr - 1)
}

// reservedAddrBits returns bits 51:MaxPhysAddr, reserved in every entry
// and in the EPTP.
func (c *Caps) reservedAddrBits() uint64 {
	return EntryAddr &^ (1<<c.MaxPhysAddr - 1)
}
