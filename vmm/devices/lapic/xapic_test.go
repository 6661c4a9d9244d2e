// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import (
	"fmt"
	"slices"
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// IA32_APIC_BASE bits, spelled out here as the SDM does (11.4.4).
const (
	bsp  = 1 << 8
	extd = 1 << 10
	en   = 1 << 11
)

// newXBus is newBus powered on in xAPIC mode, as a real machine is.
func newXBus(n int, tsc *uint64) (*Bus, []*recorder, *exits.MSRTable) {
	b, recs, m := newBus(n, tsc)
	b.PowerOn(ModeXAPIC)
	return b, recs, m
}

func rd(a *LAPIC, off uint64) uint32    { return uint32(a.ReadMMIO(off, 4)) }
func wr(a *LAPIC, off uint64, v uint32) { a.WriteMMIO(off, 4, uint64(v)) }

// checkValid fails unless every APIC's saved state is one a vCPU can
// travel with.
func checkValid(t testing.TB, b *Bus) {
	t.Helper()
	for i := 0; i < b.Len(); i++ {
		s, dl := b.APIC(i).Save()
		var st vcpu.State
		st.Reset(uint32(i), i == 0)
		st.LAPIC, st.TSCDeadline = s, dl
		if err := st.Validate(); err != nil {
			t.Fatalf("APIC %d (%v): %v", i, b.APIC(i).Mode(), err)
		}
	}
}

func TestPowerOn(t *testing.T) {
	var tsc uint64
	b, _, m := newXBus(2, &tsc)
	for i, want := range []uint64{0xFEE00000 | bsp | en, 0xFEE00000 | en} {
		a := b.APIC(i)
		if got, _ := m.Read(i, MSRAPICBase); got != want || a.Mode() != ModeXAPIC {
			t.Errorf("APIC %d: base %#x mode %v, want %#x xAPIC", i, got, a.Mode(), want)
		}
		if base, dec := a.MMIOBase(); base != 0xFEE00000 || !dec {
			t.Errorf("APIC %d: page %#x decoded %v", i, base, dec)
		}
		for off, want := range map[uint64]uint32{0x20: uint32(i) << 24, 0x30: 0x60014, 0x80: 0, 0xD0: 0,
			0xE0: 0xFFFFFFFF, 0xF0: 0xFF, 0x320: 1 << 16, 0x370: 1 << 16, 0x300: 0, 0x310: 0} {
			if got := rd(a, off); got != want {
				t.Errorf("APIC %d: %#x reads %#x, want %#x", i, off, got, want)
			}
		}
		if _, ok := m.Read(i, msrID); ok {
			t.Errorf("APIC %d: x2APIC ID MSR readable in xAPIC mode", i)
		}
	}
	checkValid(t, b)
	b.PowerOn(ModeDisabled)
	if got, _ := m.Read(0, MSRAPICBase); got != 0xFEE00000|bsp || b.APIC(0).Mode() != ModeDisabled {
		t.Errorf("disabled power-on: base %#x", got)
	}
	b.PowerOn(ModeX2APIC)
	if got, _ := m.Read(1, MSRAPICBase); got != 0xFEE00000|en|extd {
		t.Errorf("x2APIC power-on: base %#x", got)
	}
	if ldr, _ := m.Read(1, msrLDR); ldr != 2 {
		t.Errorf("x2APIC power-on: LDR %#x", ldr)
	}
	// An ID beyond 8 bits exists only in x2APIC mode, and stays there.
	big := NewBus(257, func() uint64 { return 0 }, func(int) Events { return &recorder{} })
	big.PowerOn(ModeXAPIC)
	if big.APIC(255).Mode() != ModeXAPIC || big.APIC(256).Mode() != ModeX2APIC {
		t.Errorf("APIC 255 %v, APIC 256 %v", big.APIC(255).Mode(), big.APIC(256).Mode())
	}
	if big.writeBase(256, 0xFEE00000) {
		t.Error("APIC 256 left x2APIC mode")
	}
	checkValid(t, big)
}

func (b *Bus) writeBase(i int, v uint64) bool { return b.WriteMSR(i, MSRAPICBase, v) }

// TestBaseTransitions walks every pair of IA32_APIC_BASE states (SDM
// 11.12.5.1, Figure 11-28), from each valid one, with registers
// programmed, and checks the #GP and the state left.
func TestBaseTransitions(t *testing.T) {
	states := []struct {
		name string
		bits uint64
	}{{"disabled", 0}, {"xAPIC", en}, {"x2APIC", en | extd}, {"invalid", extd}}
	// ok[from][to], from the SDM's state diagram.
	ok := [3][4]bool{
		{true, true, false, false}, // disabled: to xAPIC only
		{true, true, true, false},  // xAPIC: to disabled or x2APIC
		{true, false, true, false}, // x2APIC: to disabled only
	}
	for from := 0; from < 3; from++ {
		for to := range states {
			t.Run(states[from].name+"→"+states[to].name, func(t *testing.T) {
				var tsc uint64
				b, _, m := newXBus(2, &tsc)
				a := b.APIC(1)
				enter(t, b, m, states[from].bits)
				before := a.State()
				v := 0xFEE00000 | states[to].bits
				if got := b.writeBase(1, v); got != ok[from][to] {
					t.Fatalf("write %#x: accepted %v, want %v", v, got, ok[from][to])
				}
				want := before
				switch {
				case !ok[from][to]:
				case to == 0 && from != 0:
					want = vcpu.LAPIC{ID: 1, Base: v, SVR: 0xFF, DFR: vcpu.DFRFlat}
					for i := range want.LVT {
						want.LVT[i] = vcpu.LVTMasked
					}
				case from == 1 && to == 2:
					want.Base, want.LDR, want.ICR = v, 2, before.ICR&0xFFFFFFFF
				default:
					want.Base = v
				}
				if got := a.State(); got != want {
					t.Errorf("state after\n%+v\nwant\n%+v", got, want)
				}
				checkValid(t, b)
			})
		}
	}
}

