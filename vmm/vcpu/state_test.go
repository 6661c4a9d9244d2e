package vcpu

import (
	"errors"
	"math/rand"
	"testing"
)

func TestResetStateIsValid(t *testing.T) {
	for _, tc := range []struct {
		id       uint32
		bsp      bool
		activity ActivityState
	}{{0, true, Active}, {3, false, WaitForSIPI}, {1000, false, WaitForSIPI}} {
		var s State
		s.Reset(tc.id, tc.bsp)
		if err := s.Validate(); err != nil {
			t.Errorf("Reset(%d, %v): %v", tc.id, tc.bsp, err)
		}
		if s.Activity != tc.activity {
			t.Errorf("Reset(%d, %v): activity %v, want %v", tc.id, tc.bsp, s.Activity, tc.activity)
		}
		if got := s.LAPIC.Base&APICBaseBSP != 0; got != tc.bsp {
			t.Errorf("Reset(%d, %v): BSP flag %v", tc.id, tc.bsp, got)
		}
	}
}

func TestTypicalStateIsValid(t *testing.T) {
	if err := typicalState().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRandomStatesAreValid(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		if err := randomState(r).Validate(); err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
	}
}

func TestEqualAndClone(t *testing.T) {
	a := typicalState()
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("clone differs from original")
	}
	b.XSAVE[100] ^= 1
	if a.Equal(b) {
		t.Fatal("Equal ignores an XSAVE byte")
	}
	if a.XSAVE[100] == b.XSAVE[100] {
		t.Fatal("clone shares the XSAVE area")
	}
	b = a.Clone()
	b.MSRs[3].Value++
	if a.Equal(b) {
		t.Fatal("Equal ignores an MSR value")
	}
	b = a.Clone()
	b.LAPIC.IRR.Set(0x80)
	if a.Equal(b) {
		t.Fatal("Equal ignores the IRR")
	}
	// Bytes beyond the valid length do not take part.
	b = a.Clone()
	b.XSAVELen = 1000
	b.XSAVE[2000] = 0xAA
	c := b.Clone()
	c.XSAVE[2000] = 0x55
	if !b.Equal(c) {
		t.Fatal("Equal compares XSAVE bytes beyond XSAVELen")
	}
}

