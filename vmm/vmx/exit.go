package vmx

import (
	"errors"
	"fmt"
)

// ExitReason is a basic exit reason, bits 15:0 of the exit-reason field
// (SDM Vol. 3D, Appendix C, Table C-1).
type ExitReason uint16

// Basic exit reasons.
const (
	ExitExceptionOrNMI      ExitReason = 0
	ExitExternalInterrupt   ExitReason = 1
	ExitTripleFault         ExitReason = 2
	ExitINIT                ExitReason = 3
	ExitSIPI                ExitReason = 4
	ExitIOSMI               ExitReason = 5
	ExitOtherSMI            ExitReason = 6
	ExitInterruptWindow     ExitReason = 7
	ExitNMIWindow           ExitReason = 8
	ExitTaskSwitch          ExitReason = 9
	ExitCPUID               ExitReason = 10
	ExitGETSEC              ExitReason = 11
	ExitHLT                 ExitReason = 12
	ExitINVD                ExitReason = 13
	ExitINVLPG              ExitReason = 14
	ExitRDPMC               ExitReason = 15
	ExitRDTSC               ExitReason = 16
	ExitRSM                 ExitReason = 17
	ExitVMCALL              ExitReason = 18
	ExitVMCLEAR             ExitReason = 19
	ExitVMLAUNCH            ExitReason = 20
	ExitVMPTRLD             ExitReason = 21
	ExitVMPTRST             ExitReason = 22
	ExitVMREAD              ExitReason = 23
	ExitVMRESUME            ExitReason = 24
	ExitVMWRITE             ExitReason = 25
	ExitVMXOFF              ExitReason = 26
	ExitVMXON               ExitReason = 27
	ExitCRAccess            ExitReason = 28
	ExitMOVDR               ExitReason = 29
	ExitIOInstruction       ExitReason = 30
	ExitRDMSR               ExitReason = 31
	ExitWRMSR               ExitReason = 32
	ExitInvalidGuestState   ExitReason = 33
	ExitMSRLoading          ExitReason = 34
	ExitMWAIT               ExitReason = 36
	ExitMonitorTrapFlag     ExitReason = 37
	ExitMONITOR             ExitReason = 39
	ExitPAUSE               ExitReason = 40
	ExitMachineCheck        ExitReason = 41
	ExitTPRBelowThreshold   ExitReason = 43
	ExitAPICAccess          ExitReason = 44
	ExitVirtualizedEOI      ExitReason = 45
	ExitGDTRIDTRAccess      ExitReason = 46
	ExitLDTRTRAccess        ExitReason = 47
	ExitEPTViolation        ExitReason = 48
	ExitEPTMisconfig        ExitReason = 49
	ExitINVEPT              ExitReason = 50
	ExitRDTSCP              ExitReason = 51
	ExitPreemptionTimer     ExitReason = 52
	ExitINVVPID             ExitReason = 53
	ExitWBINVD              ExitReason = 54
	ExitXSETBV              ExitReason = 55
	ExitAPICWrite           ExitReason = 56
	ExitRDRAND              ExitReason = 57
	ExitINVPCID             ExitReason = 58
	ExitVMFUNC              ExitReason = 59
	ExitENCLS               ExitReason = 60
	ExitRDSEED              ExitReason = 61
	ExitPMLFull             ExitReason = 62
	ExitXSAVES              ExitReason = 63
	ExitXRSTORS             ExitReason = 64
	ExitPCONFIG             ExitReason = 65
	ExitSPPEvent            ExitReason = 66
	ExitUMWAIT              ExitReason = 67
	ExitTPAUSE              ExitReason = 68
	ExitLOADIWKEY           ExitReason = 69
	ExitENCLV               ExitReason = 70
	ExitENQCMDPASIDFailure  ExitReason = 72
	ExitENQCMDSPASIDFailure ExitReason = 73
	ExitBusLock             ExitReason = 74
	ExitInstructionTimeout  ExitReason = 75
	ExitSEAMCALL            ExitReason = 76
	ExitTDCALL              ExitReason = 77
	ExitRDMSRLIST           ExitReason = 78
	ExitWRMSRLIST           ExitReason = 79
	// NumExitReasons bounds the basic exit reasons this package names;
	// tables indexed by ExitReason use it as their length.
	NumExitReasons = 80
)

