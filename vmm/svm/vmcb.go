// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"encoding/binary"
	"fmt"
)

// VMCBSize is the size of a VMCB: one 4 KiB page, 4 KiB aligned (APM Vol.
// 2, 15.5.1). The control area is its first 1024 bytes (Table B-1), the
// state save area starts at SaveAreaOffset (Table B-2).
const (
	VMCBSize       = 4096
	SaveAreaOffset = 0x400
)

// Field is a scalar VMCB field: its byte offset in bits 15:0 and its
// width in bytes (1, 2, 4 or 8) in bits 19:16. Fields are little-endian.
type Field uint32

func field(off uint16, size uint8) Field {
	return Field(off) | Field(size)<<16
}

// Offset is the field's byte offset in the VMCB.
func (f Field) Offset() int {
	return int(f & 0xFFFF)
}

// Size is the field's width in bytes.
func (f Field) Size() int {
	return int(f >> 16 & 0xF)
}

// VMCB control area (APM Vol. 2, Appendix B, Table B-1).
const (
	// Intercept vectors: CR reads 15:0 and writes 31:16; DR likewise;
	// exceptions by vector; then the three instruction-intercept words
	// (see Intercept).
	CtlInterceptCR         Field = 0x000 | 4<<16
	CtlInterceptDR         Field = 0x004 | 4<<16
	CtlInterceptExceptions Field = 0x008 | 4<<16
	CtlInterceptWord3      Field = 0x00C | 4<<16 // INTR ... SHUTDOWN
	CtlInterceptWord4      Field = 0x010 | 4<<16 // VMRUN ... CR write traps
	CtlInterceptWord5      Field = 0x014 | 4<<16 // INVLPGB ... IDLE_HLT
	// PAUSE filter (15.14.4).
	CtlPauseFilterThreshold Field = 0x03C | 2<<16
	CtlPauseFilterCount     Field = 0x03E | 2<<16
	// Physical bases of the I/O and MSR permission maps (15.10.1, 15.11).
	CtlIOPMBase   Field = 0x040 | 8<<16
	CtlMSRPMBase  Field = 0x048 | 8<<16
	CtlTSCOffset  Field = 0x050 | 8<<16 // 15.30.5
	CtlGuestASID  Field = 0x058 | 4<<16 // 15.16
	CtlTLBControl Field = 0x05C | 1<<16 // TLB_CONTROL (15.16.1)
	// Virtual interrupt control (15.21.1): V_TPR 7:0, V_IRQ 8, V_GIF 9,
	// V_INTR_PRIO 19:16, V_IGN_TPR 20, V_INTR_MASKING 24, V_GIF_ENABLE
	// 25, AVIC_ENABLE 31.
	CtlVIntr       Field = 0x060 | 4<<16
	CtlVIntrVector Field = 0x064 | 4<<16 // V_INTR_VECTOR 7:0
	// Interrupt shadow (15.21.5): bit 0 INTERRUPT_SHADOW, bit 1
	// GUEST_INTERRUPT_MASK (the guest's RFLAGS.IF, written at #VMEXIT).
	CtlInterruptShadow Field = 0x068 | 8<<16
	// Exit information (15.6).
	CtlExitCode    Field = 0x070 | 8<<16
	CtlExitInfo1   Field = 0x078 | 8<<16
	CtlExitInfo2   Field = 0x080 | 8<<16
	CtlExitIntInfo Field = 0x088 | 8<<16 // 15.7.2; error code in 63:32
	// Bit 0 NP_ENABLE (15.25.3), bit 1 SEV, bit 2 SEV-ES.
	CtlNestedCtl   Field = 0x090 | 8<<16
	CtlAVICAPICBar Field = 0x098 | 8<<16 // 15.29
	CtlGHCB        Field = 0x0A0 | 8<<16 // SEV-ES
	CtlEventInj    Field = 0x0A8 | 8<<16 // EVENTINJ (15.20); error code in 63:32
	CtlNCR3        Field = 0x0B0 | 8<<16 // nested page table root (15.25.3)
	CtlVirtExt     Field = 0x0B8 | 8<<16 // bit 0 LBR virtualization, bit 1 virtual VMSAVE/VMLOAD
	CtlCleanBits   Field = 0x0C0 | 4<<16 // VMCB clean bits (15.15.3)
	CtlNRIP        Field = 0x0C8 | 8<<16 // next sequential RIP (15.7.1, NRIPS)
	CtlInsnLen     Field = 0x0D0 | 1<<16 // number of guest instruction bytes fetched (15.33)
	// CtlInsnBytes is the first of the 15 guest instruction bytes
	// (decode assists); read them with VMCB.InstructionBytes.
	CtlInsnBytes         Field = 0x0D1 | 1<<16
	CtlAVICBackingPage   Field = 0x0E0 | 8<<16
	CtlAVICLogicalTable  Field = 0x0F0 | 8<<16
	CtlAVICPhysicalTable Field = 0x0F8 | 8<<16
	CtlVMSA              Field = 0x108 | 8<<16 // SEV-ES save area
)