// enter brings APIC 1 to the IA32_APIC_BASE state bits by valid steps and
// programs registers there, as a guest would.
func enter(t *testing.T, b *Bus, m *exits.MSRTable, bits uint64) {
	t.Helper()
	a := b.APIC(1)
	wr(a, 0xF0, 0x1FF)
	wr(a, 0x80, 0x20)
	wr(a, 0xD0, 0x05000000)
	wr(a, 0xE0, 0x0FFFFFFF)
	wr(a, 0x310, 0x03000000)
	a.Deliver(0x60, false)
	switch bits {
	case 0:
		mustWrite(t, m, 1, MSRAPICBase, 0xFEE00000)
	case en | extd:
		mustWrite(t, m, 1, MSRAPICBase, 0xFEE00000|en|extd)
		if id, _ := m.Read(1, msrID); id != 1 {
			t.Fatalf("x2APIC ID %#x", id)
		}
		mustWrite(t, m, 1, msrTPR, 0x30)
	}
}

func TestBaseReservedBits(t *testing.T) {
	var tsc uint64
	b, _, _ := newXBus(2, &tsc)
	for _, c := range []struct {
		v  uint64
		ok bool
	}{
		{0xFEE00000 | bsp | en | 1, false},     // bit 0
		{0xFEE00000 | bsp | en | 1<<9, false},  // bit 9
		{0xFEE00000 | en, false},               // the BSP bit is read-only
		{1<<51 | 0xFEE00000 | bsp | en, true},  // MAXPHYADDR unknown: 52 bits
		{1<<52 | 0xFEE00000 | bsp | en, false}, // beyond any address
		{0xFED40000 | bsp | en, true},          // relocated
		{0xFEE00000 | bsp | en | 1<<63, false}, // bit 63
		{0xFEE00000 | bsp | en | extd, true},   // to x2APIC
		{0xFEC00000 | bsp | en | extd, true},   // moved in x2APIC mode: accepted, not decoded
		{0xFEE00000 | bsp | en | extd | 1, false},
	} {
		if got := b.writeBase(0, c.v); got != c.ok {
			t.Errorf("write %#x: accepted %v, want %v", c.v, got, c.ok)
		}
	}
	if base, dec := b.APIC(0).MMIOBase(); base != 0xFEC00000 || dec {
		t.Errorf("x2APIC page %#x decoded %v", base, dec)
	}
	b.SetMaxPhysAddr(39)
	for _, c := range []struct {
		v  uint64
		ok bool
	}{{1<<39 | 0xFEE00000 | en, false}, {1<<38 | 0xFEE00000 | en, true}, {1<<51 | 0xFEE00000 | en, false}} {
		if got := b.writeBase(1, c.v); got != c.ok {
			t.Errorf("MAXPHYADDR 39: write %#x: accepted %v, want %v", c.v, got, c.ok)
		}
	}
}

// TestRelocate moves the page as kvm-unit-tests' test_apicbase does.
func TestRelocate(t *testing.T) {
	var tsc uint64
	b, _, m := newXBus(1, &tsc)
	a := b.APIC(0)
	orig, _ := m.Read(0, MSRAPICBase)
	mustWrite(t, m, 0, MSRAPICBase, orig&^(en|extd))
	mustWrite(t, m, 0, MSRAPICBase, 0xFED40000|bsp|en)
	if base, dec := a.MMIOBase(); base != 0xFED40000 || !dec {
		t.Fatalf("page %#x decoded %v", base, dec)
	}
	if v := rd(a, 0x30); v != 0x60014 {
		t.Errorf("version at the new page %#x", v)
	}
	mustWrite(t, m, 0, MSRAPICBase, 0xFEE01000|bsp|en) // while enabled
	if base, _ := a.MMIOBase(); base != 0xFEE01000 {
		t.Errorf("page %#x after moving it while enabled", base)
	}
	mustWrite(t, m, 0, MSRAPICBase, orig)
	if base, dec := a.MMIOBase(); base != 0xFEE00000 || !dec {
		t.Errorf("page %#x decoded %v after moving it back", base, dec)
	}
}

