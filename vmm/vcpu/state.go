// Package vcpu defines the architectural state of one virtual CPU as a plain
// value that can be copied, compared, and sent to another node.
//
// A State holds everything needed to resume a vCPU on a different host:
// general-purpose registers, segment and descriptor-table registers, control
// and debug registers, the MSRs that VMX keeps in the VMCS guest-state area,
// the XSAVE area, the virtual local APIC, pending events and the activity
// state. The binary encoding (see MarshalAppend and UnmarshalBinary) is
// versioned, checksummed and fully validated on decode.
//
// State contains only fixed-size arrays, so an assignment (*dst = *src)
// makes an independent copy and decoding into an existing State never
// allocates.
package vcpu

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// Seg indexes State.Seg.
type Seg int

// Segment register indexes. The first six follow the x86 segment register
// number (Intel SDM Vol. 2A, 3.1.1.3: ES=0, CS=1, SS=2, DS=3, FS=4, GS=5);
// LDTR and TR follow.
const (
	ES Seg = iota
	CS
	SS
	DS
	FS
	GS
	LDTR
	TR

	// NumSegs is the number of segment-like registers saved in the VMCS
	// guest-state area (Intel SDM Vol. 3C, 24.4.1).
	NumSegs = 8
)

var segNames = [NumSegs]string{"ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"}

// String returns the register's name.
func (s Seg) String() string {
	if s < 0 || int(s) >= NumSegs {
		return "Seg(?)"
	}
	return segNames[s]
}

// Segment is a segment register in the VMCS guest-state layout
// (Intel SDM Vol. 3C, 24.4.1): selector, base, limit and access rights.
type Segment struct {
	Selector uint16
	// Base is the segment base address (64 bits for FS, GS, LDTR and TR;
	// bits 63:32 must be zero for CS, SS, DS and ES).
	Base uint64
	// Limit is the segment limit in bytes (already scaled by granularity).
	Limit uint32
	// Access holds the access rights in VMCS format (Intel SDM Vol. 3C,
	// 24.4.1, Table 24-2); see the AR* constants.
	Access uint32
}

// Access-rights bits of a segment in VMCS format (Intel SDM Vol. 3C, 24.4.1,
// Table 24-2).
const (
	ARTypeMask    uint32 = 0xF     // bits 3:0, segment type
	ARS           uint32 = 1 << 4  // descriptor type (0 = system, 1 = code/data)
	ARDPLShift           = 5       // bits 6:5, descriptor privilege level
	ARDPLMask     uint32 = 3 << 5  // bits 6:5
	ARP           uint32 = 1 << 7  // segment present
	ARAVL         uint32 = 1 << 12 // available for use by system software
	ARL           uint32 = 1 << 13 // 64-bit mode active (CS only)
	ARDB          uint32 = 1 << 14 // default operation size
	ARG           uint32 = 1 << 15 // granularity
	ARUnusable    uint32 = 1 << 16 // segment unusable (0 = usable)
	arReservedMsk uint32 = 0xF00 | 0xFFFE0000
)

// DescriptorTable is GDTR or IDTR (Intel SDM Vol. 3A, 2.4.1 and 2.4.3).
type DescriptorTable struct {
	Base  uint64
	Limit uint16
}

// ActivityState is the VMCS guest activity state
// (Intel SDM Vol. 3C, 24.4.2, Table 24-3).
type ActivityState uint32

// Activity states.
const (
	Active      ActivityState = 0
	HLT         ActivityState = 1
	Shutdown    ActivityState = 2
	WaitForSIPI ActivityState = 3
)

// String returns the activity state's name.
func (a ActivityState) String() string {
	switch a {
	case Active:
		return "active"
	case HLT:
		return "HLT"
	case Shutdown:
		return "shutdown"
	case WaitForSIPI:
		return "wait-for-SIPI"
	}
	return "ActivityState(?)"
}

// Interruptibility-state bits (Intel SDM Vol. 3C, 24.4.2, Table 24-4).
const (
	BlockingBySTI           uint32 = 1 << 0
	BlockingByMovSS         uint32 = 1 << 1
	BlockingBySMI           uint32 = 1 << 2
	BlockingByNMI           uint32 = 1 << 3
	EnclaveInterrupt        uint32 = 1 << 4
	interruptibilityDefined        = BlockingBySTI | BlockingByMovSS | BlockingBySMI | BlockingByNMI | EnclaveInterrupt
)

// Pending-debug-exceptions bits (Intel SDM Vol. 3C, 24.4.2, Table 24-5).
const (
	PendingDebugB0123   uint64 = 0xF     // bits 3:0, B3-B0
	PendingDebugEnabled uint64 = 1 << 12 // enabled breakpoint
	PendingDebugBS      uint64 = 1 << 14 // single step
	PendingDebugRTM     uint64 = 1 << 16 // RTM region
	pendingDebugDefined        = PendingDebugB0123 | PendingDebugEnabled | PendingDebugBS | PendingDebugRTM
)

