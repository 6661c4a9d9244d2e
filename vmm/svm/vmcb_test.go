// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import "testing"

// TestVMCBOffsets pins offsets checked in two independent sources:
//   - AMD64 APM Vol. 2 (pub. 24593), Appendix B, Table B-1 "VMCB Layout,
//     Control Area" and Table B-2 "VMCB Layout, State Save Area" (whose
//     offsets are relative to the save area at 400h);
//   - Linux arch/x86/include/asm/svm.h: struct vmcb_control_area and struct
//     vmcb_save_area (packed; offsets summed from the member sizes, and its
//     BUILD_BUG_RESERVED_OFFSET checks of reserved_0xa0/0xcc/0xd8/0x180/
//     0x248/0x298), with QEMU's target/i386/svm.h agreeing on every offset
//     it defines.
func TestVMCBOffsets(t *testing.T) {
	for _, tc := range []struct {
		f    Field
		off  int
		size int
	}{
		{CtlInterceptCR, 0x000, 4},
		{CtlInterceptExceptions, 0x008, 4},
		{CtlInterceptWord3, 0x00C, 4},
		{CtlInterceptWord4, 0x010, 4},
		{CtlPauseFilterThreshold, 0x03C, 2},
		{CtlIOPMBase, 0x040, 8},
		{CtlMSRPMBase, 0x048, 8},
		{CtlTSCOffset, 0x050, 8},
		{CtlGuestASID, 0x058, 4},
		{CtlTLBControl, 0x05C, 1},
		{CtlVIntr, 0x060, 4},
		{CtlInterruptShadow, 0x068, 8},
		{CtlExitCode, 0x070, 8},
		{CtlExitInfo1, 0x078, 8},
		{CtlExitInfo2, 0x080, 8},
		{CtlExitIntInfo, 0x088, 8},
		{CtlNestedCtl, 0x090, 8},
		{CtlEventInj, 0x0A8, 8},
		{CtlNCR3, 0x0B0, 8},
		{CtlCleanBits, 0x0C0, 4},
		{CtlNRIP, 0x0C8, 8},
		{CtlInsnLen, 0x0D0, 1},
		{CtlInsnBytes, 0x0D1, 1},
		{SegES.Selector(), 0x400, 2},
		{SegCS.Attrib(), 0x412, 2},
		{SegTR.Base(), 0x498, 8},
		{SaveCPL, 0x4CB, 1},
		{SaveEFER, 0x4D0, 8},
		{SaveCR4, 0x548, 8},
		{SaveCR0, 0x558, 8},
		{SaveRFLAGS, 0x570, 8},
		{SaveRIP, 0x578, 8},
		{SaveRSP, 0x5D8, 8},
		{SaveRAX, 0x5F8, 8},
		{SaveSTAR, 0x600, 8},
		{SaveKernelGSBase, 0x620, 8},
		{SaveCR2, 0x640, 8},
		{SaveGPAT, 0x668, 8},
		{SaveLastExcpTo, 0x690, 8},
	} {
		if tc.f.Offset() != tc.off || tc.f.Size() != tc.size {
			t.Errorf("%v: offset %#x size %d, want %#x size %d", tc.f, tc.f.Offset(), tc.f.Size(), tc.off, tc.size)
		}
	}
}

// TestFieldsDisjoint checks that no two named fields overlap and that all
// lie in the page.
func TestFieldsDisjoint(t *testing.T) {
	var owner [VMCBSize]Field
	mark := func(f Field) {
		if f.Offset()+f.Size() > VMCBSize || f.Size() == 0 {
			t.Fatalf("%v out of the page", f)
		}
		for i := f.Offset(); i < f.Offset()+f.Size(); i++ {
			if owner[i] != 0 {
				t.Errorf("%v overlaps %v at %#x", f, owner[i], i)
			}
			owner[i] = f
		}
	}
	for f := range fieldNames {
		mark(f)
	}
	for s := range segNames {
		mark(s.Selector())
		mark(s.Attrib())
		mark(s.Limit())
		mark(s.Base())
	}
}