// insnBytesMax is the size of the guest instruction bytes field.
const insnBytesMax = 15

// VMCB state save area (APM Vol. 2, Appendix B, Table B-2; offsets from
// the start of the VMCB, the table's plus SaveAreaOffset).
const (
	SaveCPL          Field = 0x4CB | 1<<16
	SaveEFER         Field = 0x4D0 | 8<<16
	SaveCR4          Field = 0x548 | 8<<16
	SaveCR3          Field = 0x550 | 8<<16
	SaveCR0          Field = 0x558 | 8<<16
	SaveDR7          Field = 0x560 | 8<<16
	SaveDR6          Field = 0x568 | 8<<16
	SaveRFLAGS       Field = 0x570 | 8<<16
	SaveRIP          Field = 0x578 | 8<<16
	SaveRSP          Field = 0x5D8 | 8<<16
	SaveSCET         Field = 0x5E0 | 8<<16
	SaveSSP          Field = 0x5E8 | 8<<16
	SaveISSTAddr     Field = 0x5F0 | 8<<16
	SaveRAX          Field = 0x5F8 | 8<<16
	SaveSTAR         Field = 0x600 | 8<<16
	SaveLSTAR        Field = 0x608 | 8<<16
	SaveCSTAR        Field = 0x610 | 8<<16
	SaveSFMASK       Field = 0x618 | 8<<16
	SaveKernelGSBase Field = 0x620 | 8<<16
	SaveSysenterCS   Field = 0x628 | 8<<16
	SaveSysenterESP  Field = 0x630 | 8<<16
	SaveSysenterEIP  Field = 0x638 | 8<<16
	SaveCR2          Field = 0x640 | 8<<16
	SaveGPAT         Field = 0x668 | 8<<16 // guest PAT, with nested paging (15.25.8)
	SaveDbgCtl       Field = 0x670 | 8<<16
	SaveBrFrom       Field = 0x678 | 8<<16
	SaveBrTo         Field = 0x680 | 8<<16
	SaveLastExcpFrom Field = 0x688 | 8<<16
	SaveLastExcpTo   Field = 0x690 | 8<<16
	SaveSpecCtrl     Field = 0x6E0 | 8<<16
)

var fieldNames = map[Field]string{
	CtlInterceptCR: "INTERCEPT_CR", CtlInterceptDR: "INTERCEPT_DR", CtlInterceptExceptions: "INTERCEPT_EXCEPTIONS",
	CtlInterceptWord3: "INTERCEPT_MISC1", CtlInterceptWord4: "INTERCEPT_MISC2", CtlInterceptWord5: "INTERCEPT_MISC3",
	CtlPauseFilterThreshold: "PAUSE_FILTER_THRESHOLD", CtlPauseFilterCount: "PAUSE_FILTER_COUNT",
	CtlIOPMBase: "IOPM_BASE_PA", CtlMSRPMBase: "MSRPM_BASE_PA", CtlTSCOffset: "TSC_OFFSET",
	CtlGuestASID: "GUEST_ASID", CtlTLBControl: "TLB_CONTROL", CtlVIntr: "V_INTR", CtlVIntrVector: "V_INTR_VECTOR",
	CtlInterruptShadow: "INTERRUPT_SHADOW", CtlExitCode: "EXITCODE", CtlExitInfo1: "EXITINFO1",
	CtlExitInfo2: "EXITINFO2", CtlExitIntInfo: "EXITINTINFO", CtlNestedCtl: "NP_ENABLE",
	CtlAVICAPICBar: "AVIC_APIC_BAR", CtlGHCB: "GHCB_PA", CtlEventInj: "EVENTINJ", CtlNCR3: "N_CR3",
	CtlVirtExt: "LBR_VIRTUALIZATION_ENABLE", CtlCleanBits: "VMCB_CLEAN", CtlNRIP: "NRIP",
	CtlInsnLen: "GUEST_INSTR_BYTES_FETCHED", CtlInsnBytes: "GUEST_INSTR_BYTES",
	CtlAVICBackingPage: "AVIC_BACKING_PAGE", CtlAVICLogicalTable: "AVIC_LOGICAL_TABLE",
	CtlAVICPhysicalTable: "AVIC_PHYSICAL_TABLE", CtlVMSA: "VMSA_PA",
	SaveCPL: "CPL", SaveEFER: "EFER", SaveCR4: "CR4", SaveCR3: "CR3", SaveCR0: "CR0", SaveDR7: "DR7",
	SaveDR6: "DR6", SaveRFLAGS: "RFLAGS", SaveRIP: "RIP", SaveRSP: "RSP", SaveSCET: "S_CET", SaveSSP: "SSP",
	SaveISSTAddr: "ISST_ADDR", SaveRAX: "RAX", SaveSTAR: "STAR", SaveLSTAR: "LSTAR", SaveCSTAR: "CSTAR",
	SaveSFMASK: "SFMASK", SaveKernelGSBase: "KernelGSBase", SaveSysenterCS: "SYSENTER_CS",
	SaveSysenterESP: "SYSENTER_ESP", SaveSysenterEIP: "SYSENTER_EIP", SaveCR2: "CR2", SaveGPAT: "G_PAT",
	SaveDbgCtl: "DBGCTL", SaveBrFrom: "BR_FROM", SaveBrTo: "BR_TO", SaveLastExcpFrom: "LASTEXCPFROM",
	SaveLastExcpTo: "LASTEXCPTO", SaveSpecCtrl: "SPEC_CTRL",
}

