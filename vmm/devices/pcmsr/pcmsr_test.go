// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package pcmsr

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
)

func newTable(t *testing.T) (*Table, *exits.MSRTable) {
	t.Helper()
	p, err := New(2, 39)
	if err != nil {
		t.Fatal(err)
	}
	m := exits.NewMSRTable()
	if err := p.Register(m); err != nil {
		t.Fatal(err)
	}
	return p, m
}

func TestResetValues(t *testing.T) {
	_, m := newTable(t)
	for _, c := range []struct {
		msr  uint32
		want uint64
	}{
		{MTRRCap, 0x508}, {MTRRDefType, 0xC06}, {PAT, 0x0007040600070406},
		{MTRRFix64K, 0x0606060606060606}, {MTRRFix4KC0 + 7, 0x0606060606060606},
		{FeatureCtl, 1}, {MiscEnable, 0x1801}, {MCGCap, 0}, {MTRRPhysBase0 + 15, 0},
	} {
		got, ok := m.Read(1, c.msr)
		if !ok || got != c.want {
			t.Errorf("MSR %#x = %#x, %v; want %#x", c.msr, got, ok, c.want)
		}
	}
	if _, ok := m.Read(0, MTRRPhysBase0+16); ok {
		t.Error("a ninth variable MTRR exists")
	}
	if _, ok := m.Read(0, 0xCE); ok {
		t.Error("MSR_PLATFORM_INFO should raise #GP")
	}
}

func TestWritesChecked(t *testing.T) {
	p, m := newTable(t)
	for _, c := range []struct {
		name string
		msr  uint32
		v    uint64
		ok   bool
	}{
		{"PAT all UC-", PAT, 0x0707070707070707, true},
		{"PAT reserved type 2", PAT, 0x0007040600070402, false},
		{"def type UC, enabled", MTRRDefType, 0x800, true},
		{"def type reserved bit 12", MTRRDefType, 0x1C06, false},
		{"def type UC- (PAT only)", MTRRDefType, 0xC07, false},
		{"variable base WB at 2 GiB", MTRRPhysBase0, 0x80000006, true},
		{"variable base above 39 bits", MTRRPhysBase0, 1<<40 | 6, false},
		{"variable mask 2 GiB valid", MTRRPhysBase0 + 1, 0x7F80000800, true},
		{"variable mask low bits", MTRRPhysBase0 + 1, 0x7F80000801, false},
		{"fixed with type 3", MTRRFix16KA, 0x0606060606060603, false},
		{"fixed all UC", MTRRFix16KA, 0, true},
		{"feature control locked", FeatureCtl, 5, false},
		{"misc enable fast strings off", MiscEnable, 0x1800, true},
		{"misc enable PEBS bit", MiscEnable, 0x0800, false},
		{"misc enable writable bits (kvm-unit-tests' msr)", MiscEnable, 0x400c51809, true},
		{"misc enable reserved bit 35", MiscEnable, 1<<35 | 0x1801, false},
		{"misc enable read-only bit 7", MiscEnable, 1<<7 | 0x1801, false},
		{"microcode trigger", BIOSUpdtTrig, 0x12345000, true},
		{"DEBUGCTL LBR", DebugCtl, 1, false},
		{"MTRRCAP", MTRRCap, 0, false},
	} {
		if got := m.Write(0, c.msr, c.v); got != c.ok {
			t.Errorf("%s: write %#x to %#x: %v, want %v", c.name, c.v, c.msr, got, c.ok)
		}
	}
	if got, _ := m.Read(0, PAT); got != 0x0707070707070707 {
		t.Errorf("PAT %#x after writes", got)
	}
	if got, _ := m.Read(1, PAT); got != patInit {
		t.Errorf("vCPU 1's PAT changed with vCPU 0's: %#x", got)
	}
	if got, _ := m.Read(0, MTRRPhysBase0); got != 0x80000006 {
		t.Errorf("refused write changed PHYSBASE0: %#x", got)
	}
	if p.Refused() != 12 {
		t.Errorf("%d writes refused, want 12", p.Refused())
	}
	if p.WriteMSR(5, PAT, 0) || p.WriteMSR(-1, PAT, 0) {
		t.Error("a vCPU index out of range was accepted")
	}
	if _, ok := p.ReadMSR(2, PAT); ok {
		t.Error("read for vCPU 2 of 2 accepted")
	}
}

