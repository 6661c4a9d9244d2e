package vcpu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error that reports a field value the
// architecture does not allow (a reserved bit set, an impossible
// combination of bits, a length out of range).
var ErrInvalid = errors.New("invalid vCPU state")

// Architectural bits checked by Validate.
const (
	// RFLAGS (Intel SDM Vol. 1, 3.4.3; Vol. 3C, "Checks on Guest RIP
	// and RFLAGS").
	RFLAGSFixed1    uint64 = 1 << 1
	RFLAGSIF        uint64 = 1 << 9
	rflagsReserved0        = 1<<3 | 1<<5 | 1<<15 | 0xFFFFFFFF_FFC00000

	// CR0 (Intel SDM Vol. 3A, 2.5).
	CR0PE uint64 = 1 << 0
	CR0NW uint64 = 1 << 29
	CR0CD uint64 = 1 << 30
	CR0PG uint64 = 1 << 31

	// CR4 (Intel SDM Vol. 3A, 2.5, Figure 2-7): bits 0-14, 16-25, 27,
	// 28 and 32 are defined; the others are reserved.
	CR4VME        uint64 = 1 << 0
	CR4PVI        uint64 = 1 << 1
	CR4TSD        uint64 = 1 << 2
	CR4DE         uint64 = 1 << 3
	CR4PSE        uint64 = 1 << 4
	CR4PAE        uint64 = 1 << 5
	CR4MCE        uint64 = 1 << 6
	CR4PGE        uint64 = 1 << 7
	CR4PCE        uint64 = 1 << 8
	CR4OSFXSR     uint64 = 1 << 9
	CR4OSXMMEXCPT uint64 = 1 << 10
	CR4UMIP       uint64 = 1 << 11
	CR4LA57       uint64 = 1 << 12
	CR4FSGSBASE   uint64 = 1 << 16
	CR4PCIDE      uint64 = 1 << 17
	CR4OSXSAVE    uint64 = 1 << 18
	CR4SMEP       uint64 = 1 << 20
	CR4SMAP       uint64 = 1 << 21
	CR4PKE        uint64 = 1 << 22
	CR4PKS        uint64 = 1 << 24
	cr4Defined           = 0x7FFF | 0x3FF<<16 | 1<<27 | 1<<28 | 1<<32

	// CR3 bits that are reserved whatever the physical-address width:
	// bits 63 and 60:52 (bits 62:61 are the LAM_U48/LAM_U57 enables).
	cr3Reserved uint64 = 1<<63 | 0x1FF<<52

	// IA32_EFER (Intel SDM Vol. 3A, 2.2.1, Figure 2-4).
	EFERSCE     uint64 = 1 << 0
	EFERLME     uint64 = 1 << 8
	EFERLMA     uint64 = 1 << 10
	EFERNXE     uint64 = 1 << 11
	eferDefined        = EFERSCE | EFERLME | EFERLMA | EFERNXE

	// XCR0 (Intel SDM Vol. 1, 13.3): user state components only.
	XCR0X87     uint64 = 1 << 0
	XCR0SSE     uint64 = 1 << 1
	XCR0AVX     uint64 = 1 << 2
	XCR0BNDREGS uint64 = 1 << 3
	XCR0BNDCSR  uint64 = 1 << 4
	XCR0AVX512  uint64 = 7 << 5 // opmask, ZMM_Hi256, Hi16_ZMM
	XCR0PKRU    uint64 = 1 << 9
	XCR0AMX     uint64 = 3 << 17 // XTILECFG, XTILEDATA
	XCR0APX     uint64 = 1 << 19
	xcr0Defined        = XCR0X87 | XCR0SSE | XCR0AVX | XCR0BNDREGS | XCR0BNDCSR | XCR0AVX512 | XCR0PKRU | XCR0AMX | XCR0APX

	// XSAVE area layout (Intel SDM Vol. 1, 13.4.1 and 13.4.2).
	xsaveMXCSROffset    = 24
	xsaveHeaderOffset   = 512
	xsaveXCompBVOffset  = 520
	xsaveHeaderRsvdFrom = 528
)

// canonical reports whether v is a canonical linear address for the widest
// linear-address width the architecture defines (57 bits, Intel SDM Vol.
// 3A, 4.5.1). Narrower processors impose stricter rules at VM entry.
func canonical(v uint64) bool {
	return uint64(int64(v<<7)>>7) == v
}