// String returns the APM's name of the field and its offset.
func (f Field) String() string {
	if n, ok := fieldNames[f]; ok {
		return fmt.Sprintf("%s (%#03x)", n, f.Offset())
	}
	return fmt.Sprintf("VMCB field %#03x/%d", f.Offset(), f.Size())
}

// TLB_CONTROL values (APM Vol. 2, 15.16.1).
const (
	TLBControlNothing        = 0
	TLBControlFlushAll       = 1 // every ASID's entries
	TLBControlFlushASID      = 3 // this guest's entries (FlushByAsid)
	TLBControlFlushASIDLocal = 7 // this guest's non-global entries (FlushByAsid)
)

// V_INTR (CtlVIntr) bits (APM Vol. 2, 15.21.1, Table B-1 offset 060h).
const (
	VIntrTPRMask       uint64 = 0xFF
	VIntrIRQ           uint64 = 1 << 8
	VIntrGIF           uint64 = 1 << 9
	VIntrPrioShift            = 16
	VIntrPrioMask      uint64 = 0xF << VIntrPrioShift
	VIntrIgnoreTPR     uint64 = 1 << 20
	VIntrMasking       uint64 = 1 << 24
	VIntrGIFEnable     uint64 = 1 << 25
	VIntrAVICEnable    uint64 = 1 << 31
	InterruptShadow    uint64 = 1 << 0 // CtlInterruptShadow
	GuestInterruptMask uint64 = 1 << 1 // CtlInterruptShadow
	NestedCtlNP        uint64 = 1 << 0 // CtlNestedCtl: NP_ENABLE
	VirtExtLBR         uint64 = 1 << 0 // CtlVirtExt
	VirtExtVMSAVE      uint64 = 1 << 1 // CtlVirtExt: virtual VMSAVE/VMLOAD
)

// CleanBit is one VMCB clean bit: the hypervisor sets it to tell the
// processor that it did not change that group of fields since the last
// VMRUN with this VMCB (APM Vol. 2, 15.15.3, Table 15-10).
type CleanBit uint32

// Clean bits.
const (
	CleanIntercepts CleanBit = 1 << 0  // intercept vectors, TSC offset, PAUSE filter
	CleanIOPM       CleanBit = 1 << 1  // IOPM_BASE, MSRPM_BASE
	CleanASID       CleanBit = 1 << 2  // ASID
	CleanTPR        CleanBit = 1 << 3  // V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR
	CleanNP         CleanBit = 1 << 4  // NP_ENABLE, N_CR3, G_PAT
	CleanCRx        CleanBit = 1 << 5  // CR0, CR3, CR4, EFER
	CleanDRx        CleanBit = 1 << 6  // DR6, DR7
	CleanDT         CleanBit = 1 << 7  // GDT, IDT
	CleanSeg        CleanBit = 1 << 8  // CS, DS, SS, ES, CPL
	CleanCR2        CleanBit = 1 << 9  // CR2
	CleanLBR        CleanBit = 1 << 10 // DbgCtlMsr, br_from/to, lastint from/to
	CleanAVIC       CleanBit = 1 << 11 // AVIC APIC_BAR, backing page, tables
)

