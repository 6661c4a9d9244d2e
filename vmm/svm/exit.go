// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"errors"
	"fmt"
)

// ExitCode is the VMCB's EXITCODE after #VMEXIT (APM Vol. 2, Appendix C,
// Table C-1 "SVM Intercept Codes").
type ExitCode uint64

// Exit codes. CR, DR and exception exits are ranges: ExitCRRead+n for
// CRn, ExitException+v for vector v. 0x60+n is intercept word 3 bit n,
// 0x80+n word 4 bit n.
const (
	ExitCRRead    ExitCode = 0x000 // 0x000-0x00F: read of CR0-CR15
	ExitCRWrite   ExitCode = 0x010 // 0x010-0x01F: write of CR0-CR15
	ExitDRRead    ExitCode = 0x020 // 0x020-0x02F: read of DR0-DR15
	ExitDRWrite   ExitCode = 0x030 // 0x030-0x03F: write of DR0-DR15
	ExitException ExitCode = 0x040 // 0x040-0x05F: exception vector 0-31

	ExitINTR              ExitCode = 0x060
	ExitNMI               ExitCode = 0x061
	ExitSMI               ExitCode = 0x062
	ExitINIT              ExitCode = 0x063
	ExitVINTR             ExitCode = 0x064
	ExitCR0SelWrite       ExitCode = 0x065
	ExitIDTRRead          ExitCode = 0x066
	ExitGDTRRead          ExitCode = 0x067
	ExitLDTRRead          ExitCode = 0x068
	ExitTRRead            ExitCode = 0x069
	ExitIDTRWrite         ExitCode = 0x06A
	ExitGDTRWrite         ExitCode = 0x06B
	ExitLDTRWrite         ExitCode = 0x06C
	ExitTRWrite           ExitCode = 0x06D
	ExitRDTSC             ExitCode = 0x06E
	ExitRDPMC             ExitCode = 0x06F
	ExitPUSHF             ExitCode = 0x070
	ExitPOPF              ExitCode = 0x071
	ExitCPUID             ExitCode = 0x072
	ExitRSM               ExitCode = 0x073
	ExitIRET              ExitCode = 0x074
	ExitSWINT             ExitCode = 0x075
	ExitINVD              ExitCode = 0x076
	ExitPAUSE             ExitCode = 0x077
	ExitHLT               ExitCode = 0x078
	ExitINVLPG            ExitCode = 0x079
	ExitINVLPGA           ExitCode = 0x07A
	ExitIOIO              ExitCode = 0x07B
	ExitMSR               ExitCode = 0x07C
	ExitTaskSwitch        ExitCode = 0x07D
	ExitFERRFreeze        ExitCode = 0x07E
	ExitShutdown          ExitCode = 0x07F
	ExitVMRUN             ExitCode = 0x080
	ExitVMMCALL           ExitCode = 0x081
	ExitVMLOAD            ExitCode = 0x082
	ExitVMSAVE            ExitCode = 0x083
	ExitSTGI              ExitCode = 0x084
	ExitCLGI              ExitCode = 0x085
	ExitSKINIT            ExitCode = 0x086
	ExitRDTSCP            ExitCode = 0x087
	ExitICEBP             ExitCode = 0x088
	ExitWBINVD            ExitCode = 0x089
	ExitMONITOR           ExitCode = 0x08A
	ExitMWAIT             ExitCode = 0x08B
	ExitMWAITCond         ExitCode = 0x08C
	ExitXSETBV            ExitCode = 0x08D
	ExitRDPRU             ExitCode = 0x08E
	ExitEFERWriteTrap     ExitCode = 0x08F
	ExitCRWriteTrap       ExitCode = 0x090 // 0x090-0x09F: CR0-CR15 write traps
	ExitINVLPGB           ExitCode = 0x0A0
	ExitINVLPGBIllegal    ExitCode = 0x0A1
	ExitINVPCID           ExitCode = 0x0A2
	ExitMCOMMIT           ExitCode = 0x0A3
	ExitTLBSYNC           ExitCode = 0x0A4
	ExitBusLock           ExitCode = 0x0A5
	ExitIdleHLT           ExitCode = 0x0A6
	ExitNPF               ExitCode = 0x400 // nested page fault (15.25.6)
	ExitAVICIncompleteIPI ExitCode = 0x401
	ExitAVICNoAccel       ExitCode = 0x402
	ExitVMGEXIT           ExitCode = 0x403

	// ExitInvalid (VMEXIT_INVALID, -1): VMRUN found the guest state
	// illegal (15.5.1); nothing of the guest ran.
	ExitInvalid ExitCode = 1<<64 - 1
	// ExitBusy (-2): the SEV-SNP VMSA was in use.
	ExitBusy ExitCode = 1<<64 - 2
	// ExitIdleRequired (-3) and ExitInvalidPMC (-4), SEV-SNP.
	ExitIdleRequired ExitCode = 1<<64 - 3
	ExitInvalidPMC   ExitCode = 1<<64 - 4
)

