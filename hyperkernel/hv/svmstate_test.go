// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

func TestSegmentAttributesBothWays(t *testing.T) {
	for _, tc := range []struct {
		ar     uint32
		attrib uint16
	}{
		{0xA09B, 0xA9B},   // 64-bit code: L, G, present, DPL 0, execute/read accessed
		{0xC093, 0xC93},   // 32-bit data: D/B, G
		{0x008B, 0x08B},   // busy TSS
		{0x00F3, 0x0F3},   // DPL 3 data
		{arUnusable, 0x0}, // null selector
	} {
		if got := attribFromAR(tc.ar); got != tc.attrib {
			t.Errorf("attribFromAR(%#x) = %#x, want %#x", tc.ar, got, tc.attrib)
		}
		if got := arFromAttrib(tc.attrib); got != tc.ar {
			t.Errorf("arFromAttrib(%#x) = %#x, want %#x", tc.attrib, got, tc.ar)
		}
	}
}

// longModeState is a vCPU in 64-bit mode with every field saveVMCB keeps.
func longModeState() *vcpu.State {
	s := new(vcpu.State)
	s.Reset(1, false)
	for i := range s.GPR {
		s.GPR[i] = 0x1000 + uint64(i)
	}
	s.RIP, s.RFLAGS = 0xFFFFFFFF81000000, 0x246
	code := vcpu.Segment{Selector: 0x10, Access: 0xA09B, Limit: 0xFFFFFFFF}
	data := vcpu.Segment{Selector: 0x18, Access: 0xC093, Limit: 0xFFFFFFFF}
	s.Seg = [vcpu.NumSegs]vcpu.Segment{data, code, data, data,
		{Base: 0x7000_0000, Access: arUnusable}, {Selector: 0x18, Base: 0xFFFF888000000000, Access: 0xC093, Limit: 0xFFFFFFFF},
		{Access: arUnusable}, {Selector: 0x40, Base: 0xFFFFFE0000003000, Limit: 0x4087, Access: 0x008B}}
	s.GDTR = vcpu.DescriptorTable{Base: 0xFFFFFE0000001000, Limit: 0x7F}
	s.IDTR = vcpu.DescriptorTable{Base: 0xFFFFFE0000000000, Limit: 0xFFF}
	s.CR0, s.CR2, s.CR3, s.CR4 = 0x80050033, 0x7F00DEAD, 0x1234000, 0x3406F0
	s.DR6, s.DR7 = 0xFFFF0FF0, 0x400
	s.EFER, s.PAT = 0xD01, 0x0407050600070106
	s.STAR, s.LSTAR, s.CSTAR, s.SFMASK = 0x23001000000000, 0xFFFFFFFF81A00000, 0xFFFFFFFF81A01000, 0x47700
	s.KernelGSBase = 0xFFFF88807FC00000
	s.SysenterCS, s.SysenterESP, s.SysenterEIP = 0x10, 0xFFFFFE0000005000, 0xFFFFFFFF81A02000
	s.FSBase, s.GSBase = s.Seg[vcpu.FS].Base, s.Seg[vcpu.GS].Base
	s.Events.Interruptibility = 1
	return s
}

// A vCPU's state goes into a VMCB and comes out the same, as it must when
// it moves between two AMD-V nodes; the VMCB's EFER carries SVME and the
// guest never sees it.
func TestVMCBStateRoundTrip(t *testing.T) {
	in := longModeState()
	var page [svm.VMCBSize]byte
	v := svm.NewVMCB(&page)
	var regs vmx.GuestRegs
	loadVMCB(in, v, &regs)
	if v.Read(svm.SaveEFER)&svm.EFERSVME == 0 {
		t.Error("the VMCB's EFER lacks SVME: VMRUN would refuse it")
	}
	if v.Read(svm.CtlInterruptShadow)&svm.InterruptShadow == 0 {
		t.Error("the STI shadow did not reach the VMCB")
	}
	if v.ReadSegment(svm.SegCS).Attrib != 0xA9B || v.ReadSegment(svm.SegLDTR).Attrib != 0 {
		t.Errorf("CS attrib %#x, LDTR attrib %#x", v.ReadSegment(svm.SegCS).Attrib, v.ReadSegment(svm.SegLDTR).Attrib)
	}
	out := new(vcpu.State)
	saveVMCB(v, &regs, 1, false, out)
	// The unusable FS keeps its base (a null selector with a base set
	// by WRMSR FS_BASE, as 64-bit code does).
	if *out != *in {
		for i := range in.Seg {
			if in.Seg[i] != out.Seg[i] {
				t.Errorf("%v: %+v, want %+v", vcpu.Seg(i), out.Seg[i], in.Seg[i])
			}
		}
		t.Errorf("state changed in the VMCB:\n got %+v\nwant %+v", out.GPR, in.GPR)
	}
	if err := out.Validate(); err != nil {
		t.Errorf("the state saved from the VMCB would not travel: %v", err)
	}
}
