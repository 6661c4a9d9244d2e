package vmx

import "fmt"

// Segment is a guest segment register as the VMCS holds it.
type Segment struct {
	Selector     uint16
	Base         uint64
	Limit        uint32
	AccessRights uint32 // SDM Vol. 3C, 24.4.1, Table 24-2
}

// Access-rights bits (Table 24-2).
const (
	ARTypeMask   uint32 = 0xF
	ARS          uint32 = 1 << 4 // descriptor type: 1 code/data, 0 system
	ARDPLShift          = 5
	ARPresent    uint32 = 1 << 7
	ARAVL        uint32 = 1 << 12
	ARLong       uint32 = 1 << 13 // CS.L: 64-bit code
	ARDB         uint32 = 1 << 14 // default operation size
	ARGranular   uint32 = 1 << 15
	ARUnusable   uint32 = 1 << 16
	arReserved   uint32 = 0xF00 | 0xFFFE0000
	arAccessed   uint32 = 1 << 0
	arReadable   uint32 = 1 << 1
	arCode       uint32 = 1 << 3
	arConforming uint32 = 1 << 2
)

func (s Segment) usable() bool  { return s.AccessRights&ARUnusable == 0 }
func (s Segment) typ() uint32   { return s.AccessRights & ARTypeMask }
func (s Segment) dpl() uint32   { return s.AccessRights >> ARDPLShift & 3 }
func (s Segment) rpl() uint32   { return uint32(s.Selector) & 3 }
func (s Segment) ti() bool      { return s.Selector&4 != 0 }
func (s Segment) present() bool { return s.AccessRights&ARPresent != 0 }

// RFLAGS bits the checks use (SDM Vol. 1, 3.4.3).
const (
	RFLAGSFixed1 uint64 = 1 << 1
	RFLAGSTF     uint64 = 1 << 8
	RFLAGSIF     uint64 = 1 << 9
	RFLAGSVM     uint64 = 1 << 17
	rflagsResv   uint64 = 0xFFFFFFFFFFC00000 | 1<<15 | 1<<5 | 1<<3
)

// EFER bits (SDM Vol. 3A, 2.2.1).
const (
	EFERSCE uint64 = 1 << 0
	EFERLME uint64 = 1 << 8
	EFERLMA uint64 = 1 << 10
	EFERNXE uint64 = 1 << 11
)

// Guest activity states (SDM Vol. 3C, 24.4.2, Table 24-3).
const (
	ActivityActive   = 0
	ActivityHLT      = 1
	ActivityShutdown = 2
	ActivityWaitSIPI = 3
)

// Guest interruptibility-state bits (24.4.2, Table 24-4).
const (
	BlockingSTI   uint32 = 1 << 0
	BlockingMovSS uint32 = 1 << 1
	BlockingSMI   uint32 = 1 << 2
	BlockingNMI   uint32 = 1 << 3
	interruptResv uint32 = 0xFFFFFFE0
)

// GuestState is the guest-state area plus the controls and VM-entry fields
// that VM entry checks together with it.
type GuestState struct {
	CR0, CR3, CR4, DR7                 uint64
	RSP, RIP, RFLAGS                   uint64
	ES, CS, SS, DS, FS, GS, LDTR, TR   Segment
	GDTRBase, IDTRBase                 uint64
	GDTRLimit, IDTRLimit               uint32
	DebugCtl, SysenterESP, SysenterEIP uint64
	PAT, EFER                          uint64
	ActivityState                      uint32
	Interruptibility                   uint32
	PendingDebug                       uint64
	VMCSLinkPointer                    uint64 // all ones when unused

	// CR0/CR4 guest/host masks and read shadows: what the guest sees of
	// the bits VMX fixes (not checked by VM entry).
	CR0Mask, CR0Shadow, CR4Mask, CR4Shadow uint64

	Controls              Controls
	EPTP                  uint64 // checked when "enable EPT" is 1
	VPID                  uint16 // checked when "enable VPID" is 1
	CR3TargetCount        uint32
	EntryInterruptionInfo uint32
	EntryErrorCode        uint32
}

// Violation is one failed VM-entry check, with the SDM section that states
// it (SDM Vol. 3C, 27.2-27.3; chapter 26 in editions before 2023).
type Violation struct {
	Section string
	Text    string
}

// String returns "section: text".
func (v Violation) String() string { return v.Section + ": " + v.Text }

// canonical reports whether a is canonical for a linear-address width.
func canonical(a uint64, bits uint) bool {
	top := int64(a) >> (bits - 1)
	return top == 0 || top == -1
}