var exitNames = map[ExitCode]string{
	ExitINTR: "INTR", ExitNMI: "NMI", ExitSMI: "SMI", ExitINIT: "INIT", ExitVINTR: "VINTR",
	ExitCR0SelWrite: "CR0_SEL_WRITE", ExitIDTRRead: "IDTR_READ", ExitGDTRRead: "GDTR_READ",
	ExitLDTRRead: "LDTR_READ", ExitTRRead: "TR_READ", ExitIDTRWrite: "IDTR_WRITE", ExitGDTRWrite: "GDTR_WRITE",
	ExitLDTRWrite: "LDTR_WRITE", ExitTRWrite: "TR_WRITE", ExitRDTSC: "RDTSC", ExitRDPMC: "RDPMC",
	ExitPUSHF: "PUSHF", ExitPOPF: "POPF", ExitCPUID: "CPUID", ExitRSM: "RSM", ExitIRET: "IRET",
	ExitSWINT: "SWINT", ExitINVD: "INVD", ExitPAUSE: "PAUSE", ExitHLT: "HLT", ExitINVLPG: "INVLPG",
	ExitINVLPGA: "INVLPGA", ExitIOIO: "IOIO", ExitMSR: "MSR", ExitTaskSwitch: "TASK_SWITCH",
	ExitFERRFreeze: "FERR_FREEZE", ExitShutdown: "SHUTDOWN", ExitVMRUN: "VMRUN", ExitVMMCALL: "VMMCALL",
	ExitVMLOAD: "VMLOAD", ExitVMSAVE: "VMSAVE", ExitSTGI: "STGI", ExitCLGI: "CLGI", ExitSKINIT: "SKINIT",
	ExitRDTSCP: "RDTSCP", ExitICEBP: "ICEBP", ExitWBINVD: "WBINVD", ExitMONITOR: "MONITOR",
	ExitMWAIT: "MWAIT", ExitMWAITCond: "MWAIT_CONDITIONAL", ExitXSETBV: "XSETBV", ExitRDPRU: "RDPRU",
	ExitEFERWriteTrap: "EFER_WRITE_TRAP", ExitINVLPGB: "INVLPGB", ExitINVLPGBIllegal: "INVLPGB_ILLEGAL",
	ExitINVPCID: "INVPCID", ExitMCOMMIT: "MCOMMIT", ExitTLBSYNC: "TLBSYNC", ExitBusLock: "BUSLOCK",
	ExitIdleHLT: "IDLE_HLT", ExitNPF: "NPF", ExitAVICIncompleteIPI: "AVIC_INCOMPLETE_IPI",
	ExitAVICNoAccel: "AVIC_NOACCEL", ExitVMGEXIT: "VMGEXIT", ExitInvalid: "INVALID", ExitBusy: "BUSY",
	ExitIdleRequired: "IDLE_REQUIRED", ExitInvalidPMC: "INVALID_PMC",
}