// TestMMIORegisters writes every offset of the page in xAPIC mode and
// reads it back (SDM Table 11-1).
func TestMMIORegisters(t *testing.T) {
	type row struct {
		off     uint64
		write   uint32
		want    uint32
		illegal bool // a reserved offset: ESR bit 7
	}
	rows := []row{
		{0x20, 0x05000000, 1 << 24, false}, // ID: read-only
		{0x30, 0, 0x60014, false},
		{0x80, 0x1FF, 0xFF, false},             // TPR: reserved bits dropped
		{0x90, 0x55, 0, false},                 // APR
		{0xA0, 0x55, 0, false},                 // PPR: read-only
		{0xB0, 0x1234, 0, false},               // EOI: write-only, any value
		{0xC0, 0x55, 0, false},                 // RRD
		{0xD0, 0xFFFFFFFF, 0xFF000000, false},  // LDR bits 31:24
		{0xE0, 0, 0x0FFFFFFF, false},           // DFR: cluster
		{0xE0, 0x0FFFFFFF, 0x0FFFFFFF, false},  // DFR: cluster
		{0xE0, 0x5FFFFFFF, 0xFFFFFFFF, false},  // DFR: undefined model ignored
		{0xF0, 0xFFFFFFFF, 0x11FF, false},      // SVR
		{0x2F0, 0xFFFFFFFF, 0x107FF, false},    // LVT CMCI
		{0x2F0, 0x000000F0, 0xF0, false},       // unmasked
		{0x2F0, 0x00000130, 1 << 16, false},    // reserved delivery mode 001b ignored
		{0x330, 0x00000330, 1 << 16, false},    // 011b
		{0x350, 0x00000630, 1 << 16, false},    // 110b
		{0x300, 0xFFFFFFFF, 0x000CCFFF, false}, // ICR low: delivery status reads 0
		{0x310, 0xFFFFFFFF, 0xFF000000, false}, // ICR high: destination only
		{0x320, 0xFFFFFFFF, 1 << 16, false},    // timer mode 11b ignored
		{0x320, 0x000400EC, 0x400EC, false},    // TSC-deadline
		{0x320, 0x000300EC, 0x300EC, false},    // periodic, masked
		{0x330, 0xFFFFFFFF, 0x107FF, false},
		{0x340, 0xFFFFFFFF, 0x107FF, false},
		{0x350, 0xFFFFFFFF, 0x1A7FF, false}, // LINT0: remote IRR, status read-only
		{0x360, 0x0000A700, 0xA700, false},
		{0x370, 0xFFFFFFFF, 0x100FF, false},
		{0x380, 0xFFFFFFFF, 0xFFFFFFFF, false},
		{0x390, 5, 0, false}, // current count: read-only
		{0x3E0, 0xFFFFFFFF, 0xB, false},
		{0x3F0, 0x41, 0, true}, // self IPI: x2APIC only
	}
	for r := uint64(0x100); r < 0x280; r += 0x10 { // ISR, TMR, IRR: read-only
		rows = append(rows, row{r, 0xFFFFFFFF, 0, false})
	}
	for _, r := range []uint64{0x00, 0x10, 0x40, 0x50, 0x60, 0x70, 0x290, 0x2A0, 0x2B0, 0x2C0, 0x2D0, 0x2E0,
		0x3A0, 0x3B0, 0x3C0, 0x3D0, 0x400, 0x800, 0xFF0} {
		rows = append(rows, row{r, 0xFFFFFFFF, 0, true})
	}
	for _, c := range rows {
		t.Run(fmt.Sprintf("%#x=%#x", c.off, c.write), func(t *testing.T) {
			var tsc uint64
			b, _, _ := newXBus(2, &tsc)
			a := b.APIC(1)
			wr(a, 0xF0, 0x1FF)
			before := a.State()
			wr(a, c.off, c.write)
			if c.want == 0 && c.off != 0xB0 && a.State() != before {
				t.Errorf("a write to a register that reads 0 changed the state")
			}
			if esr := rd(a, 0x280); esr != 0 {
				t.Errorf("ESR %#x before a write latched it", esr)
			}
			latchIllegal := func(what string) {
				wr(a, 0x280, 0)
				if esr := rd(a, 0x280); (esr&(1<<7) != 0) != c.illegal {
					t.Errorf("ESR %#x after the %s, illegal register address want %v", esr, what, c.illegal)
				}
			}
			latchIllegal("write")
			if got := rd(a, c.off); got != c.want {
				t.Errorf("reads %#x, want %#x", got, c.want)
			}
			latchIllegal("read")
			checkValid(t, b)
		})
	}
}

func TestMMIOInterruptRegisters(t *testing.T) {
	var tsc uint64
	b, _, _ := newXBus(1, &tsc)
	a := b.APIC(0)
	wr(a, 0xF0, 0x1FF)
	ended := -1
	b.SetEOIHandler(func(v uint8) { ended = int(v) })
	b.Interrupt(0, false, deliveryFixed, 0x9C, true)
	b.Interrupt(0, false, deliveryFixed, 0x41, false)
	if irr, tmr := rd(a, 0x240), rd(a, 0x1C0); irr != 1<<28 || tmr != 1<<28 {
		t.Errorf("IRR[159:128] %#x, TMR[159:128] %#x; want bit 28", irr, tmr)
	}
	if irr := rd(a, 0x220); irr != 1<<1 {
		t.Errorf("IRR[95:64] %#x, want bit 1", irr)
	}
	a.Accept(0x9C)
	if isr, ppr := rd(a, 0x140), rd(a, 0xA0); isr != 1<<28 || ppr != 0x90 {
		t.Errorf("ISR[159:128] %#x, PPR %#x", isr, ppr)
	}
	wr(a, 0x80, 0xA0)
	if ppr := rd(a, 0xA0); ppr != 0xA0 {
		t.Errorf("PPR %#x with TPR 0xA0", ppr)
	}
	wr(a, 0xB0, 0xDEAD) // an xAPIC EOI takes any value
	if isr := rd(a, 0x140); isr != 0 || ended != 0x9C {
		t.Errorf("after EOI: ISR %#x, IOAPIC told %#x", isr, ended)
	}
	// ESR latches: errors show at the write after them (11.5.3).
	a.Deliver(3, false)
	if esr := rd(a, 0x280); esr != 0 {
		t.Errorf("ESR %#x before the write", esr)
	}
	wr(a, 0x280, 0x1234)
	if esr := rd(a, 0x280); esr != 1<<6 {
		t.Errorf("ESR %#x, want receive illegal vector", esr)
	}
	wr(a, 0x280, 0)
	if esr := rd(a, 0x280); esr != 0 {
		t.Errorf("ESR %#x after a second write", esr)
	}
}

