package vmx

import (
	"strings"
	"testing"
)

const testMaxPhys = 39

// realModeGuest is a valid unrestricted-guest state as big-iron starts its
// test payload: 16-bit real mode, CS:IP = 0800:0000.
func realModeGuest(t testing.TB, c *Capabilities) GuestState {
	t.Helper()
	ctl, err := c.ComputeControls(wantRequired, wantOptional)
	if err != nil {
		t.Fatal(err)
	}
	data := Segment{Selector: 0, Base: 0, Limit: 0xFFFF, AccessRights: 0x93}
	return GuestState{
		CR0:             c.GuestCR0(CR0ET, true),
		CR4:             c.GuestCR4(0),
		DR7:             0x400,
		RIP:             0,
		RFLAGS:          RFLAGSFixed1,
		CS:              Segment{Selector: 0x800, Base: 0x8000, Limit: 0xFFFF, AccessRights: 0x9B},
		SS:              data,
		DS:              data,
		ES:              data,
		FS:              data,
		GS:              data,
		LDTR:            Segment{AccessRights: ARUnusable},
		TR:              Segment{Limit: 0xFFFF, AccessRights: 0x8B},
		GDTRLimit:       0xFFFF,
		IDTRLimit:       0xFFFF,
		PAT:             0x0007040600070406,
		VMCSLinkPointer: ^uint64(0),
		Controls:        ctl,
		EPTP:            0x100000 | 3<<3 | MemTypeWB,
		VPID:            1,
	}
}

// longModeGuest is a valid 64-bit guest.
func longModeGuest(t testing.TB, c *Capabilities) GuestState {
	t.Helper()
	req := wantRequired
	req.Entry |= EntryIA32eModeGuest | EntryLoadPAT
	ctl, err := c.ComputeControls(req, wantOptional)
	if err != nil {
		t.Fatal(err)
	}
	flat := Segment{Selector: 0x10, Limit: 0xFFFFFFFF, AccessRights: 0xC093}
	fs := flat
	fs.Base = 0x7FFF00001000
	return GuestState{
		CR0:             CR0PE | CR0MP | CR0ET | CR0NE | CR0WP | CR0PG,
		CR3:             0x200000,
		CR4:             CR4PAE | CR4VMXE | CR4PCIDE,
		DR7:             0x400,
		RSP:             0xFFFFFFFF80100000,
		RIP:             0xFFFFFFFF80001000,
		RFLAGS:          RFLAGSFixed1 | RFLAGSIF,
		CS:              Segment{Selector: 0x08, Limit: 0xFFFFFFFF, AccessRights: 0xA09B},
		SS:              flat,
		DS:              flat,
		ES:              flat,
		FS:              fs,
		GS:              flat,
		LDTR:            Segment{AccessRights: ARUnusable},
		TR:              Segment{Selector: 0x18, Base: 0xFFFFFFFF80002000, Limit: 0x67, AccessRights: 0x8B},
		GDTRBase:        0xFFFFFFFF80003000,
		GDTRLimit:       0x27,
		IDTRBase:        0xFFFFFFFF80004000,
		IDTRLimit:       0xFFF,
		PAT:             0x0007040600070406,
		EFER:            EFERSCE | EFERLME | EFERLMA | EFERNXE,
		VMCSLinkPointer: ^uint64(0),
		Controls:        ctl,
		EPTP:            0x100000 | 3<<3 | MemTypeWB,
		VPID:            1,
	}
}

func TestGuestStateValid(t *testing.T) {
	for _, fx := range []struct {
		name string
		msrs map[uint32]uint64
	}{{"bochs", bochsHaswell4770}, {"e3-1270v2", xeonE31270v2}, {"9980xe", skylakeSP9980XE}} {
		c := mustCaps(t, fx.msrs)
		for name, g := range map[string]GuestState{"real": realModeGuest(t, c), "long": longModeGuest(t, c)} {
			if v := c.CheckGuestState(&g, testMaxPhys); len(v) != 0 {
				t.Errorf("%s/%s: valid state reported: %v", fx.name, name, v)
			}
		}
	}
}

// guestMutation breaks one VM-entry check of a valid guest state.
type guestMutation struct {
	name    string
	long    bool // mutate longModeGuest, else realModeGuest
	mutate  func(g *GuestState)
	section string // of the violation it must cause
	text    string // in that violation's text
}