// String returns the APM's name, VMEXIT_ prefix dropped ("CR3_WRITE",
// "EXCP14", "NPF", "INVALID").
func (c ExitCode) String() string {
	switch {
	case c < ExitCRWrite:
		return fmt.Sprintf("CR%d_READ", c-ExitCRRead)
	case c < ExitDRRead:
		return fmt.Sprintf("CR%d_WRITE", c-ExitCRWrite)
	case c < ExitDRWrite:
		return fmt.Sprintf("DR%d_READ", c-ExitDRRead)
	case c < ExitException:
		return fmt.Sprintf("DR%d_WRITE", c-ExitDRWrite)
	case c < ExitINTR:
		return fmt.Sprintf("EXCP%d", c-ExitException)
	case c >= ExitCRWriteTrap && c < ExitCRWriteTrap+16:
		return fmt.Sprintf("CR%d_WRITE_TRAP", c-ExitCRWriteTrap)
	}
	if n, ok := exitNames[c]; ok {
		return n
	}
	return fmt.Sprintf("exit code %#x", uint64(c))
}

// Known reports whether c is a code Table C-1 defines.
func (c ExitCode) Known() bool {
	if c < ExitINTR || c >= ExitCRWriteTrap && c < ExitCRWriteTrap+16 {
		return true
	}
	_, ok := exitNames[c]
	return ok
}

// Kind groups the exits the hyperkernel tells apart.
type Kind uint8

// Kinds.
const (
	KindOther     Kind = iota // a known exit without decoded information
	KindCR                    // MOV to/from CRn (CR field)
	KindDR                    // MOV to/from DRn (CR field, with the DR number)
	KindException             // an intercepted exception (Exception field)
	KindInterrupt             // INTR, NMI, SMI, INIT, VINTR: nothing to complete
	KindIO                    // IN/OUT/INS/OUTS (IO field)
	KindMSR                   // RDMSR/WRMSR (MSR field)
	KindNPF                   // nested page fault (NPF field)
	KindHLT
	KindCPUID
	KindShutdown // triple fault: the guest is dead
	KindSVMInsn  // VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA
	KindInvalid  // VMEXIT_INVALID: VMRUN refused the state (run CheckVMRUN)
)

var kindNames = [...]string{"other", "CR access", "DR access", "exception", "interrupt", "I/O", "MSR",
	"nested page fault", "HLT", "CPUID", "shutdown", "SVM instruction", "invalid state"}

// String names the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", k)
}

// IOExit is EXITINFO1/EXITINFO2 of an IOIO exit (APM Vol. 2, 15.10.2,
// Figure 15-2).
type IOExit struct {
	Port     uint16
	Size     uint8 // 1, 2 or 4 bytes
	In       bool  // TYPE: 1 = IN/INS
	String   bool  // INS/OUTS
	Rep      bool  // REP prefix
	AddrSize uint8 // 16, 32 or 64; 0 when the processor did not say
	// Segment is the effective segment of INS/OUTS (bits 12:10, with
	// decode assists): SegES ... SegGS; SegNone without decode assists.
	Segment Seg
	// NextRIP is EXITINFO2: the RIP of the instruction after the
	// IN/OUT, given even without NRIP save.
	NextRIP uint64
}

// SegNone is IOExit.Segment when no segment was reported.
const SegNone Seg = 0

// IOIO EXITINFO1 bits (Figure 15-2).
const (
	ioIn       = 1 << 0
	ioReserved = 1<<1 | 7<<13 | 0xFFFFFFFF<<32
	ioStr      = 1 << 2
	ioRep      = 1 << 3
	ioSizeSh   = 4 // SZ8 4, SZ16 5, SZ32 6
	ioAddrSh   = 7 // A16 7, A32 8, A64 9
	ioSegSh    = 10
)

// MSRExit is an MSR exit: EXITINFO1 0 for RDMSR, 1 for WRMSR (15.11);
// the MSR number is in the guest's ECX.
type MSRExit struct{ Write bool }

// NPFExit is a nested page fault (APM Vol. 2, 15.25.6): EXITINFO1 holds a
// #PF-style error code plus where in the walk the fault happened,
// EXITINFO2 the guest-physical address.
type NPFExit struct {
	Present  bool // P: the nested entry was present (a protection fault)
	Write    bool // RW: a write
	User     bool // US: a user access (as the nested walk sees them all)
	Reserved bool // RSV: a reserved bit set in a nested entry
	Fetch    bool // ID: an instruction fetch
	// Final is bit 32: the fault translated the guest's final
	// guest-physical address; TableWalk is bit 33: it translated one of
	// the guest's own page-table entries.
	Final, TableWalk bool
	GPA              uint64 // EXITINFO2
	ErrorCode        uint64 // EXITINFO1 as reported
}

