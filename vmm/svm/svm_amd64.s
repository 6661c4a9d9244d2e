//go:build tamago && amd64

// SVM instructions for bare metal (GOOS=tamago). Go's assembler has no SVM
// mnemonics, so each is written as BYTE directives (AMD APM Vol. 3,
// "VMRUN", "VMLOAD", "VMSAVE", "CLGI", "STGI": 0F 01 D8, DA, DB, DD,
// DC). The functions are ABI0.

#include "textflag.h"

// Offsets of vmx.GuestRegs fields (the register file every backend
// shares; checked against the Go struct by a test in package vmx).
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
#define G_FPU 128
#define G_HOSTFPU 136
#define G_XCR0 144
#define G_HOSTXCR0 152
#define G_XCR0MAX 160
#define G_PKRU 176
#define G_SWITCHPKRU 180

// XSTATE_BV's offset in an XSAVE area (Intel SDM Vol. 1, 13.4.2).
#define XSAVE_BV 512

// func run(vmcb, host uint64, regs *vmx.GuestRegs)
//
// Runs the guest of the VMCB at physical address vmcb until its next
// #VMEXIT (AMD APM Vol. 2, 15.5 "VMRUN Instruction"). With the global
// interrupt flag clear, it saves the host's hidden state (FS and GS with
// the Go runtime's TLS, TR, LDTR, KernelGSBase, the SYSCALL and SYSENTER
// MSRs) with VMSAVE to the page at physical address host, loads the
// guest's from the VMCB with VMLOAD, loads the guest GPRs but RAX and RSP
// (which the VMCB holds) and its x87/SSE state, and executes VMRUN. The
// processor comes back after VMRUN with the host's RSP, RAX and RIP;
// run then stores the guest GPRs into regs, saves the guest's hidden
// state to the VMCB (VMSAVE), restores the host's (VMLOAD), switches the
// x87/SSE state back and sets GIF again.
TEXT ·run(SB),NOSPLIT,$0-24
	MOVQ	vmcb+0(FP), AX
	MOVQ	host+8(FP), CX
	MOVQ	regs+16(FP), DI
	PUSHQ	BP
	PUSHQ	BX
	PUSHQ	R12
	PUSHQ	R13
	PUSHQ	R14
	PUSHQ	R15
	PUSHFQ

	// clgi
	BYTE $0x0F; BYTE $0x01; BYTE $0xDD
	MOVQ	CX, AX
	// vmsave rax (host)
	BYTE $0x0F; BYTE $0x01; BYTE $0xDB
	MOVQ	vmcb+0(FP), AX
	// vmload rax (guest)
	BYTE $0x0F; BYTE $0x01; BYTE $0xDA

	MOVQ	G_FPU(DI), CX
	TESTQ	CX, CX
	JEQ	nofpu
	FXRSTOR64	(CX)	// guest x87/SSE state: no Go code runs until the exit
	MOVQ	G_XCR0(DI), AX	// the components above SSE: see vmx.GuestRegs
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
	MOVL	G_SWITCHPKRU(DI), AX
	TESTL	AX, AX
	JEQ	nopkru
	MOVL	G_PKRU(DI), AX	// PKRU = the guest's (ECX and EDX must be 0)
	XORL	CX, CX
	XORL	DX, DX
	// wrpkru
	BYTE $0x0F; BYTE $0x01; BYTE $0xEF
nopkru:
	MOVQ	vmcb+0(FP), AX	// VMRUN's operand
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
	MOVQ	G_RDI(DI), DI
	// vmrun rax
	BYTE $0x0F; BYTE $0x01; BYTE $0xD8

	// #VMEXIT: RSP and RAX are the host's again (RSP as at VMRUN, so
	// the assembler's FP offsets hold); the other GPRs are the guest's.
	PUSHQ	DI		// guest RDI
	MOVQ	regs+16(FP), DI
	MOVQ	CX, G_RCX(DI)
	MOVQ	DX, G_RDX(DI)
	MOVQ	BX, G_RBX(DI)
	MOVQ	BP, G_RBP(DI)
	MOVQ	SI, G_RSI(DI)
	MOVQ	R8, G_R8(DI)
	MOVQ	R9, G_R9(DI)
	MOVQ	R10, G_R10(DI)
	MOVQ	R11, G_R11(DI)
	MOVQ	R12, G_R12(DI)
	MOVQ	R13, G_R13(DI)
	MOVQ	R14, G_R14(DI)
	MOVQ	R15, G_R15(DI)
	POPQ	CX
	MOVQ	CX, G_RDI(DI)

	MOVL	G_SWITCHPKRU(DI), AX
	TESTL	AX, AX
	JEQ	nopkru2
	XORL	CX, CX
	// rdpkru: EAX = PKRU, EDX = 0
	BYTE $0x0F; BYTE $0x01; BYTE $0xEE
	MOVL	AX, G_PKRU(DI)
nopkru2:
	MOVQ	vmcb+0(FP), AX
	// vmsave rax (guest)
	BYTE $0x0F; BYTE $0x01; BYTE $0xDB
	MOVQ	host+8(FP), AX
	// vmload rax (host)
	BYTE $0x0F; BYTE $0x01; BYTE $0xDA

	MOVQ	G_FPU(DI), CX
	TESTQ	CX, CX
	JEQ	nofpu2
	FXSAVE64	(CX)
	MOVQ	G_HOSTXCR0(DI), DX
	TESTQ	DX, DX
	JEQ	hostfpu		// no XSAVE: XCR0 is never switched
	MOVQ	CX, R9		// the area
	XORL	CX, CX
	XGETBV			// the guest's XCR0, whether its XSETBV exited or not
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, G_XCR0(DI)
	CMPQ	AX, G_HOSTXCR0(DI)
	JEQ	hostfpu
	MOVQ	G_XCR0MAX(DI), AX	// the components above SSE the area holds
	ANDQ	$~3, AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	XSAVE64	(R9)
	MOVQ	G_HOSTXCR0(DI), AX
	MOVQ	AX, DX		// XCR0 = the host's
	SHRQ	$32, DX
	XORL	CX, CX
	XSETBV
hostfpu:
	MOVQ	G_HOSTFPU(DI), CX
	FXRSTOR64	(CX)
nofpu2:
	// stgi
	BYTE $0x0F; BYTE $0x01; BYTE $0xDC
	POPFQ
	POPQ	R15
	POPQ	R14
	POPQ	R13
	POPQ	R12
	POPQ	BX
	POPQ	BP
	RET