// TestMMIOWidths: accesses other than aligned 32-bit ones (undefined in
// SDM 11.4.1) read the register's bytes and write nothing.
func TestMMIOWidths(t *testing.T) {
	var tsc uint64
	b, _, _ := newXBus(1, &tsc)
	a := b.APIC(0)
	wr(a, 0x80, 0xAB)
	for _, c := range []struct {
		off  uint64
		size int
		want uint64
	}{
		{0x80, 1, 0xAB}, {0x81, 1, 0}, {0x30, 2, 0x14}, {0x32, 1, 0x06}, {0x31, 2, 0x600},
		{0x30, 8, 0x60014}, {0x34, 4, 0}, {0x3C, 4, 0}, {0x30, 0, 0}, {0x30, 9, 0},
		{0x1000, 4, 0xFFFFFFFF}, {0x1000, 1, 0xFF},
	} {
		if got := a.ReadMMIO(c.off, c.size); got != c.want {
			t.Errorf("read %d bytes at %#x: %#x, want %#x", c.size, c.off, got, c.want)
		}
	}
	for _, w := range []struct {
		off  uint64
		size int
	}{{0x80, 1}, {0x80, 2}, {0x80, 8}, {0x81, 4}, {0x84, 4}, {0x88, 4}, {0x1080, 4}} {
		a.WriteMMIO(w.off, w.size, 0x55)
		if tpr := rd(a, 0x80); tpr != 0xAB {
			t.Errorf("write of %d bytes at %#x changed TPR to %#x", w.size, w.off, tpr)
		}
	}
}

// TestInterfacesPerMode: the x2APIC MSRs #GP outside x2APIC mode, and the
// page is not decoded outside xAPIC mode.
func TestInterfacesPerMode(t *testing.T) {
	var tsc uint64
	b, _, m := newXBus(1, &tsc)
	a := b.APIC(0)
	msrsRefused := func(mode string) {
		for msr := uint32(0x800); msr <= 0x8FF; msr++ {
			if _, ok := m.Read(0, msr); ok {
				t.Errorf("%s: MSR %#x readable", mode, msr)
			}
			if m.Write(0, msr, 0) {
				t.Errorf("%s: MSR %#x writable", mode, msr)
			}
		}
	}
	pageDead := func(mode string) {
		before := a.State()
		for off := uint64(0); off < MMIOSize; off += 0x10 {
			if v := rd(a, off); v != 0xFFFFFFFF {
				t.Errorf("%s: %#x reads %#x", mode, off, v)
			}
			wr(a, off, 0x1FF)
		}
		if a.State() != before {
			t.Errorf("%s: writes to the page changed the state", mode)
		}
	}
	msrsRefused("xAPIC")
	mustWrite(t, m, 0, MSRTSCDeadline, 0) // not an x2APIC register
	mustWrite(t, m, 0, MSRAPICBase, 0xFEE00000|bsp)
	msrsRefused("disabled")
	pageDead("disabled")
	if _, dec := a.MMIOBase(); dec {
		t.Error("disabled APIC decodes its page")
	}
	mustWrite(t, m, 0, MSRAPICBase, 0xFEE00000|bsp|en)
	mustWrite(t, m, 0, MSRAPICBase, 0xFEE00000|bsp|en|extd)
	pageDead("x2APIC")
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	if _, dec := a.MMIOBase(); dec {
		t.Error("x2APIC decodes its page")
	}
}