// NPF EXITINFO1 bits.
const (
	NPFPresent   uint64 = 1 << 0
	NPFWrite     uint64 = 1 << 1
	NPFUser      uint64 = 1 << 2
	NPFReserved  uint64 = 1 << 3
	NPFFetch     uint64 = 1 << 4
	NPFFinal     uint64 = 1 << 32
	NPFTableWalk uint64 = 1 << 33
)

// maxPhysBits bounds guest-physical addresses (APM Vol. 2, 5.3.3: 52 bits).
const maxPhysBits = 52

// CRExit is a CR or DR access. With decode assists (APM Vol. 2, 15.33.1)
// EXITINFO1 bit 63 says a MOV and bits 3:0 its general register; otherwise
// (LMSW, CLTS, SMSW, or no decode assists) Decoded is false.
type CRExit struct {
	Reg     uint8 // CRn or DRn
	Write   bool
	Decoded bool  // bit 63: MOV CRn/DRn with GPR valid
	GPR     uint8 // 0 RAX ... 15 R15
}

// ExceptionExit is an intercepted exception: EXITINFO1 holds the error
// code of those that push one, EXITINFO2 the faulting address of #PF
// (15.12).
type ExceptionExit struct {
	Vector    uint8
	ErrorCode uint32
	CR2       uint64 // #PF only
}

// Exit is a decoded #VMEXIT.
type Exit struct {
	Code      ExitCode
	Kind      Kind
	IO        IOExit
	MSR       MSRExit
	NPF       NPFExit
	CR        CRExit
	Exception ExceptionExit
	// Operand is EXITINFO1 of INVLPG (the linear address) and of INTn
	// (the vector) with decode assists.
	Operand uint64
}

// ErrMalformed is wrapped by every DecodeExit error about an exit
// information field the processor could not have written.
var ErrMalformed = errors.New("malformed exit information")

// DecodeExit decodes an exit from EXITCODE, EXITINFO1 and EXITINFO2.
// assists says whether the processor has decode assists (and so fills in
// CR/DR register numbers and I/O segments). It returns an error, wrapping
// ErrMalformed, for information no processor writes, and for unknown exit
// codes; it never panics.
func DecodeExit(code ExitCode, info1, info2 uint64, assists bool) (Exit, error) {
	e := Exit{Code: code, Kind: KindOther}
	bad := func(format string, a ...any) (Exit, error) {
		return e, fmt.Errorf("%v: %w: "+format, append([]any{code, ErrMalformed}, a...)...)
	}
	switch {
	case code < ExitDRRead:
		e.Kind = KindCR
		return decodeMov(e, info1, assists, bad)
	case code < ExitException:
		e.Kind = KindDR
		return decodeMov(e, info1, assists, bad)
	case code < ExitINTR:
		e.Kind = KindException
		e.Exception.Vector = uint8(code - ExitException)
		if info1>>32 != 0 {
			return bad("error code %#x wider than 32 bits", info1)
		}
		e.Exception.ErrorCode = uint32(info1)
		if e.Exception.Vector == 14 {
			e.Exception.CR2 = info2
		}
		return e, nil
	}
	switch code {
	case ExitINTR, ExitNMI, ExitSMI, ExitINIT, ExitVINTR:
		e.Kind = KindInterrupt
	case ExitIOIO:
		e.Kind = KindIO
		io, err := decodeIO(info1, info2, assists)
		e.IO = io
		if err != nil {
			return bad("%v", err)
		}
	case ExitMSR:
		e.Kind = KindMSR
		if info1 > 1 {
			return bad("EXITINFO1 %#x is neither 0 (RDMSR) nor 1 (WRMSR)", info1)
		}
		e.MSR.Write = info1 == 1
	case ExitNPF:
		e.Kind = KindNPF
		e.NPF = NPFExit{
			Present: info1&NPFPresent != 0, Write: info1&NPFWrite != 0, User: info1&NPFUser != 0,
			Reserved: info1&NPFReserved != 0, Fetch: info1&NPFFetch != 0,
			Final: info1&NPFFinal != 0, TableWalk: info1&NPFTableWalk != 0,
			GPA: info2, ErrorCode: info1,
		}
		if e.NPF.Final && e.NPF.TableWalk {
			return bad("EXITINFO1 %#x: both the final-address (32) and table-walk (33) bits", info1)
		}
		if info2>>maxPhysBits != 0 {
			return bad("guest-physical address %#x beyond %d bits", info2, maxPhysBits)
		}
	case ExitHLT:
		e.Kind = KindHLT
	case ExitCPUID:
		e.Kind = KindCPUID
	case ExitShutdown:
		e.Kind = KindShutdown
	case ExitVMRUN, ExitVMMCALL, ExitVMLOAD, ExitVMSAVE, ExitSTGI, ExitCLGI, ExitSKINIT, ExitINVLPGA:
		e.Kind = KindSVMInsn
	case ExitInvalid:
		e.Kind = KindInvalid
	case ExitINVLPG:
		e.Operand = info1
	case ExitSWINT:
		if assists && info1 > 0xFF {
			return bad("INTn vector %#x wider than 8 bits", info1)
		}
		e.Operand = info1
	default:
		if !code.Known() {
			return e, fmt.Errorf("%v: unknown exit code", code)
		}
	}
	return e, nil
}