// errorCodeVector reports whether exception vector v delivers an error
// code (Intel SDM Vol. 3A, 6.3.1, Table 6-1).
func errorCodeVector(v uint8) bool {
	switch v {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

// validPATType reports whether t is a valid memory type for an IA32_PAT
// entry (Intel SDM Vol. 3A, "IA32_PAT MSR", memory types table).
func validPATType(t uint64) bool {
	switch t {
	case 0, 1, 4, 5, 6, 7:
		return true
	}
	return false
}

func invalid(field string, v uint64, why string) error {
	return fmt.Errorf("vcpu: %s = %#x: %s: %w", field, v, why, ErrInvalid)
}

// Validate reports whether s is an architecturally consistent vCPU state:
// no reserved bit is set, the combinations of bits that VM entry or the
// instruction that loads a register rejects are absent (Intel SDM Vol. 3C,
// "Checks on the Guest State Area"), and the variable-length parts are well formed. It does not
// check what depends on the processor model (the physical-address width,
// which optional features exist) beyond the architectural maximum.
func (s *State) Validate() error {
	if err := s.validateRegisters(); err != nil {
		return err
	}
	for i := range s.Seg {
		if err := validateSegment(Seg(i), &s.Seg[i]); err != nil {
			return err
		}
	}
	for _, d := range [...]struct {
		name string
		base uint64
	}{{"GDTR.base", s.GDTR.Base}, {"IDTR.base", s.IDTR.Base}} {
		if !canonical(d.base) {
			return invalid(d.name, d.base, "not canonical")
		}
	}
	if err := s.LAPIC.validate(); err != nil {
		return err
	}
	if err := s.validateEvents(); err != nil {
		return err
	}
	if s.Activity > WaitForSIPI {
		return invalid("activity state", uint64(s.Activity), "undefined")
	}
	if err := s.validateXSAVE(); err != nil {
		return err
	}
	return s.validateMSRs()
}

func (s *State) validateRegisters() error {
	if s.RFLAGS&RFLAGSFixed1 == 0 {
		return invalid("RFLAGS", s.RFLAGS, "bit 1 must be set")
	}
	if s.RFLAGS&rflagsReserved0 != 0 {
		return invalid("RFLAGS", s.RFLAGS, "reserved bits set")
	}
	if s.CR0>>32 != 0 {
		return invalid("CR0", s.CR0, "bits 63:32 set")
	}
	if s.CR0&CR0PG != 0 && s.CR0&CR0PE == 0 {
		return invalid("CR0", s.CR0, "PG set without PE")
	}
	if s.CR0&CR0NW != 0 && s.CR0&CR0CD == 0 {
		return invalid("CR0", s.CR0, "NW set without CD")
	}
	if s.CR3&cr3Reserved != 0 {
		return invalid("CR3", s.CR3, "reserved bits set")
	}
	if s.CR4&^cr4Defined != 0 {
		return invalid("CR4", s.CR4, "reserved bits set")
	}
	if s.CR8 > 0xF {
		return invalid("CR8", s.CR8, "reserved bits set")
	}
	if s.DR6>>32 != 0 {
		return invalid("DR6", s.DR6, "bits 63:32 set")
	}
	if s.DR7>>32 != 0 {
		return invalid("DR7", s.DR7, "bits 63:32 set")
	}
	if s.EFER&^eferDefined != 0 {
		return invalid("IA32_EFER", s.EFER, "reserved bits set")
	}
	if s.CR0&CR0PG != 0 && (s.EFER&EFERLMA != 0) != (s.EFER&EFERLME != 0) {
		return invalid("IA32_EFER", s.EFER, "LMA differs from LME while paging is on")
	}
	if s.EFER&EFERLMA != 0 && s.CR4&CR4PAE == 0 {
		return invalid("CR4", s.CR4, "PAE clear in IA-32e mode")
	}
	if s.CR4&CR4PCIDE != 0 && s.EFER&EFERLMA == 0 {
		return invalid("CR4", s.CR4, "PCIDE set outside IA-32e mode")
	}
	for i := 0; i < 8; i++ {
		if t := s.PAT >> (8 * i) & 0xFF; !validPATType(t) {
			return invalid("IA32_PAT", s.PAT, fmt.Sprintf("entry %d has invalid memory type %d", i, t))
		}
	}
	if s.SFMASK>>32 != 0 {
		return invalid("IA32_FMASK", s.SFMASK, "bits 63:32 set")
	}
	for _, c := range [...]struct {
		name string
		v    uint64
	}{
		{"IA32_LSTAR", s.LSTAR},
		{"IA32_FS_BASE", s.FSBase},
		{"IA32_GS_BASE", s.GSBase},
		{"IA32_KERNEL_GS_BASE", s.KernelGSBase},
		{"IA32_SYSENTER_ESP", s.SysenterESP},
		{"IA32_SYSENTER_EIP", s.SysenterEIP},
	} {
		if !canonical(c.v) {
			return invalid(c.name, c.v, "not canonical")
		}
	}
	if s.FSBase != s.Seg[FS].Base {
		return invalid("IA32_FS_BASE", s.FSBase, "differs from FS.base")
	}
	if s.GSBase != s.Seg[GS].Base {
		return invalid("IA32_GS_BASE", s.GSBase, "differs from GS.base")
	}
	return s.validateXCR0()
}

func (s *State) validateXCR0() error {
	x := s.XCR0
	switch {
	case x&^xcr0Defined != 0:
		return invalid("XCR0", x, "reserved or supervisor bits set")
	case x&XCR0X87 == 0:
		return invalid("XCR0", x, "x87 bit clear")
	case x&XCR0AVX != 0 && x&XCR0SSE == 0:
		return invalid("XCR0", x, "AVX without SSE")
	case x&XCR0AVX512 != 0 && (x&XCR0AVX512 != XCR0AVX512 || x&XCR0AVX == 0):
		return invalid("XCR0", x, "partial AVX-512 or AVX-512 without AVX")
	case (x&XCR0BNDREGS != 0) != (x&XCR0BNDCSR != 0):
		return invalid("XCR0", x, "partial MPX")
	case x&XCR0AMX != 0 && x&XCR0AMX != XCR0AMX:
		return invalid("XCR0", x, "partial AMX")
	}
	return nil
}

func validateSegment(r Seg, g *Segment) error {
	name := r.String()
	if g.Access&arReservedMsk != 0 {
		return invalid(name+".access", uint64(g.Access), "reserved bits set")
	}
	usable := g.Access&ARUnusable == 0
	if r == TR && !usable {
		return invalid("TR.access", uint64(g.Access), "TR must be usable")
	}
	if (r == TR || r == LDTR && usable) && g.Selector&4 != 0 {
		return invalid(name+".selector", uint64(g.Selector), "TI flag set")
	}
	switch r {
	case CS, SS, DS, ES:
		if (r == CS || usable) && g.Base>>32 != 0 {
			return invalid(name+".base", g.Base, "bits 63:32 set")
		}
	default:
		if !canonical(g.Base) {
			return invalid(name+".base", g.Base, "not canonical")
		}
	}
	if usable {
		// Intel SDM Vol. 3C, "Checks on Guest Segment Registers": the
		// granularity flag must match
		// the limit.
		if g.Limit&0xFFF != 0xFFF && g.Access&ARG != 0 {
			return invalid(name+".access", uint64(g.Access), "G set but limit bits 11:0 not all ones")
		}
		if g.Limit>>20 != 0 && g.Access&ARG == 0 {
			return invalid(name+".access", uint64(g.Access), "G clear but limit exceeds 1 MiB")
		}
	}
	return nil
}

func (a *LAPIC) validate() error {
	if a.Base&^apicBaseDefined != 0 {
		return invalid("IA32_APIC_BASE", a.Base, "reserved bits set")
	}
	x2 := a.Base&APICBaseX2APIC != 0
	if x2 && a.Base&APICBaseEnable == 0 {
		return invalid("IA32_APIC_BASE", a.Base, "x2APIC mode while globally disabled")
	}
	if !x2 && a.ID > 0xFF {
		return invalid("APIC ID", uint64(a.ID), "exceeds 8 bits in xAPIC mode")
	}
	if x2 {
		if want := X2APICLogicalID(a.ID); a.LDR != want {
			return invalid("LDR", uint64(a.LDR), fmt.Sprintf("x2APIC LDR must be %#x", want))
		}
	} else if a.LDR&0xFFFFFF != 0 {
		return invalid("LDR", uint64(a.LDR), "reserved bits set")
	}
	if a.DFR != DFRFlat && a.DFR != DFRCluster {
		return invalid("DFR", uint64(a.DFR), "neither flat nor cluster model")
	}
	for _, r := range [...]struct {
		name    string
		v, mask uint32
	}{
		{"TPR", a.TPR, tprDefined},
		{"SVR", a.SVR, svrDefined},
		{"ESR", a.ESR, esrDefined},
		{"divide configuration", a.TimerDivide, divideDefined},
	} {
		if r.v&^r.mask != 0 {
			return invalid(r.name, uint64(r.v), "reserved bits set")
		}
	}
	for i, v := range a.LVT {
		l := LVT(i)
		if v&^lvtDefined[l] != 0 {
			return invalid("LVT "+l.String(), uint64(v), "reserved bits set")
		}
		if lvtDefined[l]&LVTDeliveryModeMask != 0 {
			switch (v & LVTDeliveryModeMask) >> LVTDeliveryModeShift {
			case 1, 3, 6:
				return invalid("LVT "+l.String(), uint64(v), "reserved delivery mode")
			}
		}
	}
	if a.LVT[LVTTimer]&LVTTimerModeMask == LVTTimerModeMask {
		return invalid("LVT timer", uint64(a.LVT[LVTTimer]), "reserved timer mode")
	}
	if a.ICR&^icrDefined != 0 {
		return invalid("ICR", a.ICR, "reserved bits set")
	}
	for _, r := range [...]struct {
		name string
		v    *Vec256
	}{{"ISR", &a.ISR}, {"TMR", &a.TMR}, {"IRR", &a.IRR}} {
		if r.v[0]&0xFFFF != 0 {
			return invalid(r.name, r.v[0]&0xFFFF, "vectors 0-15 are reserved")
		}
	}
	return nil
}

func (s *State) validateEvents() error {
	e := &s.Events
	if !e.InterruptValid && e.InterruptVector != 0 {
		return invalid("pending interrupt vector", uint64(e.InterruptVector), "set without valid flag")
	}
	if e.ExceptionValid {
		if e.ExceptionVector >= 32 {
			return invalid("pending exception vector", uint64(e.ExceptionVector), "not an exception")
		}
		if e.ErrorCodeValid && !errorCodeVector(e.ExceptionVector) {
			return invalid("pending exception vector", uint64(e.ExceptionVector), "delivers no error code")
		}
	} else if e.ExceptionVector != 0 || e.ErrorCodeValid {
		return invalid("pending exception vector", uint64(e.ExceptionVector), "set without valid flag")
	}
	if !e.ErrorCodeValid && e.ErrorCode != 0 {
		return invalid("pending exception error code", uint64(e.ErrorCode), "set without valid flag")
	}
	if e.Interruptibility&^interruptibilityDefined != 0 {
		return invalid("interruptibility state", uint64(e.Interruptibility), "reserved bits set")
	}
	if e.Interruptibility&BlockingBySTI != 0 && e.Interruptibility&BlockingByMovSS != 0 {
		return invalid("interruptibility state", uint64(e.Interruptibility), "blocking by both STI and MOV SS")
	}
	if e.Interruptibility&BlockingBySTI != 0 && s.RFLAGS&RFLAGSIF == 0 {
		return invalid("interruptibility state", uint64(e.Interruptibility), "blocking by STI with RFLAGS.IF clear")
	}
	if e.PendingDebug&^pendingDebugDefined != 0 {
		return invalid("pending debug exceptions", e.PendingDebug, "reserved bits set")
	}
	return nil
}

func (s *State) validateXSAVE() error {
	n := s.XSAVELen
	if n == 0 {
		return nil
	}
	if n < MinXSAVE || n > MaxXSAVE {
		return invalid("XSAVE length", uint64(n), fmt.Sprintf("not 0 or %d..%d", MinXSAVE, MaxXSAVE))
	}
	a := s.XSAVE[:n]
	// Intel SDM Vol. 1, 13.8.1: XRSTOR faults on these.
	if m := binary.LittleEndian.Uint32(a[xsaveMXCSROffset:]); m>>16 != 0 {
		return invalid("XSAVE MXCSR", uint64(m), "reserved bits set")
	}
	if bv := binary.LittleEndian.Uint64(a[xsaveHeaderOffset:]); bv&^s.XCR0 != 0 {
		return invalid("XSAVE XSTATE_BV", bv, "components not enabled in XCR0")
	}
	if cbv := binary.LittleEndian.Uint64(a[xsaveXCompBVOffset:]); cbv != 0 {
		return invalid("XSAVE XCOMP_BV", cbv, "compacted format is not supported")
	}
	for i := xsaveHeaderRsvdFrom; i < MinXSAVE; i++ {
		if a[i] != 0 {
			return invalid("XSAVE header", uint64(i), "reserved byte set")
		}
	}
	return nil
}

func (s *State) validateMSRs() error {
	if s.NumMSRs < 0 || s.NumMSRs > MaxMSRs {
		return invalid("MSR count", uint64(s.NumMSRs), fmt.Sprintf("exceeds %d", MaxMSRs))
	}
	list := s.MSRs[:s.NumMSRs]
	for i, m := range list {
		if dedicatedMSR(m.Index) {
			return invalid("MSR list", uint64(m.Index), "MSR has a dedicated field")
		}
		for _, p := range list[:i] {
			if p.Index == m.Index {
				return invalid("MSR list", uint64(m.Index), "duplicate index")
			}
		}
	}
	return nil
}