// TestKVMUnitTestsStartup runs the start-up of kvm-unit-tests (x86
// cstart64.S, lib/x86/smp.c, lib/x86/apic.c) on every CPU.
func TestKVMUnitTestsStartup(t *testing.T) {
	var tsc uint64
	const n = 4
	b, recs, m := newXBus(n, &tsc)
	for cpu := 0; cpu < n; cpu++ { // reset_apic, enable_apic, apic_id
		a := b.APIC(cpu)
		base, _ := m.Read(cpu, MSRAPICBase)
		mustWrite(t, m, cpu, MSRAPICBase, base&^(en|extd))
		base, _ = m.Read(cpu, MSRAPICBase)
		mustWrite(t, m, cpu, MSRAPICBase, base|en)
		wr(a, 0xF0, 0x1FF)
		if id := rd(a, 0x20) >> 24; id != uint32(cpu) {
			t.Errorf("CPU %d reads ID %d", cpu, id)
		}
	}
	bsp := b.APIC(0)
	icrWrite := func(val, dest uint32) { // xapic_icr_write
		if rd(bsp, 0x300)&(1<<12) != 0 {
			t.Fatal("ICR busy")
		}
		wr(bsp, 0x310, dest<<24)
		wr(bsp, 0x300, val)
	}
	icrWrite(0xC0000|0x4000|0x500, 0) // INIT, all but self, assert
	icrWrite(0xC0000|0x600, 0)        // STARTUP, all but self, vector 0
	if rd(bsp, 0x300)&(1<<12) != 0 {
		t.Error("ICR busy after the SIPI")
	}
	for cpu, r := range recs {
		want := 1
		if cpu == 0 {
			want = 0
		}
		if r.inits != want || len(r.sipis()) != want || want == 1 && r.sipis()[0] != 0 {
			t.Errorf("CPU %d: %d INITs, SIPIs %v", cpu, r.inits, r.sipis())
		}
		if _, ok := b.APIC(cpu).Pending(); ok {
			t.Errorf("CPU %d: INIT or SIPI left an interrupt pending", cpu)
		}
	}
	// A test switches CPU 2 to x2APIC mode; physical IPIs still reach it.
	base, _ := m.Read(2, MSRAPICBase)
	mustWrite(t, m, 2, MSRAPICBase, base|extd)
	if id, _ := m.Read(2, msrID); id != 2 {
		t.Errorf("x2APIC ID %d", id)
	}
	if ldr, _ := m.Read(2, msrLDR); ldr != uint64(vcpu.X2APICLogicalID(2)) {
		t.Errorf("x2APIC LDR %#x", ldr)
	}
	icrWrite(0x4000|0x50, 2)
	if v, ok := b.APIC(2).Pending(); !ok || v != 0x50 {
		t.Errorf("IPI to the x2APIC: %#x %v", v, ok)
	}
	b.APIC(2).Accept(0x50)
	mustWrite(t, m, 2, msrEOI, 0)
	icrWrite(0x4000|0x51, 0xFF) // physical broadcast
	for cpu := 0; cpu < n; cpu++ {
		if v, ok := b.APIC(cpu).Pending(); !ok || v != 0x51 {
			t.Errorf("broadcast from an xAPIC to CPU %d: %#x %v", cpu, v, ok)
		}
	}
	if m.Write(2, MSRAPICBase, base) {
		t.Error("x2APIC to xAPIC accepted")
	}
	checkValid(t, b)
}

