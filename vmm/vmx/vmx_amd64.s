//go:build tamago && amd64

// VMX instructions for bare metal (GOOS=tamago). Go's assembler has no VMX
// mnemonics, so each is written as BYTE directives after an "enc:NAME"
// marker; the bytes must equal Encodings() in insn.go (checked by a hosted
// test, which also disassembles them). All functions are ABI0 and return
// RFLAGS as left by the instruction; OutcomeOf decodes it.

#include "textflag.h"

// Offsets of GuestRegs fields (checked against the Go struct by a test).
#define G_RAX 0
#define G_RCX 8
#define G_RDX 16
#define G_RBX 24
#define G_RBP 32
#define G_RSI 40
#define G_RDI 48
#define G_R8 56
#define G_R9 64
#define G_R10 72
#define G_R11 80
#define G_R12 88
#define G_R13 96
#define G_R14 104
#define G_R15 112
#define G_CR2 120
#define G_FPU 128
#define G_HOSTFPU 136
#define G_XCR0 144
#define G_HOSTXCR0 152
#define G_XCR0MAX 160

// XSTATE_BV's offset in an XSAVE area (SDM Vol. 1, 13.4.2).
#define XSAVE_BV 512

// VMCS encodings of HOST_RSP and HOST_RIP (SDM Vol. 3D, B.4.4).
#define VMCS_HOST_RSP 0x6C14
#define VMCS_HOST_RIP 0x6C16

// func vmxon(pa uint64) (rflags uint64)
TEXT ·vmxon(SB),NOSPLIT,$0-16
	LEAQ	pa+0(FP), AX
	// enc:VMXON vmxon qword ptr [rax]
	BYTE $0xF3; BYTE $0x0F; BYTE $0xC7; BYTE $0x30
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+8(FP)
	RET

// func vmxoff() (rflags uint64)
TEXT ·vmxoff(SB),NOSPLIT,$0-8
	// enc:VMXOFF vmxoff
	BYTE $0x0F; BYTE $0x01; BYTE $0xC4
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+0(FP)
	RET

// func vmclear(pa uint64) (rflags uint64)
TEXT ·vmclear(SB),NOSPLIT,$0-16
	LEAQ	pa+0(FP), AX
	// enc:VMCLEAR vmclear qword ptr [rax]
	BYTE $0x66; BYTE $0x0F; BYTE $0xC7; BYTE $0x30
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+8(FP)
	RET

// func vmptrld(pa uint64) (rflags uint64)
TEXT ·vmptrld(SB),NOSPLIT,$0-16
	LEAQ	pa+0(FP), AX
	// enc:VMPTRLD vmptrld qword ptr [rax]
	BYTE $0x0F; BYTE $0xC7; BYTE $0x30
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+8(FP)
	RET

// func vmread(field uint64) (value, rflags uint64)
TEXT ·vmread(SB),NOSPLIT,$0-24
	MOVQ	field+0(FP), AX
	XORQ	BX, BX
	// enc:VMREAD vmread rbx, rax
	BYTE $0x0F; BYTE $0x78; BYTE $0xC3
	PUSHFQ
	POPQ	AX
	MOVQ	BX, value+8(FP)
	MOVQ	AX, rflags+16(FP)
	RET

// func vmwrite(field, value uint64) (rflags uint64)
TEXT ·vmwrite(SB),NOSPLIT,$0-24
	MOVQ	field+0(FP), AX
	MOVQ	value+8(FP), BX
	// enc:VMWRITE vmwrite rax, rbx
	BYTE $0x0F; BYTE $0x79; BYTE $0xC3
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+16(FP)
	RET

// func invept(typ uint64, desc *[2]uint64) (rflags uint64)
TEXT ·invept(SB),NOSPLIT,$0-24
	MOVQ	typ+0(FP), AX
	MOVQ	desc+8(FP), BX
	// enc:INVEPT invept rax, oword ptr [rbx]
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x80; BYTE $0x03
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+16(FP)
	RET

// func invvpid(typ uint64, desc *[2]uint64) (rflags uint64)
TEXT ·invvpid(SB),NOSPLIT,$0-24
	MOVQ	typ+0(FP), AX
	MOVQ	desc+8(FP), BX
	// enc:INVVPID invvpid rax, oword ptr [rbx]
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x81; BYTE $0x03
	PUSHFQ
	POPQ	AX
	MOVQ	AX, rflags+16(FP)
	RET