// guestMutations is one mutation per check CheckGuestState makes, in the
// order of the SDM's sections.
func guestMutations() []guestMutation {
	return []guestMutation{
		// 27.2.1
		{"control reserved bit", false, func(g *GuestState) { g.Controls.Pin &^= 1 << 1 }, "27.2.1.1", "pin-based control 'bit 1' must be 1"},
		{"unsupported secondary", false, func(g *GuestState) { g.Controls.Proc2 |= Proc2EnableXSAVES }, "27.2.1.1", "'enable XSAVES/XRSTORS' must be 0"},
		{"too many CR3 targets", false, func(g *GuestState) { g.CR3TargetCount = 5 }, "27.2.1.1", "CR3-target count"},
		{"virtual NMIs without NMI exiting", false, func(g *GuestState) { g.Controls.Pin = g.Controls.Pin&^PinNMIExiting | PinVirtualNMIs }, "27.2.1.1", "requires \"NMI exiting\""},
		{"NMI window without virtual NMIs", false, func(g *GuestState) { g.Controls.Proc |= ProcNMIWindowExiting }, "27.2.1.1", "requires \"virtual NMIs\""},
		{"UG without EPT", false, func(g *GuestState) { g.Controls.Proc2 &^= Proc2EnableEPT }, "27.2.1.1", "requires \"enable EPT\""},
		{"VPID zero", false, func(g *GuestState) { g.VPID = 0 }, "27.2.1.1", "VPID must not be 0"},
		{"EPTP memtype", false, func(g *GuestState) { g.EPTP = g.EPTP&^7 | 5 }, "27.2.1.1", "EPTP memory type 5"},
		{"EPTP walk", false, func(g *GuestState) { g.EPTP = g.EPTP&^0x38 | 2<<3 }, "27.2.1.1", "page-walk length 3"},
		{"EPTP reserved", false, func(g *GuestState) { g.EPTP |= 1 << 50 }, "27.2.1.1", "reserved bits"},
		{"64-bit guest on 32-bit host", true, func(g *GuestState) { g.Controls.Exit &^= ExitHostAddressSpaceSize }, "27.2.4", "64-bit host"},
		{"inject reserved type", false, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 1<<8 }, "27.2.1.3", "type 1 is reserved"},
		{"inject NMI wrong vector", false, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 2<<8 | 3 }, "27.2.1.3", "vector 2"},
		{"inject #GP without error code", true, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 3<<8 | 13 }, "27.2.1.3", "must be 1 for exception 13"},
		{"inject #UD with error code", true, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 1<<11 | 3<<8 | 6 }, "27.2.1.3", "has no error code"},
		// 27.3.1.1
		{"CR0.NE clear", false, func(g *GuestState) { g.CR0 &^= CR0NE }, "27.3.1.1", "CR0 bits 0x20 must be 1"},
		{"CR0 bit 32", false, func(g *GuestState) { g.CR0 |= 1 << 32 }, "27.3.1.1", "must be 0 (IA32_VMX_CR0_FIXED1)"},
		{"CR0.PE required without UG", false, func(g *GuestState) { g.Controls.Proc2 &^= Proc2UnrestrictedGuest }, "27.3.1.1", "CR0 bits 0x80000001 must be 1"},
		{"PG without PE", false, func(g *GuestState) { g.CR0 |= CR0PG }, "27.3.1.1", "CR0.PG=1 requires CR0.PE=1"},
		{"CR4.VMXE clear", false, func(g *GuestState) { g.CR4 &^= CR4VMXE }, "27.3.1.1", "CR4 bits 0x2000 must be 1"},
		{"CR4.PKE unsupported", false, func(g *GuestState) { g.CR4 |= 1 << 22 }, "27.3.1.1", "CR4 bits 0x400000 must be 0"},
		{"DEBUGCTL reserved", false, func(g *GuestState) { g.Controls.Entry |= EntryLoadDebugControls; g.DebugCtl = 1 << 3 }, "27.3.1.1", "IA32_DEBUGCTL reserved"},
		{"DR7 high", false, func(g *GuestState) { g.Controls.Entry |= EntryLoadDebugControls; g.DR7 = 1 << 40 }, "27.3.1.1", "DR7 bits 63:32"},
		{"IA-32e without PAE", true, func(g *GuestState) { g.CR4 &^= CR4PAE }, "27.3.1.1", "requires CR4.PAE=1"},
		{"IA-32e without PG", true, func(g *GuestState) { g.CR0 &^= CR0PG }, "27.3.1.1", "requires CR0.PG=1"},
		{"PCIDE outside IA-32e", false, func(g *GuestState) { g.CR4 |= CR4PCIDE }, "27.3.1.1", "CR4.PCIDE must be 0"},
		{"CR3 beyond phys", true, func(g *GuestState) { g.CR3 |= 1 << 45 }, "27.3.1.1", "CR3 bits beyond"},
		{"SYSENTER_EIP noncanonical", false, func(g *GuestState) { g.SysenterEIP = 1 << 50 }, "27.3.1.1", "canonical"},
		{"PAT invalid type", false, func(g *GuestState) { g.Controls.Entry |= EntryLoadPAT; g.PAT = 0x02 }, "27.3.1.1", "invalid memory type 2"},
		{"EFER reserved", true, func(g *GuestState) { g.EFER |= 1 << 20 }, "27.3.1.1", "IA32_EFER reserved"},
		{"EFER.LMA without IA-32e", false, func(g *GuestState) { g.EFER = EFERLMA }, "27.3.1.1", "LMA must equal the \"IA-32e mode guest\""},
		{"LMA without LME", true, func(g *GuestState) { g.EFER &^= EFERLME }, "27.3.1.1", "LMA must equal IA32_EFER.LME"},
		// 27.3.1.2
		{"TR TI", true, func(g *GuestState) { g.TR.Selector |= 4 }, "27.3.1.2", "TR selector TI"},
		{"LDTR TI", true, func(g *GuestState) { g.LDTR = Segment{Selector: 0x24, Limit: 0xFF, AccessRights: 0x82} }, "27.3.1.2", "LDTR selector TI"},
		{"SS.RPL != CS.RPL", true, func(g *GuestState) { g.Controls.Proc2 &^= Proc2UnrestrictedGuest; g.SS.Selector |= 3 }, "27.3.1.2", "SS.RPL must equal CS.RPL"},
		{"v8086 base", false, func(g *GuestState) { g.CR0 |= CR0PE; g.RFLAGS |= RFLAGSVM; g.DS.Selector = 0x10 }, "27.3.1.2", "DS.base must be selector << 4"},
		{"v8086 access rights", false, func(g *GuestState) { g.CR0 |= CR0PE; g.RFLAGS |= RFLAGSVM }, "27.3.1.2", "access rights must be 0xF3"},
		{"TR base noncanonical", true, func(g *GuestState) { g.TR.Base = 1 << 50 }, "27.3.1.2", "TR.base must be canonical"},
		{"FS base noncanonical", true, func(g *GuestState) { g.FS.Base = 1 << 47 }, "27.3.1.2", "FS.base must be canonical"},
		{"GS base noncanonical", true, func(g *GuestState) { g.GS.Base = 1 << 60 }, "27.3.1.2", "GS.base must be canonical"},
		{"CS base high", false, func(g *GuestState) { g.CS.Base = 1 << 32 }, "27.3.1.2", "CS.base bits 63:32 must be zero"},
		{"SS base high", false, func(g *GuestState) { g.SS.Base = 1 << 33 }, "27.3.1.2", "SS.base bits 63:32 must be zero"},
		{"CS type data", false, func(g *GuestState) { g.CS.AccessRights = g.CS.AccessRights&^0xF | 1 }, "27.3.1.2", "CS type 1 must be"},
		{"CS type 3 needs UG", false, func(g *GuestState) {
			g.Controls.Proc2 &^= Proc2UnrestrictedGuest
			g.CR0 |= CR0PE | CR0PG
			g.CS.AccessRights = 0x93
		}, "27.3.1.2", "CS type 3 must be"},
		{"CS.S", false, func(g *GuestState) { g.CS.AccessRights &^= ARS }, "27.3.1.2", "CS.S must be 1"},
		{"CS.DPL vs SS.DPL", true, func(g *GuestState) { g.CS.AccessRights |= 3 << 5; g.CS.Selector |= 3 }, "27.3.1.2", "CS.DPL must equal SS.DPL"},
		{"conforming CS.DPL", true, func(g *GuestState) { g.CS.AccessRights = g.CS.AccessRights | 4 | 3<<5 }, "27.3.1.2", "must not exceed SS.DPL"},
		{"CS not present", false, func(g *GuestState) { g.CS.AccessRights &^= ARPresent }, "27.3.1.2", "CS.P must be 1"},
		{"CS reserved AR", false, func(g *GuestState) { g.CS.AccessRights |= 1 << 9 }, "27.3.1.2", "CS access-rights reserved"},
		{"CS.L and CS.D", true, func(g *GuestState) { g.CS.AccessRights |= ARDB }, "27.3.1.2", "CS.D must be 0 when CS.L is 1"},
		{"CS G with small limit", false, func(g *GuestState) { g.CS.AccessRights |= ARGranular; g.CS.Limit = 0x1234 }, "27.3.1.2", "CS.G must be 0"},
		{"DS large limit without G", true, func(g *GuestState) { g.DS.AccessRights &^= ARGranular }, "27.3.1.2", "DS.G must be 1"},
		{"SS type", false, func(g *GuestState) { g.SS.AccessRights = g.SS.AccessRights&^0xF | 1 }, "27.3.1.2", "SS type 1 must be 3 or 7"},
		{"SS.DPL != RPL", true, func(g *GuestState) { g.Controls.Proc2 &^= Proc2UnrestrictedGuest; g.SS.AccessRights |= 1 << 5 }, "27.3.1.2", "SS.DPL must equal SS.RPL"},
		{"SS.DPL in real mode", false, func(g *GuestState) { g.SS.AccessRights |= 3 << 5 }, "27.3.1.2", "SS.DPL must be 0 when CS type is 3 or CR0.PE is 0"},
		{"DS not accessed", false, func(g *GuestState) { g.DS.AccessRights &^= 1 }, "27.3.1.2", "DS type 2 must have the accessed bit"},
		{"ES execute-only", false, func(g *GuestState) { g.ES.AccessRights = g.ES.AccessRights&^0xF | 9 }, "27.3.1.2", "ES is an execute-only"},
		{"FS.S", false, func(g *GuestState) { g.FS.AccessRights &^= ARS }, "27.3.1.2", "FS.S must be 1"},
		{"GS.DPL < RPL", true, func(g *GuestState) { g.Controls.Proc2 &^= Proc2UnrestrictedGuest; g.GS.Selector |= 3 }, "27.3.1.2", "GS.DPL must not be less than its RPL"},
		{"DS not present", false, func(g *GuestState) { g.DS.AccessRights &^= ARPresent }, "27.3.1.2", "DS.P must be 1"},
		{"ES reserved", false, func(g *GuestState) { g.ES.AccessRights |= 1 << 20 }, "27.3.1.2", "ES access-rights reserved"},
		{"TR 16-bit TSS in IA-32e", true, func(g *GuestState) { g.TR.AccessRights = g.TR.AccessRights&^0xF | 3 }, "27.3.1.2", "TR type must be 11"},
		{"TR available TSS", false, func(g *GuestState) { g.TR.AccessRights = g.TR.AccessRights&^0xF | 9 }, "27.3.1.2", "TR type 9 must be 3 or 11"},
		{"TR.S", false, func(g *GuestState) { g.TR.AccessRights |= ARS }, "27.3.1.2", "TR.S must be 0"},
		{"TR not present", false, func(g *GuestState) { g.TR.AccessRights &^= ARPresent }, "27.3.1.2", "TR.P must be 1"},
		{"TR unusable", false, func(g *GuestState) { g.TR.AccessRights |= ARUnusable }, "27.3.1.2", "TR must be usable"},
		{"TR reserved", false, func(g *GuestState) { g.TR.AccessRights |= 1 << 8 }, "27.3.1.2", "TR access-rights reserved"},
		{"LDTR type", true, func(g *GuestState) { g.LDTR = Segment{Limit: 0xFF, AccessRights: 0x83} }, "27.3.1.2", "LDTR type must be 2"},
		{"LDTR not present", true, func(g *GuestState) { g.LDTR = Segment{Limit: 0xFF, AccessRights: 0x02} }, "27.3.1.2", "LDTR.P must be 1"},
		{"LDTR base", true, func(g *GuestState) { g.LDTR = Segment{Base: 1 << 49, Limit: 0xFF, AccessRights: 0x82} }, "27.3.1.2", "LDTR.base must be canonical"},
		// 27.3.1.3
		{"GDTR base", true, func(g *GuestState) { g.GDTRBase = 1 << 48 }, "27.3.1.3", "GDTR base must be canonical"},
		{"IDTR base", true, func(g *GuestState) { g.IDTRBase = 0x0000800000000000 }, "27.3.1.3", "IDTR base must be canonical"},
		{"GDTR limit", false, func(g *GuestState) { g.GDTRLimit = 0x10000 }, "27.3.1.3", "GDTR limit bits 31:16"},
		{"IDTR limit", false, func(g *GuestState) { g.IDTRLimit = 0x20000 }, "27.3.1.3", "IDTR limit bits 31:16"},
		// 27.3.1.4
		{"RIP high in real mode", false, func(g *GuestState) { g.RIP = 1 << 32 }, "27.3.1.4", "RIP bits 63:32 must be 0"},
		{"RIP noncanonical", true, func(g *GuestState) { g.RIP = 0x0000900000000000 }, "27.3.1.4", "RIP must be canonical"},
		{"RFLAGS reserved", false, func(g *GuestState) { g.RFLAGS |= 1 << 3 }, "27.3.1.4", "RFLAGS reserved bits 0x8"},
		{"RFLAGS bit 1", false, func(g *GuestState) { g.RFLAGS = 0 }, "27.3.1.4", "RFLAGS bit 1 must be 1"},
		{"RFLAGS.VM in real mode", false, func(g *GuestState) { g.RFLAGS |= RFLAGSVM }, "27.3.1.4", "RFLAGS.VM must be 0"},
		{"IF=0 injecting interrupt", false, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 0x20 }, "27.3.1.4", "RFLAGS.IF must be 1"},
		// 27.3.1.5
		{"activity reserved", false, func(g *GuestState) { g.ActivityState = 4 }, "27.3.1.5", "activity state 4 is reserved"},
		{"HLT with SS.DPL 3", true, func(g *GuestState) {
			g.ActivityState = ActivityHLT
			g.SS.AccessRights |= 3 << 5
		}, "27.3.1.5", "HLT requires SS.DPL=0"},
		{"STI blocking while HLT", true, func(g *GuestState) { g.ActivityState = ActivityHLT; g.Interruptibility = BlockingSTI }, "27.3.1.5", "requires activity state active"},
		{"interruptibility reserved", false, func(g *GuestState) { g.Interruptibility = 1 << 7 }, "27.3.1.5", "bits 31:5"},
		{"STI and MOV SS", true, func(g *GuestState) { g.Interruptibility = BlockingSTI | BlockingMovSS }, "27.3.1.5", "must not both be 1"},
		{"STI blocking with IF=0", false, func(g *GuestState) { g.Interruptibility = BlockingSTI }, "27.3.1.5", "requires RFLAGS.IF=1"},
		{"SMI blocking outside SMM", false, func(g *GuestState) { g.Interruptibility = BlockingSMI }, "27.3.1.5", "blocking by SMI"},
		{"external interrupt under MOV SS", true, func(g *GuestState) { g.Interruptibility = BlockingMovSS; g.EntryInterruptionInfo = 1<<31 | 0x30 }, "27.3.1.5", "injecting an external interrupt"},
		{"NMI under MOV SS", true, func(g *GuestState) { g.Interruptibility = BlockingMovSS; g.EntryInterruptionInfo = 1<<31 | 2<<8 | 2 }, "27.3.1.5", "injecting an NMI requires no blocking by MOV SS"},
		{"pending debug reserved", false, func(g *GuestState) { g.PendingDebug = 1 << 5 }, "27.3.1.5", "pending debug exceptions reserved"},
		{"BS missing with TF", true, func(g *GuestState) { g.RFLAGS |= RFLAGSTF; g.Interruptibility = BlockingMovSS }, "27.3.1.5", "BS must be 1"},
		{"BS set without TF", true, func(g *GuestState) { g.PendingDebug = 1 << 14; g.Interruptibility = BlockingMovSS }, "27.3.1.5", "BS must be 0"},
		{"link pointer unaligned", false, func(g *GuestState) { g.VMCSLinkPointer = 0x1234 }, "27.3.1.5", "VMCS link pointer"},
	}
}