// addFunc records one failed check: the SDM section that states it, and
// what failed in words (a fmt format and its arguments).
type addFunc func(sec, format string, a ...any)

// guestMode is what the VM-execution and VM-entry controls and the
// processor make of a guest state, on which many checks depend.
type guestMode struct {
	proc2    Proc2Controls // the secondary controls in effect: 0 unless activated
	ug       bool          // "unrestricted guest"
	ia32e    bool          // "IA-32e mode guest"
	physMask uint64        // the address bits beyond the physical-address width
}

// modeOf is g's guestMode on a processor with maxPhysAddr address bits.
func modeOf(g *GuestState, maxPhysAddr uint8) guestMode {
	ctl := g.Controls
	m := guestMode{proc2: ctl.Proc2, ia32e: ctl.Entry&EntryIA32eModeGuest != 0}
	if ctl.Proc&ProcActivateSecondary == 0 {
		m.proc2 = 0
	}
	m.ug = m.proc2&Proc2UnrestrictedGuest != 0
	m.physMask = ^uint64(0) << maxPhysAddr
	if maxPhysAddr >= 64 {
		m.physMask = 0
	}
	return m
}

// CheckGuestState runs in software the checks VM entry makes on the
// VM-execution/entry controls that matter to big-iron (SDM 27.2.1) and on
// the guest-state area (SDM 27.3.1), and returns every failed check in
// words. maxPhysAddr is the processor's physical-address width
// (CPUID.80000008H:EAX[7:0]). An empty result does not prove VM entry
// succeeds (memory contents, MSR-load lists and some model-specific checks
// are not modelled); a non-empty one explains why it would fail.
//
// The checks run, and report, in the order of the SDM's sections.
func (c *Capabilities) CheckGuestState(g *GuestState, maxPhysAddr uint8) []Violation {
	var out []Violation
	add := func(sec, format string, a ...any) {
		out = append(out, Violation{Section: sec, Text: fmt.Sprintf(format, a...)})
	}
	m := modeOf(g, maxPhysAddr)

	// 27.2: the VMX controls and the host-state area.
	c.checkExecControls(g, m, add)
	if m.proc2&Proc2EnableEPT != 0 {
		c.checkEPTP(g.EPTP, m.physMask, add)
	}
	checkHostAddressSpace(g, m, add)
	c.checkEntryEvent(g, add)

	// 27.3.1: the guest-state area.
	c.checkCR0AndCR4(g, m, add)
	checkDebugRegisters(g, add)
	checkPagingMode(g, m, add)
	checkMSRs(g, m, add)
	checkSegments(g, m.ug, m.ia32e, add)
	checkDescriptorTables(g, add)
	checkRIPAndRFLAGS(g, m.ia32e, add)
	c.checkNonRegister(g, add)
	checkVMCSLinkPointer(g, m.physMask, add)
	return out
}

// checkExecControls makes the checks of SDM 27.2.1.1 on the VM-execution
// controls: reserved bits (IA32_VMX_*_CTLS), the CR3-target count, and
// the controls that require others (virtual NMIs, unrestricted guest,
// VPID). The EPTP has checkEPTP.
func (c *Capabilities) checkExecControls(g *GuestState, m guestMode, add addFunc) {
	ctl := g.Controls
	for _, s := range c.CheckControls(ctl) {
		add("27.2.1.1", "%s", s)
	}
	if g.CR3TargetCount > uint32(c.Misc.CR3Targets) {
		add("27.2.1.1", "CR3-target count %d exceeds the %d supported", g.CR3TargetCount, c.Misc.CR3Targets)
	}
	if ctl.Pin&PinNMIExiting == 0 && ctl.Pin&PinVirtualNMIs != 0 {
		add("27.2.1.1", "\"virtual NMIs\" requires \"NMI exiting\"")
	}
	if ctl.Pin&PinVirtualNMIs == 0 && ctl.Proc&ProcNMIWindowExiting != 0 {
		add("27.2.1.1", "\"NMI-window exiting\" requires \"virtual NMIs\"")
	}
	if m.ug && m.proc2&Proc2EnableEPT == 0 {
		add("27.2.1.1", "\"unrestricted guest\" requires \"enable EPT\"")
	}
	if m.proc2&Proc2EnableVPID != 0 && g.VPID == 0 {
		add("27.2.1.1", "VPID must not be 0 when \"enable VPID\" is 1")
	}
}

