// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"encoding/binary"

	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// efer bits (Intel SDM Vol. 3A, 2.2.1).
const (
	eferLME = 1 << 8
	eferLMA = 1 << 10
)

// SaveVCPU fills s, the state that travels with a migrating vCPU, from the
// guest-state area of its VMCS (g, as vmx.ReadGuestState returns it) and
// the registers the entry code saved. CR0 and CR4 are saved as the guest
// sees them: the bits the host owns through the guest/host masks come from
// the read shadows. apicID and bsp seed the parts a VMCS does not hold
// (the local APIC) with their reset values.
func SaveVCPU(g *vmx.GuestState, regs *vmx.GuestRegs, apicID uint32, bsp bool, s *vcpu.State) {
	s.Reset(apicID, bsp)
	s.GPR = [vmx.NumGPRs]uint64{
		regs.RAX, regs.RCX, regs.RDX, regs.RBX, g.RSP, regs.RBP, regs.RSI, regs.RDI,
		regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15,
	}
	s.RIP, s.RFLAGS = g.RIP, g.RFLAGS
	for i, seg := range []*vmx.Segment{&g.ES, &g.CS, &g.SS, &g.DS, &g.FS, &g.GS, &g.LDTR, &g.TR} {
		s.Seg[i] = vcpu.Segment{Selector: seg.Selector, Base: seg.Base, Limit: seg.Limit, Access: seg.AccessRights}
	}
	s.GDTR = vcpu.DescriptorTable{Base: g.GDTRBase, Limit: uint16(g.GDTRLimit)}
	s.IDTR = vcpu.DescriptorTable{Base: g.IDTRBase, Limit: uint16(g.IDTRLimit)}
	s.CR0 = g.CR0&^g.CR0Mask | g.CR0Shadow&g.CR0Mask
	s.CR4 = g.CR4&^g.CR4Mask | g.CR4Shadow&g.CR4Mask
	s.CR3, s.CR2 = g.CR3, regs.CR2
	s.DR7 = g.DR7
	s.EFER, s.PAT = g.EFER, g.PAT
	s.SysenterESP, s.SysenterEIP = g.SysenterESP, g.SysenterEIP
	s.FSBase, s.GSBase = g.FS.Base, g.GS.Base
	s.Activity = vcpu.ActivityState(g.ActivityState)
	s.Events.Interruptibility = g.Interruptibility
	s.Events.PendingDebug = g.PendingDebug
	saveFPU(regs, s)
}

// saveFPU puts the vCPU's x87, SSE and XSAVE state and its PKRU into s:
// its XSAVE area and XCR0 where it has one, else its FXSAVE image
// (saveFX).
func saveFPU(regs *vmx.GuestRegs, s *vcpu.State) {
	s.PKRU = regs.PKRU
	area := regs.XSAVEArea()
	if area == nil {
		if regs.FPU != nil {
			saveFX(regs.FPU, s)
		}
		return
	}
	s.SetXSAVE(area)
	s.XCR0 = regs.XCR0
	// The legacy region is always current (FXSAVE); the components above
	// SSE are as the last XSAVE left them, those XCR0 enables.
	a := s.XSAVE[:]
	bv := binary.LittleEndian.Uint64(a[xstateBVOffset:])
	binary.LittleEndian.PutUint64(a[xstateBVOffset:], extendedState(bv, regs.XCR0)|vcpu.XCR0X87|vcpu.XCR0SSE)
}

// extendedState is the part of XSTATE_BV bv that the XSAVE area holds for
// XCR0 xcr0 beyond x87 and SSE, whose state FXSAVE and FXRSTOR switch.
func extendedState(bv, xcr0 uint64) uint64 {
	return bv & xcr0 &^ (vcpu.XCR0X87 | vcpu.XCR0SSE)
}

// loadFPU is the inverse of saveFPU, PKRU included. A vCPU with an XSAVE
// area takes s's XCR0, less the components its area has no room for
// (XCR0Max: the node offers fewer), and those components' state; the
// legacy region as loadFX reads it.
func loadFPU(s *vcpu.State, regs *vmx.GuestRegs) {
	regs.PKRU = s.PKRU
	area := regs.XSAVEArea()
	if area == nil {
		if regs.FPU != nil {
			loadFX(s, regs.FPU)
		}
		return
	}
	clear(area)
	loadFX(s, regs.FPU)
	regs.XCR0 = s.XCR0&regs.XCR0Max | vcpu.XCR0X87
	if a := s.XSAVEArea(); len(a) >= vcpu.MinXSAVE {
		copy(area[vcpu.MinXSAVE:], a[vcpu.MinXSAVE:])
		bv := binary.LittleEndian.Uint64(a[xstateBVOffset:])
		binary.LittleEndian.PutUint64(area[xstateBVOffset:], extendedState(bv, regs.XCR0))
	}
}