var exitReasonNames = [NumExitReasons]string{
	ExitExceptionOrNMI:      "exception or NMI",
	ExitExternalInterrupt:   "external interrupt",
	ExitTripleFault:         "triple fault",
	ExitINIT:                "INIT signal",
	ExitSIPI:                "start-up IPI",
	ExitIOSMI:               "I/O SMI",
	ExitOtherSMI:            "other SMI",
	ExitInterruptWindow:     "interrupt window",
	ExitNMIWindow:           "NMI window",
	ExitTaskSwitch:          "task switch",
	ExitCPUID:               "CPUID",
	ExitGETSEC:              "GETSEC",
	ExitHLT:                 "HLT",
	ExitINVD:                "INVD",
	ExitINVLPG:              "INVLPG",
	ExitRDPMC:               "RDPMC",
	ExitRDTSC:               "RDTSC",
	ExitRSM:                 "RSM",
	ExitVMCALL:              "VMCALL",
	ExitVMCLEAR:             "VMCLEAR",
	ExitVMLAUNCH:            "VMLAUNCH",
	ExitVMPTRLD:             "VMPTRLD",
	ExitVMPTRST:             "VMPTRST",
	ExitVMREAD:              "VMREAD",
	ExitVMRESUME:            "VMRESUME",
	ExitVMWRITE:             "VMWRITE",
	ExitVMXOFF:              "VMXOFF",
	ExitVMXON:               "VMXON",
	ExitCRAccess:            "control-register access",
	ExitMOVDR:               "MOV DR",
	ExitIOInstruction:       "I/O instruction",
	ExitRDMSR:               "RDMSR",
	ExitWRMSR:               "WRMSR",
	ExitInvalidGuestState:   "VM-entry failure due to invalid guest state",
	ExitMSRLoading:          "VM-entry failure due to MSR loading",
	ExitMWAIT:               "MWAIT",
	ExitMonitorTrapFlag:     "monitor trap flag",
	ExitMONITOR:             "MONITOR",
	ExitPAUSE:               "PAUSE",
	ExitMachineCheck:        "VM-entry failure due to machine-check event",
	ExitTPRBelowThreshold:   "TPR below threshold",
	ExitAPICAccess:          "APIC access",
	ExitVirtualizedEOI:      "virtualized EOI",
	ExitGDTRIDTRAccess:      "access to GDTR or IDTR",
	ExitLDTRTRAccess:        "access to LDTR or TR",
	ExitEPTViolation:        "EPT violation",
	ExitEPTMisconfig:        "EPT misconfiguration",
	ExitINVEPT:              "INVEPT",
	ExitRDTSCP:              "RDTSCP",
	ExitPreemptionTimer:     "VMX-preemption timer expired",
	ExitINVVPID:             "INVVPID",
	ExitWBINVD:              "WBINVD or WBNOINVD",
	ExitXSETBV:              "XSETBV",
	ExitAPICWrite:           "APIC write",
	ExitRDRAND:              "RDRAND",
	ExitINVPCID:             "INVPCID",
	ExitVMFUNC:              "VMFUNC",
	ExitENCLS:               "ENCLS",
	ExitRDSEED:              "RDSEED",
	ExitPMLFull:             "page-modification log full",
	ExitXSAVES:              "XSAVES",
	ExitXRSTORS:             "XRSTORS",
	ExitPCONFIG:             "PCONFIG",
	ExitSPPEvent:            "SPP-related event",
	ExitUMWAIT:              "UMWAIT",
	ExitTPAUSE:              "TPAUSE",
	ExitLOADIWKEY:           "LOADIWKEY",
	ExitENCLV:               "ENCLV",
	ExitENQCMDPASIDFailure:  "ENQCMD PASID translation failure",
	ExitENQCMDSPASIDFailure: "ENQCMDS PASID translation failure",
	ExitBusLock:             "bus lock",
	ExitInstructionTimeout:  "instruction timeout",
	ExitSEAMCALL:            "SEAMCALL",
	ExitTDCALL:              "TDCALL",
	ExitRDMSRLIST:           "RDMSRLIST",
	ExitWRMSRLIST:           "WRMSRLIST",
}

