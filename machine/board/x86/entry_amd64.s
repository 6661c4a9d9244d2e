// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago && linkcpuinit

// big-iron provides its own cpuinit (tamago's `linkcpuinit` build tag drops
// tamago's) for three reasons that tamago's generic entry cannot serve:
//
//  1. The 8259 PICs must be masked before interrupts are enabled. On PC
//     platforms the BIOS leaves IRQ0 (PIT) unmasked, and tamago enables
//     interrupts (STI) before any IDT exists, so the first timer tick would
//     triple-fault the machine.
//  2. The boot loader's hand-off registers (EAX magic, EBX pointer to the
//     Multiboot information or the PVH hvm_start_info) are clobbered by
//     tamago's entry; we save them for the board code.
//  3. We map all of 0-4 GiB with 2 MiB pages (MMIO above 3 GiB uncached),
//     without 1 GiB pages, which QEMU's default TCG CPU models lack.
//
// The code below runs in 32-bit protected mode with paging off (the state
// both Multiboot 1 and PVH guarantee), although Go assembles it as amd64:
// every instruction is chosen so that its encoding means the same in both
// modes (no REX prefixes, no RIP-relative operands) until the far return
// into the 64-bit code segment.
//
// Fixed low-memory layout (shared with tamago's AP trampoline, which loads
// CR3 from PML4T and uses 0x4000-0x6040):
//
//	0x7000 hand-off: EAX (u32), EBX (u32)
//	0x7100 boot GDT (null, code64, data), 0x7180 its GDTR
//	0x9000 PML4, 0xa000 PDPT, 0xb000-0xefff PD0-PD3, 0xf000 PT0
//	0x70000 copy of 0x9000-0xffff, 0x77000 copy of page 0, as the loader
//	        left them (see ReadPhys)

#include "textflag.h"

#define HANDOFF  0x7000
#define BOOTGDT  0x7100
#define BOOTGDTR 0x7180
#define PML4T    0x9000
#define PDPT     0xa000
#define PD0      0xb000
#define PT0      0xf000
#define SAVED    0x70000
#define MSR_EFER 0xc0000080

TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD

	// 1. save the loader hand-off registers
	MOVL	$HANDOFF, DI
	MOVL	AX, 0(DI)
	MOVL	BX, 4(DI)

	// 2. mask every line of both 8259 PICs (OCW1 = 0xff), 8259A data
	// sheet "Operation Command Words"; ports 0x21 (master), 0xa1 (slave)
	MOVL	$0xff, AX
	MOVL	$0x21, DX
	OUTB
	MOVL	$0xa1, DX
	OUTB

	// temporary stack below the page tables
	MOVL	$PML4T, SP

	// 3. keep what the loader may have placed where the page tables go
	MOVL	$PML4T, SI
	MOVL	$SAVED, DI
	MOVL	$0x7000, CX
	REP;	MOVSB
	// and page 0, which the page tables leave unmapped (nil guard) but
	// where loaders put data (QEMU's PVH memory map)
	XORL	SI, SI
	MOVL	$(SAVED+0x7000), DI
	MOVL	$0x1000, CX
	REP;	MOVSB

	// clear PML4, PDPT, PD0-3 and PT0
	XORL	AX, AX
	MOVL	$PML4T, DI
	MOVL	$0x7000, CX
	REP;	STOSB

	// PML4[0] -> PDPT (P, R/W)
	MOVL	$PML4T, DI
	MOVL	$(PDPT|3), 0(DI)

	// PDPT[0..3] -> PD0..PD3
	MOVL	$PDPT, DI
	MOVL	$(PD0|3), 0(DI)
	MOVL	$(PD0+0x1000|3), 8(DI)
	MOVL	$(PD0+0x2000|3), 16(DI)
	MOVL	$(PD0+0x3000|3), 24(DI)

	// PD0..PD3: 2048 2 MiB pages covering 0-4 GiB (P, R/W, PS); the top
	// GiB holds MMIO (LAPIC, IOAPIC, PCI BARs) and is mapped PCD|PWT.
	MOVL	$PD0, DI
	XORL	AX, AX
	MOVL	$2048, CX
pd_loop:
	MOVL	AX, BX
	ORL	$0x83, BX
	CMPL	AX, $0xc0000000
	JCS	pd_store
	ORL	$0x18, BX
pd_store:
	MOVL	BX, 0(DI)
	ADDL	$8, DI
	ADDL	$0x200000, AX
	DECL	CX
	JNE	pd_loop

	// PD0[0] -> PT0: the first 2 MiB in 4 KiB pages, page 0 absent so
	// that nil dereferences fault
	MOVL	$PD0, DI
	MOVL	$(PT0|3), 0(DI)
	MOVL	$(PT0+8), DI
	MOVL	$0x1003, AX
	MOVL	$511, CX