// TestXAPICDestinations sends fixed IPIs from APIC 0 and device
// interrupts to xAPICs with physical, flat and cluster destinations
// (SDM 11.6.2).
func TestXAPICDestinations(t *testing.T) {
	flat, cluster := vcpu.DFRFlat, vcpu.DFRCluster
	for _, c := range []struct {
		name string
		dfr  uint32
		ldr  [4]uint32 // bits 31:24
		icr  uint32    // ICR bits 31:0 but the vector
		dest uint32
		want []int
	}{
		{"physical", flat, [4]uint32{}, 0, 2, []int{2}},
		{"physical nobody", flat, [4]uint32{}, 0, 7, nil},
		{"physical broadcast", flat, [4]uint32{}, 0, 0xFF, []int{0, 1, 2, 3}},
		{"flat", flat, [4]uint32{1, 2, 4, 8}, 1 << 11, 0x06, []int{1, 2}},
		{"flat shared bit", flat, [4]uint32{1, 3, 2, 8}, 1 << 11, 0x02, []int{1, 2}},
		{"flat LDR 0", flat, [4]uint32{0, 2, 4, 8}, 1 << 11, 0x0F, []int{1, 2, 3}},
		{"flat broadcast", flat, [4]uint32{0, 2, 4, 8}, 1 << 11, 0xFF, []int{0, 1, 2, 3}},
		{"flat nobody", flat, [4]uint32{1, 2, 4, 8}, 1 << 11, 0x30, nil},
		{"cluster", cluster, [4]uint32{0x11, 0x12, 0x21, 0x22}, 1 << 11, 0x13, []int{0, 1}},
		{"cluster 2", cluster, [4]uint32{0x11, 0x12, 0x21, 0x22}, 1 << 11, 0x22, []int{3}},
		{"cluster other", cluster, [4]uint32{0x11, 0x12, 0x21, 0x22}, 1 << 11, 0x31, nil},
		{"cluster 0", cluster, [4]uint32{0x11, 0x12, 0x21, 0x22}, 1 << 11, 0x0F, nil},
		{"cluster broadcast", cluster, [4]uint32{0x11, 0x12, 0x21, 0x22}, 1 << 11, 0xFF, []int{0, 1, 2, 3}},
		{"self", flat, [4]uint32{}, 1 << 18, 3, []int{0}},
		{"all", flat, [4]uint32{}, 2 << 18, 3, []int{0, 1, 2, 3}},
		{"others", flat, [4]uint32{}, 3 << 18, 0, []int{1, 2, 3}},
	} {
		for _, viaDevice := range []bool{false, true} {
			if viaDevice && c.icr&icrShorthand != 0 {
				continue
			}
			var tsc uint64
			b, _, _ := newXBus(4, &tsc)
			for i := 0; i < 4; i++ {
				a := b.APIC(i)
				wr(a, 0xF0, 0x1FF)
				wr(a, 0xE0, c.dfr)
				wr(a, 0xD0, c.ldr[i]<<24)
			}
			if viaDevice {
				b.Interrupt(c.dest, c.icr&icrDestLogical != 0, deliveryFixed, 0x50, false)
			} else {
				wr(b.APIC(0), 0x310, c.dest<<24)
				wr(b.APIC(0), 0x300, c.icr|0x50)
			}
			var got []int
			for i := 0; i < 4; i++ {
				if v, ok := b.APIC(i).Pending(); ok && v == 0x50 {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s (device %v): reached %v, want %v", c.name, viaDevice, got, c.want)
			}
		}
	}
}

// TestLogicalSweep is kvm-unit-tests' test_logical_ipi_xapic, single
// target: CPU 1 alone is named, with every other bit of the destination
// pointing at nobody.
func TestLogicalSweep(t *testing.T) {
	var tsc uint64
	b, _, _ := newXBus(2, &tsc)
	a0, a1 := b.APIC(0), b.APIC(1)
	wr(a0, 0xF0, 0x1FF)
	wr(a1, 0xF0, 0x1FF)
	try := func(dfr, ldr, dest uint32) {
		wr(a0, 0xE0, vcpu.DFRFlat)
		wr(a0, 0xD0, 0)
		wr(a1, 0xE0, dfr)
		wr(a1, 0xD0, ldr<<24)
		wr(a0, 0x310, dest<<24)
		wr(a0, 0x300, 1<<11|0xF1)
		v1, ok1 := a1.Pending()
		_, ok0 := a0.Pending()
		if !ok1 || v1 != 0xF1 || ok0 {
			t.Fatalf("DFR %#x LDR %#x dest %#x: CPU 1 %v, CPU 0 %v", dfr, ldr, dest, ok1, ok0)
		}
		a1.Accept(v1)
		wr(a1, 0xB0, 0)
	}
	for i := uint32(0); i < 8; i++ {
		for k := uint32(0); k < 0xFF; k++ {
			if k&(1<<i) == 0 && 1<<i|k != 0xFF {
				try(vcpu.DFRFlat, 1<<i, 1<<i|k)
			}
		}
	}
	for c := uint32(0); c < 0xF; c++ {
		for i := uint32(0); i < 4; i++ {
			for k := uint32(0); k < 0x10; k++ {
				if k&(1<<i) == 0 {
					try(vcpu.DFRCluster, c<<4|1<<i, c<<4|1<<i|k)
				}
			}
		}
	}
}

// TestDisabledTakesNothing: a globally disabled APIC gets no interrupt,
// IPI, INIT or SIPI, and comes back in its power-up state.
func TestDisabledTakesNothing(t *testing.T) {
	var tsc uint64
	b, recs, m := newXBus(3, &tsc)
	for i := 0; i < 3; i++ {
		wr(b.APIC(i), 0xF0, 0x1FF)
	}
	a := b.APIC(2)
	a.Deliver(0x60, false)
	mustWrite(t, m, 2, MSRAPICBase, 0xFEE00000)
	recs[2].reset()
	if _, ok := a.Pending(); ok {
		t.Error("disabled APIC offers an interrupt")
	}
	src := b.APIC(0)
	for _, icr := range []uint32{0x4050, 3<<18 | 0x4051, 2<<18 | 0x500 | 0x4000, 3<<18 | 0x600, 3<<18 | 0x400} {
		wr(src, 0x310, 0xFF<<24)
		wr(src, 0x310, 2<<24)
		wr(src, 0x300, icr)
	}
	wr(src, 0x310, 0xFF<<24)
	wr(src, 0x300, 0x4052)
	b.Interrupt(2, false, deliveryFixed, 0x53, true)
	b.Interrupt(0xFF, true, deliveryFixed, 0x54, false)
	a.Deliver(0x55, false)
	if r := recs[2]; r.kicks != 0 || r.inits != 0 || r.nmis != 0 || len(r.sipis()) != 0 {
		t.Errorf("disabled APIC's vCPU got %+v", *r)
	}
	if recs[1].inits != 1 || recs[1].nmis != 1 || len(recs[1].sipis()) != 1 {
		t.Errorf("enabled APIC 1 got %+v", *recs[1])
	}
	arriving := a.State()
	arriving.SVR, arriving.IRR = 0x1FF, vcpu.Vec256{1: 1}
	a.Restore(arriving, 0)
	if v, ok := a.Pending(); ok {
		t.Errorf("disabled APIC restored with a request offers %#x", v)
	}
	mustWrite(t, m, 2, MSRAPICBase, 0xFEE00000)
	mustWrite(t, m, 2, MSRAPICBase, 0xFEE00000|en)
	wr(a, 0xF0, 0x1FF)
	if v, ok := a.Pending(); ok {
		t.Errorf("re-enabled APIC offers %#x from before", v)
	}
}

func TestINITReset(t *testing.T) {
	var tsc uint64
	b, _, m := newXBus(2, &tsc)
	a := b.APIC(1)
	mustWrite(t, m, 1, MSRAPICBase, 0xFEE00000)
	mustWrite(t, m, 1, MSRAPICBase, 0xFED00000|en)
	wr(a, 0xF0, 0x1FF)
	wr(a, 0xD0, 0x04000000)
	wr(a, 0x80, 0x40)
	a.Deliver(0x70, false)
	a.INITReset()
	want := vcpu.LAPIC{ID: 1, Base: 0xFED00000 | en, SVR: 0xFF, DFR: vcpu.DFRFlat}
	for i := range want.LVT {
		want.LVT[i] = vcpu.LVTMasked
	}
	if got := a.State(); got != want {
		t.Errorf("xAPIC after INIT\n%+v\nwant\n%+v", got, want)
	}
	mustWrite(t, m, 1, MSRAPICBase, 0xFED00000|en|extd)
	mustWrite(t, m, 1, msrTPR, 0x40)
	a.INITReset()
	want.Base, want.LDR = 0xFED00000|en|extd, 2
	if got := a.State(); got != want {
		t.Errorf("x2APIC after INIT\n%+v\nwant\n%+v", got, want)
	}
}

// TestTimerModeChange is kvm-unit-tests' test_apic_change_mode: one-shot
// and periodic share the count; TSC-deadline mode disarms it.
func TestTimerModeChange(t *testing.T) {
	tsc := uint64(1000)
	b, _, _ := newXBus(1, &tsc)
	a := b.APIC(0)
	wr(a, 0xF0, 0x1FF)
	wr(a, 0x3E0, 0xB) // divide by 1
	wr(a, 0x320, 0xEE)
	wr(a, 0x380, 1000)
	tsc = 1600
	wr(a, 0x320, 1<<17|0xEE) // periodic
	if c := rd(a, 0x390); c != 400 {
		t.Errorf("count %d after the change to periodic, want 400", c)
	}
	tsc = 2000
	if v, ok := a.Pending(); !ok || v != 0xEE {
		t.Fatal("periodic timer did not fire")
	}
	tsc = 2500
	if c := rd(a, 0x390); c != 500 {
		t.Errorf("count %d after reloading, want 500", c)
	}
	wr(a, 0x320, 2<<17|0xEE)
	if c, d := rd(a, 0x390), a.Deadline(); c != 0 || d != 0 {
		t.Errorf("TSC-deadline mode: count %d deadline %d", c, d)
	}
}

func TestXAPICSaveRestore(t *testing.T) {
	var tsc uint64
	b, _, m := newXBus(2, &tsc)
	a := b.APIC(1)
	mustWrite(t, m, 1, MSRAPICBase, 0xFEE00000)
	mustWrite(t, m, 1, MSRAPICBase, 0xFED00000|en)
	wr(a, 0xF0, 0x1FF)
	wr(a, 0xE0, vcpu.DFRCluster)
	wr(a, 0xD0, 0x28<<24) // cluster 2, member 3
	wr(a, 0x80, 0x20)
	wr(a, 0x310, 0x03000000)
	a.Deliver(3, false)
	wr(a, 0x280, 0)
	a.Deliver(0x55, false)
	s, dl := a.Save()
	var st vcpu.State
	st.Reset(1, false)
	st.LAPIC, st.TSCDeadline = s, dl
	enc, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back vcpu.State
	if err := back.UnmarshalBinary(enc); err != nil {
		t.Fatalf("an xAPIC state does not travel: %v", err)
	}
	// The other node powered its APICs on in x2APIC mode.
	tsc2 := uint64(0)
	b2, _, m2 := newBus(2, &tsc2)
	a2 := b2.APIC(1)
	a2.Restore(back.LAPIC, back.TSCDeadline)
	if a2.Mode() != ModeXAPIC {
		t.Fatalf("restored mode %v", a2.Mode())
	}
	if base, dec := a2.MMIOBase(); base != 0xFED00000 || !dec {
		t.Errorf("restored page %#x decoded %v", base, dec)
	}
	for off, want := range map[uint64]uint32{0x20: 1 << 24, 0xD0: 0x28 << 24, 0xE0: vcpu.DFRCluster,
		0x80: 0x20, 0x310: 0x03000000, 0x280: 1 << 6, 0xF0: 0x1FF} {
		if got := rd(a2, off); got != want {
			t.Errorf("restored %#x = %#x, want %#x", off, got, want)
		}
	}
	if _, ok := m2.Read(1, msrID); ok {
		t.Error("restored xAPIC answers x2APIC MSRs")
	}
	a2.Accept(0x55)
	wr(a2, 0xB0, 0)
	b2.Interrupt(0x28, true, deliveryFixed, 0x66, false) // its cluster LDR
	if v, ok := a2.Pending(); !ok || v != 0x66 {
		t.Errorf("the restored LDR does not route: %#x %v", v, ok)
	}
	checkValid(t, b2)
}

func TestXAPICRemote(t *testing.T) {
	var tsc uint64
	b, recs, _ := newXBus(3, &tsc)
	for i := 0; i < 3; i++ {
		wr(b.APIC(i), 0xF0, 0x1FF)
		wr(b.APIC(i), 0xD0, 1<<(24+i))
	}
	away := &awayRecorder{away: map[int]bool{2: true}}
	b.SetRemote(away)
	src := b.APIC(0)
	for _, w := range []struct{ dest, icr uint32 }{
		{2, 0x50},                   // physical, fixed
		{4, 1<<11 | 0x51},           // logical flat, bit 2: vCPU 2
		{0, 3<<18 | 0x4500},         // INIT, all but self
		{0, 3<<18 | 0x600 | 0x9A},   // SIPI, all but self
		{0xFF, 0x52},                // physical broadcast
		{1, 0x53},                   // to vCPU 1, here
		{6, 1<<11 | 0x4000 | 0x400}, // NMI, logical: 1 and 2
	} {
		wr(src, 0x310, w.dest<<24)
		wr(src, 0x300, w.icr)
	}
	want := []string{"2:0:0x50", "2:0:0x51", "2:5:0x0", "2:6:0x9a", "2:0:0x52", "2:4:0x0"}
	if fmt.Sprint(away.sent) != fmt.Sprint(want) {
		t.Errorf("sent away %v, want %v", away.sent, want)
	}
	if r := recs[1]; r.inits != 1 || r.nmis != 1 || len(r.sipis()) != 1 {
		t.Errorf("vCPU 1 here got %+v", *r)
	}
	if r := recs[2]; r.inits != 0 || r.kicks != 0 {
		t.Errorf("the away vCPU's APIC here got %+v", *r)
	}
}

// FuzzMMIO drives random page and MSR accesses, mode changes and
// interrupts through two APICs and checks that nothing panics, that the
// state always validates, and that each interface answers only in its
// mode.
func FuzzMMIO(f *testing.F) {
	f.Add([]byte{1, // power on in xAPIC mode
		2, 0, 0, 0, 0, 0, 0, 0, // disable APIC 0
		2, 0, 0, 0, 1, 0, 0, 0, // enable it
		0, 0, 0x0F, 0, 0xFF, 1, 0, 0, // SVR
		0, 0, 0x30, 0x80, 0x00, 0x45, 0x0C, 0, // INIT, others
		0, 0, 0x30, 0x80, 0x00, 0x06, 0x0C, 0, // SIPI, others
		2, 1, 0, 0, 3, 0, 0, 0, // APIC 1 to x2APIC
	})
	f.Add([]byte{0, 3, 1, 0x32, 0, 0xEC, 0, 0x04, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		var tsc uint64
		b, _, m := newBus(2, &tsc)
		b.PowerOn(Mode(ops[0] % 3))
		for ops = ops[1:]; len(ops) >= 8; ops = ops[8:] {
			fuzzOp(b, m, ops[:8])
			tsc += uint64(ops[7])
			checkFuzzInvariants(t, b, m)
		}
	})
}

func fuzzOp(b *Bus, m *exits.MSRTable, op []byte) {
	cpu := int(op[1] & 1)
	a := b.APIC(cpu)
	off := uint64(op[2])<<4 | uint64(op[3]&0xF)<<12 | uint64(op[1]>>4)
	if op[3]&0x10 == 0 {
		off &^= 0xF
	}
	size := [8]int{4, 4, 4, 4, 1, 2, 8, 3}[op[3]>>5]
	v := uint64(op[4]) | uint64(op[5])<<8 | uint64(op[6])<<16 | uint64(op[7])<<24
	switch op[0] % 7 {
	case 0:
		a.WriteMMIO(off&0x1FFF, size, v)
	case 1:
		a.ReadMMIO(off&0x1FFF, size)
	case 2:
		base, _ := m.Read(cpu, MSRAPICBase)
		nb := base&^(en|extd) | uint64(op[4]&1)<<11 | uint64(op[4]&2)<<9
		if op[4]&4 != 0 {
			nb ^= 0xFEE00000 ^ 0xFED40000
		}
		nb |= uint64(op[4]>>3&1) << (op[5] % 64)
		m.Write(cpu, MSRAPICBase, nb)
	case 3:
		m.Write(cpu, 0x800+uint32(op[2]), v|uint64(op[6]>>7)<<32)
	case 4:
		m.Read(cpu, 0x800+uint32(op[2]))
	case 5:
		b.Interrupt(uint32(op[2]), op[3]&1 != 0, op[3]>>1&7, op[4], op[3]&0x10 != 0)
	default:
		if vec, ok := a.Pending(); ok {
			a.Accept(vec)
		} else if op[2] == 0 {
			a.INITReset()
		}
	}
}

func checkFuzzInvariants(t *testing.T, b *Bus, m *exits.MSRTable) {
	checkValid(t, b)
	for i := 0; i < b.Len(); i++ {
		a := b.APIC(i)
		mode := a.Mode()
		_, dec := a.MMIOBase()
		_, msrOK := m.Read(i, msrVersion)
		if dec != (mode == ModeXAPIC) || msrOK != (mode == ModeX2APIC) {
			t.Fatalf("APIC %d in %v: page decoded %v, x2APIC MSRs %v", i, mode, dec, msrOK)
		}
		if mode != ModeXAPIC && a.ReadMMIO(0x30, 4) != 0xFFFFFFFF {
			t.Fatalf("APIC %d in %v answers on its page", i, mode)
		}
		if v, ok := a.Pending(); ok && (v < 16 || mode == ModeDisabled) {
			t.Fatalf("APIC %d in %v offers vector %d", i, mode, v)
		}
		if s := a.State(); s.ID != uint32(i) {
			t.Fatalf("APIC %d has ID %d", i, s.ID)
		}
	}
}
