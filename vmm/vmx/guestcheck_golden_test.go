package vmx

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/guestcheck.golden from what CheckGuestState returns")

// brokenGuest is a guest state broken in several ways at once, or in a way
// that only some processors reject.
type brokenGuest struct {
	name    string
	long    bool // start from longModeGuest, else realModeGuest
	maxPhys uint8
	mutate  func(g *GuestState)
}

// brokenGuests complements guestMutations: states that fail many checks
// together (so that their order shows), and the branches no single
// mutation reaches.
func brokenGuests() []brokenGuest {
	v86 := func(g *GuestState) {
		g.CR0 |= CR0PE
		g.RFLAGS |= RFLAGSVM
		for _, s := range []*Segment{&g.CS, &g.SS, &g.DS, &g.ES, &g.FS, &g.GS} {
			s.Base = uint64(s.Selector) << 4
			s.Limit = 0xFFFF
			s.AccessRights = 0xF3
		}
	}
	return []brokenGuest{
		{"valid real mode", false, testMaxPhys, func(g *GuestState) {}},
		{"valid long mode", true, testMaxPhys, func(g *GuestState) {}},
		{"zero", false, testMaxPhys, func(g *GuestState) { *g = GuestState{Controls: g.Controls} }},
		{"all ones", false, testMaxPhys, func(g *GuestState) {
			ones := Segment{Selector: 0xFFFF, Base: ^uint64(0), Limit: ^uint32(0), AccessRights: ^uint32(0)}
			ctl := g.Controls
			*g = GuestState{
				CR0: ^uint64(0), CR3: ^uint64(0), CR4: ^uint64(0), DR7: ^uint64(0),
				RSP: ^uint64(0), RIP: ^uint64(0), RFLAGS: ^uint64(0),
				ES: ones, CS: ones, SS: ones, DS: ones, FS: ones, GS: ones, LDTR: ones, TR: ones,
				GDTRBase: ^uint64(0), IDTRBase: ^uint64(0), GDTRLimit: ^uint32(0), IDTRLimit: ^uint32(0),
				DebugCtl: ^uint64(0), SysenterESP: ^uint64(0), SysenterEIP: ^uint64(0),
				PAT: ^uint64(0), EFER: ^uint64(0),
				ActivityState: ^uint32(0), Interruptibility: ^uint32(0), PendingDebug: ^uint64(0),
				VMCSLinkPointer: ^uint64(0) - 1,
				Controls:        ctl,
				EPTP:            ^uint64(0), VPID: 0xFFFF, CR3TargetCount: ^uint32(0),
				EntryInterruptionInfo: ^uint32(0), EntryErrorCode: ^uint32(0),
			}
		}},
		{"all controls", true, testMaxPhys, func(g *GuestState) {
			g.Controls = Controls{Pin: ^PinControls(0), Proc: ^ProcControls(0), Proc2: ^Proc2Controls(0), Exit: ^ExitControls(0), Entry: ^EntryControls(0)}
		}},
		{"no controls", true, testMaxPhys, func(g *GuestState) { g.Controls = Controls{} }},
		{"secondary controls off", false, testMaxPhys, func(g *GuestState) { g.Controls.Proc &^= ProcActivateSecondary }},
		{"EPTP beyond 39 bits", true, testMaxPhys, func(g *GuestState) { g.EPTP |= 1 << 45; g.CR3 |= 1 << 45; g.VMCSLinkPointer = 1 << 45 }},
		{"EPTP beyond 39 bits, 64-bit physical", true, 64, func(g *GuestState) { g.EPTP |= 1 << 45; g.CR3 |= 1 << 45; g.VMCSLinkPointer = 1 << 45 }},
		{"EPTP accessed/dirty", true, testMaxPhys, func(g *GuestState) { g.EPTP |= 1 << 6 }},
		{"EPTP UC, 5-level", true, testMaxPhys, func(g *GuestState) { g.EPTP = g.EPTP&^0x3F | 4<<3 | MemTypeUC }},
		{"v8086 valid", false, testMaxPhys, v86},
		{"v8086 broken", false, testMaxPhys, func(g *GuestState) {
			v86(g)
			g.CS.Base, g.SS.Limit, g.DS.AccessRights = 0x1234, 0xFFFFF, 0xF2
			g.FS.AccessRights |= ARUnusable
		}},
		{"v8086 in IA-32e mode", true, testMaxPhys, v86},
		{"inject #GP in real mode", false, testMaxPhys, func(g *GuestState) {
			g.EntryInterruptionInfo = 1<<31 | 1<<11 | 3<<8 | 13
			g.EntryErrorCode = 1 << 20
		}},
		{"inject #DF without error code", true, testMaxPhys, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 3<<8 | 8 }},
		{"inject #AC and CP", true, testMaxPhys, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 1<<11 | 3<<8 | 21 }},
		{"inject hardware exception 40", true, testMaxPhys, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 3<<8 | 40 }},
		{"inject type 7 without MTF", true, testMaxPhys, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 7<<8 | 1 }},
		{"inject reserved bits", true, testMaxPhys, func(g *GuestState) { g.EntryInterruptionInfo = 1<<31 | 1<<20 | 0x30 }},
		{"inject NMI under virtual-NMI blocking", true, testMaxPhys, func(g *GuestState) {
			g.Controls.Pin |= PinNMIExiting | PinVirtualNMIs
			g.Interruptibility = BlockingNMI | BlockingSTI
			g.EntryInterruptionInfo = 1<<31 | 2<<8 | 2
		}},
		{"external interrupt under STI, IF=0", false, testMaxPhys, func(g *GuestState) {
			g.Interruptibility = BlockingSTI
			g.EntryInterruptionInfo = 1<<31 | 0x40
		}},
		{"activity HLT, TF and BTF, BS", true, testMaxPhys, func(g *GuestState) {
			g.ActivityState = ActivityHLT
			g.Controls.Entry |= EntryLoadDebugControls
			g.DebugCtl = 2
			g.RFLAGS |= RFLAGSTF
			g.PendingDebug = 1 << 14
		}},
		{"activity HLT, TF and BTF, no BS", true, testMaxPhys, func(g *GuestState) {
			g.ActivityState = ActivityHLT
			g.Controls.Entry |= EntryLoadDebugControls
			g.DebugCtl = 2
			g.RFLAGS |= RFLAGSTF
		}},
		{"activity shutdown", true, testMaxPhys, func(g *GuestState) { g.ActivityState = ActivityShutdown }},
		{"activity wait-for-SIPI", true, testMaxPhys, func(g *GuestState) { g.ActivityState = ActivityWaitSIPI }},
		{"CS type 3, DPL 3", false, testMaxPhys, func(g *GuestState) {
			g.CS.AccessRights = 0xF3
			g.CS.Selector |= 3
		}},
		{"CS conforming, DPL 0 under SS.DPL 3", true, testMaxPhys, func(g *GuestState) {
			g.CS.AccessRights = g.CS.AccessRights&^0xF | 15
			g.SS.AccessRights |= 3 << 5
			g.SS.Selector |= 3
		}},
		{"CS 32-bit in IA-32e mode", true, testMaxPhys, func(g *GuestState) { g.CS.AccessRights = g.CS.AccessRights&^ARLong | ARDB; g.RIP = 1 << 40 }},
		{"segments unusable", true, testMaxPhys, func(g *GuestState) {
			for _, s := range []*Segment{&g.SS, &g.DS, &g.ES, &g.FS, &g.GS} {
				s.AccessRights = ARUnusable | 0x1F0F
				s.Base = 1 << 40
			}
		}},
		{"segment limits against G", true, testMaxPhys, func(g *GuestState) {
			g.SS.Limit = 0x1000
			g.ES.AccessRights &^= ARGranular
			g.TR.AccessRights |= ARGranular
			g.TR.Limit = 0x100000
			g.LDTR = Segment{Selector: 0x20, Base: 0xFFFF800000000000, Limit: 0x12345, AccessRights: 0x8082 | 1<<10}
		}},
		{"TR and LDTR system bits", true, testMaxPhys, func(g *GuestState) {
			g.TR.AccessRights = 0x9B
			g.LDTR = Segment{Selector: 0x28, Limit: 0xFFF, AccessRights: 0x9B}
		}},
		{"LA57 RIP", true, testMaxPhys, func(g *GuestState) { g.CR4 |= CR4LA57; g.RIP = 0x00FF000000000000 }},
		{"EFER without LMA, PG", true, testMaxPhys, func(g *GuestState) { g.EFER = EFERLME; g.CR0 &^= CR0PG }},
		{"PAT every entry", false, testMaxPhys, func(g *GuestState) { g.Controls.Entry |= EntryLoadPAT; g.PAT = 0x0302010007060504 }},
	}
}

