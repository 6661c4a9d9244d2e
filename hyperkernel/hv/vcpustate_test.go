// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/testguest"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
	"github.com/big-iron/big-iron/vmm/vmx/captured"
)

// A vCPU saved from one processor's VMCS, encoded, decoded and loaded on
// another processor passes that processor's VM-entry checks with the same
// registers and the same guest-visible control registers.
func TestVCPUStateTravelsBetweenProcessors(t *testing.T) {
	cpus := map[string]map[uint32]uint64{
		"bochs":     captured.BochsHaswell4770(),
		"e3-1270v2": captured.XeonE31270v2(),
		"9980xe":    captured.SkylakeSP9980XE(),
	}
	caps := map[string]*vmx.Capabilities{}
	for name, msrs := range cpus {
		c, err := vmx.ReadCapabilities(captured.Reader(msrs))
		if err != nil {
			t.Fatal(err)
		}
		caps[name] = c
	}
	for from, c := range caps {
		ctl := linuxControls(t, c)
		long, err := LongModeState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1,
			LongModeEntry{RIP: 0x1000200, RSP: 0x8000, CR3: 0x9000, GDTBase: 0x7000, GDTLimit: 0x1f, CS: 0x10, DS: 0x18})
		if err != nil {
			t.Fatal(err)
		}
		real := ctl
		real.Entry &^= vmx.EntryIA32eModeGuest
		rm, err := testguest.InitialState(c, real, 0x100000|3<<3|vmx.MemTypeWB, 1)
		if err != nil {
			t.Fatal(err)
		}
		for mode, g := range map[string]vmx.GuestState{"long mode": long, "real mode": rm} {
			regs := vmx.GuestRegs{RAX: 1, RCX: 2, RDX: 3, RBX: 4, RBP: 5, RSI: 6, RDI: 7, R8: 8, R15: 15, CR2: 0x1234}
			var s vcpu.State
			SaveVCPU(&g, &regs, 1, false, &s)
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatalf("%s %s: saved state does not validate: %v", from, mode, err)
			}
			var back vcpu.State
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			for to, c2 := range caps {
				ctl2 := linuxControls(t, c2)
				ctl2.Entry &^= vmx.EntryIA32eModeGuest
				g2 := vmx.GuestState{Controls: ctl2, EPTP: g.EPTP, VPID: 1, VMCSLinkPointer: ^uint64(0)}
				var regs2 vmx.GuestRegs
				LoadVCPU(c2, &back, &g2, &regs2)
				if v := c2.CheckGuestState(&g2, 39); len(v) != 0 {
					t.Errorf("%s -> %s, %s: entry checks fail: %v", from, to, mode, v)
				}
				if regs2 != regs || g2.RIP != g.RIP || g2.RSP != g.RSP || g2.CR3 != g.CR3 || g2.CS != g.CS || g2.EFER != g.EFER {
					t.Errorf("%s -> %s, %s: registers changed: %+v vs %+v", from, to, mode, regs2, regs)
				}
				vis := func(x, m, sh uint64) uint64 { return x&^m | sh&m }
				if vis(g2.CR0, g2.CR0Mask, g2.CR0Shadow) != vis(g.CR0, g.CR0Mask, g.CR0Shadow) ||
					vis(g2.CR4, g2.CR4Mask, g2.CR4Shadow) != vis(g.CR4, g.CR4Mask, g.CR4Shadow) {
					t.Errorf("%s -> %s, %s: guest-visible CR0/CR4 changed", from, to, mode)
				}
				if (g2.Controls.Entry&vmx.EntryIA32eModeGuest != 0) != (mode == "long mode") {
					t.Errorf("%s -> %s, %s: IA-32e mode guest control %v", from, to, mode, g2.Controls.Entry&vmx.EntryIA32eModeGuest != 0)
				}
			}
		}
	}
}

// The x87/SSE state travels with a vCPU: an FXSAVE image saved on one node
// is the image loaded on the other, and a state without it (a vCPU that
// never ran) loads the initial FPU state.
func TestFPUStateTravels(t *testing.T) {
	c, err := vmx.ReadCapabilities(captured.Reader(captured.BochsHaswell4770()))
	if err != nil {
		t.Fatal(err)
	}
	ctl := linuxControls(t, c)
	g, err := LongModeState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1,
		LongModeEntry{RIP: 0x1000200, RSP: 0x8000, CR3: 0x9000, GDTBase: 0x7000, GDTLimit: 0x1f, CS: 0x10, DS: 0x18})
	if err != nil {
		t.Fatal(err)
	}
	regs := vmx.GuestRegs{FPU: vmx.NewFXArea()}
	for i := 160; i < 176; i++ {
		regs.FPU[i] = byte(i) // XMM0
	}
	regs.FPU[24] = 0xA0 // MXCSR: a rounding mode of its own
	var s vcpu.State
	SaveVCPU(&g, &regs, 1, false, &s)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatalf("a state with FPU contents does not validate: %v", err)
	}
	var back vcpu.State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	regs2 := vmx.GuestRegs{FPU: vmx.NewFXArea()}
	for i := range regs2.FPU {
		regs2.FPU[i] = 0xEE // stale: must be overwritten
	}
	g2 := vmx.GuestState{Controls: ctl, VMCSLinkPointer: ^uint64(0)}
	LoadVCPU(c, &back, &g2, &regs2)
	if *regs2.FPU != *regs.FPU {
		t.Fatalf("FPU image changed on the way:\n%x\n%x", regs2.FPU[:176], regs.FPU[:176])
	}
	var fresh vcpu.State
	fresh.Reset(1, false)
	LoadVCPU(c, &fresh, &g2, &regs2)
	var init vmx.FXArea
	init.Reset()
	if *regs2.FPU != init {
		t.Fatal("a vCPU that never ran did not get the initial FPU state")
	}
	// Without an FPU image on either side nothing is touched.
	regs.FPU = nil
	SaveVCPU(&g, &regs, 1, false, &s)
	if s.XCR0&vcpu.XCR0SSE != 0 {
		t.Error("a vCPU without FPU state claims SSE state")
	}
}
