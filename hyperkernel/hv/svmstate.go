// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// The state a vCPU carries between nodes is the same on both backends:
// segment access rights in VT-x's layout (Intel SDM Vol. 3C, Table
// 25-2: descriptor bits 47:40 in 7:0, 55:52 in 15:12, "unusable" in 16),
// which the VMCB packs as 11:0 (AMD APM Vol. 2, Table B-2).
const arUnusable = 1 << 16

// attribFromAR converts VT-x access rights to a VMCB segment attribute;
// an unusable segment is not present.
func attribFromAR(ar uint32) uint16 {
	if ar&arUnusable != 0 {
		return 0
	}
	return uint16(ar&0xFF | ar>>4&0xF00)
}

// arFromAttrib converts a VMCB segment attribute to VT-x access rights; a
// segment that is not present is unusable.
func arFromAttrib(a uint16) uint32 {
	if a&svm.AttrP == 0 {
		return arUnusable
	}
	return uint32(a&0xFF) | uint32(a&0xF00)<<4
}

// svmSegs are the VMCB slots of vcpu.State's segments, in its order.
var svmSegs = [vcpu.NumSegs]svm.Seg{svm.SegES, svm.SegCS, svm.SegSS, svm.SegDS, svm.SegFS, svm.SegGS, svm.SegLDTR, svm.SegTR}

// saveVMCB fills s from a VMCB's state-save area and the registers, as
// SaveVCPU does from a VMCS: the guest's EFER without the SVME bit VMRUN
// needs, RAX from regs (where the loop keeps it between exits), and the
// MSRs VMSAVE keeps in the VMCB.
func saveVMCB(v *svm.VMCB, regs *vmx.GuestRegs, apicID uint32, bsp bool, s *vcpu.State) {
	s.Reset(apicID, bsp)
	s.GPR = [vmx.NumGPRs]uint64{
		regs.RAX, regs.RCX, regs.RDX, regs.RBX, v.Read(svm.SaveRSP), regs.RBP, regs.RSI, regs.RDI,
		regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15,
	}
	s.RIP, s.RFLAGS = v.Read(svm.SaveRIP), v.Read(svm.SaveRFLAGS)
	for i, slot := range svmSegs {
		g := v.ReadSegment(slot)
		s.Seg[i] = vcpu.Segment{Selector: g.Selector, Base: g.Base, Limit: g.Limit, Access: arFromAttrib(g.Attrib)}
	}
	gdtr, idtr := v.ReadSegment(svm.SegGDTR), v.ReadSegment(svm.SegIDTR)
	s.GDTR = vcpu.DescriptorTable{Base: gdtr.Base, Limit: uint16(gdtr.Limit)}
	s.IDTR = vcpu.DescriptorTable{Base: idtr.Base, Limit: uint16(idtr.Limit)}
	s.CR0, s.CR2, s.CR3, s.CR4 = v.Read(svm.SaveCR0), v.Read(svm.SaveCR2), v.Read(svm.SaveCR3), v.Read(svm.SaveCR4)
	s.DR6, s.DR7 = v.Read(svm.SaveDR6), v.Read(svm.SaveDR7)
	s.EFER, s.PAT = v.Read(svm.SaveEFER)&^svm.EFERSVME, v.Read(svm.SaveGPAT)
	s.STAR, s.LSTAR, s.CSTAR, s.SFMASK = v.Read(svm.SaveSTAR), v.Read(svm.SaveLSTAR), v.Read(svm.SaveCSTAR), v.Read(svm.SaveSFMASK)
	s.KernelGSBase = v.Read(svm.SaveKernelGSBase)
	s.SysenterCS = uint32(v.Read(svm.SaveSysenterCS))
	s.SysenterESP, s.SysenterEIP = v.Read(svm.SaveSysenterESP), v.Read(svm.SaveSysenterEIP)
	s.FSBase, s.GSBase = s.Seg[vcpu.FS].Base, s.Seg[vcpu.GS].Base
	if v.Read(svm.CtlInterruptShadow)&svm.InterruptShadow != 0 {
		s.Events.Interruptibility = 1 // blocking by STI
	}
	saveFPU(regs, s)
}

// loadVMCB is the inverse of saveVMCB: it writes s into a VMCB's
// state-save area (EFER with SVME) and the registers.
func loadVMCB(s *vcpu.State, v *svm.VMCB, regs *vmx.GuestRegs) {
	r := &s.GPR
	regs.RAX, regs.RCX, regs.RDX, regs.RBX = r[vmx.RAX], r[vmx.RCX], r[vmx.RDX], r[vmx.RBX]
	regs.RBP, regs.RSI, regs.RDI = r[vmx.RBP], r[vmx.RSI], r[vmx.RDI]
	regs.R8, regs.R9, regs.R10, regs.R11 = r[vmx.R8], r[vmx.R9], r[vmx.R10], r[vmx.R11]
	regs.R12, regs.R13, regs.R14, regs.R15 = r[vmx.R12], r[vmx.R13], r[vmx.R14], r[vmx.R15]
	v.Write(svm.SaveRAX, r[vmx.RAX])
	v.Write(svm.SaveRSP, r[vmx.RSP])
	v.Write(svm.SaveRIP, s.RIP)
	v.Write(svm.SaveRFLAGS, s.RFLAGS)
	for i, slot := range svmSegs {
		in := s.Seg[i]
		v.WriteSegment(slot, svm.Segment{Selector: in.Selector, Base: in.Base, Limit: in.Limit, Attrib: attribFromAR(in.Access)})
	}
	v.WriteSegment(svm.SegGDTR, svm.Segment{Base: s.GDTR.Base, Limit: uint32(s.GDTR.Limit)})
	v.WriteSegment(svm.SegIDTR, svm.Segment{Base: s.IDTR.Base, Limit: uint32(s.IDTR.Limit)})
	v.Write(svm.SaveCR0, s.CR0)
	v.Write(svm.SaveCR2, s.CR2)
	v.Write(svm.SaveCR3, s.CR3)
	v.Write(svm.SaveCR4, s.CR4)
	v.Write(svm.SaveDR6, s.DR6)
	v.Write(svm.SaveDR7, s.DR7)
	v.Write(svm.SaveEFER, s.EFER|svm.EFERSVME)
	v.Write(svm.SaveGPAT, s.PAT)
	v.Write(svm.SaveSTAR, s.STAR)
	v.Write(svm.SaveLSTAR, s.LSTAR)
	v.Write(svm.SaveCSTAR, s.CSTAR)
	v.Write(svm.SaveSFMASK, s.SFMASK)
	v.Write(svm.SaveKernelGSBase, s.KernelGSBase)
	v.Write(svm.SaveSysenterCS, uint64(s.SysenterCS))
	v.Write(svm.SaveSysenterESP, s.SysenterESP)
	v.Write(svm.SaveSysenterEIP, s.SysenterEIP)
	v.Write(svm.SaveCPL, uint64(s.Seg[vcpu.SS].Access>>5&3))
	shadow := v.Read(svm.CtlInterruptShadow) &^ svm.InterruptShadow
	if s.Events.Interruptibility&3 != 0 {
		shadow |= svm.InterruptShadow
	}
	v.Write(svm.CtlInterruptShadow, shadow)
	loadFPU(s, regs)
}