func TestNoAllocations(t *testing.T) {
	_, m := newTable(t)
	if n := testing.AllocsPerRun(100, func() {
		m.Write(1, MTRRPhysBase0+3, 0x7FF0000800)
		m.Read(1, PAT)
	}); n != 0 {
		t.Errorf("%v allocations per access", n)
	}
}

func FuzzMSR(f *testing.F) {
	f.Add(uint32(PAT), uint64(0x0606060606060606), true, 1)
	f.Add(uint32(MTRRPhysBase0+1), uint64(0xFFFFFFFFFFFFFFFF), true, 0)
	f.Add(uint32(SysCfg), uint64(0x340000), true, 1)
	f.Add(uint32(SysCfg), uint64(1)<<23, true, 0) // reserved: refused
	f.Add(uint32(IntPend), uint64(3)<<27, true, 0)
	f.Add(uint32(IntPend), uint64(0), false, -1)
	f.Fuzz(func(t *testing.T, msr uint32, v uint64, write bool, vcpu int) {
		p, err := New(2, 39)
		if err != nil {
			t.Fatal(err)
		}
		before, okBefore := p.ReadMSR(vcpu, msr)
		if write && p.WriteMSR(vcpu, msr, v) {
			// BIOS_SIGN_ID and AMD's legacy performance counters
			// take writes and read back as before (0).
			if got, ok := p.ReadMSR(vcpu, msr); ok && got != v && msr != BIOSSignID && !amdCounter(msr) {
				t.Fatalf("MSR %#x: wrote %#x, read %#x", msr, v, got)
			}
		} else if got, ok := p.ReadMSR(vcpu, msr); ok != okBefore || got != before {
			t.Fatalf("MSR %#x changed by a refused write: %#x -> %#x", msr, before, got)
		}
	})
}

// TestSysCfg: AMD's SYSCFG reads as firmware leaves it (fixed-range
// RdMem/WrMem and variable-range DRAM enabled, the modify enable clear:
// Linux clears it with a warning otherwise), takes writes to its MTRR
// bits and refuses the rest (#GP); without RegisterAMD it is unclaimed,
// as on an Intel processor.
func TestSysCfg(t *testing.T) {
	p, m := newTable(t)
	if _, ok := m.Read(0, SysCfg); ok {
		t.Fatal("SYSCFG read succeeded before RegisterAMD")
	}
	if err := p.RegisterAMD(m); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.Read(0, SysCfg); !ok || got != 0x140000 || got&sysCfgFixDramModEn != 0 {
		t.Fatalf("SYSCFG = %#x, %v; want 0x140000", got, ok)
	}
	if !m.Write(1, SysCfg, 0x340000) {
		t.Error("SYSCFG write of its MTRR bits refused")
	}
	if got, _ := m.Read(1, SysCfg); got != 0x340000 {
		t.Errorf("vCPU 1's SYSCFG = %#x after the write, want 0x340000", got)
	}
	if got, _ := m.Read(0, SysCfg); got != 0x140000 {
		t.Errorf("vCPU 0's SYSCFG = %#x: another vCPU's write reached it", got)
	}
	if m.Write(0, SysCfg, 0x140000|1<<23) {
		t.Error("SYSCFG accepted SMEE (bit 23), which is not emulated")
	}
	if got, ok := m.Read(0, IntPend); !ok || got != 0 {
		t.Errorf("interrupt pending message = %#x, %v; want 0 (C1E off)", got, ok)
	}
	if m.Write(0, IntPend, 1<<27) {
		t.Error("interrupt pending message took C1eOnCmpHalt")
	}
}

// TestAMDLegacyCounters: on AMD the four legacy event selects and
// counters exist, read 0 and take any write without counting; the MSRs
// around them stay unclaimed, and an Intel guest has none.
func TestAMDLegacyCounters(t *testing.T) {
	p, m := newTable(t)
	if _, ok := m.Read(0, PerfEvtSel0); ok {
		t.Fatal("PerfEvtSel0 read succeeded before RegisterAMD")
	}
	if err := p.RegisterAMD(m); err != nil {
		t.Fatal(err)
	}
	for msr := PerfEvtSel0; msr <= PerfCtr0+3; msr++ {
		if !m.Write(1, msr, 0x430076) {
			t.Errorf("write to %#x refused", msr)
		}
		if got, ok := m.Read(1, msr); !ok || got != 0 {
			t.Errorf("%#x = %#x, %v; want 0", msr, got, ok)
		}
	}
	for _, msr := range []uint32{PerfEvtSel0 - 1, PerfCtr0 + 4} {
		if _, ok := m.Read(0, msr); ok {
			t.Errorf("%#x claimed", msr)
		}
	}
}