pt_loop:
	MOVL	AX, 0(DI)
	ADDL	$8, DI
	ADDL	$0x1000, AX
	DECL	CX
	JNE	pt_loop

	// boot GDT: null, 64-bit code (selector 0x08), data (selector 0x10)
	MOVL	$BOOTGDT, DI
	MOVL	$0, 0(DI)
	MOVL	$0, 4(DI)
	MOVL	$0, 8(DI)
	MOVL	$0x00209a00, 12(DI)
	MOVL	$0, 16(DI)
	MOVL	$0x00009200, 20(DI)
	MOVL	$BOOTGDTR, DI
	MOVL	$(BOOTGDT<<16 | 23), 0(DI)	// limit 23, base low 16 bits
	MOVL	$0, 4(DI)			// base high bits
	LGDT	0(DI)

	// 4. enter IA-32e mode, Intel SDM Vol. 3A 10.8.5 "Initializing
	// IA-32e Mode": CR4.PAE, CR3, EFER.LME, then CR0.PG
	MOVL	CR4, AX
	ORL	$(1<<5 | 1<<7), AX	// PAE, PGE
	MOVL	AX, CR4
	MOVL	$PML4T, AX
	MOVL	AX, CR3
	MOVL	$MSR_EFER, CX
	RDMSR
	ORL	$(1<<8), AX		// LME
	WRMSR
	MOVL	CR0, AX
	ORL	$(1<<31 | 1<<1 | 1<<0), AX	// PG, MP, PE
	ANDL	$~(1<<30 | 1<<29 | 1<<2), AX	// clear CD, NW, EM
	MOVL	AX, CR0

	// Far return into the 64-bit code segment. In 32-bit mode a Go
	// RIP-relative LEAL yields target-(address after the LEAL), so add
	// the address after the LEAL, found with a CALL.
	CALL	·entryPC<>(SB)		// AX = address of the LEAL below
	LEAL	·entry64<>(SB), BX	// 6 bytes: 8d 1d rel32
	ADDL	$6, AX
	ADDL	BX, AX
	PUSHQ	$0x08			// 32-bit: push imm8 (CS)
	PUSHQ	AX			// 32-bit: push eax (EIP)
	RETFQ				// 32-bit: dec eax; retf

// entryPC returns its own return address in AX; it is called from 32-bit
// code, where MOVL (SP), AX and RET have their 32-bit meaning.
TEXT ·entryPC<>(SB),NOSPLIT|NOFRAME,$0
	MOVL	0(SP), AX
	RET

TEXT ·entry64<>(SB),NOSPLIT|NOFRAME,$0
	// data segment registers -> boot GDT data descriptor
	MOVL	$0x10, AX
	BYTE	$0x8e; BYTE $0xd8	// mov ds, eax
	BYTE	$0x8e; BYTE $0xc0	// mov es, eax
	BYTE	$0x8e; BYTE $0xd0	// mov ss, eax
	BYTE	$0x8e; BYTE $0xe0	// mov fs, eax
	BYTE	$0x8e; BYTE $0xe8	// mov gs, eax

	// switch to the GDT in the image (same layout); the APs load the same
	// one through tamago's amd64.gdtptr (see smp.go)
	MOVQ	$·gdtptr<>(SB), AX
	LGDT	0(AX)

	CALL	sse_enable(SB)

	// Go runtime stack at the top of its RAM, as tamago expects
	MOVQ	runtime∕goos·RamStart(SB), SP
	MOVQ	runtime∕goos·RamSize(SB), AX
	MOVQ	runtime∕goos·RamStackOffset(SB), BX
	ADDQ	AX, SP
	SUBQ	BX, SP

	// The PICs are masked and no LAPIC timer is armed, so enabling
	// interrupts here is safe; tamago's idle code (HLT) needs them on.
	STI
	JMP	_rt0_tamago_start(SB)

// The image GDT: null, 64-bit code (0x08), data (0x10).
DATA	·gdt<>+0x00(SB)/8, $0x0000000000000000
DATA	·gdt<>+0x08(SB)/8, $0x00209a0000000000
DATA	·gdt<>+0x10(SB)/8, $0x0000920000000000
GLOBL	·gdt<>(SB),RODATA,$24

DATA	·gdtptr<>+0x00(SB)/2, $(3*8-1)
DATA	·gdtptr<>+0x02(SB)/8, $·gdt<>(SB)
GLOBL	·gdtptr<>(SB),RODATA,$(2+8)

// func imageGDT() uintptr
TEXT ·imageGDT(SB),NOSPLIT,$0-8
	MOVQ	$·gdt<>(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
