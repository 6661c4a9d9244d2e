package vmx

import (
	"errors"
	"unsafe"
)

// Encoding is the byte encoding of one VMX instruction as used by the
// bare-metal assembly (vmx_amd64.s), which has to spell them as BYTE
// directives because Go's assembler has no VMX mnemonics. The same table
// is checked against a disassembler by a hosted test, and the test checks
// that every "enc:" marker in vmx_amd64.s is followed by these bytes.
type Encoding struct {
	Name  string // marker name in vmx_amd64.s
	Intel string // the instruction in Intel syntax, with the operands used
	Bytes []byte // encoding (SDM Vol. 2C, Chapter 6 "VMX instruction reference")
}

// Encodings returns the VMX instruction encodings used by vmx_amd64.s.
func Encodings() []Encoding {
	return []Encoding{
		// VMXON m64: F3 0F C7 /6; ModRM 00 110 000 = [rax].
		{"VMXON", "vmxon qword ptr [rax]", []byte{0xF3, 0x0F, 0xC7, 0x30}},
		// VMXOFF: 0F 01 C4.
		{"VMXOFF", "vmxoff", []byte{0x0F, 0x01, 0xC4}},
		// VMCLEAR m64: 66 0F C7 /6; [rax].
		{"VMCLEAR", "vmclear qword ptr [rax]", []byte{0x66, 0x0F, 0xC7, 0x30}},
		// VMPTRLD m64: 0F C7 /6; [rax].
		{"VMPTRLD", "vmptrld qword ptr [rax]", []byte{0x0F, 0xC7, 0x30}},
		// VMREAD r/m64, r64: 0F 78 /r; ModRM 11 000 011: rm=rbx (destination), reg=rax (field).
		{"VMREAD", "vmread rbx, rax", []byte{0x0F, 0x78, 0xC3}},
		// VMWRITE r64, r/m64: 0F 79 /r; ModRM 11 000 011: reg=rax (field), rm=rbx (value).
		{"VMWRITE", "vmwrite rax, rbx", []byte{0x0F, 0x79, 0xC3}},
		// VMLAUNCH: 0F 01 C2.
		{"VMLAUNCH", "vmlaunch", []byte{0x0F, 0x01, 0xC2}},
		// VMRESUME: 0F 01 C3.
		{"VMRESUME", "vmresume", []byte{0x0F, 0x01, 0xC3}},
		// INVEPT r64, m128: 66 0F 38 80 /r; ModRM 00 000 011: reg=rax (type), [rbx] (descriptor).
		{"INVEPT", "invept rax, oword ptr [rbx]", []byte{0x66, 0x0F, 0x38, 0x80, 0x03}},
		// INVVPID r64, m128: 66 0F 38 81 /r; ModRM 00 000 011.
		{"INVVPID", "invvpid rax, oword ptr [rbx]", []byte{0x66, 0x0F, 0x38, 0x81, 0x03}},
	}
}

// RFLAGS bits that report the outcome of a VMX instruction (SDM Vol. 3C,
// 31.2 "Conventions").
const (
	rflagsCF = 1 << 0
	rflagsZF = 1 << 6
)

// Errors of VMX instructions. VMfailValid comes back as an
// InstructionError read from the VM-instruction error field.
var (
	// ErrVMFailInvalid is VMfailInvalid (CF=1): there is no current VMCS
	// (or VMXON failed), so no error number is available.
	ErrVMFailInvalid = errors.New("VMfailInvalid (CF=1): no current VMCS or invalid operand")
	// ErrVMFailValid is VMfailValid (ZF=1) when the error number could not
	// be read.
	ErrVMFailValid = errors.New("VMfailValid (ZF=1)")
)

// Outcome is the result of a VMX instruction as its RFLAGS report it.
type Outcome uint8

// Outcomes (SDM Vol. 3C, 31.2).
const (
	VMSucceed Outcome = iota
	VMFailInvalid
	VMFailValid
)

// OutcomeOf decodes RFLAGS after a VMX instruction: CF=1 is VMfailInvalid,
// ZF=1 VMfailValid, neither VMsucceed.
func OutcomeOf(rflags uint64) Outcome {
	switch {
	case rflags&rflagsCF != 0:
		return VMFailInvalid
	case rflags&rflagsZF != 0:
		return VMFailValid
	}
	return VMSucceed
}