// Seg is a segment register's 16-byte slot in the state save area:
// selector at +0, attributes at +2, limit at +4, base at +8 (Table B-2).
type Seg uint16

// Segment slots.
const (
	SegES   Seg = 0x400
	SegCS   Seg = 0x410
	SegSS   Seg = 0x420
	SegDS   Seg = 0x430
	SegFS   Seg = 0x440
	SegGS   Seg = 0x450
	SegGDTR Seg = 0x460 // limit and base only
	SegLDTR Seg = 0x470
	SegIDTR Seg = 0x480 // limit and base only
	SegTR   Seg = 0x490
)

var segNames = map[Seg]string{SegES: "ES", SegCS: "CS", SegSS: "SS", SegDS: "DS", SegFS: "FS", SegGS: "GS",
	SegGDTR: "GDTR", SegLDTR: "LDTR", SegIDTR: "IDTR", SegTR: "TR"}

// String names the register.
func (s Seg) String() string {
	if n, ok := segNames[s]; ok {
		return n
	}
	return fmt.Sprintf("segment %#x", uint16(s))
}

// Selector, Attrib, Limit and Base are the fields of a segment slot.
func (s Seg) Selector() Field { return field(uint16(s), 2) }

// Attrib is the segment's attribute field (see Segment.Attrib).
func (s Seg) Attrib() Field { return field(uint16(s)+2, 2) }

// Limit is the segment's 32-bit limit field, expanded (byte granular).
func (s Seg) Limit() Field { return field(uint16(s)+4, 4) }

// Base is the segment's 64-bit base field.
func (s Seg) Base() Field { return field(uint16(s)+8, 8) }

// Segment is a segment register as the VMCB holds it.
type Segment struct {
	Selector uint16
	// Attrib packs the descriptor's attribute bits: 7:0 are descriptor
	// bits 47:40 (type 3:0, S 4, DPL 6:5, P 7), 11:8 are descriptor bits
	// 55:52 (AVL 8, L 9, D/B 10, G 11) (APM Vol. 2, 15.5.1 and Table B-2).
	Attrib uint16
	Limit  uint32
	Base   uint64
}

// Segment attribute bits.
const (
	AttrTypeMask uint16 = 0xF
	AttrS        uint16 = 1 << 4
	AttrDPLShift        = 5
	AttrP        uint16 = 1 << 7
	AttrAVL      uint16 = 1 << 8
	AttrL        uint16 = 1 << 9
	AttrDB       uint16 = 1 << 10
	AttrG        uint16 = 1 << 11
)

// VMCB is a view of one VMCB page. On bare metal it points at the page
// whose physical address VMRUN takes; hosted tests use any array.
type VMCB struct {
	b *[VMCBSize]byte
}

// NewVMCB returns a view of page.
func NewVMCB(page *[VMCBSize]byte) *VMCB { return &VMCB{b: page} }

// Bytes is the page the VMCB views.
func (v *VMCB) Bytes() *[VMCBSize]byte { return v.b }

// Read returns the value of f, zero-extended.
func (v *VMCB) Read(f Field) uint64 {
	p := v.b[f.Offset():]
	switch f.Size() {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(p))
	case 4:
		return uint64(binary.LittleEndian.Uint32(p))
	case 8:
		return binary.LittleEndian.Uint64(p)
	}
	panic(fmt.Sprintf("svm: %v has width %d", f, f.Size()))
}

// Write stores x in f, truncated to the field's width.
func (v *VMCB) Write(f Field, x uint64) {
	p := v.b[f.Offset():]
	switch f.Size() {
	case 1:
		p[0] = byte(x)
	case 2:
		binary.LittleEndian.PutUint16(p, uint16(x))
	case 4:
		binary.LittleEndian.PutUint32(p, uint32(x))
	case 8:
		binary.LittleEndian.PutUint64(p, x)
	default:
		panic(fmt.Sprintf("svm: %v has width %d", f, f.Size()))
	}
}

// ReadSegment returns segment register s.
func (v *VMCB) ReadSegment(s Seg) Segment {
	return Segment{
		Selector: uint16(v.Read(s.Selector())),
		Attrib:   uint16(v.Read(s.Attrib())),
		Limit:    uint32(v.Read(s.Limit())),
		Base:     v.Read(s.Base()),
	}
}

// WriteSegment stores segment register s.
func (v *VMCB) WriteSegment(s Seg, seg Segment) {
	v.Write(s.Selector(), uint64(seg.Selector))
	v.Write(s.Attrib(), uint64(seg.Attrib))
	v.Write(s.Limit(), uint64(seg.Limit))
	v.Write(s.Base(), seg.Base)
}