// checkEPTP makes the checks of SDM 27.2.1.1 on the extended-page-table
// pointer when "enable EPT" is 1: a memory type and page-walk length the
// processor supports (IA32_VMX_EPT_VPID_CAP), accessed/dirty flags only
// where supported, and no reserved bits.
func (c *Capabilities) checkEPTP(eptp, physMask uint64, add addFunc) {
	mt := eptp & 7
	if !(mt == MemTypeUC && c.EPTVPID.Has(EPTMemTypeUC) || mt == MemTypeWB && c.EPTVPID.Has(EPTMemTypeWB)) {
		add("27.2.1.1", "EPTP memory type %d is not supported", mt)
	}
	if walk := eptp >> 3 & 7; !(walk == 3 && c.EPTVPID.Has(EPTWalkLength4) || walk == 4 && c.EPTVPID.Has(EPTWalkLength5)) {
		add("27.2.1.1", "EPTP page-walk length %d is not supported", walk+1)
	}
	if eptp&(1<<6) != 0 && !c.EPTVPID.Has(EPTAccessDirty) {
		add("27.2.1.1", "EPTP enables accessed/dirty flags, which this CPU lacks")
	}
	if eptp&0xF80 != 0 || eptp&physMask != 0 {
		add("27.2.1.1", "EPTP %#x has reserved bits set (11:7 or beyond the physical-address width)", eptp)
	}
}

// checkHostAddressSpace makes the one check of SDM 27.2.4 (address-space
// size) big-iron needs: host checks are not modelled in general, but an
// IA-32e mode guest needs a 64-bit host, big-iron's only case.
func checkHostAddressSpace(g *GuestState, m guestMode, add addFunc) {
	if m.ia32e && g.Controls.Exit&ExitHostAddressSpaceSize == 0 {
		add("27.2.4", "\"IA-32e mode guest\" needs a 64-bit host (\"host address-space size\" = 1)")
	}
}

// checkEntryEvent makes the checks of SDM 27.2.1.3 on the VM-entry
// control fields for event injection when the VM-entry
// interruption-information field is valid: reserved bits and types,
// vectors that fit the type, and an error code exactly where the
// exception delivers one (unless IA32_VMX_BASIC says VM entry does not
// check it).
func (c *Capabilities) checkEntryEvent(g *GuestState, add addFunc) {
	raw := g.EntryInterruptionInfo
	e := DecodeInterruption(uint64(raw))
	if !e.Valid {
		return
	}
	const sec = "27.2.1.3"
	if raw&0x7FFFF000 != 0 {
		add(sec, "VM-entry interruption-information bits 30:12 must be 0")
	}
	switch e.Type {
	case 1:
		add(sec, "VM-entry interruption type 1 is reserved")
	case IntrNMI:
		if e.Vector != VectorNMI {
			add(sec, "an injected NMI must have vector 2")
		}
	case IntrHardwareExc:
		if e.Vector > 31 {
			add(sec, "an injected hardware exception must have vector 0-31")
		}
	case IntrOtherEvent:
		if e.Vector != 0 || g.Controls.Proc&ProcMonitorTrapFlag == 0 {
			add(sec, "interruption type 7 needs vector 0 and \"monitor trap flag\"")
		}
	}
	errVector := e.Type == IntrHardwareExc && (e.Vector == VectorDF || (e.Vector >= 10 && e.Vector <= 14) || e.Vector == VectorAC || e.Vector == 21)
	if e.ErrorCodeValid {
		if !errVector && !c.Basic.NoErrCodeCheck {
			add(sec, "deliver-error-code is 1 for vector %d of type %d, which has no error code", e.Vector, e.Type)
		}
		if g.CR0&CR0PE == 0 && !c.Basic.NoErrCodeCheck {
			add(sec, "deliver-error-code must be 0 with CR0.PE=0")
		}
		if g.EntryErrorCode>>15 != 0 {
			add(sec, "VM-entry exception error code bits 31:15 must be 0")
		}
	} else if errVector && g.CR0&CR0PE != 0 && !c.Basic.NoErrCodeCheck {
		add(sec, "deliver-error-code must be 1 for exception %d in protected mode", e.Vector)
	}
}