// GuestRegs holds the guest registers that the VMCS does not: all GPRs
// but RSP (GUEST_RSP is in the VMCS) and CR2. The entry routine loads them
// before VMLAUNCH/VMRESUME and stores them on VM exit. The layout is fixed:
// vmx_amd64.s addresses the fields by the offsets in its G_* defines,
// which a hosted test compares with this struct.
type GuestRegs struct {
	RAX, RCX, RDX, RBX uint64
	RBP, RSI, RDI      uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	CR2                uint64

	// FPU, when set, holds the guest's x87, MMX and SSE state: the entry
	// routine loads it (FXRSTOR64) just before VM entry and saves it
	// (FXSAVE64) right after VM exit, then loads HostFPU, so that no Go
	// code ever runs on guest FPU state nor a guest on the host's. Nil
	// for guests that never touch the FPU (the test guest). Both areas
	// must be 16-byte aligned (NewFXArea).
	FPU, HostFPU *FXArea

	// XCR0 and HostXCR0, when they differ, make the entry routine switch
	// the state components above x87 and SSE too (Intel SDM Vol. 1,
	// 13.3 "Enabling the XSAVE Feature Set"): FPU is then the start of an
	// XSAVE area with room for the components of XCR0Max (UseXSAVE).
	// After the FXRSTOR the routine sets XCR0 to the guest's and
	// XRSTORs the components of XCR0Max beyond SSE, with XSTATE_BV first
	// cut to XCR0 so that the restore never faults on a component the
	// guest has since turned off (13.8.1). After the exit it reads XCR0
	// back into XCR0 (where the guest's XSETBV did not exit, as under
	// QEMU's TCG, that is how its value is learned), XSAVEs the same
	// components, and sets XCR0 back to the host's before loading
	// HostFPU. All zero: the FPU is switched with FXSAVE alone.
	XCR0, HostXCR0, XCR0Max uint64
	// XSAVESize is the size of the XSAVE area FPU starts (XSAVEArea),
	// 0 without one.
	XSAVESize int

	// PKRU is the guest's protection-key rights register (Intel SDM
	// Vol. 3A, 4.6.2). With SwitchPKRU set, the entry routine loads it
	// (WRPKRU) just before the guest runs and saves it (RDPKRU) right
	// after the exit, whatever the guest's XCR0: a guest may use
	// protection keys without XSAVE managing PKRU. The host core must
	// have CR4.PKE set for both instructions; its own accesses are to
	// supervisor pages, which protection keys do not govern, so the
	// guest's value is left in place. Only the AMD-V routine switches
	// it so far.
	PKRU, SwitchPKRU uint32
}

// XSAVEArea returns the XSAVE area FPU starts, or nil.
func (r *GuestRegs) XSAVEArea() []byte {
	if r.FPU == nil || r.XSAVESize == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(r.FPU)), r.XSAVESize)
}

// XSAVE area layout (SDM Vol. 1, 13.4): the legacy region (the FXSAVE
// image), then the XSAVE header, whose first word is XSTATE_BV.
const (
	XSAVEHeader  = 512
	XSAVEMinSize = 576
	xsaveAlign   = 64
)

// UseXSAVE gives r an XSAVE area of size bytes (at least XSAVEMinSize,
// aligned to 64 bytes as XSAVE and XRSTOR require) in its initial state,
// with room for the components of xcr0Max; makes FPU its legacy region,
// sets XCR0 to its reset value (x87 only), and HostXCR0 to host, the
// XCR0 of the cores the vCPU runs on.
func (r *GuestRegs) UseXSAVE(size int, xcr0Max, host uint64) {
	size = max(size, XSAVEMinSize)
	buf := make([]byte, size+xsaveAlign-1)
	off := (xsaveAlign - int(uintptr(unsafe.Pointer(&buf[0]))%xsaveAlign)) % xsaveAlign
	r.FPU = (*FXArea)(unsafe.Pointer(&buf[off]))
	r.XSAVESize, r.XCR0Max = size, xcr0Max
	r.FPU.Reset()
	r.XCR0, r.HostXCR0 = 1, host
}

// FXArea is the 512-byte FXSAVE/FXRSTOR memory image (SDM Vol. 1,
// 10.5.1, Table 10-2).
type FXArea [512]byte

// FX image offsets (SDM Vol. 1, Table 10-2).
const (
	fxFCW   = 0  // x87 control word
	fxMXCSR = 24 // SSE control and status
)

// NewFXArea returns an FXSAVE image in its initial state (see Reset),
// aligned to 16 bytes as FXRSTOR requires.
func NewFXArea() *FXArea {
	// Carve the image out of a larger allocation rather than retry until
	// one happens to be aligned: if this is inlined into a caller whose
	// image does not escape, the allocation lives on the stack and every
	// retry would get the same, possibly unaligned, slot.
	buf := new([len(FXArea{}) + fxAlign - 1]byte)
	p := unsafe.Pointer(&buf[0])
	a := (*FXArea)(unsafe.Add(p, (fxAlign-uintptr(p)%fxAlign)%fxAlign))
	a.Reset()
	return a
}

// fxAlign is the alignment FXSAVE and FXRSTOR require of their image.
const fxAlign = 16

// Reset puts the image in the processor's initial state: after FNINIT,
// control word 0x037F and all registers empty; MXCSR 0x1F80 (SDM Vol. 1,
// 11.6.4 and 8.1.5).
func (a *FXArea) Reset() {
	*a = FXArea{}
	a[fxFCW], a[fxFCW+1] = 0x7F, 0x03
	a[fxMXCSR], a[fxMXCSR+1] = 0x80, 0x1F
}

// Reg returns a pointer to the register numbered g in exit
// qualifications, or nil for RSP (which lives in the VMCS GUEST_RSP field)
// and for numbers above 15.
func (r *GuestRegs) Reg(g GPR) *uint64 {
	switch g {
	case RAX:
		return &r.RAX
	case RCX:
		return &r.RCX
	case RDX:
		return &r.RDX
	case RBX:
		return &r.RBX
	case RBP:
		return &r.RBP
	case RSI:
		return &r.RSI
	case RDI:
		return &r.RDI
	case R8:
		return &r.R8
	case R9:
		return &r.R9
	case R10:
		return &r.R10
	case R11:
		return &r.R11
	case R12:
		return &r.R12
	case R13:
		return &r.R13
	case R14:
		return &r.R14
	case R15:
		return &r.R15
	}
	return nil
}

// INVEPT and INVVPID types (SDM Vol. 3C, 29.4.3).
const (
	InvEPTSingleContext uint64 = 1
	InvEPTAllContext    uint64 = 2

	InvVPIDIndividualAddress   uint64 = 0
	InvVPIDSingleContext       uint64 = 1
	InvVPIDAllContext          uint64 = 2
	InvVPIDSingleContextGlobal uint64 = 3
)
