package vcpu

import (
	"encoding/binary"
	"math/rand"
)

// randCanonical returns a random canonical 57-bit linear address.
func randCanonical(r *rand.Rand) uint64 {
	switch r.Intn(4) {
	case 0:
		return 0
	case 1:
		return uint64(int64(r.Uint64()<<16) >> 16) // 48-bit canonical
	default:
		return uint64(int64(r.Uint64()<<7) >> 7)
	}
}

// randomState returns a random State that passes Validate.
func randomState(r *rand.Rand) *State {
	s := new(State)
	for i := range s.GPR {
		s.GPR[i] = r.Uint64()
	}
	s.RIP = r.Uint64()
	s.RFLAGS = r.Uint64()&^rflagsReserved0 | RFLAGSFixed1
	for i := range s.Seg {
		g := &s.Seg[i]
		g.Selector = uint16(r.Uint32())
		g.Access = r.Uint32() &^ arReservedMsk
		g.Limit = r.Uint32()
		switch Seg(i) {
		case CS, SS, DS, ES:
			g.Base = uint64(r.Uint32())
		default:
			g.Base = randCanonical(r)
		}
		if Seg(i) == TR {
			g.Access &^= ARUnusable
		}
		if Seg(i) == TR || Seg(i) == LDTR {
			g.Selector &^= 4
		}
		if g.Limit>>20 != 0 {
			g.Limit |= 0xFFF
			g.Access |= ARG
		} else if g.Limit&0xFFF != 0xFFF {
			g.Access &^= ARG
		}
	}
	s.GDTR = DescriptorTable{Base: randCanonical(r), Limit: uint16(r.Uint32())}
	s.IDTR = DescriptorTable{Base: randCanonical(r), Limit: uint16(r.Uint32())}

	s.CR0 = uint64(r.Uint32())
	if s.CR0&CR0PG != 0 {
		s.CR0 |= CR0PE
	}
	if s.CR0&CR0NW != 0 {
		s.CR0 |= CR0CD
	}
	s.CR2 = r.Uint64()
	s.CR3 = r.Uint64() &^ cr3Reserved
	s.CR4 = r.Uint64() & cr4Defined
	s.CR8 = uint64(r.Intn(16))
	for i := range s.DR {
		s.DR[i] = r.Uint64()
	}
	s.DR6 = uint64(r.Uint32())
	s.DR7 = uint64(r.Uint32())
	s.EFER = r.Uint64() & eferDefined
	if s.CR0&CR0PG != 0 {
		s.EFER &^= EFERLMA
		if s.EFER&EFERLME != 0 {
			s.EFER |= EFERLMA
		}
	}
	if s.EFER&EFERLMA != 0 {
		s.CR4 |= CR4PAE
	} else {
		s.CR4 &^= CR4PCIDE
	}
	s.STAR = r.Uint64()
	s.LSTAR = randCanonical(r)
	s.CSTAR = r.Uint64()
	s.SFMASK = uint64(r.Uint32())
	s.FSBase = s.Seg[FS].Base
	s.GSBase = s.Seg[GS].Base
	s.KernelGSBase = randCanonical(r)
	s.SysenterCS = r.Uint32()
	s.SysenterESP = randCanonical(r)
	s.SysenterEIP = randCanonical(r)
	patTypes := [...]uint64{0, 1, 4, 5, 6, 7}
	for i := 0; i < 8; i++ {
		s.PAT |= patTypes[r.Intn(len(patTypes))] << (8 * i)
	}
	s.TSCOffset = r.Uint64()
	s.TSCDeadline = r.Uint64()

	s.XCR0 = XCR0X87
	if r.Intn(2) == 0 {
		s.XCR0 |= XCR0SSE
		if r.Intn(2) == 0 {
			s.XCR0 |= XCR0AVX
			if r.Intn(2) == 0 {
				s.XCR0 |= XCR0AVX512
			}
		}
	}
	for _, opt := range [...]uint64{XCR0PKRU, XCR0BNDREGS | XCR0BNDCSR, XCR0AMX, XCR0APX} {
		if r.Intn(3) == 0 {
			s.XCR0 |= opt
		}
	}
	if r.Intn(2) == 0 {
		s.PKRU = r.Uint32()
	}
	switch r.Intn(4) {
	case 0:
		s.XSAVELen = 0
	case 1:
		s.XSAVELen = MaxXSAVE
	case 2:
		s.XSAVELen = MinXSAVE
	default:
		s.XSAVELen = uint32(MinXSAVE + r.Intn(MaxXSAVE-MinXSAVE+1))
	}
	if n := s.XSAVELen; n > 0 {
		a := s.XSAVE[:n]
		r.Read(a)
		binary.LittleEndian.PutUint32(a[xsaveMXCSROffset:], uint32(r.Intn(1<<16)))
		binary.LittleEndian.PutUint64(a[xsaveHeaderOffset:], r.Uint64()&s.XCR0)
		clear(a[xsaveXCompBVOffset:MinXSAVE])
	}

	a := &s.LAPIC
	a.Base = r.Uint64() & apicBaseDefined
	if a.Base&APICBaseX2APIC != 0 {
		a.Base |= APICBaseEnable
		a.ID = r.Uint32()
		a.LDR = X2APICLogicalID(a.ID)
	} else {
		a.ID = uint32(r.Intn(256))
		a.LDR = r.Uint32() &^ 0xFFFFFF
	}
	a.DFR = [...]uint32{DFRFlat, DFRCluster}[r.Intn(2)]
	a.TPR = r.Uint32() & tprDefined
	a.SVR = r.Uint32() & svrDefined
	a.ESR = r.Uint32() & esrDefined
	a.TimerDivide = r.Uint32() & divideDefined
	for _, set := range [...]*Vec256{&a.ISR, &a.TMR, &a.IRR} {
		for i := range set {
			set[i] = r.Uint64()
		}
		set[0] &^= 0xFFFF
	}
	for i := range a.LVT {
		v := r.Uint32() & lvtDefined[i]
		switch (v & LVTDeliveryModeMask) >> LVTDeliveryModeShift {
		case 1, 3, 6:
			v &^= LVTDeliveryModeMask
		}
		if v&LVTTimerModeMask == LVTTimerModeMask {
			v &^= LVTTimerModeMask
		}
		a.LVT[i] = v
	}
	a.TimerInitial = r.Uint32()
	a.TimerCurrent = r.Uint32()
	a.ICR = r.Uint64() & icrDefined

	e := &s.Events
	if r.Intn(2) == 0 {
		e.InterruptValid = true
		e.InterruptVector = uint8(r.Uint32())
	}
	if r.Intn(2) == 0 {
		e.ExceptionValid = true
		e.ExceptionVector = uint8(r.Intn(32))
		if errorCodeVector(e.ExceptionVector) && r.Intn(2) == 0 {
			e.ErrorCodeValid = true
			e.ErrorCode = r.Uint32()
		}
	}
	e.PendingNMIs = uint8(r.Intn(MaxPendingNMIs + 1))
	e.Interruptibility = r.Uint32() & interruptibilityDefined
	if e.Interruptibility&BlockingBySTI != 0 {
		e.Interruptibility &^= BlockingByMovSS
		s.RFLAGS |= RFLAGSIF
	}
	e.PendingDebug = r.Uint64() & pendingDebugDefined
	s.Activity = ActivityState(r.Intn(4))

	s.NumMSRs = r.Intn(MaxMSRs + 1)
	if r.Intn(3) == 0 {
		s.NumMSRs = 0
	}
	seen := map[uint32]bool{}
	for i := 0; i < s.NumMSRs; {
		idx := r.Uint32()
		if r.Intn(2) == 0 {
			idx &= 0xFFF // low MSR range, where the dedicated ones live
		}
		if dedicatedMSR(idx) || seen[idx] {
			continue
		}
		seen[idx] = true
		s.MSRs[i] = MSR{Index: idx, Value: r.Uint64()}
		i++
	}
	return s
}

