// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// LongModeEntry is where a vCPU starts that enters 64-bit mode directly,
// as the Linux 64-bit boot protocol asks (Documentation/arch/x86/boot.rst,
// "64-bit Boot Protocol"): paging on with CR3 identity-mapping the low
// memory, a GDT whose entries CS and DS describe flat 64-bit code and
// flat data, interrupts off. General registers (RSI holds the zero page
// for Linux) are set by the caller in the saved GPR block.
type LongModeEntry struct {
	RIP, RSP uint64
	CR3      uint64
	// GDTBase and GDTLimit locate the guest's GDT; CS and DS are the
	// selectors of its code and data descriptors (the VMCS caches the
	// descriptors: the guest reloading them later must find the same).
	GDTBase  uint64
	GDTLimit uint32
	CS, DS   uint16
}

// Segment access rights in the VMCS format (SDM Vol. 3C, 24.4.1, Table
// 24-2): type, S, DPL, P in bits 0-7, then AVL, L, D/B, G in 12-15.
const (
	arCode64 = 0xA09B // execute/read, accessed, present, L, G
	arData   = 0xC093 // read/write, accessed, present, D/B, G
	arTSS64  = 0x008B // busy 64-bit TSS, present
)

// LongModeState returns the VMCS guest state of e. ctl must contain "IA-32e
// mode guest" and "load IA32_EFER" on entry. The bits VMX forces in CR0 and
// CR4 are owned by the host through the masks, the guest reading what it
// would on hardware (PE, PG, ET; PAE).
func LongModeState(c *vmx.Capabilities, ctl vmx.Controls, eptp uint64, vpid uint16, e LongModeEntry) (vmx.GuestState, error) {
	if ctl.Entry&vmx.EntryIA32eModeGuest == 0 || ctl.Entry&vmx.EntryLoadEFER == 0 {
		return vmx.GuestState{}, fmt.Errorf("hv: a 64-bit entry needs the \"IA-32e mode guest\" and \"load IA32_EFER\" entry controls")
	}
	if e.CS == 0 || e.DS == 0 || e.CS&7 != 0 || e.DS&7 != 0 || uint32(e.CS|7) > e.GDTLimit || uint32(e.DS|7) > e.GDTLimit {
		return vmx.GuestState{}, fmt.Errorf("hv: selectors CS %#x DS %#x do not index a GDT of limit %#x", e.CS, e.DS, e.GDTLimit)
	}
	unrestricted := ctl.Proc2&vmx.Proc2UnrestrictedGuest != 0
	cr0Mask, cr4Mask := c.GuestHostMasks(unrestricted)
	const cr0 = vmx.CR0PE | vmx.CR0PG | vmx.CR0ET
	const cr4 = vmx.CR4PAE
	code := vmx.Segment{Selector: e.CS, Limit: 0xFFFFFFFF, AccessRights: arCode64}
	data := vmx.Segment{Selector: e.DS, Limit: 0xFFFFFFFF, AccessRights: arData}
	return vmx.GuestState{
		CR0:             c.GuestCR0(cr0, unrestricted),
		CR3:             e.CR3,
		CR4:             c.GuestCR4(cr4),
		CR0Mask:         cr0Mask,
		CR0Shadow:       cr0,
		CR4Mask:         cr4Mask,
		CR4Shadow:       cr4,
		DR7:             0x400,
		RIP:             e.RIP,
		RSP:             e.RSP,
		RFLAGS:          vmx.RFLAGSFixed1,
		CS:              code,
		SS:              data,
		DS:              data,
		ES:              data,
		FS:              data,
		GS:              data,
		LDTR:            vmx.Segment{AccessRights: vmx.ARUnusable},
		TR:              vmx.Segment{Limit: 0x67, AccessRights: arTSS64},
		GDTRBase:        e.GDTBase,
		GDTRLimit:       e.GDTLimit,
		IDTRLimit:       0xFFFF,
		EFER:            vmx.EFERLME | vmx.EFERLMA,
		PAT:             0x0007040600070406, // power-on value
		VMCSLinkPointer: ^uint64(0),
		Controls:        ctl,
		EPTP:            eptp,
		VPID:            vpid,
	}, nil
}

// Real-mode segment access rights (SDM Vol. 3C, 26.3.1.2: with
// "unrestricted guest" a real-mode guest's segments are present,
// accessed, DPL 0, 16-bit).
const (
	arRealCode = 0x9B // execute/read, accessed, present
	arRealData = 0x93 // read/write, accessed, present
	arTSS16    = 0x8B // busy TSS (type 11), present
)