// checkCR0AndCR4 makes the checks of SDM 27.3.1.1 on the bits of CR0 and
// CR4 that VMX operation fixes (IA32_VMX_CR0_FIXED0/1 and
// IA32_VMX_CR4_FIXED0/1, CR0.PE and CR0.PG free under unrestricted
// guest), and that paging needs protection.
func (c *Capabilities) checkCR0AndCR4(g *GuestState, m guestMode, add addFunc) {
	must1, may1 := c.GuestCR0Fixed(m.ug)
	if miss := must1 &^ g.CR0; miss != 0 {
		add("27.3.1.1", "CR0 bits %#x must be 1 (IA32_VMX_CR0_FIXED0)", miss)
	}
	if extra := g.CR0 &^ may1; extra != 0 {
		add("27.3.1.1", "CR0 bits %#x must be 0 (IA32_VMX_CR0_FIXED1)", extra)
	}
	if g.CR0&CR0PG != 0 && g.CR0&CR0PE == 0 {
		add("27.3.1.1", "CR0.PG=1 requires CR0.PE=1")
	}
	if miss := c.CR4Fixed0 &^ g.CR4; miss != 0 {
		add("27.3.1.1", "CR4 bits %#x must be 1 (IA32_VMX_CR4_FIXED0)", miss)
	}
	if extra := g.CR4 &^ c.CR4Fixed1; extra != 0 {
		add("27.3.1.1", "CR4 bits %#x must be 0 (IA32_VMX_CR4_FIXED1)", extra)
	}
}

// checkDebugRegisters makes the checks of SDM 27.3.1.1 on IA32_DEBUGCTL
// and DR7 when the "load debug controls" VM-entry control loads them:
// no reserved bits.
func checkDebugRegisters(g *GuestState, add addFunc) {
	if g.Controls.Entry&EntryLoadDebugControls == 0 {
		return
	}
	if g.DebugCtl&^0xFFC3 != 0 {
		add("27.3.1.1", "IA32_DEBUGCTL reserved bits %#x must be 0", g.DebugCtl&^0xFFC3)
	}
	if g.DR7>>32 != 0 {
		add("27.3.1.1", "DR7 bits 63:32 must be 0")
	}
}

// checkPagingMode makes the checks of SDM 27.3.1.1 that tie the control
// registers to the "IA-32e mode guest" VM-entry control (paging and PAE
// in IA-32e mode, PCIDE only there), and on CR3's reserved high bits.
func checkPagingMode(g *GuestState, m guestMode, add addFunc) {
	if m.ia32e {
		if g.CR0&CR0PG == 0 {
			add("27.3.1.1", "IA-32e mode guest requires CR0.PG=1")
		}
		if g.CR4&CR4PAE == 0 {
			add("27.3.1.1", "IA-32e mode guest requires CR4.PAE=1")
		}
	} else if g.CR4&CR4PCIDE != 0 {
		add("27.3.1.1", "CR4.PCIDE must be 0 outside IA-32e mode")
	}
	if g.CR3&m.physMask != 0 {
		add("27.3.1.1", "CR3 bits beyond the physical-address width must be 0")
	}
}

// checkMSRs makes the checks of SDM 27.3.1.1 on the MSRs in the
// guest-state area: canonical SYSENTER addresses, and, when VM entry
// loads them, valid IA32_PAT memory types and an IA32_EFER consistent
// with the "IA-32e mode guest" control and CR0.PG.
func checkMSRs(g *GuestState, m guestMode, add addFunc) {
	if !canonical(g.SysenterESP, 48) || !canonical(g.SysenterEIP, 48) {
		add("27.3.1.1", "IA32_SYSENTER_ESP and IA32_SYSENTER_EIP must be canonical")
	}
	if g.Controls.Entry&EntryLoadPAT != 0 {
		for i := 0; i < 8; i++ {
			switch t := g.PAT >> (8 * i) & 0xFF; t {
			case 0, 1, 4, 5, 6, 7:
			default:
				add("27.3.1.1", "IA32_PAT entry %d has invalid memory type %d", i, t)
			}
		}
	}
	if g.Controls.Entry&EntryLoadEFER != 0 {
		const known = EFERSCE | EFERLME | EFERLMA | EFERNXE
		if g.EFER&^known != 0 {
			add("27.3.1.1", "IA32_EFER reserved bits %#x must be 0", g.EFER&^known)
		}
		if (g.EFER&EFERLMA != 0) != m.ia32e {
			add("27.3.1.1", "IA32_EFER.LMA must equal the \"IA-32e mode guest\" VM-entry control")
		}
		if g.CR0&CR0PG != 0 && (g.EFER&EFERLMA != 0) != (g.EFER&EFERLME != 0) {
			add("27.3.1.1", "with CR0.PG=1, IA32_EFER.LMA must equal IA32_EFER.LME")
		}
	}
}

// namedSegment is a segment register and its name in violations.
type namedSegment struct {
	name string
	s    Segment
}

// dataSegments are SS, DS, ES, FS and GS, in the order the checks report
// them.
func (g *GuestState) dataSegments() []namedSegment {
	return []namedSegment{{"SS", g.SS}, {"DS", g.DS}, {"ES", g.ES}, {"FS", g.FS}, {"GS", g.GS}}
}