// String returns the SDM name of the exit reason.
func (r ExitReason) String() string {
	if int(r) < len(exitReasonNames) && exitReasonNames[r] != "" {
		return exitReasonNames[r]
	}
	return fmt.Sprintf("exit reason %d", uint16(r))
}

// Known reports whether r is a basic exit reason this package names.
func (r ExitReason) Known() bool { return int(r) < len(exitReasonNames) && exitReasonNames[r] != "" }

// ExitInfo is the exit-reason field decoded (SDM Vol. 3C, 24.9.1, Table 24-17).
type ExitInfo struct {
	Reason       ExitReason
	Enclave      bool // bit 27: exit from enclave mode
	PendingMTF   bool // bit 28: pending MTF VM exit
	FromRoot     bool // bit 29: exit from VMX root operation (SMM monitor)
	EntryFailure bool // bit 31: VM-entry failure
}

// DecodeExitReason decodes the raw exit-reason field.
func DecodeExitReason(raw uint64) ExitInfo {
	return ExitInfo{
		Reason:       ExitReason(raw),
		Enclave:      raw&(1<<27) != 0,
		PendingMTF:   raw&(1<<28) != 0,
		FromRoot:     raw&(1<<29) != 0,
		EntryFailure: raw&(1<<31) != 0,
	}
}

// GPR numbers a general-purpose register as the hardware does: in exit
// qualifications and instruction information (SDM Vol. 3C, Table 27-3),
// which follow the ModRM/REX register numbers (Vol. 2A, 2.1.5, Table 2-2).
// vcpu.State.GPR is indexed by it.
type GPR uint8

// General-purpose register numbers.
const (
	RAX GPR = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15

	// NumGPRs is the number of general-purpose registers in 64-bit mode.
	NumGPRs = 16
)

var gprNames = [NumGPRs]string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}

// String returns the register's name.
func (g GPR) String() string {
	if int(g) < len(gprNames) {
		return gprNames[g]
	}
	return fmt.Sprintf("GPR(%d)", uint8(g))
}

// ErrBadQualification is wrapped by qualification decoders when the raw
// value holds an encoding the SDM does not define.
var ErrBadQualification = errors.New("exit qualification has an undefined encoding")

// CRAccessType is how a control register was accessed.
type CRAccessType uint8

// Control-register access types (Table 27-3, bits 5:4).
const (
	MovToCR   CRAccessType = 0
	MovFromCR CRAccessType = 1
	CLTS      CRAccessType = 2
	LMSW      CRAccessType = 3
)

// CRAccess is the exit qualification of a control-register access (SDM
// Vol. 3C, 28.2.1, Table 28-3 in newer editions; 27-3 in older).
type CRAccess struct {
	CR         uint8        // 0, 3, 4 or 8
	Type       CRAccessType // MOV to CR, MOV from CR, CLTS, LMSW
	LMSWMemory bool         // LMSW operand in memory
	Reg        GPR          // source or destination of MOV CR
	LMSWSource uint16       // LMSW source data
}

// DecodeCRAccess decodes a control-register-access exit qualification.
func DecodeCRAccess(q uint64) (CRAccess, error) {
	a := CRAccess{
		CR:         uint8(q & 0xF),
		Type:       CRAccessType(q>>4) & 3,
		LMSWMemory: q&(1<<6) != 0,
		Reg:        GPR(q>>8) & 0xF,
		LMSWSource: uint16(q >> 16),
	}
	switch a.CR {
	case 0, 3, 4, 8:
	default:
		return a, fmt.Errorf("control-register access to CR%d: %w", a.CR, ErrBadQualification)
	}
	if (a.Type == CLTS || a.Type == LMSW) && a.CR != 0 {
		return a, fmt.Errorf("CLTS/LMSW exit names CR%d: %w", a.CR, ErrBadQualification)
	}
	return a, nil
}