// StartupState returns the VMCS guest state of an application processor
// released by a startup IPI with vector: real mode, CS selector
// vector<<8 and base vector<<12, IP 0, the rest as after INIT (SDM Vol.
// 3A, 9.1.1 Table 9-1 and 9.4.4.1 "Typical AP Initialization
// Sequence"). ctl must have "unrestricted guest"; the IA-32e mode guest
// entry control is cleared (the processor sets it again on an exit once
// the guest has turned long mode on).
func StartupState(c *vmx.Capabilities, ctl vmx.Controls, eptp uint64, vpid uint16, vector uint8) (vmx.GuestState, error) {
	if ctl.Proc2&vmx.Proc2UnrestrictedGuest == 0 {
		return vmx.GuestState{}, fmt.Errorf("hv: an application processor starts in real mode, which needs \"unrestricted guest\"")
	}
	code := vmx.Segment{Selector: uint16(vector) << 8, Base: uint64(vector) << 12, Limit: 0xFFFF, AccessRights: arRealCode}
	data := vmx.Segment{Limit: 0xFFFF, AccessRights: arRealData}
	tr := vmx.Segment{Limit: 0xFFFF, AccessRights: arTSS16}
	// EFER 0: the guest writes it (LME) on its way to long mode.
	return unpagedState(c, ctl, eptp, vpid, vmx.CR0ET, 0, code, data, tr), nil
}

// unpagedState is the VMCS guest state of a processor with paging off
// (real mode, or protected mode for Multiboot), which VT-x allows only
// with "unrestricted guest": CR0 as cr0 (the bits VMX forces owned by
// the host through the mask), CR4 0, EFER 0, RIP rip, CS code, the
// other segments data, TR tr. The IA-32e mode guest entry control is
// cleared (the processor sets it again once the guest turns long mode
// on).
func unpagedState(c *vmx.Capabilities, ctl vmx.Controls, eptp uint64, vpid uint16, cr0, rip uint64, code, data, tr vmx.Segment) vmx.GuestState {
	ctl.Entry &^= vmx.EntryIA32eModeGuest
	cr0Mask, cr4Mask := c.GuestHostMasks(true)
	return vmx.GuestState{
		CR0:             c.GuestCR0(cr0, true),
		CR4:             c.GuestCR4(0),
		CR0Mask:         cr0Mask,
		CR0Shadow:       cr0,
		CR4Mask:         cr4Mask,
		DR7:             0x400,
		RIP:             rip,
		RFLAGS:          vmx.RFLAGSFixed1,
		CS:              code,
		SS:              data,
		DS:              data,
		ES:              data,
		FS:              data,
		GS:              data,
		LDTR:            vmx.Segment{AccessRights: vmx.ARUnusable},
		TR:              tr,
		GDTRLimit:       0xFFFF,
		IDTRLimit:       0xFFFF,
		PAT:             vcpu.ResetPAT,
		VMCSLinkPointer: ^uint64(0),
		Controls:        ctl,
		EPTP:            eptp,
		VPID:            vpid,
	}
}

// longModeVCPU writes into st the state LongModeState gives a VT-x guest,
// in the backend-neutral terms of a vcpu.State: the AMD-V backend loads it
// into a VMCB (loadVMCB); what a guest sees is the same on both.
func longModeVCPU(e LongModeEntry, apicID uint32, bsp bool, st *vcpu.State) error {
	if e.CS == 0 || e.DS == 0 || e.CS&7 != 0 || e.DS&7 != 0 || uint32(e.CS|7) > e.GDTLimit || uint32(e.DS|7) > e.GDTLimit {
		return fmt.Errorf("hv: selectors CS %#x DS %#x do not index a GDT of limit %#x", e.CS, e.DS, e.GDTLimit)
	}
	st.Reset(apicID, bsp)
	st.RIP, st.GPR[vmx.RSP], st.RFLAGS = e.RIP, e.RSP, vmx.RFLAGSFixed1
	st.CR0, st.CR3, st.CR4 = vmx.CR0PE|vmx.CR0PG|vmx.CR0ET, e.CR3, vmx.CR4PAE
	st.EFER = vmx.EFERLME | vmx.EFERLMA
	data := vcpu.Segment{Selector: e.DS, Limit: 0xFFFFFFFF, Access: arData}
	st.Seg = [vcpu.NumSegs]vcpu.Segment{
		vcpu.ES: data, vcpu.CS: {Selector: e.CS, Limit: 0xFFFFFFFF, Access: arCode64}, vcpu.SS: data,
		vcpu.DS: data, vcpu.FS: data, vcpu.GS: data,
		vcpu.LDTR: {Access: vmx.ARUnusable}, vcpu.TR: {Limit: 0x67, Access: arTSS64},
	}
	st.GDTR = vcpu.DescriptorTable{Base: e.GDTBase, Limit: uint16(e.GDTLimit)}
	st.IDTR = vcpu.DescriptorTable{Limit: 0xFFFF}
	st.DR7 = 0x400
	return nil
}

// startupVCPU writes into st the state StartupState gives a VT-x
// application processor released by a startup IPI with vector: real
// mode at vector's page, the rest as after INIT.
func startupVCPU(vector uint8, apicID uint32, st *vcpu.State) {
	st.Reset(apicID, false)
	st.Activity = vcpu.Active // released by the startup IPI
	st.RIP, st.RFLAGS = 0, vmx.RFLAGSFixed1
	st.Seg[vcpu.CS] = vcpu.Segment{Selector: uint16(vector) << 8, Base: uint64(vector) << 12, Limit: 0xFFFF, Access: arRealCode}
	st.Seg[vcpu.LDTR] = vcpu.Segment{Access: vmx.ARUnusable}
	st.Seg[vcpu.TR] = vcpu.Segment{Limit: 0xFFFF, Access: arTSS16}
	st.CR0 = vmx.CR0ET
}
