package vmx

import (
	"fmt"
	"math/bits"
	"strings"
)

// MSRReader reads one MSR. On bare metal it wraps RDMSR; hosted tests pass
// captured values. An error means the MSR could not be read (on hardware
// RDMSR of an absent MSR raises #GP, which the reader must turn into an
// error or never be asked: ReadCapabilities reads an optional MSR only when
// the SDM says it exists).
type MSRReader func(msr uint32) (uint64, error)

// AllowedSettings are the allowed 0- and 1-settings of a 32-bit control
// word (SDM Vol. 3D, A.3): a bit set in Allowed0 must be 1 in the control
// word; a bit clear in Allowed1 must be 0.
type AllowedSettings struct {
	Allowed0 uint32 // bits that must be 1 (low half of the MSR)
	Allowed1 uint32 // bits that may be 1 (high half of the MSR)
}

func allowedFromMSR(v uint64) AllowedSettings {
	return AllowedSettings{Allowed0: uint32(v), Allowed1: uint32(v >> 32)}
}

// CanBeOne reports whether the bits in mask may all be 1.
func (a AllowedSettings) CanBeOne(mask uint32) bool { return a.Allowed1&mask == mask }

// MustBeOne reports whether any bit in mask is fixed to 1.
func (a AllowedSettings) MustBeOne(mask uint32) bool { return a.Allowed0&mask != 0 }

// Memory types (SDM Vol. 3A, 11.3, Table 11-2), as reported in
// IA32_VMX_BASIC[53:50] and used in EPTP.
const (
	MemTypeUC = 0
	MemTypeWC = 1
	MemTypeWT = 4
	MemTypeWP = 5
	MemTypeWB = 6
)

// Basic is IA32_VMX_BASIC decoded (SDM Vol. 3D, A.1).
type Basic struct {
	Revision       uint32 // VMCS revision identifier, bits 30:0
	VMCSSize       uint32 // bytes to allocate for VMXON region and VMCS, bits 44:32
	PhysAddr32     bool   // bit 48: VMXON/VMCS addresses limited to 32 bits
	DualMonitor    bool   // bit 49: dual-monitor treatment of SMI/SMM
	MemoryType     uint8  // bits 53:50: memory type for VMCS access
	InsOutsInfo    bool   // bit 54: VM exits for INS/OUTS report instruction information
	TrueControls   bool   // bit 55: IA32_VMX_TRUE_*_CTLS exist, default1 controls may be 0
	NoErrCodeCheck bool   // bit 56: VM entry may deliver hardware exceptions with or without error code
}

// DecodeBasic decodes IA32_VMX_BASIC.
func DecodeBasic(v uint64) Basic {
	return Basic{
		Revision:       uint32(v) & 0x7FFFFFFF,
		VMCSSize:       uint32(v>>32) & 0x1FFF,
		PhysAddr32:     v&(1<<48) != 0,
		DualMonitor:    v&(1<<49) != 0,
		MemoryType:     uint8(v>>50) & 0xF,
		InsOutsInfo:    v&(1<<54) != 0,
		TrueControls:   v&(1<<55) != 0,
		NoErrCodeCheck: v&(1<<56) != 0,
	}
}

// Misc is IA32_VMX_MISC decoded (SDM Vol. 3D, A.6).
type Misc struct {
	PreemptionTimerRate uint8  // bits 4:0: timer counts down when TSC bit N changes
	StoresLMA           bool   // bit 5: VM exits store EFER.LMA into "IA-32e mode guest"
	ActivityHLT         bool   // bit 6: activity state HLT supported
	ActivityShutdown    bool   // bit 7: activity state shutdown supported
	ActivityWaitSIPI    bool   // bit 8: activity state wait-for-SIPI supported
	PTInVMX             bool   // bit 14: Intel PT usable in VMX operation
	SMBaseReadInSMM     bool   // bit 15: RDMSR of IA32_SMBASE in SMM
	CR3Targets          uint16 // bits 24:16: number of CR3-target values
	MaxMSRListEntries   uint32 // 512*(bits 27:25 + 1): recommended maximum MSR list size
	SMMMonitorCtlBit2   bool   // bit 28: IA32_SMM_MONITOR_CTL[2] can be set
	VMWriteAnyField     bool   // bit 29: VMWRITE may write VM-exit information fields
	InjectZeroLength    bool   // bit 30: software interrupts may be injected with length 0
	MSEGRevision        uint32 // bits 63:32
}

