// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"reflect"
	"testing"

	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
	"github.com/big-iron/big-iron/vmm/vmx/captured"
)

// linuxControls are the controls a Linux guest runs with.
func linuxControls(t *testing.T, c *vmx.Capabilities) vmx.Controls {
	t.Helper()
	ctl, err := c.ComputeControls(vmx.Controls{
		Pin:   vmx.PinExternalInterruptExiting | vmx.PinPreemptionTimer,
		Proc:  vmx.ProcHLTExiting | vmx.ProcUseIOBitmaps | vmx.ProcUseMSRBitmaps | vmx.ProcActivateSecondary,
		Proc2: vmx.Proc2EnableEPT | vmx.Proc2UnrestrictedGuest,
		Exit:  vmx.ExitHostAddressSpaceSize | vmx.ExitSaveEFER | vmx.ExitLoadEFER,
		Entry: vmx.EntryLoadEFER | vmx.EntryIA32eModeGuest,
	}, vmx.Controls{Proc2: vmx.Proc2EnableVPID})
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

func TestLongModeStatePassesEntryChecks(t *testing.T) {
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
		e := LongModeEntry{RIP: 0x1000200, RSP: 0x8000, CR3: 0x9000, GDTBase: 0x7000, GDTLimit: 0x1f, CS: 0x10, DS: 0x18}
		g, err := LongModeState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1, e)
		if err != nil {
			t.Fatal(err)
		}
		if v := c.CheckGuestState(&g, 39); len(v) != 0 {
			t.Errorf("%s: %v", name, v)
		}
		if g.CR0Shadow != vmx.CR0PE|vmx.CR0PG|vmx.CR0ET || g.CR4Shadow != vmx.CR4PAE {
			t.Errorf("%s: shadows CR0 %#x CR4 %#x: the guest should see PE|PG|ET and PAE", name, g.CR0Shadow, g.CR4Shadow)
		}

		// A 64-bit guest without the IA-32e entry control fails the
		// checks: the test can tell a good state from a bad one.
		bad := g
		bad.Controls.Entry &^= vmx.EntryIA32eModeGuest
		if v := c.CheckGuestState(&bad, 39); len(v) == 0 {
			t.Errorf("%s: EFER.LMA without IA-32e mode guest passed the checks", name)
		}
	}
}

func TestLongModeStateRefusesBadInput(t *testing.T) {
	c, err := vmx.ReadCapabilities(captured.Reader(captured.BochsHaswell4770()))
	if err != nil {
		t.Fatal(err)
	}
	ctl := linuxControls(t, c)
	good := LongModeEntry{RIP: 0x1000200, CR3: 0x9000, GDTBase: 0x7000, GDTLimit: 0x1f, CS: 0x10, DS: 0x18}
	for name, e := range map[string]LongModeEntry{
		"null CS":          {RIP: good.RIP, CR3: good.CR3, GDTLimit: 0x1f, CS: 0, DS: 0x18},
		"CS past GDT":      {RIP: good.RIP, CR3: good.CR3, GDTLimit: 0x1f, CS: 0x20, DS: 0x18},
		"DS with RPL bits": {RIP: good.RIP, CR3: good.CR3, GDTLimit: 0x1f, CS: 0x10, DS: 0x1b},
	} {
		if _, err := LongModeState(c, ctl, 0, 0, e); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	noIA32e := ctl
	noIA32e.Entry &^= vmx.EntryIA32eModeGuest
	if _, err := LongModeState(c, noIA32e, 0, 0, good); err == nil {
		t.Error("controls without IA-32e mode guest accepted")
	}
}

func TestStartupStatePassesEntryChecks(t *testing.T) {
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
		g, err := StartupState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 2, 0x9A)
		if err != nil {
			t.Fatal(err)
		}
		if v := c.CheckGuestState(&g, 39); len(v) != 0 {
			t.Errorf("%s: %v", name, v)
		}
		if g.CS.Selector != 0x9A00 || g.CS.Base != 0x9A000 || g.RIP != 0 || g.Controls.Entry&vmx.EntryIA32eModeGuest != 0 {
			t.Errorf("%s: CS %+v RIP %#x entry %#x", name, g.CS, g.RIP, g.Controls.Entry)
		}
		// Real mode with the IA-32e entry control is refused.
		bad := g
		bad.Controls.Entry |= vmx.EntryIA32eModeGuest
		if v := c.CheckGuestState(&bad, 39); len(v) == 0 {
			t.Errorf("%s: real mode with IA-32e mode guest passed the checks", name)
		}
		ctl.Proc2 &^= vmx.Proc2UnrestrictedGuest
		if _, err := StartupState(c, ctl, 0, 2, 0x9A); err == nil {
			t.Errorf("%s: real mode without unrestricted guest accepted", name)
		}
	}
}

// The states the AMD-V backend starts Linux vCPUs from are what the VT-x
// builders give, as the guest sees them (SaveVCPU of their VMCS state).
func TestNeutralEntryStatesMatchVTx(t *testing.T) {
	c, err := vmx.ReadCapabilities(captured.Reader(captured.BochsHaswell4770()))
	if err != nil {
		t.Fatal(err)
	}
	ctl := linuxControls(t, c)
	e := LongModeEntry{RIP: 0x1000200, RSP: 0x8000, CR3: 0x9000, GDTBase: 0x7000, GDTLimit: 0x1f, CS: 0x10, DS: 0x18}
	g, err := LongModeState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1, e)
	if err != nil {
		t.Fatal(err)
	}
	var regs vmx.GuestRegs
	var want, got vcpu.State
	SaveVCPU(&g, &regs, 0, true, &want)
	if err := longModeVCPU(e, 0, true, &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("long mode:\n got %+v %+v CR0 %#x CR4 %#x EFER %#x\nwant %+v %+v CR0 %#x CR4 %#x EFER %#x",
			got.Seg, got.GDTR, got.CR0, got.CR4, got.EFER, want.Seg, want.GDTR, want.CR0, want.CR4, want.EFER)
	}
	if err := longModeVCPU(LongModeEntry{GDTLimit: 0xF, CS: 0x10, DS: 0x18}, 0, true, &got); err == nil {
		t.Error("selectors beyond the GDT accepted")
	}

	sg, err := StartupState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1, 0x9A)
	if err != nil {
		t.Fatal(err)
	}
	SaveVCPU(&sg, &regs, 1, false, &want)
	startupVCPU(0x9A, 1, &got)
	if got != want {
		a, b := reflect.ValueOf(got), reflect.ValueOf(want)
		for i := 0; i < a.NumField(); i++ {
			if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
				t.Logf("%s: %v, want %v", a.Type().Field(i).Name, a.Field(i).Interface(), b.Field(i).Interface())
			}
		}
		t.Errorf("startup:\n got %+v CR0 %#x\nwant %+v CR0 %#x", got.Seg, got.CR0, want.Seg, want.CR0)
	}
}