// func vmenter(regs *GuestRegs, resume uint64) (rflags uint64)
//
// Saves the host's callee state (BP, BX, R12-R15, RFLAGS) on the stack,
// points HOST_RSP at it and HOST_RIP at vmexitEntry, loads CR2 and all
// guest GPRs but RSP from regs, and executes VMLAUNCH (resume == 0) or
// VMRESUME. On a VM exit the processor continues at vmexitEntry, which
// stores the guest GPRs into regs and returns to vmenter's caller with
// rflags 0. If the entry instruction fails it falls through here and
// rflags reports VMfailInvalid/VMfailValid.
TEXT ·vmenter(SB),NOSPLIT,$0-24
	MOVQ	regs+0(FP), DI
	MOVQ	resume+8(FP), SI
	PUSHQ	BP
	PUSHQ	BX
	PUSHQ	R12
	PUSHQ	R13
	PUSHQ	R14
	PUSHQ	R15
	PUSHFQ
	PUSHQ	DI		// regs, at 0(SP) when vmexitEntry runs

	MOVQ	$VMCS_HOST_RSP, AX
	MOVQ	SP, BX
	// enc:VMWRITE vmwrite rax, rbx
	BYTE $0x0F; BYTE $0x79; BYTE $0xC3
	JLS	failed		// CF=1 or ZF=1
	MOVQ	$VMCS_HOST_RIP, AX
	LEAQ	·vmexitEntry(SB), BX
	// enc:VMWRITE vmwrite rax, rbx
	BYTE $0x0F; BYTE $0x79; BYTE $0xC3
	JLS	failed

	MOVQ	G_FPU(DI), AX
	TESTQ	AX, AX
	JEQ	nofpu
	FXRSTOR64	(AX)	// guest x87/SSE state: no Go code runs until the exit
	MOVQ	G_XCR0(DI), AX
	CMPQ	AX, G_HOSTXCR0(DI)
	JEQ	nofpu
	MOVQ	AX, DX		// XCR0 = the guest's
	SHRQ	$32, DX
	XORL	CX, CX
	XSETBV
	MOVQ	G_FPU(DI), CX
	ANDQ	AX, XSAVE_BV(CX)	// XSTATE_BV within XCR0
	MOVQ	G_XCR0MAX(DI), AX	// the components above SSE the area holds
	ANDQ	$~3, AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	XRSTOR64	(CX)
nofpu:
	MOVQ	G_CR2(DI), AX
	MOVQ	AX, CR2		// leaves flags undefined: test after it
	TESTQ	SI, SI
	MOVQ	G_RAX(DI), AX
	MOVQ	G_RCX(DI), CX
	MOVQ	G_RDX(DI), DX
	MOVQ	G_RBX(DI), BX
	MOVQ	G_RBP(DI), BP
	MOVQ	G_RSI(DI), SI
	MOVQ	G_R8(DI), R8
	MOVQ	G_R9(DI), R9
	MOVQ	G_R10(DI), R10
	MOVQ	G_R11(DI), R11
	MOVQ	G_R12(DI), R12
	MOVQ	G_R13(DI), R13
	MOVQ	G_R14(DI), R14
	MOVQ	G_R15(DI), R15
	MOVQ	G_RDI(DI), DI	// MOV leaves the TESTQ flags intact
	JNE	resume
	// enc:VMLAUNCH vmlaunch
	BYTE $0x0F; BYTE $0x01; BYTE $0xC2
	JMP	failed
resume:
	// enc:VMRESUME vmresume
	BYTE $0x0F; BYTE $0x01; BYTE $0xC3
failed:
	PUSHFQ
	POPQ	AX
	POPQ	DI
	POPFQ
	POPQ	R15
	POPQ	R14
	POPQ	R13
	POPQ	R12
	POPQ	BX
	POPQ	BP
	MOVQ	AX, rflags+16(FP)
	RET