// DecodeMisc decodes IA32_VMX_MISC.
func DecodeMisc(v uint64) Misc {
	return Misc{
		PreemptionTimerRate: uint8(v & 0x1F),
		StoresLMA:           v&(1<<5) != 0,
		ActivityHLT:         v&(1<<6) != 0,
		ActivityShutdown:    v&(1<<7) != 0,
		ActivityWaitSIPI:    v&(1<<8) != 0,
		PTInVMX:             v&(1<<14) != 0,
		SMBaseReadInSMM:     v&(1<<15) != 0,
		CR3Targets:          uint16(v>>16) & 0x1FF,
		MaxMSRListEntries:   512 * (uint32(v>>25)&7 + 1),
		SMMMonitorCtlBit2:   v&(1<<28) != 0,
		VMWriteAnyField:     v&(1<<29) != 0,
		InjectZeroLength:    v&(1<<30) != 0,
		MSEGRevision:        uint32(v >> 32),
	}
}

// EPTVPIDCap is IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D, A.10).
type EPTVPIDCap uint64

// IA32_VMX_EPT_VPID_CAP bits.
const (
	EPTExecuteOnly      EPTVPIDCap = 1 << 0
	EPTWalkLength4      EPTVPIDCap = 1 << 6
	EPTWalkLength5      EPTVPIDCap = 1 << 7
	EPTMemTypeUC        EPTVPIDCap = 1 << 8
	EPTMemTypeWB        EPTVPIDCap = 1 << 14
	EPTPages2M          EPTVPIDCap = 1 << 16
	EPTPages1G          EPTVPIDCap = 1 << 17
	EPTINVEPT           EPTVPIDCap = 1 << 20
	EPTAccessDirty      EPTVPIDCap = 1 << 21
	EPTAdvancedExitInfo EPTVPIDCap = 1 << 22
	EPTSupervisorShadow EPTVPIDCap = 1 << 23
	EPTINVEPTSingle     EPTVPIDCap = 1 << 25
	EPTINVEPTAll        EPTVPIDCap = 1 << 26
	VPIDINVVPID         EPTVPIDCap = 1 << 32
	VPIDINVVPIDAddress  EPTVPIDCap = 1 << 40
	VPIDINVVPIDSingle   EPTVPIDCap = 1 << 41
	VPIDINVVPIDAll      EPTVPIDCap = 1 << 42
	VPIDINVVPIDSingleNG EPTVPIDCap = 1 << 43
)

var eptVPIDNames = []struct {
	bit  EPTVPIDCap
	name string
}{
	{EPTExecuteOnly, "execute-only"},
	{EPTWalkLength4, "4-level walk"},
	{EPTWalkLength5, "5-level walk"},
	{EPTMemTypeUC, "UC paging structures"},
	{EPTMemTypeWB, "WB paging structures"},
	{EPTPages2M, "2M pages"},
	{EPTPages1G, "1G pages"},
	{EPTINVEPT, "INVEPT"},
	{EPTAccessDirty, "accessed/dirty flags"},
	{EPTAdvancedExitInfo, "advanced EPT-violation info"},
	{EPTSupervisorShadow, "supervisor shadow stack"},
	{EPTINVEPTSingle, "INVEPT single-context"},
	{EPTINVEPTAll, "INVEPT all-context"},
	{VPIDINVVPID, "INVVPID"},
	{VPIDINVVPIDAddress, "INVVPID individual-address"},
	{VPIDINVVPIDSingle, "INVVPID single-context"},
	{VPIDINVVPIDAll, "INVVPID all-context"},
	{VPIDINVVPIDSingleNG, "INVVPID single-context-retaining-globals"},
}