// checkSegments makes the checks of SDM 27.3.1.2 on the guest segment
// registers: selectors, bases, then limits and access rights (the fixed
// ones of virtual-8086 mode, or those of CS, SS and the data segments),
// then TR and LDTR.
func checkSegments(g *GuestState, ug, ia32e bool, add addFunc) {
	v86 := g.RFLAGS&RFLAGSVM != 0
	checkSelectors(g, ug, v86, add)
	checkSegmentBases(g, v86, add)
	if v86 {
		checkV86Segments(g, add)
	} else {
		checkCS(g, ug, ia32e, add)
		checkSS(g, ug, add)
		checkDataSegments(g, ug, add)
	}
	checkTR(g.TR, ia32e, add)
	checkLDTR(g.LDTR, add)
}

// checkSelectors makes the checks of SDM 27.3.1.2 on the selector fields:
// TR and a usable LDTR in the GDT (TI=0), and SS.RPL equal to CS.RPL
// outside virtual-8086 mode and unrestricted guest.
func checkSelectors(g *GuestState, ug, v86 bool, add addFunc) {
	if g.TR.ti() {
		add("27.3.1.2", "TR selector TI flag must be 0")
	}
	if g.LDTR.usable() && g.LDTR.ti() {
		add("27.3.1.2", "LDTR selector TI flag must be 0")
	}
	if !v86 && !ug && g.SS.rpl() != g.CS.rpl() {
		add("27.3.1.2", "SS.RPL must equal CS.RPL")
	}
}

// checkSegmentBases makes the checks of SDM 27.3.1.2 on the base-address
// fields: selector << 4 in virtual-8086 mode, canonical TR, FS, GS and
// usable LDTR bases, and 32-bit CS and usable SS, DS and ES bases.
func checkSegmentBases(g *GuestState, v86 bool, add addFunc) {
	data := g.dataSegments()
	if v86 {
		for _, s := range append(data, namedSegment{"CS", g.CS}) {
			if s.s.Base != uint64(s.s.Selector)<<4 {
				add("27.3.1.2", "%s.base must be selector << 4 in virtual-8086 mode", s.name)
			}
		}
	}
	if !canonical(g.TR.Base, 48) {
		add("27.3.1.2", "TR.base must be canonical")
	}
	if !canonical(g.FS.Base, 48) {
		add("27.3.1.2", "FS.base must be canonical")
	}
	if !canonical(g.GS.Base, 48) {
		add("27.3.1.2", "GS.base must be canonical")
	}
	if g.LDTR.usable() && !canonical(g.LDTR.Base, 48) {
		add("27.3.1.2", "LDTR.base must be canonical")
	}
	if g.CS.Base>>32 != 0 {
		add("27.3.1.2", "CS.base bits 63:32 must be zero")
	}
	for _, s := range data[:3] {
		if s.s.usable() && s.s.Base>>32 != 0 {
			add("27.3.1.2", "%s.base bits 63:32 must be zero", s.name)
		}
	}
}

// checkV86Segments makes the checks of SDM 27.3.1.2 on the limits and
// access rights of CS, SS, DS, ES, FS and GS in virtual-8086 mode: limit
// 0xFFFF, access rights 0xF3.
func checkV86Segments(g *GuestState, add addFunc) {
	for _, s := range append(g.dataSegments(), namedSegment{"CS", g.CS}) {
		if s.s.Limit != 0xFFFF {
			add("27.3.1.2", "%s.limit must be 0xFFFF in virtual-8086 mode", s.name)
		}
		if s.s.AccessRights != 0xF3 {
			add("27.3.1.2", "%s access rights must be 0xF3 in virtual-8086 mode", s.name)
		}
	}
}

// checkCS makes the checks of SDM 27.3.1.2 on CS's access rights outside
// virtual-8086 mode: an accessed code segment (or, under unrestricted
// guest, a read/write data segment), a DPL consistent with its type and
// SS.DPL, present, no reserved bits, no CS.D with CS.L in IA-32e mode,
// and a granularity that fits the limit.
func checkCS(g *GuestState, ug, ia32e bool, add addFunc) {
	const sec = "27.3.1.2"
	cs := g.CS
	switch t := cs.typ(); {
	case t == 9 || t == 11 || t == 13 || t == 15:
	case t == 3 && ug:
	default:
		add(sec, "CS type %d must be 9, 11, 13 or 15 (or 3 with unrestricted guest)", t)
	}
	if cs.AccessRights&ARS == 0 {
		add(sec, "CS.S must be 1")
	}
	switch t := cs.typ(); {
	case t == 3:
		if cs.dpl() != 0 {
			add(sec, "CS.DPL must be 0 when CS type is 3")
		}
	case t == 9 || t == 11:
		if cs.dpl() != g.SS.dpl() {
			add(sec, "CS.DPL must equal SS.DPL for a non-conforming code segment")
		}
	case t == 13 || t == 15:
		if cs.dpl() > g.SS.dpl() {
			add(sec, "CS.DPL must not exceed SS.DPL for a conforming code segment")
		}
	}
	if !cs.present() {
		add(sec, "CS.P must be 1")
	}
	if cs.AccessRights&arReserved != 0 {
		add(sec, "CS access-rights reserved bits must be 0")
	}
	if ia32e && cs.AccessRights&ARLong != 0 && cs.AccessRights&ARDB != 0 {
		add(sec, "CS.D must be 0 when CS.L is 1 in IA-32e mode")
	}
	checkGranularity(add, "CS", cs)
}