// mutatedGuest is m applied to the valid guest state it starts from.
func mutatedGuest(t testing.TB, c *Capabilities, m guestMutation) GuestState {
	t.Helper()
	var g GuestState
	if m.long {
		g = longModeGuest(t, c)
	} else {
		g = realModeGuest(t, c)
	}
	m.mutate(&g)
	return g
}

func TestGuestStateMutations(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	for _, m := range guestMutations() {
		t.Run(m.name, func(t *testing.T) {
			g := mutatedGuest(t, c, m)
			vs := c.CheckGuestState(&g, testMaxPhys)
			for _, v := range vs {
				if v.Section == m.section && strings.Contains(v.Text, m.text) {
					return
				}
			}
			t.Errorf("want %s %q, got %v", m.section, m.text, vs)
		})
	}
}

func TestViolationString(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	g := realModeGuest(t, c)
	g.CS.Base = 1 << 40
	vs := c.CheckGuestState(&g, testMaxPhys)
	if len(vs) != 1 || vs[0].String() != "27.3.1.2: CS.base bits 63:32 must be zero" {
		t.Errorf("got %v", vs)
	}
}

func BenchmarkCheckGuestState(b *testing.B) {
	c := mustCaps(b, bochsHaswell4770)
	ctl, _ := c.ComputeControls(wantRequired, wantOptional)
	g := GuestState{Controls: ctl}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = c.CheckGuestState(&g, 39)
	}
}
