// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
	"github.com/big-iron/big-iron/vmm/vmx/captured"
)

// A Multiboot entry (32-bit protected mode, paging off) passes every
// processor's VM-entry checks, and only with "unrestricted guest".
func TestFlat32StatePassesEntryChecks(t *testing.T) {
	for name, msrs := range map[string]map[uint32]uint64{
		"bochs":     captured.BochsHaswell4770(),
		"e3-1270v2": captured.XeonE31270v2(),
		"9980xe":    captured.SkylakeSP9980XE(),
	} {
		c, err := vmx.ReadCapabilities(captured.Reader(msrs))
		if err != nil {
			t.Fatal(err)
		}
		ctl := linuxControls(t, c)
		g, err := Flat32State(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1, Entry{Flat32: true, EIP: 0x400000})
		if err != nil {
			t.Fatal(err)
		}
		if v := c.CheckGuestState(&g, 39); len(v) != 0 {
			t.Errorf("%s: %v", name, v)
		}
		if g.CR0Shadow != vmx.CR0PE|vmx.CR0ET || g.EFER != 0 || g.Controls.Entry&vmx.EntryIA32eModeGuest != 0 || g.RIP != 0x400000 {
			t.Errorf("%s: CR0 shadow %#x EFER %#x entry %#x RIP %#x: want protected mode, paging off, not IA-32e",
				name, g.CR0Shadow, g.EFER, g.Controls.Entry, g.RIP)
		}
		bad := g
		bad.Controls.Entry |= vmx.EntryIA32eModeGuest
		if v := c.CheckGuestState(&bad, 39); len(v) == 0 {
			t.Errorf("%s: paging off with IA-32e mode guest passed the checks", name)
		}
		ctl.Proc2 &^= vmx.Proc2UnrestrictedGuest
		if _, err := Flat32State(c, ctl, 0, 1, Entry{Flat32: true, EIP: 0x400000}); err == nil {
			t.Errorf("%s: paging off without unrestricted guest accepted", name)
		}
	}
}

// The AMD-V backend's Multiboot entry is the VT-x one as the guest sees
// it, with the protocol's registers.
func TestFlat32NeutralStateMatchesVTx(t *testing.T) {
	c, err := vmx.ReadCapabilities(captured.Reader(captured.BochsHaswell4770()))
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Flat32: true, EIP: 0x40000C, RAX: 0x2BADB002, RBX: 0x9000}
	g, err := Flat32State(c, linuxControls(t, c), 0x100000|3<<3|vmx.MemTypeWB, 1, e)
	if err != nil {
		t.Fatal(err)
	}
	regs := vmx.GuestRegs{RAX: e.RAX, RBX: e.RBX}
	var want, got vcpu.State
	SaveVCPU(&g, &regs, 0, true, &want)
	if err := entryVCPU(e, &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got %+v CR0 %#x GPR %x\nwant %+v CR0 %#x GPR %x", got.Seg, got.CR0, got.GPR, want.Seg, want.CR0, want.GPR)
	}
	if _, err := got.MarshalBinary(); err != nil {
		t.Errorf("the entry state does not validate: %v", err)
	}
}