// checkSS makes the checks of SDM 27.3.1.2 that concern SS alone outside
// virtual-8086 mode: a read/write data type when usable, DPL equal to
// RPL (unless unrestricted guest), and DPL 0 in real mode or with a CS of
// type 3. checkDataSegments checks what SS shares with the others.
func checkSS(g *GuestState, ug bool, add addFunc) {
	ss := g.SS
	if ss.usable() {
		if t := ss.typ(); t != 3 && t != 7 {
			add("27.3.1.2", "SS type %d must be 3 or 7", t)
		}
	}
	if !ug && ss.dpl() != ss.rpl() {
		add("27.3.1.2", "SS.DPL must equal SS.RPL")
	}
	if (g.CS.typ() == 3 || g.CR0&CR0PE == 0) && ss.dpl() != 0 {
		add("27.3.1.2", "SS.DPL must be 0 when CS type is 3 or CR0.PE is 0")
	}
}

// checkDataSegments makes the checks of SDM 27.3.1.2 on the access rights
// of SS, DS, ES, FS and GS when usable, outside virtual-8086 mode:
// accessed, not execute-only, code/data (S=1), DPL not below RPL for DS,
// ES, FS and GS (unless unrestricted guest or conforming), present, no
// reserved bits, and a granularity that fits the limit.
func checkDataSegments(g *GuestState, ug bool, add addFunc) {
	const sec = "27.3.1.2"
	for _, s := range g.dataSegments() {
		if !s.s.usable() {
			continue
		}
		t := s.s.typ()
		if t&arAccessed == 0 {
			add(sec, "%s type %d must have the accessed bit set", s.name, t)
		}
		if t&arCode != 0 && t&arReadable == 0 {
			add(sec, "%s is an execute-only code segment", s.name)
		}
		if s.s.AccessRights&ARS == 0 {
			add(sec, "%s.S must be 1", s.name)
		}
		if s.name != "SS" && !ug && t <= 11 && s.s.dpl() < s.s.rpl() {
			add(sec, "%s.DPL must not be less than its RPL", s.name)
		}
		if !s.s.present() {
			add(sec, "%s.P must be 1", s.name)
		}
		if s.s.AccessRights&arReserved != 0 {
			add(sec, "%s access-rights reserved bits must be 0", s.name)
		}
		checkGranularity(add, s.name, s.s)
	}
}

// checkTR makes the checks of SDM 27.3.1.2 on TR's access rights: a busy
// TSS (a 64-bit one in IA-32e mode), a system descriptor (S=0), present,
// no reserved bits, usable, and a granularity that fits the limit.
func checkTR(tr Segment, ia32e bool, add addFunc) {
	const sec = "27.3.1.2"
	if ia32e {
		if tr.typ() != 11 {
			add(sec, "TR type must be 11 (busy 64-bit TSS) in IA-32e mode")
		}
	} else if t := tr.typ(); t != 3 && t != 11 {
		add(sec, "TR type %d must be 3 or 11 (busy TSS)", t)
	}
	if tr.AccessRights&ARS != 0 {
		add(sec, "TR.S must be 0")
	}
	if !tr.present() {
		add(sec, "TR.P must be 1")
	}
	if tr.AccessRights&arReserved != 0 {
		add(sec, "TR access-rights reserved bits must be 0")
	}
	if !tr.usable() {
		add(sec, "TR must be usable")
	}
	checkGranularity(add, "TR", tr)
}

