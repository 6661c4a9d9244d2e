// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// Entry is where and how a guest's boot processor starts: in 64-bit mode
// as the Linux boot protocol asks (Long), or with Flat32 in 32-bit
// protected mode with paging off and flat 4 GiB segments at EIP, as the
// Multiboot specification asks (Multiboot 0.6.96, 3.2 "Machine state").
// RAX, RBX and RSI are the general registers the protocol passes: RSI
// the Linux zero page; EAX the Multiboot magic and EBX its information.
type Entry struct {
	Long          LongModeEntry
	Flat32        bool
	EIP           uint32
	RAX, RBX, RSI uint64
}

// Flat 32-bit segments of a Flat32 entry: selectors 0x08 and 0x10 as a
// GDT of null, code, data would have them; the guest loads its own GDT
// before it reloads a segment register (Multiboot 0.6.96, 3.2: "the OS
// image must create its own GDT as soon as it needs to set any segment
// registers").
const (
	flatCodeSelector = 0x08
	flatDataSelector = 0x10
	arCode32         = 0xC09B // execute/read, accessed, present, D/B, G
	arTSS32          = 0x008B // busy 32-bit TSS, present
)

// flat32VCPU writes into st the state of a Flat32 entry: protected mode
// (CR0.PE), paging off, EFER 0, interrupts off, flat code and data.
func flat32VCPU(e Entry, apicID uint32, bsp bool, st *vcpu.State) {
	st.Reset(apicID, bsp)
	st.RIP, st.RFLAGS = uint64(e.EIP), vmx.RFLAGSFixed1
	st.CR0 = vmx.CR0PE | vmx.CR0ET
	data := vcpu.Segment{Selector: flatDataSelector, Limit: 0xFFFFFFFF, Access: arData}
	st.Seg = [vcpu.NumSegs]vcpu.Segment{
		vcpu.ES: data, vcpu.CS: {Selector: flatCodeSelector, Limit: 0xFFFFFFFF, Access: arCode32}, vcpu.SS: data,
		vcpu.DS: data, vcpu.FS: data, vcpu.GS: data,
		vcpu.LDTR: {Access: vmx.ARUnusable}, vcpu.TR: {Limit: 0x67, Access: arTSS32},
	}
	st.DR7 = 0x400
}

// entryVCPU writes into st the boot processor's state for e, in the
// backend-neutral terms the AMD-V backend loads into a VMCB.
func entryVCPU(e Entry, st *vcpu.State) error {
	if e.Flat32 {
		flat32VCPU(e, 0, true, st)
	} else if err := longModeVCPU(e.Long, 0, true, st); err != nil {
		return err
	}
	st.GPR[vmx.RAX], st.GPR[vmx.RBX], st.GPR[vmx.RSI] = e.RAX, e.RBX, e.RSI
	return nil
}

// Flat32State returns the VMCS guest state of a Flat32 entry. Paging is
// off in protected mode, which VT-x allows only with "unrestricted
// guest" (SDM Vol. 3C, 26.3.1.1); the IA-32e mode guest entry control is
// cleared (the processor sets it again once the guest turns long mode
// on). The general registers are the caller's to set.
func Flat32State(c *vmx.Capabilities, ctl vmx.Controls, eptp uint64, vpid uint16, e Entry) (vmx.GuestState, error) {
	if ctl.Proc2&vmx.Proc2UnrestrictedGuest == 0 {
		return vmx.GuestState{}, fmt.Errorf("hv: a 32-bit entry with paging off needs \"unrestricted guest\"")
	}
	code := vmx.Segment{Selector: flatCodeSelector, Limit: 0xFFFFFFFF, AccessRights: arCode32}
	data := vmx.Segment{Selector: flatDataSelector, Limit: 0xFFFFFFFF, AccessRights: arData}
	tr := vmx.Segment{Limit: 0x67, AccessRights: arTSS32}
	return unpagedState(c, ctl, eptp, vpid, vmx.CR0PE|vmx.CR0ET, uint64(e.EIP), code, data, tr), nil
}