// decodeMov fills in a CR or DR access.
func decodeMov(e Exit, info1 uint64, assists bool, bad func(string, ...any) (Exit, error)) (Exit, error) {
	n := uint8(e.Code) & 0x1F
	e.CR = CRExit{Reg: n & 0xF, Write: n >= 0x10}
	if !assists {
		return e, nil
	}
	if info1&^(1<<63|0xF) != 0 {
		return bad("EXITINFO1 %#x has bits other than 63 and 3:0", info1)
	}
	e.CR.Decoded = info1&(1<<63) != 0
	if e.CR.Decoded {
		e.CR.GPR = uint8(info1 & 0xF)
	} else if info1 != 0 {
		return bad("EXITINFO1 %#x names a register without the MOV bit", info1)
	}
	return e, nil
}

// decodeIO decodes IOIO's EXITINFO1 and EXITINFO2.
func decodeIO(info1, info2 uint64, assists bool) (IOExit, error) {
	io := IOExit{
		Port:    uint16(info1 >> 16),
		In:      info1&ioIn != 0,
		String:  info1&ioStr != 0,
		Rep:     info1&ioRep != 0,
		NextRIP: info2,
	}
	if info1&ioReserved != 0 {
		return io, fmt.Errorf("EXITINFO1 %#x sets reserved bits %#x", info1, info1&ioReserved)
	}
	switch info1 >> ioSizeSh & 7 {
	case 1:
		io.Size = 1
	case 2:
		io.Size = 2
	case 4:
		io.Size = 4
	default:
		return io, fmt.Errorf("EXITINFO1 %#x: operand size bits 6:4 = %03b, not one of SZ8, SZ16, SZ32", info1, info1>>ioSizeSh&7)
	}
	switch info1 >> ioAddrSh & 7 {
	case 0:
		if io.String {
			return io, fmt.Errorf("EXITINFO1 %#x: string I/O without an address size", info1)
		}
	case 1:
		io.AddrSize = 16
	case 2:
		io.AddrSize = 32
	case 4:
		io.AddrSize = 64
	default:
		return io, fmt.Errorf("EXITINFO1 %#x: address size bits 9:7 = %03b, not one of A16, A32, A64", info1, info1>>ioAddrSh&7)
	}
	seg := info1 >> ioSegSh & 7
	if seg > 5 {
		return io, fmt.Errorf("EXITINFO1 %#x: segment %d is not ES..GS", info1, seg)
	}
	if io.String && assists {
		io.Segment = SegES + Seg(seg)*0x10 // ES, CS, SS, DS, FS, GS slots are 16 bytes apart in that order
	}
	return io, nil
}
