// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package mmio emulates the guest instruction behind an access to a
// device's memory-mapped registers: the hypervisor sees only an EPT
// violation at a guest-physical address, so it fetches the instruction
// at the guest's RIP (translating it through the guest's own page
// tables), decodes it with golang.org/x/arch/x86/x86asm, and performs the
// access against the device model.
//
// MOV between a general register or an immediate and memory is
// emulated, which is how Linux reads and writes device registers
// (readl/writel and the APIC accessors); anything else is refused with
// an error naming the instruction, for the hypervisor to report.
package mmio

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// Errors.
var (
	// ErrUnsupported: the instruction is not one this package emulates.
	ErrUnsupported = errors.New("mmio: instruction not emulated")
	// ErrPageFault: the guest's page tables do not map the address.
	ErrPageFault = errors.New("mmio: guest page not present")
)

// Translate returns the guest-physical address of the linear address va
// under 4-level paging with the PML4 at cr3 (SDM Vol. 3A, 4.5), following
// 1 GiB and 2 MiB pages. It is Paging{Mode: Paging4, CR3: cr3}.Translate.
func Translate(mem devices.GuestMemory, cr3, va uint64) (uint64, error) {
	return Paging{Mode: Paging4, CR3: cr3}.Translate(mem, va)
}

// Fetch reads the instruction bytes at the guest's linear rip under
// 4-level paging with the PML4 at cr3 (up to 15, fewer where the next
// page is not mapped). It is Paging{Mode: Paging4, CR3: cr3}.Fetch.
func Fetch(mem devices.GuestMemory, cr3, rip uint64, buf *[15]byte) ([]byte, error) {
	return Paging{Mode: Paging4, CR3: cr3}.Fetch(mem, rip, buf)
}

// reg returns a pointer to the 64-bit register holding r and the width
// of r in bytes; rsp is the guest RSP (kept in the VMCS, not in regs).
func reg(regs *vmx.GuestRegs, rsp *uint64, r x86asm.Reg) (*uint64, int, bool) {
	var g vmx.GPR
	var size int
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		g, size = vmx.GPR(r-x86asm.RAX), 8
	case r >= x86asm.EAX && r <= x86asm.R15L:
		g, size = vmx.GPR(r-x86asm.EAX), 4
	case r >= x86asm.AX && r <= x86asm.R15W:
		g, size = vmx.GPR(r-x86asm.AX), 2
	case r >= x86asm.AL && r <= x86asm.BL, r >= x86asm.SPB && r <= x86asm.R15B:
		if r <= x86asm.BL {
			g = vmx.GPR(r - x86asm.AL)
		} else {
			g = vmx.GPR(r-x86asm.SPB) + 4
		}
		size = 1
	default:
		return nil, 0, false
	}
	if g == vmx.RSP {
		return rsp, size, true
	}
	p := regs.Reg(g)
	return p, size, p != nil
}

// Emulate performs the MOV in code against dev, whose window holds the
// faulting address at offset off, and returns the instruction's length
// for the caller to advance RIP by. It never panics on guest bytes.
func Emulate(code []byte, dev devices.MMIODevice, off uint64, regs *vmx.GuestRegs, rsp *uint64) (int, error) {
	inst, err := x86asm.Decode(code, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: undecodable bytes % x: %v", ErrUnsupported, code, err)
	}
	if inst.Op != x86asm.MOV {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, inst)
	}
	size := inst.MemBytes
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, fmt.Errorf("%w: %v (%d-byte access)", ErrUnsupported, inst, size)
	}
	mask := uint64(1)<<(8*size) - 1
	if size == 8 {
		mask = ^uint64(0)
	}
	_, toMem := inst.Args[0].(x86asm.Mem)
	if toMem {
		var v uint64
		switch src := inst.Args[1].(type) {
		case x86asm.Reg:
			p, _, ok := reg(regs, rsp, src)
			if !ok {
				return 0, fmt.Errorf("%w: %v", ErrUnsupported, inst)
			}
			v = *p
			if src >= x86asm.AH && src <= x86asm.BH {
				v >>= 8
			}
		case x86asm.Imm:
			v = uint64(int64(src))
		default:
			return 0, fmt.Errorf("%w: %v", ErrUnsupported, inst)
		}
		dev.WriteMMIO(off, size, v&mask)
		return inst.Len, nil
	}
	dst, ok := inst.Args[0].(x86asm.Reg)
	if _, fromMem := inst.Args[1].(x86asm.Mem); !ok || !fromMem {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, inst)
	}
	p, width, ok := reg(regs, rsp, dst)
	if !ok || dst >= x86asm.AH && dst <= x86asm.BH {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, inst)
	}
	v := dev.ReadMMIO(off, size) & mask
	switch width {
	case 8, 4: // a 32-bit destination zero-extends
		*p = v
	case 2:
		*p = *p&^0xFFFF | v&0xFFFF
	case 1:
		*p = *p&^0xFF | v&0xFF
	}
	return inst.Len, nil
}