// typicalState returns the state of a 64-bit Linux vCPU running user code
// with a full 4096-byte XSAVE area and a handful of extra MSRs.
func typicalState() *State {
	s := new(State)
	s.Reset(1, false)
	r := rand.New(rand.NewSource(7))
	for i := range s.GPR {
		s.GPR[i] = r.Uint64()
	}
	s.RIP = 0x00007f3a_12345678
	s.RFLAGS = RFLAGSFixed1 | RFLAGSIF
	code64 := ARP | ARS | ARL | ARG | 0xB
	data := ARP | ARS | ARDB | ARG | 0x3
	s.Seg[CS] = Segment{Selector: 0x33, Limit: 0xFFFFFFFF, Access: code64 | 3<<ARDPLShift}
	for _, g := range [...]Seg{DS, ES, SS} {
		s.Seg[g] = Segment{Selector: 0x2B, Limit: 0xFFFFFFFF, Access: data | 3<<ARDPLShift}
	}
	s.Seg[FS] = Segment{Base: 0x00007f3a_00001000, Limit: 0xFFFFFFFF, Access: data | 3<<ARDPLShift}
	s.Seg[GS] = Segment{Limit: 0xFFFFFFFF, Access: data | 3<<ARDPLShift}
	s.Seg[LDTR] = Segment{Access: ARUnusable}
	s.Seg[TR] = Segment{Selector: 0x40, Base: 0xfffffe00_00003000, Limit: 0x4087, Access: ARP | 0xB}
	s.GDTR = DescriptorTable{Base: 0xfffffe00_00001000, Limit: 0x7F}
	s.IDTR = DescriptorTable{Base: 0xfffffe00_00000000, Limit: 0xFFF}
	s.CR0 = 0x80050033
	s.CR3 = 0x1_2345_6000
	s.CR4 = 0x3706F0 | CR4OSXSAVE
	s.EFER = EFERSCE | EFERLME | EFERLMA | EFERNXE
	s.STAR = 0x00230010_00000000
	s.LSTAR = 0xffffffff_81a00080
	s.CSTAR = 0xffffffff_81a01c40
	s.SFMASK = 0x47700
	s.FSBase = s.Seg[FS].Base
	s.KernelGSBase = 0xffff8881_3bc00000
	s.SysenterCS = 0x10
	s.SysenterESP = 0xfffffe00_00003000
	s.SysenterEIP = 0xffffffff_81a01d60
	s.XCR0 = XCR0X87 | XCR0SSE | XCR0AVX | XCR0AVX512 | XCR0PKRU
	s.PKRU = 0x55555554 // Linux's: keys 1-15 access-disabled
	s.XSAVELen = MaxXSAVE
	r.Read(s.XSAVE[:])
	binary.LittleEndian.PutUint32(s.XSAVE[xsaveMXCSROffset:], ResetMXCSR)
	binary.LittleEndian.PutUint64(s.XSAVE[xsaveHeaderOffset:], s.XCR0)
	clear(s.XSAVE[xsaveXCompBVOffset:MinXSAVE])
	s.LAPIC.Base |= APICBaseX2APIC
	s.LAPIC.LDR = X2APICLogicalID(1)
	s.LAPIC.SVR = SVREnable | 0xFF
	s.LAPIC.LVT[LVTTimer] = 0xEC | 2<<LVTTimerModeShift
	s.TSCDeadline = 0x1234_5678_9abc
	s.Activity = Active
	for i, idx := range [...]uint32{0xC0000103, 0x1D9, 0x48, 0x3B, 0x10A, 0xDA0, 0x6A0, 0x6A2} {
		if err := s.SetMSR(uint64(idx), uint64(i)*0x1001); err != nil {
			panic(err)
		}
	}
	return s
}

// avxGuestState is typicalState with the XSAVE area of a guest that
// enables AVX and protection keys (XCR0 0x207, 2696 bytes) and uses its
// vector registers: MXCSR, XMM0-15, the header, the upper halves of the
// YMM registers and PKRU hold data, the rest (x87 registers, the room for
// AVX-512) is zero.
func avxGuestState() *State {
	s := typicalState()
	s.XCR0 = XCR0X87 | XCR0SSE | XCR0AVX | XCR0PKRU
	s.XSAVELen = 2696
	clear(s.XSAVE[:])
	for i := 160; i < 416; i++ { // XMM0-15
		s.XSAVE[i] = byte(i)
	}
	binary.LittleEndian.PutUint32(s.XSAVE[xsaveMXCSROffset:], 0x1f80)
	binary.LittleEndian.PutUint64(s.XSAVE[xsaveHeaderOffset:], s.XCR0)
	for i := 576; i < 832; i++ { // YMM_Hi128
		s.XSAVE[i] = byte(i * 7)
	}
	binary.LittleEndian.PutUint32(s.XSAVE[2688:], 0x55555554) // PKRU
	return s
}