// DRAccess is the exit qualification of a MOV DR (SDM Vol. 3C, Table 28-4).
type DRAccess struct {
	DR   uint8 // debug register number 0-7
	From bool  // MOV from DR (read); false: MOV to DR (write)
	Reg  GPR
}

// DecodeDRAccess decodes a MOV-DR exit qualification.
func DecodeDRAccess(q uint64) DRAccess {
	return DRAccess{DR: uint8(q & 7), From: q&(1<<4) != 0, Reg: GPR(q>>8) & 0xF}
}

// IOExit is the exit qualification of an I/O instruction (SDM Vol. 3C,
// Table 28-5).
type IOExit struct {
	Port      uint16
	Size      uint8 // access size in bytes: 1, 2 or 4
	In        bool  // IN/INS (true) or OUT/OUTS (false)
	String    bool  // INS/OUTS
	Rep       bool  // REP prefixed
	Immediate bool  // port given as an immediate operand (not DX)
}

// DecodeIOExit decodes an I/O-instruction exit qualification.
func DecodeIOExit(q uint64) (IOExit, error) {
	e := IOExit{
		In:        q&(1<<3) != 0,
		String:    q&(1<<4) != 0,
		Rep:       q&(1<<5) != 0,
		Immediate: q&(1<<6) != 0,
		Port:      uint16(q >> 16),
	}
	switch q & 7 {
	case 0:
		e.Size = 1
	case 1:
		e.Size = 2
	case 3:
		e.Size = 4
	default:
		return e, fmt.Errorf("I/O access size code %d: %w", q&7, ErrBadQualification)
	}
	return e, nil
}

// EPTViolation is the exit qualification of an EPT violation (SDM Vol. 3C,
// 28.2.1, Table 28-7).
type EPTViolation struct {
	Read, Write, Fetch bool // the access that caused the violation
	// Permissions of the guest-physical address (AND over the walk).
	Readable, Writable, Executable bool
	UserExecutable                 bool // mode-based execute control only
	LinearValid                    bool // guest-linear address field valid
	// Translated is meaningful only when LinearValid: true for an access to
	// the translated address, false for a guest paging-structure access.
	Translated     bool
	NMIUnblocking  bool // bit 12: NMI unblocking due to IRET
	ShadowStack    bool // bit 13
	Asynchronous   bool // bit 16: not caused by an instruction
	GuestUser      bool // bit 9 (advanced EPT-violation info): user-mode linear address
	GuestWritable  bool // bit 10 (advanced info)
	GuestExecDisab bool // bit 11 (advanced info): NX
}

// DecodeEPTViolation decodes an EPT-violation exit qualification.
func DecodeEPTViolation(q uint64) EPTViolation {
	return EPTViolation{
		Read:           q&(1<<0) != 0,
		Write:          q&(1<<1) != 0,
		Fetch:          q&(1<<2) != 0,
		Readable:       q&(1<<3) != 0,
		Writable:       q&(1<<4) != 0,
		Executable:     q&(1<<5) != 0,
		UserExecutable: q&(1<<6) != 0,
		LinearValid:    q&(1<<7) != 0,
		Translated:     q&(1<<7) != 0 && q&(1<<8) != 0,
		GuestUser:      q&(1<<9) != 0,
		GuestWritable:  q&(1<<10) != 0,
		GuestExecDisab: q&(1<<11) != 0,
		NMIUnblocking:  q&(1<<12) != 0,
		ShadowStack:    q&(1<<13) != 0,
		Asynchronous:   q&(1<<16) != 0,
	}
}

// InterruptionType is the type of an event in the interruption-information
// fields (SDM Vol. 3C, 24.8.3 and 24.9.2).
type InterruptionType uint8

// Interruption types.
const (
	IntrExternal        InterruptionType = 0
	IntrNMI             InterruptionType = 2
	IntrHardwareExc     InterruptionType = 3
	IntrSoftwareInt     InterruptionType = 4
	IntrPrivSoftwareExc InterruptionType = 5
	IntrSoftwareExc     InterruptionType = 6
	IntrOtherEvent      InterruptionType = 7
)