// goldenCaps are the processors the golden test runs on: the captured
// ones, and one that has nothing optional VM entry checks against (no
// activity state but active, error codes checked).
func goldenCaps(t *testing.T) []struct {
	name string
	c    *Capabilities
} {
	bare := *mustCaps(t, bochsHaswell4770)
	bare.Misc.ActivityHLT, bare.Misc.ActivityShutdown, bare.Misc.ActivityWaitSIPI = false, false, false
	bare.Basic.NoErrCodeCheck = false
	bare.EPTVPID = 0
	lax := *mustCaps(t, skylakeSP9980XE)
	lax.Basic.NoErrCodeCheck = true
	return []struct {
		name string
		c    *Capabilities
	}{
		{"bochs", mustCaps(t, bochsHaswell4770)},
		{"e3-1270v2", mustCaps(t, xeonE31270v2)},
		{"9980xe", mustCaps(t, skylakeSP9980XE)},
		{"bare", &bare},
		{"9980xe-no-errcode-check", &lax},
	}
}

// TestGuestStateGolden pins the exact list of violations, in order and in
// words, that CheckGuestState returns for every mutation and every broken
// state on every processor. Regenerate with go test -run Golden -update
// after a deliberate change, and review the diff.
func TestGuestStateGolden(t *testing.T) {
	var b strings.Builder
	write := func(cpu, name string, c *Capabilities, g *GuestState, maxPhys uint8) {
		vs := c.CheckGuestState(g, maxPhys)
		fmt.Fprintf(&b, "== %s / %s: %d\n", cpu, name, len(vs))
		for _, v := range vs {
			fmt.Fprintf(&b, "%s\n", v)
		}
	}
	for _, cpu := range goldenCaps(t) {
		c := cpu.c
		if _, err := c.ComputeControls(wantRequired, wantOptional); err != nil {
			// A processor the valid states cannot be built on: check
			// them on the one the mutations were written for.
			c = mustCaps(t, bochsHaswell4770)
		}
		for _, m := range guestMutations() {
			g := mutatedGuest(t, c, m)
			write(cpu.name, "mutation "+m.name, cpu.c, &g, testMaxPhys)
		}
		for _, bg := range brokenGuests() {
			g := mutatedGuest(t, c, guestMutation{long: bg.long, mutate: bg.mutate})
			write(cpu.name, bg.name, cpu.c, &g, bg.maxPhys)
		}
	}
	path := filepath.Join("testdata", "guestcheck.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test -run Golden -update)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s line %d:\n got %q\nwant %q\n(rerun with -update after a deliberate change)", path, i+1, g, w)
			}
		}
	}
}