// Events holds events that were recognized but not yet delivered when the
// vCPU stopped, and the blocking conditions that affect delivery.
type Events struct {
	// InterruptValid reports whether InterruptVector is an external
	// interrupt waiting for injection.
	InterruptValid  bool
	InterruptVector uint8

	// ExceptionValid reports whether an exception (ExceptionVector < 32)
	// is pending injection; ErrorCodeValid whether it delivers ErrorCode.
	ExceptionValid  bool
	ErrorCodeValid  bool
	ExceptionVector uint8
	ErrorCode       uint32

	// PendingNMIs counts the non-maskable interrupts sent to the vCPU and
	// not yet delivered, at most MaxPendingNMIs: as the processor does,
	// one waits while another is delivered, and further ones are lost
	// (Intel SDM Vol. 3A, 6.7.1).
	PendingNMIs uint8

	// Interruptibility is the VMCS interruptibility state: blocking by
	// STI or MOV SS (the interrupt shadow), by SMI and by NMI.
	Interruptibility uint32

	// PendingDebug is the VMCS pending-debug-exceptions field.
	PendingDebug uint64
}

// MaxPendingNMIs is the most NMIs a vCPU holds pending (Events).
const MaxPendingNMIs = 2

// MSR is one model-specific register as an index/value pair.
type MSR struct {
	Index uint32
	Value uint64
}

// Sizes of the variable-length parts of a State.
const (
	// MaxXSAVE is the largest XSAVE area a State can hold, in bytes.
	MaxXSAVE = 4096
	// MinXSAVE is the smallest non-empty XSAVE area: the 512-byte legacy
	// region plus the 64-byte XSAVE header (Intel SDM Vol. 1, 13.4).
	MinXSAVE = 576
	// MaxMSRs is the number of extra MSRs a State can carry.
	MaxMSRs = 64
)

// State is the complete architectural state of one vCPU.
type State struct {
	// GPR holds the general-purpose registers, indexed by the hardware's
	// register number (vmx.GPR: vmx.RAX, vmx.RCX, ...).
	GPR    [vmx.NumGPRs]uint64
	RIP    uint64
	RFLAGS uint64

	Seg  [NumSegs]Segment
	GDTR DescriptorTable
	IDTR DescriptorTable

	CR0, CR2, CR3, CR4, CR8 uint64

	// DR holds DR0-DR3.
	DR       [4]uint64
	DR6, DR7 uint64

	EFER         uint64 // IA32_EFER
	STAR         uint64 // IA32_STAR
	LSTAR        uint64 // IA32_LSTAR
	CSTAR        uint64 // IA32_CSTAR
	SFMASK       uint64 // IA32_FMASK
	FSBase       uint64 // IA32_FS_BASE (equals Seg[FS].Base)
	GSBase       uint64 // IA32_GS_BASE (equals Seg[GS].Base)
	KernelGSBase uint64 // IA32_KERNEL_GS_BASE
	SysenterCS   uint32 // IA32_SYSENTER_CS
	SysenterESP  uint64 // IA32_SYSENTER_ESP
	SysenterEIP  uint64 // IA32_SYSENTER_EIP
	PAT          uint64 // IA32_PAT

	// TSCOffset is what the vCPU's TSC adds to its VM's clock, which
	// every node keeps in step (guest TSC = VM clock + offset): 0 until
	// the guest writes its TSC (IA32_TIME_STAMP_COUNTER).
	TSCOffset uint64
	// TSCDeadline is IA32_TSC_DEADLINE in guest TSC units (0 = disarmed).
	TSCDeadline uint64

	// XCR0 is the extended control register selecting XSAVE features.
	XCR0 uint64
	// PKRU is the protection-key rights register (Intel SDM Vol. 3A,
	// 4.6.2; RDPKRU). It travels apart from the XSAVE area, which holds
	// it only while XCR0 enables its component (bit 9); 0 lets every
	// access through, its reset value.
	PKRU uint32
	// XSAVELen is the number of valid bytes in XSAVE: 0 when the state
	// carries no XSAVE area, else MinXSAVE..MaxXSAVE.
	XSAVELen uint32
	// XSAVE is an XSAVE area in standard (non-compacted) format
	// (Intel SDM Vol. 1, 13.4). Bytes at and after XSAVELen are zero.
	XSAVE [MaxXSAVE]byte

	LAPIC    LAPIC
	Events   Events
	Activity ActivityState

	// NumMSRs is the number of valid entries in MSRs; the others are zero.
	NumMSRs int
	// MSRs holds further MSRs (for example IA32_TSC_AUX, IA32_DEBUGCTL,
	// IA32_SPEC_CTRL). Indexes are unique and must not name an MSR that
	// has its own field in State.
	MSRs [MaxMSRs]MSR
}