func TestVMCBReadWrite(t *testing.T) {
	var page [VMCBSize]byte
	v := NewVMCB(&page)
	v.Write(CtlExitCode, ^uint64(0))
	v.Write(CtlTLBControl, 0x1FF) // truncated to a byte
	v.Write(CtlGuestASID, 7)
	if got := v.Read(CtlExitCode); got != ^uint64(0) {
		t.Errorf("EXITCODE = %#x", got)
	}
	if got := v.Read(CtlTLBControl); got != 0xFF {
		t.Errorf("TLB_CONTROL = %#x", got)
	}
	if page[0x58] != 7 || page[0x5C] != 0xFF || page[0x5D] != 0 {
		t.Errorf("bytes at 0x58..0x5D: % x", page[0x58:0x5E])
	}
	cs := Segment{Selector: 0x08, Attrib: AttrP | AttrS | 0xB | AttrL | AttrG, Limit: 0xFFFFFFFF, Base: 0x1000}
	v.WriteSegment(SegCS, cs)
	if got := v.ReadSegment(SegCS); got != cs {
		t.Errorf("CS = %+v, want %+v", got, cs)
	}
	if page[0x410] != 0x08 || page[0x412] != 0x9B || page[0x413] != 0x0A {
		t.Errorf("CS bytes % x", page[0x410:0x420])
	}
	page[0xD0] = 3
	copy(page[0xD1:], []byte{0x0F, 0x01, 0xD9})
	if got := v.InstructionBytes(); string(got) != "\x0f\x01\xd9" {
		t.Errorf("instruction bytes % x", got)
	}
	page[0xD0] = 200 // a corrupt count is clamped to 15
	if got := len(v.InstructionBytes()); got != 15 {
		t.Errorf("%d instruction bytes", got)
	}
}

func TestIntercepts(t *testing.T) {
	var page [VMCBSize]byte
	v := NewVMCB(&page)
	for _, tc := range []struct {
		i    Intercept
		off  int
		mask uint64
	}{
		{InterceptCRRead(0), 0x00, 1},
		{InterceptCRWrite(8), 0x00, 1 << 24},
		{InterceptDRWrite(7), 0x04, 1 << 23},
		{InterceptException(14), 0x08, 1 << 14},
		{InterceptINTR, 0x0C, 1 << 0},
		{InterceptCPUID, 0x0C, 1 << 18},
		{InterceptHLT, 0x0C, 1 << 24},
		{InterceptIOIOProt, 0x0C, 1 << 27},
		{InterceptMSRProt, 0x0C, 1 << 28},
		{InterceptShutdown, 0x0C, 1 << 31},
		{InterceptVMRUN, 0x10, 1 << 0},
		{InterceptVMMCALL, 0x10, 1 << 1},
		{InterceptXSETBV, 0x10, 1 << 13},
		{InterceptCR0WriteTrap, 0x10, 1 << 16},
		{InterceptIdleHLT, 0x14, 1 << 6},
	} {
		if tc.i.Field().Offset() != tc.off || tc.i.Mask() != tc.mask {
			t.Errorf("intercept %d: word %#x mask %#x, want %#x %#x", tc.i, tc.i.Field().Offset(), tc.i.Mask(), tc.off, tc.mask)
		}
	}
	v.SetIntercept(InterceptVMRUN, true)
	v.SetIntercept(InterceptHLT, true)
	v.SetIntercept(InterceptShutdown, true)
	v.SetIntercept(InterceptHLT, false)
	if !v.Intercepted(InterceptVMRUN) || v.Intercepted(InterceptHLT) || page[0x0F] != 0x80 || page[0x10] != 1 {
		t.Errorf("intercept words % x", page[0x0C:0x14])
	}
}