// checkLDTR makes the checks of SDM 27.3.1.2 on LDTR's access rights
// when it is usable: an LDT (type 2), a system descriptor (S=0),
// present, no reserved bits, and a granularity that fits the limit.
func checkLDTR(ldt Segment, add addFunc) {
	const sec = "27.3.1.2"
	if !ldt.usable() {
		return
	}
	if ldt.typ() != 2 {
		add(sec, "LDTR type must be 2")
	}
	if ldt.AccessRights&ARS != 0 {
		add(sec, "LDTR.S must be 0")
	}
	if !ldt.present() {
		add(sec, "LDTR.P must be 1")
	}
	if ldt.AccessRights&arReserved != 0 {
		add(sec, "LDTR access-rights reserved bits must be 0")
	}
	checkGranularity(add, "LDTR", ldt)
}

// checkGranularity checks that the G flag matches the limit: limit bits
// 11:0 not all ones require G=0, any of bits 31:20 set requires G=1
// (SDM 27.3.1.2).
func checkGranularity(add addFunc, name string, s Segment) {
	if s.Limit&0xFFF != 0xFFF && s.AccessRights&ARGranular != 0 {
		add("27.3.1.2", "%s.G must be 0 when limit bits 11:0 are not all ones (limit %#x)", name, s.Limit)
	}
	if s.Limit>>20 != 0 && s.AccessRights&ARGranular == 0 {
		add("27.3.1.2", "%s.G must be 1 when limit bits 31:20 are not zero (limit %#x)", name, s.Limit)
	}
}

// checkDescriptorTables makes the checks of SDM 27.3.1.3 on the
// descriptor-table registers: canonical GDTR and IDTR bases, 16-bit
// limits.
func checkDescriptorTables(g *GuestState, add addFunc) {
	if !canonical(g.GDTRBase, 48) {
		add("27.3.1.3", "GDTR base must be canonical")
	}
	if !canonical(g.IDTRBase, 48) {
		add("27.3.1.3", "IDTR base must be canonical")
	}
	if g.GDTRLimit>>16 != 0 {
		add("27.3.1.3", "GDTR limit bits 31:16 must be 0")
	}
	if g.IDTRLimit>>16 != 0 {
		add("27.3.1.3", "IDTR limit bits 31:16 must be 0")
	}
}

// checkRIPAndRFLAGS makes the checks of SDM 27.3.1.4 on RIP and RFLAGS:
// a 32-bit RIP outside 64-bit mode and a canonical one in it (for 4- or
// 5-level paging), RFLAGS' reserved and fixed bits, no virtual-8086 mode
// in IA-32e mode or real mode, and IF=1 to inject an external interrupt.
func checkRIPAndRFLAGS(g *GuestState, ia32e bool, add addFunc) {
	long := ia32e && g.CS.AccessRights&ARLong != 0
	if !long && g.RIP>>32 != 0 {
		add("27.3.1.4", "RIP bits 63:32 must be 0 outside 64-bit mode")
	}
	linBits := uint(48)
	if g.CR4&CR4LA57 != 0 {
		linBits = 57
	}
	if long && !canonical(g.RIP, linBits) {
		add("27.3.1.4", "RIP must be canonical in 64-bit mode")
	}
	if g.RFLAGS&rflagsResv != 0 {
		add("27.3.1.4", "RFLAGS reserved bits %#x must be 0", g.RFLAGS&rflagsResv)
	}
	if g.RFLAGS&RFLAGSFixed1 == 0 {
		add("27.3.1.4", "RFLAGS bit 1 must be 1")
	}
	if g.RFLAGS&RFLAGSVM != 0 && (ia32e || g.CR0&CR0PE == 0) {
		add("27.3.1.4", "RFLAGS.VM must be 0 in IA-32e mode or with CR0.PE=0")
	}
	entry := DecodeInterruption(uint64(g.EntryInterruptionInfo))
	if entry.Valid && entry.Type == IntrExternal && g.RFLAGS&RFLAGSIF == 0 {
		add("27.3.1.4", "RFLAGS.IF must be 1 when injecting an external interrupt")
	}
}

// checkNonRegister makes the checks of SDM 27.3.1.5 on the guest
// non-register state but the VMCS link pointer (checkVMCSLinkPointer):
// the activity state, the interruptibility state and the pending debug
// exceptions.
func (c *Capabilities) checkNonRegister(g *GuestState, add addFunc) {
	c.checkActivityState(g, add)
	checkInterruptibility(g, add)
	checkPendingDebug(g, add)
}