// InstructionBytes returns the guest instruction bytes the processor
// fetched for the latest #VMEXIT (decode assists, APM Vol. 2, 15.33.5):
// at most 15, none without decode assists.
func (v *VMCB) InstructionBytes() []byte {
	n := int(v.Read(CtlInsnLen))
	if n > insnBytesMax {
		n = insnBytesMax
	}
	off := CtlInsnBytes.Offset()
	return v.b[off : off+n]
}

// Intercept is one intercept bit: 32 × the intercept word (at byte offset
// 4 × word) plus the bit in it, as APM Vol. 2, Table B-1 numbers them.
type Intercept uint16

// InterceptCRRead, InterceptCRWrite, InterceptDRRead, InterceptDRWrite
// and InterceptException return the bit for register or vector n.
func InterceptCRRead(n int) Intercept { return Intercept(n & 15) }

// InterceptCRWrite is the write intercept of CRn.
func InterceptCRWrite(n int) Intercept { return Intercept(16 + n&15) }

// InterceptDRRead is the read intercept of DRn.
func InterceptDRRead(n int) Intercept { return Intercept(32 + n&15) }

// InterceptDRWrite is the write intercept of DRn.
func InterceptDRWrite(n int) Intercept { return Intercept(48 + n&15) }

// InterceptException is the intercept of exception vector n (0-31).
func InterceptException(n int) Intercept { return Intercept(64 + n&31) }

// Instruction and event intercepts, word 3 (offset 00Ch), word 4 (010h)
// and word 5 (014h) of Table B-1. Bit n of word 3 corresponds to exit
// code 0x60+n, bit n of word 4 to 0x80+n (Appendix C).
const (
	InterceptINTR        Intercept = 96 + iota // physical INTR
	InterceptNMI                               // physical NMI
	InterceptSMI                               // physical SMI
	InterceptINIT                              // physical INIT
	InterceptVINTR                             // virtual INTR
	InterceptCR0SelWrite                       // writes of CR0 bits other than TS and MP
	InterceptIDTRRead
	InterceptGDTRRead
	InterceptLDTRRead
	InterceptTRRead
	InterceptIDTRWrite
	InterceptGDTRWrite
	InterceptLDTRWrite
	InterceptTRWrite
	InterceptRDTSC
	InterceptRDPMC
	InterceptPUSHF
	InterceptPOPF
	InterceptCPUID
	InterceptRSM
	InterceptIRET
	InterceptINTn
	InterceptINVD
	InterceptPAUSE
	InterceptHLT
	InterceptINVLPG
	InterceptINVLPGA
	InterceptIOIOProt   // I/O through the IOPM
	InterceptMSRProt    // RDMSR/WRMSR through the MSRPM
	InterceptTaskSwitch // task switches
	InterceptFERRFreeze // FERR_FREEZE
	InterceptShutdown   // shutdown events (triple fault)
)

// Word 4 intercepts.
const (
	InterceptVMRUN Intercept = 128 + iota // must be set: VMRUN checks it (15.5.1)
	InterceptVMMCALL
	InterceptVMLOAD
	InterceptVMSAVE
	InterceptSTGI
	InterceptCLGI
	InterceptSKINIT
	InterceptRDTSCP
	InterceptICEBP
	InterceptWBINVD
	InterceptMONITOR
	InterceptMWAIT
	InterceptMWAITCond
	InterceptXSETBV
	InterceptRDPRU
	InterceptEFERWriteTrap
	// InterceptCR0WriteTrap is the first of the 16 CRn write traps.
	InterceptCR0WriteTrap
)

// Word 5 intercepts.
const (
	InterceptINVLPGB Intercept = 160 + iota
	InterceptINVLPGBIllegal
	InterceptINVPCID
	InterceptMCOMMIT
	InterceptTLBSYNC
	InterceptBusLock
	InterceptIdleHLT
)

// Field is the intercept word holding the bit, and Mask its bit there.
func (i Intercept) Field() Field { return field(uint16(i/32*4), 4) }

// Mask is the bit of i in its word.
func (i Intercept) Mask() uint64 { return 1 << (i % 32) }

// SetIntercept turns intercept i on or off.
func (v *VMCB) SetIntercept(i Intercept, on bool) {
	f := i.Field()
	w := v.Read(f)
	if on {
		w |= i.Mask()
	} else {
		w &^= i.Mask()
	}
	v.Write(f, w)
}

// Intercepted reports whether intercept i is on.
func (v *VMCB) Intercepted(i Intercept) bool { return v.Read(i.Field())&i.Mask() != 0 }