func TestMSRHelpers(t *testing.T) {
	var s State
	s.Reset(0, true)
	if err := s.SetMSR(uint64(MSREFER), 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMSR(EFER) = %v, want ErrInvalid", err)
	}
	if err := s.SetMSR(0x830, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMSR(x2APIC ICR) = %v, want ErrInvalid", err)
	}
	if err := s.SetMSR(1<<32, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMSR(1<<32) = %v, want ErrInvalid", err)
	}
	for i := 0; i < MaxMSRs; i++ {
		if err := s.SetMSR(uint64(0x4000_0000+i), uint64(i)); err != nil {
			t.Fatalf("SetMSR #%d: %v", i, err)
		}
	}
	if err := s.SetMSR(0x3B, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMSR on a full list = %v, want ErrInvalid", err)
	}
	if err := s.SetMSR(0x4000_0005, 99); err != nil {
		t.Errorf("updating an MSR in a full list: %v", err)
	}
	if v, ok := s.MSR(0x4000_0005); !ok || v != 99 {
		t.Errorf("MSR(0x40000005) = %d, %v; want 99, true", v, ok)
	}
	if _, ok := s.MSR(0x3B); ok {
		t.Error("MSR(0x3B) found but never set")
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSetXSAVE(t *testing.T) {
	var s State
	s.Reset(0, true)
	if err := s.SetXSAVE(make([]byte, MaxXSAVE+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetXSAVE(4097 bytes) = %v, want ErrInvalid", err)
	}
	area := make([]byte, 600)
	area[599] = 0x77
	s.XSAVE[700] = 1
	if err := s.SetXSAVE(area); err != nil {
		t.Fatal(err)
	}
	if len(s.XSAVEArea()) != 600 || s.XSAVEArea()[599] != 0x77 || s.XSAVE[700] != 0 {
		t.Errorf("SetXSAVE stored %d bytes, last %#x, stale byte %#x", len(s.XSAVEArea()), s.XSAVEArea()[599], s.XSAVE[700])
	}
}

func TestVec256(t *testing.T) {
	var v Vec256
	if _, ok := v.Highest(); ok {
		t.Fatal("empty set has a highest vector")
	}
	for _, x := range []uint8{16, 63, 64, 200, 255} {
		v.Set(x)
		if !v.Has(x) {
			t.Errorf("Has(%d) false after Set", x)
		}
		if h, ok := v.Highest(); !ok || h != x {
			t.Errorf("Highest = %d, %v; want %d", h, ok, x)
		}
	}
	v.Clear(255)
	if h, _ := v.Highest(); h != 200 || v.Has(255) {
		t.Errorf("after Clear(255): Highest = %d, Has(255) = %v", h, v.Has(255))
	}
	if v.Has(17) {
		t.Error("Has(17) true but never set")
	}
}

func TestX2APICLogicalID(t *testing.T) {
	// Intel SDM Vol. 3A, 11.12.10.2: LDR = cluster (ID[19:4]) << 16 | 1 << ID[3:0].
	for _, tc := range []struct{ id, ldr uint32 }{
		{0, 0x00000001}, {0xF, 0x00008000}, {0x10, 0x00010001}, {0x23, 0x00020008}, {0xFFFFF, 0xFFFF8000},
	} {
		if got := X2APICLogicalID(tc.id); got != tc.ldr {
			t.Errorf("X2APICLogicalID(%#x) = %#x, want %#x", tc.id, got, tc.ldr)
		}
	}
}

// TestValidateRejects checks that each architectural rule rejects a state
// that breaks it, starting from a valid state each time.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(s *State)
	}{
		{"RFLAGS bit 1 clear", func(s *State) { s.RFLAGS &^= RFLAGSFixed1 }},
		{"RFLAGS reserved bit 3", func(s *State) { s.RFLAGS |= 1 << 3 }},
		{"RFLAGS bit 22", func(s *State) { s.RFLAGS |= 1 << 22 }},
		{"CR0 high bits", func(s *State) { s.CR0 |= 1 << 32 }},
		{"CR0 PG without PE", func(s *State) { s.CR0 = CR0PG }},
		{"CR0 NW without CD", func(s *State) { s.CR0 = s.CR0&^CR0CD | CR0NW }},
		{"CR3 bit 63", func(s *State) { s.CR3 |= 1 << 63 }},
		{"CR4 bit 15", func(s *State) { s.CR4 |= 1 << 15 }},
		{"CR4 PAE clear in long mode", func(s *State) { s.CR4 &^= CR4PAE }},
		{"CR4 PCIDE outside long mode", func(s *State) {
			s.CR0 &^= CR0PG
			s.EFER &^= EFERLMA | EFERLME
			s.CR4 |= CR4PCIDE
		}},
		{"CR8 > 15", func(s *State) { s.CR8 = 16 }},
		{"DR6 high bits", func(s *State) { s.DR6 |= 1 << 40 }},
		{"DR7 high bits", func(s *State) { s.DR7 |= 1 << 32 }},
		{"EFER reserved", func(s *State) { s.EFER |= 1 << 1 }},
		{"EFER LMA without LME", func(s *State) { s.EFER &^= EFERLME }},
		{"PAT type 2", func(s *State) { s.PAT = s.PAT&^(0xFF<<16) | 2<<16 }},
		{"FMASK high bits", func(s *State) { s.SFMASK |= 1 << 40 }},
		{"LSTAR not canonical", func(s *State) { s.LSTAR = 0x0100_0000_0000_0000 }},
		{"SYSENTER_EIP not canonical", func(s *State) { s.SysenterEIP = 0x8000_0000_0000_0000 }},
		{"FS_BASE disagrees with FS", func(s *State) { s.FSBase++ }},
		{"GS_BASE disagrees with GS", func(s *State) { s.GSBase++ }},
		{"XCR0 x87 clear", func(s *State) { s.XCR0 &^= XCR0X87 }},
		{"XCR0 AVX without SSE", func(s *State) { s.XCR0 = XCR0X87 | XCR0AVX }},
		{"XCR0 partial AVX-512", func(s *State) { s.XCR0 &^= 1 << 6 }},
		{"XCR0 supervisor bit", func(s *State) { s.XCR0 |= 1 << 8 }},
		{"XCR0 partial AMX", func(s *State) { s.XCR0 |= 1 << 17 }},
		{"segment AR reserved", func(s *State) { s.Seg[DS].Access |= 1 << 8 }},
		{"TR unusable", func(s *State) { s.Seg[TR].Access |= ARUnusable }},
		{"TR selector TI", func(s *State) { s.Seg[TR].Selector |= 4 }},
		{"CS base high bits", func(s *State) { s.Seg[CS].Base = 1 << 32 }},
		{"GS base not canonical", func(s *State) { s.Seg[GS].Base = 1 << 60; s.GSBase = 1 << 60 }},
		{"G set with short limit", func(s *State) { s.Seg[DS].Limit = 0x1000 }},
		{"G clear with big limit", func(s *State) { s.Seg[TR].Limit = 0x200000 }},
		{"GDTR not canonical", func(s *State) { s.GDTR.Base = 1 << 62 }},
		{"APIC base reserved", func(s *State) { s.LAPIC.Base |= 1 << 9 }},
		{"x2APIC while disabled", func(s *State) { s.LAPIC.Base &^= APICBaseEnable }},
		{"x2APIC LDR mismatch", func(s *State) { s.LAPIC.LDR ^= 1 }},
		{"xAPIC ID > 255", func(s *State) { s.LAPIC.Base &^= APICBaseX2APIC; s.LAPIC.LDR = 0; s.LAPIC.ID = 256 }},
		{"DFR bad model", func(s *State) { s.LAPIC.DFR = 0x7FFFFFFF }},
		{"TPR reserved", func(s *State) { s.LAPIC.TPR = 0x100 }},
		{"SVR reserved", func(s *State) { s.LAPIC.SVR |= 1 << 10 }},
		{"divide reserved", func(s *State) { s.LAPIC.TimerDivide = 4 }},
		{"LVT LINT0 reserved", func(s *State) { s.LAPIC.LVT[LVTLINT0] |= 1 << 17 }},
		{"LVT reserved delivery mode", func(s *State) { s.LAPIC.LVT[LVTPerf] = 1 << LVTDeliveryModeShift }},
		{"LVT timer reserved mode", func(s *State) { s.LAPIC.LVT[LVTTimer] |= LVTTimerModeMask }},
		{"ICR reserved", func(s *State) { s.LAPIC.ICR |= 1 << 13 }},
		{"IRR vector 3", func(s *State) { s.LAPIC.IRR.Set(3) }},
		{"ISR vector 15", func(s *State) { s.LAPIC.ISR.Set(15) }},
		{"interrupt vector without valid", func(s *State) { s.Events.InterruptVector = 0x30 }},
		{"exception vector 32", func(s *State) { s.Events.ExceptionValid = true; s.Events.ExceptionVector = 32 }},
		{"error code for #UD", func(s *State) {
			s.Events.ExceptionValid, s.Events.ExceptionVector, s.Events.ErrorCodeValid = true, 6, true
		}},
		{"error code without valid", func(s *State) { s.Events.ErrorCode = 1 }},
		{"error-code flag without exception", func(s *State) { s.Events.ErrorCodeValid = true }},
		{"interruptibility reserved", func(s *State) { s.Events.Interruptibility = 1 << 5 }},
		{"STI and MOV SS", func(s *State) { s.Events.Interruptibility = BlockingBySTI | BlockingByMovSS }},
		{"STI blocking with IF clear", func(s *State) {
			s.RFLAGS &^= RFLAGSIF
			s.Events.Interruptibility = BlockingBySTI
		}},
		{"pending debug reserved", func(s *State) { s.Events.PendingDebug = 1 << 4 }},
		{"activity 4", func(s *State) { s.Activity = 4 }},
		{"XSAVE too short", func(s *State) { s.XSAVELen = MinXSAVE - 1 }},
		{"XSAVE too long", func(s *State) { s.XSAVELen = MaxXSAVE + 1 }},
		{"XSAVE MXCSR reserved", func(s *State) { s.XSAVE[xsaveMXCSROffset+2] = 1 }},
		{"XSTATE_BV beyond XCR0", func(s *State) { s.XSAVE[xsaveHeaderOffset+2] |= 1 << 1 }}, // bit 17
		{"XCOMP_BV set", func(s *State) { s.XSAVE[xsaveXCompBVOffset+7] = 0x80 }},
		{"XSAVE header reserved", func(s *State) { s.XSAVE[MinXSAVE-1] = 1 }},
		{"MSR duplicate", func(s *State) { s.MSRs[1].Index = s.MSRs[0].Index }},
		{"MSR dedicated", func(s *State) { s.MSRs[0].Index = MSRLSTAR }},
		{"MSR count", func(s *State) { s.NumMSRs = MaxMSRs + 1 }},
	} {
		s := typicalState()
		tc.break_(s)
		err := s.Validate()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", tc.name, err)
			continue
		}
		if s.NumMSRs > MaxMSRs || s.XSAVELen > MaxXSAVE {
			continue // cannot be encoded as such
		}
		// The decoder must refuse the same state.
		var d State
		if err := d.UnmarshalBinary(s.MarshalAppend(nil)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: UnmarshalBinary = %v, want ErrInvalid", tc.name, err)
		}
	}
}