// XSAVE header fields (Intel SDM Vol. 1, 13.4.2): XSTATE_BV at byte 512.
const xstateBVOffset = 512

// saveFX puts an FXSAVE image into s's XSAVE area: the legacy region is
// the FXSAVE layout, and XSTATE_BV marks x87 and SSE state present
// (XCR0 with them enabled, as on any processor with SSE).
func saveFX(fx *vmx.FXArea, s *vcpu.State) {
	var area [vcpu.MinXSAVE]byte
	copy(area[:], fx[:])
	binary.LittleEndian.PutUint64(area[xstateBVOffset:], vcpu.XCR0X87|vcpu.XCR0SSE)
	s.XCR0 |= vcpu.XCR0X87 | vcpu.XCR0SSE
	s.SetXSAVE(area[:])
}

// loadFX is the inverse of saveFX: the legacy region of s's XSAVE area
// into an FXSAVE image. Components XSTATE_BV marks absent are in their
// initial state (vmx.FXArea.Reset).
func loadFX(s *vcpu.State, fx *vmx.FXArea) {
	a := s.XSAVEArea()
	if len(a) < vcpu.MinXSAVE {
		fx.Reset()
		return
	}
	bv := binary.LittleEndian.Uint64(a[xstateBVOffset:])
	if bv&(vcpu.XCR0X87|vcpu.XCR0SSE) == vcpu.XCR0X87|vcpu.XCR0SSE {
		copy(fx[:], a[:len(fx)])
		return
	}
	// Partly in the initial state: take only what is present. x87 is
	// the control/status words and ST0-7 (bytes 0-23 and 32-159), SSE
	// MXCSR (24-31) and XMM0-15 (160-415) (SDM Vol. 1, Table 10-2).
	fx.Reset()
	if bv&vcpu.XCR0X87 != 0 {
		copy(fx[0:24], a[0:24])
		copy(fx[32:160], a[32:160])
	}
	if bv&vcpu.XCR0SSE != 0 {
		copy(fx[24:32], a[24:32])
		copy(fx[160:416], a[160:416])
	}
}

// LoadVCPU writes the guest-state part of g and the registers from s: the
// inverse of SaveVCPU on a node whose VMX capabilities c may differ in
// their fixed bits. g keeps its controls, EPTP, VPID and VMCS link
// pointer; the CR0/CR4 masks are those of an unrestricted guest, with the
// guest's values in the read shadows, and the "IA-32e mode guest" entry
// control follows EFER.LMA.
func LoadVCPU(c *vmx.Capabilities, s *vcpu.State, g *vmx.GuestState, regs *vmx.GuestRegs) {
	r := &s.GPR
	regs.RAX, regs.RCX, regs.RDX, regs.RBX = r[vmx.RAX], r[vmx.RCX], r[vmx.RDX], r[vmx.RBX]
	regs.RBP, regs.RSI, regs.RDI = r[vmx.RBP], r[vmx.RSI], r[vmx.RDI]
	regs.R8, regs.R9, regs.R10, regs.R11 = r[vmx.R8], r[vmx.R9], r[vmx.R10], r[vmx.R11]
	regs.R12, regs.R13, regs.R14, regs.R15 = r[vmx.R12], r[vmx.R13], r[vmx.R14], r[vmx.R15]
	regs.CR2 = s.CR2
	g.RSP, g.RIP, g.RFLAGS = r[vmx.RSP], s.RIP, s.RFLAGS
	for i, seg := range []*vmx.Segment{&g.ES, &g.CS, &g.SS, &g.DS, &g.FS, &g.GS, &g.LDTR, &g.TR} {
		in := s.Seg[i]
		*seg = vmx.Segment{Selector: in.Selector, Base: in.Base, Limit: in.Limit, AccessRights: in.Access}
	}
	g.GDTRBase, g.GDTRLimit = s.GDTR.Base, uint32(s.GDTR.Limit)
	g.IDTRBase, g.IDTRLimit = s.IDTR.Base, uint32(s.IDTR.Limit)
	g.CR0Mask, g.CR4Mask = c.GuestHostMasks(true)
	g.CR0, g.CR0Shadow = c.GuestCR0(s.CR0, true), s.CR0
	g.CR4, g.CR4Shadow = c.GuestCR4(s.CR4), s.CR4
	g.CR3, g.DR7 = s.CR3, s.DR7
	g.EFER, g.PAT = s.EFER, s.PAT
	g.SysenterESP, g.SysenterEIP = s.SysenterESP, s.SysenterEIP
	g.ActivityState = uint32(s.Activity)
	g.Interruptibility = s.Events.Interruptibility
	g.PendingDebug = s.Events.PendingDebug
	loadFPU(s, regs)
	if s.EFER&eferLMA != 0 {
		g.Controls.Entry |= vmx.EntryIA32eModeGuest
	} else {
		g.Controls.Entry &^= vmx.EntryIA32eModeGuest
	}
}