// XSAVEArea returns the valid part of the XSAVE area. The slice aliases s.
func (s *State) XSAVEArea() []byte { return s.XSAVE[:s.XSAVELen] }

// SetXSAVE copies area into the state's XSAVE area. It fails when area is
// longer than MaxXSAVE; the content is checked by Validate.
func (s *State) SetXSAVE(area []byte) error {
	if len(area) > MaxXSAVE {
		return fmt.Errorf("vcpu: XSAVE area of %d bytes exceeds %d: %w", len(area), MaxXSAVE, ErrInvalid)
	}
	n := copy(s.XSAVE[:], area)
	clear(s.XSAVE[n:])
	s.XSAVELen = uint32(n)
	return nil
}

// MSRList returns the valid part of the MSR list. The slice aliases s.
func (s *State) MSRList() []MSR {
	if s.NumMSRs < 0 || s.NumMSRs > MaxMSRs {
		return nil
	}
	return s.MSRs[:s.NumMSRs]
}

// MSR returns the value of the extra MSR with the given index.
func (s *State) MSR(index uint32) (value uint64, ok bool) {
	for _, m := range s.MSRList() {
		if m.Index == index {
			return m.Value, true
		}
	}
	return 0, false
}

// SetMSR sets an extra MSR, adding it to the list if needed. It fails when
// the list is full or index names an MSR with its own State field.
func (s *State) SetMSR(index, value uint64) error {
	if index > 0xFFFFFFFF {
		return fmt.Errorf("vcpu: MSR index %#x out of range: %w", index, ErrInvalid)
	}
	idx := uint32(index)
	if dedicatedMSR(idx) {
		return fmt.Errorf("vcpu: MSR %#x has a dedicated State field: %w", idx, ErrInvalid)
	}
	list := s.MSRList()
	for i := range list {
		if list[i].Index == idx {
			list[i].Value = value
			return nil
		}
	}
	if s.NumMSRs >= MaxMSRs {
		return fmt.Errorf("vcpu: MSR %#x: list full (%d entries): %w", idx, MaxMSRs, ErrInvalid)
	}
	s.MSRs[s.NumMSRs] = MSR{Index: idx, Value: value}
	s.NumMSRs++
	return nil
}

// Clone returns a newly allocated copy of s.
func (s *State) Clone() *State {
	c := *s
	return &c
}

// Equal reports whether s and o describe the same vCPU state. Only the
// valid parts of the XSAVE area and of the MSR list are compared; the MSR
// lists must hold the same entries in the same order.
func (s *State) Equal(o *State) bool {
	if s.GPR != o.GPR || s.RIP != o.RIP || s.RFLAGS != o.RFLAGS ||
		s.Seg != o.Seg || s.GDTR != o.GDTR || s.IDTR != o.IDTR ||
		s.CR0 != o.CR0 || s.CR2 != o.CR2 || s.CR3 != o.CR3 || s.CR4 != o.CR4 || s.CR8 != o.CR8 ||
		s.DR != o.DR || s.DR6 != o.DR6 || s.DR7 != o.DR7 ||
		s.EFER != o.EFER || s.STAR != o.STAR || s.LSTAR != o.LSTAR || s.CSTAR != o.CSTAR ||
		s.SFMASK != o.SFMASK || s.FSBase != o.FSBase || s.GSBase != o.GSBase ||
		s.KernelGSBase != o.KernelGSBase || s.SysenterCS != o.SysenterCS ||
		s.SysenterESP != o.SysenterESP || s.SysenterEIP != o.SysenterEIP || s.PAT != o.PAT ||
		s.TSCOffset != o.TSCOffset || s.TSCDeadline != o.TSCDeadline || s.XCR0 != o.XCR0 || s.PKRU != o.PKRU ||
		s.LAPIC != o.LAPIC || s.Events != o.Events || s.Activity != o.Activity ||
		s.XSAVELen != o.XSAVELen || s.NumMSRs != o.NumMSRs {
		return false
	}
	if s.XSAVELen > MaxXSAVE || s.NumMSRs < 0 || s.NumMSRs > MaxMSRs {
		return false
	}
	return bytes.Equal(s.XSAVE[:s.XSAVELen], o.XSAVE[:o.XSAVELen]) &&
		slices.Equal(s.MSRs[:s.NumMSRs], o.MSRs[:o.NumMSRs])
}