// func vmexitEntry()
//
// HOST_RIP. Runs on VM exit with RSP = HOST_RSP as set by vmenter, all
// GPRs holding guest values, and RFLAGS = 2. Never called from Go.
TEXT ·vmexitEntry(SB),NOSPLIT|NOFRAME,$0-0
	PUSHQ	AX		// guest RAX
	MOVQ	8(SP), AX	// regs
	MOVQ	CX, G_RCX(AX)
	MOVQ	DX, G_RDX(AX)
	MOVQ	BX, G_RBX(AX)
	MOVQ	BP, G_RBP(AX)
	MOVQ	SI, G_RSI(AX)
	MOVQ	DI, G_RDI(AX)
	MOVQ	R8, G_R8(AX)
	MOVQ	R9, G_R9(AX)
	MOVQ	R10, G_R10(AX)
	MOVQ	R11, G_R11(AX)
	MOVQ	R12, G_R12(AX)
	MOVQ	R13, G_R13(AX)
	MOVQ	R14, G_R14(AX)
	MOVQ	R15, G_R15(AX)
	POPQ	CX
	MOVQ	CX, G_RAX(AX)
	MOVQ	CR2, CX
	MOVQ	CX, G_CR2(AX)
	MOVQ	G_FPU(AX), CX
	TESTQ	CX, CX
	JEQ	nofpu
	FXSAVE64	(CX)
	MOVQ	AX, R8		// regs (the guest's R8 and R9 are saved)
	MOVQ	G_HOSTXCR0(R8), DX
	TESTQ	DX, DX
	JEQ	hostfpu		// no XSAVE: XCR0 is never switched
	MOVQ	CX, R9		// the area
	XORL	CX, CX
	XGETBV			// the guest's XCR0, whether its XSETBV exited or not
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, G_XCR0(R8)
	CMPQ	AX, G_HOSTXCR0(R8)
	JEQ	hostfpu
	MOVQ	G_XCR0MAX(R8), AX	// the components above SSE the area holds
	ANDQ	$~3, AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	XSAVE64	(R9)
	MOVQ	G_HOSTXCR0(R8), AX
	MOVQ	AX, DX		// XCR0 = the host's
	SHRQ	$32, DX
	XORL	CX, CX
	XSETBV
hostfpu:
	MOVQ	G_HOSTFPU(R8), CX
	FXRSTOR64	(CX)
nofpu:
	// Stack as vmenter left it: 0 regs, 8 host RFLAGS, 16 R15, 24 R14,
	// 32 R13, 40 R12, 48 BX, 56 BP, 64 return address, 72 regs argument,
	// 80 resume argument, 88 result. Restore with loads (a POP past what
	// this function pushed would unbalance the assembler's SP tracking).
	MOVQ	16(SP), R15
	MOVQ	24(SP), R14
	MOVQ	32(SP), R13
	MOVQ	40(SP), R12
	MOVQ	48(SP), BX
	MOVQ	56(SP), BP
	MOVQ	$0, 88(SP)	// result: rflags 0 means VM exit
	PUSHQ	8(SP)		// address computed before the push: host RFLAGS
	POPFQ			// IF as before entry
	ADDQ	$64, SP
	RET

// func readCR0() uint64
TEXT ·readCR0(SB),NOSPLIT,$0-8
	MOVQ	CR0, AX
	MOVQ	AX, ret+0(FP)
	RET

// func writeCR0(v uint64)
TEXT ·writeCR0(SB),NOSPLIT,$0-8
	MOVQ	v+0(FP), AX
	MOVQ	AX, CR0
	RET

// func readCR3() uint64
TEXT ·readCR3(SB),NOSPLIT,$0-8
	MOVQ	CR3, AX
	MOVQ	AX, ret+0(FP)
	RET

// func readCR4() uint64
TEXT ·readCR4(SB),NOSPLIT,$0-8
	MOVQ	CR4, AX
	MOVQ	AX, ret+0(FP)
	RET

// func writeCR4(v uint64)
TEXT ·writeCR4(SB),NOSPLIT,$0-8
	MOVQ	v+0(FP), AX
	MOVQ	AX, CR4
	RET

// func writeXCR0(v uint64)
TEXT ·writeXCR0(SB),NOSPLIT,$0-8
	MOVQ	v+0(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	XORL	CX, CX
	XSETBV
	RET

// func readMSR(msr uint32) uint64
TEXT ·readMSR(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+8(FP)
	RET

// func writeMSR(msr uint32, v uint64)
TEXT ·writeMSR(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	MOVQ	v+8(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	RET

// func sgdt(dst *[10]byte)
TEXT ·sgdt(SB),NOSPLIT,$0-8
	MOVQ	dst+0(FP), AX
	SGDT	(AX)
	RET

// func sidt(dst *[10]byte)
TEXT ·sidt(SB),NOSPLIT,$0-8
	MOVQ	dst+0(FP), AX
	SIDT	(AX)
	RET

// func segments() (cs, ss, ds, es, fs, gs, tr uint16)
TEXT ·segments(SB),NOSPLIT,$0-14
	MOVW	CS, AX
	MOVW	AX, cs+0(FP)
	MOVW	SS, AX
	MOVW	AX, ss+2(FP)
	MOVW	DS, AX
	MOVW	AX, ds+4(FP)
	MOVW	ES, AX
	MOVW	AX, es+6(FP)
	MOVW	FS, AX
	MOVW	AX, fs+8(FP)
	MOVW	GS, AX
	MOVW	AX, gs+10(FP)
	STRW	AX
	MOVW	AX, tr+12(FP)
	RET
