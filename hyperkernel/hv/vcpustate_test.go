// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"bytes"
	"encoding/binary"
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

// A vCPU with an XSAVE area takes its XCR0 and every component XCR0
// enables to another node and back, through the encoded state; a node
// whose area has room for fewer components takes only those, and one
// that switches the FPU with FXSAVE takes the x87 and SSE state.
func TestXSAVEStateTravels(t *testing.T) {
	var regs vmx.GuestRegs
	regs.UseXSAVE(832, 7, 3)
	area := regs.XSAVEArea()
	for i := 160; i < 176; i++ {
		area[i] = byte(i) // XMM0
	}
	for i := 576; i < 592; i++ {
		area[i] = byte(i) // YMM0's upper half
	}
	binary.LittleEndian.PutUint64(area[512:], 1<<2|1<<5) // AVX, and an AVX-512 bit XCR0 lacks
	regs.XCR0 = 7
	regs.PKRU = 0x55555554 // protection keys in use, without XCR0 managing PKRU
	var s vcpu.State
	s.Reset(0, true)
	saveFPU(&regs, &s)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatalf("the saved state does not validate: %v", err)
	}
	var back vcpu.State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back.XCR0 != 7 || back.XSAVELen != 832 {
		t.Fatalf("state XCR0 %#x, area %d bytes; want 7 and 832", back.XCR0, back.XSAVELen)
	}
	if bv := binary.LittleEndian.Uint64(back.XSAVE[512:]); bv != 7 {
		t.Errorf("XSTATE_BV %#x in the state, want 7 (x87 and SSE always, AVX as saved, no bit outside XCR0)", bv)
	}

	var there vmx.GuestRegs
	there.UseXSAVE(832, 7, 3)
	binary.LittleEndian.PutUint64(there.XSAVEArea()[520:], 0xBAD) // stale header: must be cleared
	loadFPU(&back, &there)
	got := there.XSAVEArea()
	if there.PKRU != 0x55555554 {
		t.Errorf("PKRU %#x after the trip, want 0x55555554", there.PKRU)
	}
	if there.XCR0 != 7 || !bytes.Equal(got[160:176], area[160:176]) || !bytes.Equal(got[576:592], area[576:592]) {
		t.Errorf("XCR0 %#x, XMM0 %x, YMM0 high %x: state changed on the way", there.XCR0, got[160:176], got[576:592])
	}
	if bv := binary.LittleEndian.Uint64(got[512:]); bv != 4 {
		t.Errorf("XSTATE_BV %#x loaded, want 4 (AVX; x87 and SSE come with FXRSTOR)", bv)
	}
	if !bytes.Equal(got[520:576], make([]byte, 56)) {
		t.Error("the loaded header's reserved bytes are not zero (XRSTOR would fault)")
	}

	var small vmx.GuestRegs
	small.UseXSAVE(576, 3, 3)
	loadFPU(&back, &small)
	if small.XCR0 != 3 || !bytes.Equal(small.XSAVEArea()[160:176], area[160:176]) {
		t.Errorf("on a node without AVX: XCR0 %#x, XMM0 %x; want 3 and XMM0 kept", small.XCR0, small.XSAVEArea()[160:176])
	}

	fx := vmx.GuestRegs{FPU: vmx.NewFXArea()}
	loadFPU(&back, &fx)
	if !bytes.Equal(fx.FPU[160:176], area[160:176]) || fx.XCR0 != 0 {
		t.Errorf("on an FXSAVE node: XMM0 %x, XCR0 %#x", fx.FPU[160:176], fx.XCR0)
	}
}

// FuzzLoadFPU loads whatever XSAVE area and XCR0 a peer's vcpu.State
// carries into a vCPU's XSAVE area: the XCR0 taken is within what the
// area holds, with x87, and the header is one XRSTOR takes (XSTATE_BV
// within XCR0 and above SSE, the rest zero).
func FuzzLoadFPU(f *testing.F) {
	f.Add(uint64(7), []byte{})
	f.Add(uint64(0xE7), bytes.Repeat([]byte{0xFF}, 2696))
	f.Add(uint64(3), make([]byte, 576))
	f.Fuzz(func(t *testing.T, xcr0 uint64, area []byte) {
		var s vcpu.State
		s.Reset(0, true)
		s.XCR0 = xcr0
		if len(area) > vcpu.MaxXSAVE {
			area = area[:vcpu.MaxXSAVE]
		}
		s.SetXSAVE(area)
		var regs vmx.GuestRegs
		regs.UseXSAVE(832, 7, 3)
		loadFPU(&s, &regs)
		a := regs.XSAVEArea()
		if len(a) != 832 || regs.XCR0&^7 != 0 || regs.XCR0&1 == 0 {
			t.Fatalf("area %d bytes, XCR0 %#x", len(a), regs.XCR0)
		}
		if bv := binary.LittleEndian.Uint64(a[512:]); bv&^regs.XCR0 != 0 || bv&3 != 0 {
			t.Fatalf("XSTATE_BV %#x with XCR0 %#x", bv, regs.XCR0)
		}
		if !bytes.Equal(a[520:576], make([]byte, 56)) {
			t.Fatal("reserved header bytes not zero")
		}
	})
}