// Has reports whether all bits of want are set.
func (e EPTVPIDCap) Has(want EPTVPIDCap) bool { return e&want == want }

// String lists the capabilities in words.
func (e EPTVPIDCap) String() string {
	var parts []string
	for _, n := range eptVPIDNames {
		if e&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Capabilities is everything the VMX capability MSRs say about a logical
// processor. Control allowed-settings come from the TRUE_* MSRs when
// IA32_VMX_BASIC[55] says they exist (SDM Vol. 3D, A.2).
type Capabilities struct {
	FeatureControl uint64
	BasicRaw       uint64
	Basic          Basic
	Pin            AllowedSettings
	Proc           AllowedSettings
	Proc2          AllowedSettings // zero if "activate secondary controls" cannot be 1
	Exit           AllowedSettings
	Entry          AllowedSettings
	MiscRaw        uint64
	Misc           Misc
	CR0Fixed0      uint64 // CR0 bits fixed to 1 in VMX operation
	CR0Fixed1      uint64 // CR0 bits allowed to be 1 in VMX operation
	CR4Fixed0      uint64
	CR4Fixed1      uint64
	VMCSEnumMax    uint16     // highest VMCS field index (IA32_VMX_VMCS_ENUM[9:1])
	EPTVPID        EPTVPIDCap // zero if neither EPT nor VPID can be enabled
	VMFunc         uint64     // allowed VM functions; zero if unsupported
	// VMFuncUnreadable is set when IA32_VMX_VMFUNC should exist but could
	// not be read (VMFunc is then 0).
	VMFuncUnreadable bool
}

// ReadCapabilities reads and decodes the VMX capability MSRs through read.
// It reads an MSR only when the SDM says it exists (Vol. 3D, A.3.3, A.10,
// A.11), so a bare-metal reader never faults.
func ReadCapabilities(read MSRReader) (*Capabilities, error) {
	get := func(m MSR) (uint64, error) {
		v, err := read(uint32(m))
		if err != nil {
			return 0, fmt.Errorf("reading %v: %w", m, err)
		}
		return v, nil
	}
	c := &Capabilities{}
	var err error
	if c.FeatureControl, err = get(MSRFeatureControl); err != nil {
		return nil, err
	}
	if c.BasicRaw, err = get(MSRVMXBasic); err != nil {
		return nil, err
	}
	c.Basic = DecodeBasic(c.BasicRaw)
	if c.Basic.VMCSSize == 0 || c.Basic.VMCSSize > 4096 {
		return nil, fmt.Errorf("%v=%#x: VMCS size %d out of range 1..4096", MSRVMXBasic, c.BasicRaw, c.Basic.VMCSSize)
	}
	pin, proc, exit, entry := MSRVMXPinbasedCtls, MSRVMXProcbasedCtls, MSRVMXExitCtls, MSRVMXEntryCtls
	if c.Basic.TrueControls {
		pin, proc, exit, entry = MSRVMXTruePinbasedCtls, MSRVMXTrueProcbasedCtl, MSRVMXTrueExitCtls, MSRVMXTrueEntryCtls
	}
	for _, x := range []struct {
		m   MSR
		dst *AllowedSettings
	}{{pin, &c.Pin}, {proc, &c.Proc}, {exit, &c.Exit}, {entry, &c.Entry}} {
		v, err := get(x.m)
		if err != nil {
			return nil, err
		}
		*x.dst = allowedFromMSR(v)
		if x.dst.Allowed0&^x.dst.Allowed1 != 0 {
			return nil, fmt.Errorf("%v=%#x: bits %#x must be 1 but may not be 1", x.m, v, x.dst.Allowed0&^x.dst.Allowed1)
		}
	}
	if c.MiscRaw, err = get(MSRVMXMisc); err != nil {
		return nil, err
	}
	c.Misc = DecodeMisc(c.MiscRaw)
	for _, x := range []struct {
		m   MSR
		dst *uint64
	}{{MSRVMXCR0Fixed0, &c.CR0Fixed0}, {MSRVMXCR0Fixed1, &c.CR0Fixed1}, {MSRVMXCR4Fixed0, &c.CR4Fixed0}, {MSRVMXCR4Fixed1, &c.CR4Fixed1}} {
		if *x.dst, err = get(x.m); err != nil {
			return nil, err
		}
	}
	enum, err := get(MSRVMXVMCSEnum)
	if err != nil {
		return nil, err
	}
	c.VMCSEnumMax = uint16(enum>>1) & 0x1FF
	if c.Proc.CanBeOne(uint32(ProcActivateSecondary)) {
		v, err := get(MSRVMXProcbasedCtls2)
		if err != nil {
			return nil, err
		}
		c.Proc2 = allowedFromMSR(v)
		if c.Proc2.CanBeOne(uint32(Proc2EnableEPT)) || c.Proc2.CanBeOne(uint32(Proc2EnableVPID)) {
			ev, err := get(MSRVMXEPTVPIDCap)
			if err != nil {
				return nil, err
			}
			c.EPTVPID = EPTVPIDCap(ev)
		}
		if c.Proc2.CanBeOne(uint32(Proc2EnableVMFunctions)) {
			// The hypervisor never enables VM functions, so a failed read
			// is recorded rather than fatal.
			if c.VMFunc, err = get(MSRVMXVMFunc); err != nil {
				c.VMFunc, c.VMFuncUnreadable = 0, true
			}
		}
	}
	return c, nil
}

// String reports the capabilities in words, for the shell's vmx command.
func (c *Capabilities) String() string {
	var b strings.Builder
	yes := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(&b, "IA32_FEATURE_CONTROL %#x: locked %s, VMXON outside SMX %s\n", c.FeatureControl,
		yes(c.FeatureControl&FeatureControlLocked != 0), yes(c.FeatureControl&FeatureControlVMXOutsideSMX != 0))
	fmt.Fprintf(&b, "VMCS revision %#x, size %d bytes, memory type %s, TRUE controls %s, INS/OUTS info %s, 32-bit addresses only %s\n",
		c.Basic.Revision, c.Basic.VMCSSize, memTypeName(c.Basic.MemoryType), yes(c.Basic.TrueControls), yes(c.Basic.InsOutsInfo), yes(c.Basic.PhysAddr32))
	for k := KindPin; k <= KindEntry; k++ {
		a := c.allowed(k)
		fmt.Fprintf(&b, "%s: must be 1 [%s]; may be 1 [%s]\n", k, describeBits(k, a.Allowed0), describeBits(k, a.Allowed1&^a.Allowed0))
	}
	var states []string
	if c.Misc.ActivityHLT {
		states = append(states, "HLT")
	}
	if c.Misc.ActivityShutdown {
		states = append(states, "shutdown")
	}
	if c.Misc.ActivityWaitSIPI {
		states = append(states, "wait-for-SIPI")
	}
	fmt.Fprintf(&b, "preemption timer: TSC/%d; activity states: active %s; CR3 targets: %d; max MSR list: %d; stores LMA: %s; VMWRITE any field: %s\n",
		1<<c.Misc.PreemptionTimerRate, strings.Join(states, " "), c.Misc.CR3Targets, c.Misc.MaxMSRListEntries, yes(c.Misc.StoresLMA), yes(c.Misc.VMWriteAnyField))
	fmt.Fprintf(&b, "CR0 fixed 1 %#x, may be 1 %#x; CR4 fixed 1 %#x, may be 1 %#x\n", c.CR0Fixed0, c.CR0Fixed1, c.CR4Fixed0, c.CR4Fixed1)
	fmt.Fprintf(&b, "EPT/VPID: %s\n", c.EPTVPID)
	vmfunc := fmt.Sprintf("%#x", c.VMFunc)
	if c.VMFuncUnreadable {
		vmfunc = "unreadable"
	}
	fmt.Fprintf(&b, "VM functions: %s; highest VMCS field index: %d\n", vmfunc, c.VMCSEnumMax)
	return b.String()
}

// describeBits lists the named bits of v, then the unnamed ones as
// "reserved bits 1,2,4".
func describeBits(k ControlKind, v uint32) string {
	var named, reserved []string
	for m := v; m != 0; m &= m - 1 {
		bit := bits.TrailingZeros32(m)
		if n := k.BitName(bit); !strings.HasPrefix(n, "bit ") {
			named = append(named, n)
		} else {
			reserved = append(reserved, fmt.Sprint(bit))
		}
	}
	if len(reserved) > 0 {
		named = append(named, "reserved bits "+strings.Join(reserved, ","))
	}
	return strings.Join(named, ", ")
}

func memTypeName(t uint8) string {
	switch t {
	case MemTypeUC:
		return "UC"
	case MemTypeWC:
		return "WC"
	case MemTypeWT:
		return "WT"
	case MemTypeWP:
		return "WP"
	case MemTypeWB:
		return "WB"
	}
	return fmt.Sprintf("reserved(%d)", t)
}

// CR0 and CR4 bits the VMX code refers to (SDM Vol. 3A, 2.5).
const (
	CR0PE uint64 = 1 << 0
	CR0MP uint64 = 1 << 1
	CR0ET uint64 = 1 << 4
	CR0NE uint64 = 1 << 5
	CR0WP uint64 = 1 << 16
	CR0NW uint64 = 1 << 29
	CR0CD uint64 = 1 << 30
	CR0PG uint64 = 1 << 31

	CR4PAE   uint64 = 1 << 5
	CR4PCIDE uint64 = 1 << 17
	CR4VMXE  uint64 = 1 << 13
	CR4CET   uint64 = 1 << 23
	CR4LA57  uint64 = 1 << 12
)

// VMXONCR0 returns cr0 with the VMX fixed bits applied, as needed before
// VMXON (SDM Vol. 3C, 23.8 "Restrictions on VMX Operation").
func (c *Capabilities) VMXONCR0(cr0 uint64) uint64 { return (cr0 | c.CR0Fixed0) & c.CR0Fixed1 }

// VMXONCR4 returns cr4 with the VMX fixed bits applied (CR4.VMXE among
// them), as needed before VMXON.
func (c *Capabilities) VMXONCR4(cr4 uint64) uint64 { return (cr4 | c.CR4Fixed0) & c.CR4Fixed1 }

// GuestCR0Fixed returns the CR0 bits a guest must have set (must1) and may
// have set (may1). With the "unrestricted guest" control, PE and PG are not
// required (SDM Vol. 3C, 26.3.1.1).
func (c *Capabilities) GuestCR0Fixed(unrestricted bool) (must1, may1 uint64) {
	must1 = c.CR0Fixed0
	if unrestricted {
		must1 &^= CR0PE | CR0PG
	}
	return must1, c.CR0Fixed1
}

// GuestCR0 returns cr0 adjusted to the fixed bits for a guest: what goes in
// the VMCS GUEST_CR0 field. The guest's own view belongs in the CR0 read
// shadow.
func (c *Capabilities) GuestCR0(cr0 uint64, unrestricted bool) uint64 {
	must1, may1 := c.GuestCR0Fixed(unrestricted)
	return (cr0 | must1) & may1
}

// GuestCR4 returns cr4 adjusted to the fixed bits for a guest (CR4.VMXE
// forced to 1); the guest's own view belongs in the CR4 read shadow.
func (c *Capabilities) GuestCR4(cr4 uint64) uint64 { return (cr4 | c.CR4Fixed0) & c.CR4Fixed1 }

// GuestHostMasks returns CR0 and CR4 guest/host masks that own exactly the
// bits VMX fixes for a guest (SDM Vol. 3C, 25.3 and 26.3.1.1): with these
// masks and read shadows holding the guest's own values, the guest reads
// its values for those bits and a MOV to CR0/CR4 exits only when it tries
// to change one of them.
func (c *Capabilities) GuestHostMasks(unrestricted bool) (cr0Mask, cr4Mask uint64) {
	must1, may1 := c.GuestCR0Fixed(unrestricted)
	return must1 | ^may1, c.CR4Fixed0 | ^c.CR4Fixed1
}