// Interruption is a decoded interruption-information field (VM-exit
// interruption information, IDT-vectoring information, or VM-entry
// interruption information).
type Interruption struct {
	Vector         uint8
	Type           InterruptionType
	ErrorCodeValid bool
	NMIUnblocking  bool
	Valid          bool
}

// DecodeInterruption decodes an interruption-information field.
func DecodeInterruption(raw uint64) Interruption {
	return Interruption{
		Vector:         uint8(raw),
		Type:           InterruptionType(raw>>8) & 7,
		ErrorCodeValid: raw&(1<<11) != 0,
		NMIUnblocking:  raw&(1<<12) != 0,
		Valid:          raw&(1<<31) != 0,
	}
}

// Encode returns the raw VM-entry interruption-information value.
func (i Interruption) Encode() uint32 {
	v := uint32(i.Vector) | uint32(i.Type&7)<<8
	if i.ErrorCodeValid {
		v |= 1 << 11
	}
	if i.Valid {
		v |= 1 << 31
	}
	return v
}

// Exception vectors used when injecting events (SDM Vol. 3A, 6.15).
const (
	VectorDE  = 0
	VectorDB  = 1
	VectorNMI = 2
	VectorBP  = 3
	VectorUD  = 6
	VectorDF  = 8
	VectorTS  = 10
	VectorNP  = 11
	VectorSS  = 12
	VectorGP  = 13
	VectorPF  = 14
	VectorAC  = 17
	VectorMC  = 18
)

// InjectGP returns the VM-entry interruption information that injects a
// #GP(0) (error code 0 goes in the VM-entry exception error code field).
func InjectGP() uint32 {
	return Interruption{Vector: VectorGP, Type: IntrHardwareExc, ErrorCodeValid: true, Valid: true}.Encode()
}

// InjectUD returns the VM-entry interruption information that injects #UD.
func InjectUD() uint32 {
	return Interruption{Vector: VectorUD, Type: IntrHardwareExc, Valid: true}.Encode()
}

// InstructionError is a VM-instruction error number (SDM Vol. 3C, 31.4,
// Table 31-1; 30.4 in older editions).
type InstructionError uint32

var instructionErrors = [...]string{
	1:  "VMCALL executed in VMX root operation",
	2:  "VMCLEAR with invalid physical address",
	3:  "VMCLEAR with VMXON pointer",
	4:  "VMLAUNCH with non-clear VMCS",
	5:  "VMRESUME with non-launched VMCS",
	6:  "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
	7:  "VM entry with invalid control field(s)",
	8:  "VM entry with invalid host-state field(s)",
	9:  "VMPTRLD with invalid physical address",
	10: "VMPTRLD with VMXON pointer",
	11: "VMPTRLD with incorrect VMCS revision identifier",
	12: "VMREAD/VMWRITE from/to unsupported VMCS component",
	13: "VMWRITE to read-only VMCS component",
	15: "VMXON executed in VMX root operation",
	16: "VM entry with invalid executive-VMCS pointer",
	17: "VM entry with non-launched executive VMCS",
	18: "VM entry with executive-VMCS pointer not VMXON pointer (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)",
	19: "VMCALL with non-clear VMCS (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
	20: "VMCALL with invalid VM-exit control fields",
	22: "VMCALL with incorrect MSEG revision identifier (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
	23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
	24: "VMCALL with invalid SMM-monitor features (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
	25: "VM entry with invalid VM-execution control fields in executive VMCS (when attempting to return from SMM)",
	26: "VM entry with events blocked by MOV SS",
	28: "invalid operand to INVEPT/INVVPID",
}

// String returns the SDM text for the error number.
func (e InstructionError) String() string {
	if int(e) < len(instructionErrors) && instructionErrors[e] != "" {
		return instructionErrors[e]
	}
	return fmt.Sprintf("unknown VM-instruction error %d", uint32(e))
}

// Error makes InstructionError usable as an error.
func (e InstructionError) Error() string {
	return fmt.Sprintf("VM-instruction error %d: %s", uint32(e), e.String())
}