// checkActivityState makes the checks of SDM 27.3.1.5 on the activity
// state: one IA32_VMX_MISC says the processor supports, and SS.DPL=0 for
// HLT.
func (c *Capabilities) checkActivityState(g *GuestState, add addFunc) {
	const sec = "27.3.1.5"
	switch g.ActivityState {
	case ActivityActive:
	case ActivityHLT:
		if !c.Misc.ActivityHLT {
			add(sec, "activity state HLT is not supported")
		}
		if g.SS.dpl() != 0 {
			add(sec, "activity state HLT requires SS.DPL=0")
		}
	case ActivityShutdown:
		if !c.Misc.ActivityShutdown {
			add(sec, "activity state shutdown is not supported")
		}
	case ActivityWaitSIPI:
		if !c.Misc.ActivityWaitSIPI {
			add(sec, "activity state wait-for-SIPI is not supported")
		}
	default:
		add(sec, "activity state %d is reserved", g.ActivityState)
	}
}

// checkInterruptibility makes the checks of SDM 27.3.1.5 on the
// interruptibility state: blocking by STI or MOV SS only when active, one
// of them at most, STI only with IF=1, SMI only in SMM, no reserved bits,
// and none of the blocking that prevents the event being injected.
func checkInterruptibility(g *GuestState, add addFunc) {
	const sec = "27.3.1.5"
	ib := g.Interruptibility
	if ib&(BlockingSTI|BlockingMovSS) != 0 && g.ActivityState != ActivityActive {
		add(sec, "blocking by STI or MOV SS requires activity state active")
	}
	if ib&interruptResv != 0 {
		add(sec, "interruptibility-state bits 31:5 must be 0")
	}
	if ib&BlockingSTI != 0 && ib&BlockingMovSS != 0 {
		add(sec, "blocking by STI and by MOV SS must not both be 1")
	}
	if ib&BlockingSTI != 0 && g.RFLAGS&RFLAGSIF == 0 {
		add(sec, "blocking by STI requires RFLAGS.IF=1")
	}
	if ib&BlockingSMI != 0 && g.Controls.Entry&EntryToSMM == 0 {
		add(sec, "blocking by SMI must be 0 outside SMM")
	}
	if e := DecodeInterruption(uint64(g.EntryInterruptionInfo)); e.Valid {
		switch e.Type {
		case IntrExternal:
			if ib&(BlockingSTI|BlockingMovSS) != 0 {
				add(sec, "injecting an external interrupt requires no blocking by STI or MOV SS")
			}
		case IntrNMI:
			if ib&BlockingMovSS != 0 {
				add(sec, "injecting an NMI requires no blocking by MOV SS")
			}
			if g.Controls.Pin&PinVirtualNMIs != 0 && ib&BlockingNMI != 0 {
				add(sec, "injecting an NMI with \"virtual NMIs\" requires no blocking by NMI")
			}
		}
	}
}

// checkPendingDebug makes the checks of SDM 27.3.1.5 on the pending debug
// exceptions: no reserved bits, and, with blocking by STI or MOV SS or in
// HLT, the BS bit set exactly when single-stepping (RFLAGS.TF=1 and
// IA32_DEBUGCTL.BTF=0).
func checkPendingDebug(g *GuestState, add addFunc) {
	const sec = "27.3.1.5"
	const pdResv = uint64(0xFF0) | 1<<13 | 1<<15 | 0xFFFFFFFFFFFE0000
	if g.PendingDebug&pdResv != 0 {
		add(sec, "pending debug exceptions reserved bits %#x must be 0", g.PendingDebug&pdResv)
	}
	if g.Interruptibility&(BlockingSTI|BlockingMovSS) != 0 || g.ActivityState == ActivityHLT {
		bs := g.PendingDebug&(1<<14) != 0
		btf := g.Controls.Entry&EntryLoadDebugControls != 0 && g.DebugCtl&2 != 0
		tf := g.RFLAGS&RFLAGSTF != 0
		if tf && !btf && !bs {
			add(sec, "pending debug exception BS must be 1 when RFLAGS.TF=1 and DEBUGCTL.BTF=0 with blocking or HLT")
		}
		if (!tf || btf) && bs {
			add(sec, "pending debug exception BS must be 0 when RFLAGS.TF=0 or DEBUGCTL.BTF=1 with blocking or HLT")
		}
	}
}

// checkVMCSLinkPointer makes the check of SDM 27.3.1.5 on the VMCS link
// pointer: all ones (unused), or a 4-KByte aligned physical address.
func checkVMCSLinkPointer(g *GuestState, physMask uint64, add addFunc) {
	if g.VMCSLinkPointer != ^uint64(0) {
		if g.VMCSLinkPointer&0xFFF != 0 || g.VMCSLinkPointer&physMask != 0 {
			add("27.3.1.5", "VMCS link pointer %#x must be all ones, or 4-KByte aligned within the physical-address width", g.VMCSLinkPointer)
		}
	}
}
