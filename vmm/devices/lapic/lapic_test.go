// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import (
	"fmt"
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

type recorder struct {
	kicks, inits, nmis int
	sipi               []uint8
}

func (r *recorder) Kick()           { r.kicks++ }
func (r *recorder) INIT()           { r.inits++ }
func (r *recorder) Startup(v uint8) { r.sipi = append(r.sipi, v) }
func (r *recorder) NMI()            { r.nmis++ }
func (r *recorder) reset()          { *r = recorder{} }
func (r *recorder) sipis() []uint8  { return r.sipi }
func newBus(n int, tsc *uint64) (*Bus, []*recorder, *exits.MSRTable) {
	recs := make([]*recorder, n)
	for i := range recs {
		recs[i] = &recorder{}
	}
	b := NewBus(n, func() uint64 { return *tsc }, func(i int) Events { return recs[i] })
	m := exits.NewMSRTable()
	if err := b.Register(m); err != nil {
		panic(err)
	}
	return b, recs, m
}

func mustWrite(t *testing.T, m *exits.MSRTable, cpu int, msr uint32, v uint64) {
	t.Helper()
	if !m.Write(cpu, msr, v) {
		t.Fatalf("vCPU %d: write %#x to MSR %#x refused", cpu, v, msr)
	}
}

func TestResetState(t *testing.T) {
	var tsc uint64
	_, _, m := newBus(2, &tsc)
	for _, c := range []struct {
		cpu  int
		msr  uint32
		want uint64
	}{
		{0, MSRAPICBase, 0xFEE00000 | 1<<8 | 1<<10 | 1<<11},
		{1, MSRAPICBase, 0xFEE00000 | 1<<10 | 1<<11},
		{1, msrID, 1}, {1, msrLDR, 2}, {0, msrSVR, 0xFF},
		{0, msrLVTTimer, 1 << 16}, {0, msrVersion, 0x60014},
	} {
		if got, ok := m.Read(c.cpu, c.msr); !ok || got != c.want {
			t.Errorf("vCPU %d MSR %#x = %#x, %v; want %#x", c.cpu, c.msr, got, ok, c.want)
		}
	}
	for _, msr := range []uint32{msrEOI, msrSelfIPI, 0x801, 0x8FF} {
		if _, ok := m.Read(0, msr); ok {
			t.Errorf("read of MSR %#x should raise #GP", msr)
		}
	}
}

func TestPriorityAndEOI(t *testing.T) {
	var tsc uint64
	b, recs, m := newBus(1, &tsc)
	a := b.APIC(0)
	if _, ok := a.Pending(); ok {
		t.Fatal("pending at reset")
	}
	a.Deliver(0x40, false)
	if _, ok := a.Pending(); ok {
		t.Fatal("a software-disabled APIC offered an interrupt")
	}
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	if v, ok := a.Pending(); !ok || v != 0x40 || recs[0].kicks != 1 {
		t.Fatalf("Pending = %#x, %v; kicks %d", v, ok, recs[0].kicks)
	}
	a.Accept(0x40)
	a.Deliver(0x45, false) // same priority class as the one in service
	if _, ok := a.Pending(); ok {
		t.Fatal("vector 0x45 delivered while 0x40 is in service")
	}
	a.Deliver(0x61, false)
	if v, _ := a.Pending(); v != 0x61 {
		t.Fatalf("higher class 0x61 not offered: %#x", v)
	}
	mustWrite(t, m, 0, msrTPR, 0x70)
	if _, ok := a.Pending(); ok {
		t.Fatal("TPR 0x70 did not hold back 0x61")
	}
	if ppr, _ := m.Read(0, msrPPR); ppr != 0x70 {
		t.Errorf("PPR %#x, want 0x70", ppr)
	}
	mustWrite(t, m, 0, msrTPR, 0)
	mustWrite(t, m, 0, msrEOI, 0) // ends 0x40
	if v, _ := a.Pending(); v != 0x61 {
		t.Fatalf("after EOI: %#x", v)
	}
	a.Accept(0x61)
	mustWrite(t, m, 0, msrEOI, 0)
	if v, _ := a.Pending(); v != 0x45 {
		t.Fatalf("0x45 lost: %#x", v)
	}
	if m.Write(0, msrEOI, 1) {
		t.Error("EOI with a non-zero value accepted")
	}
	a.Deliver(3, false)
	if esr, _ := m.Read(0, msrESR); esr&(1<<6) == 0 {
		t.Error("illegal vector 3 did not set ESR bit 6")
	}
}

// CR8 and the TPR are one register: CR8 is TPR bits 7:4, and a CR8
// write clears bits 3:0.
func TestCR8IsTheTPR(t *testing.T) {
	var tsc uint64
	b, _, m := newBus(1, &tsc)
	a := b.APIC(0)
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	mustWrite(t, m, 0, msrTPR, 0x5A)
	if got := a.CR8(); got != 5 {
		t.Errorf("CR8 %d after TPR 0x5A, want 5", got)
	}
	a.SetCR8(0xC)
	if v, _ := m.Read(0, msrTPR); v != 0xC0 {
		t.Errorf("TPR %#x after CR8 12, want 0xC0", v)
	}
	a.Deliver(0xB1, false) // below the new priority class
	if v, ok := a.Pending(); ok {
		t.Errorf("vector %#x pending under CR8 12", v)
	}
	a.SetCR8(0)
	if v, ok := a.Pending(); !ok || v != 0xB1 {
		t.Errorf("after CR8 0: pending %#x, %v; want 0xB1", v, ok)
	}
}

// A vCPU's TSC takes any value and counts on from it; its TSC deadlines
// are in its own TSC's terms, and stay at the same TSC value when it is
// written again. Other vCPUs' TSCs do not move.
func TestTSCWrite(t *testing.T) {
	var tsc uint64 = 1000
	b, _, m := newBus(2, &tsc)
	a := b.APIC(0)
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	mustWrite(t, m, 0, MSRTSC, 100_000_000_000)
	tsc = 1500
	if v, _ := m.Read(0, MSRTSC); v != 100_000_000_500 {
		t.Errorf("TSC %d, 500 cycles after writing 100000000000", v)
	}
	if v, _ := m.Read(1, MSRTSC); v != 1500 {
		t.Errorf("vCPU 1's TSC %d, want the clock's 1500", v)
	}
	if got := a.TSCAdjust(); got != 100_000_000_000-1000 {
		t.Errorf("TSCAdjust %d", got)
	}
	mustWrite(t, m, 0, msrLVTTimer, 2<<17|0xEC)
	mustWrite(t, m, 0, MSRTSCDeadline, 100_000_001_500) // 1000 cycles on
	if v, _ := m.Read(0, MSRTSCDeadline); v != 100_000_001_500 {
		t.Errorf("IA32_TSC_DEADLINE reads %d", v)
	}
	if a.Deadline() != 2500 {
		t.Errorf("deadline at clock %d, want 2500", a.Deadline())
	}
	mustWrite(t, m, 0, MSRTSC, 0) // back to 0: the deadline is far ahead
	tsc = 2500
	if _, ok := a.Pending(); ok {
		t.Error("the deadline fired at its old time after the TSC went back")
	}
	if a.Deadline() != 1500+100_000_001_500 {
		t.Errorf("deadline at clock %d after the TSC went back", a.Deadline())
	}
}

func TestTimerModes(t *testing.T) {
	var tsc uint64 = 1000
	b, _, m := newBus(1, &tsc)
	a := b.APIC(0)
	mustWrite(t, m, 0, msrSVR, 0x1FF)

	// TSC deadline.
	mustWrite(t, m, 0, msrLVTTimer, 2<<17|0xEC)
	mustWrite(t, m, 0, MSRTSCDeadline, 5000)
	if a.Deadline() != 5000 {
		t.Fatalf("deadline %d", a.Deadline())
	}
	tsc = 4999
	if _, ok := a.Pending(); ok {
		t.Fatal("fired early")
	}
	tsc = 5000
	if v, ok := a.Pending(); !ok || v != 0xEC {
		t.Fatal("did not fire at the deadline")
	}
	a.Accept(0xEC)
	mustWrite(t, m, 0, msrEOI, 0)
	if a.Deadline() != 0 {
		t.Error("deadline still armed after firing")
	}
	mustWrite(t, m, 0, MSRTSCDeadline, 100) // in the past: fires at once
	if v, ok := a.Pending(); !ok || v != 0xEC {
		t.Error("a past deadline did not fire")
	}
	a.Accept(0xEC)
	mustWrite(t, m, 0, msrEOI, 0)
	mustWrite(t, m, 0, MSRTSCDeadline, 9000)
	mustWrite(t, m, 0, MSRTSCDeadline, 0) // disarm
	tsc = 10000
	if _, ok := a.Pending(); ok {
		t.Error("a disarmed deadline fired")
	}

	// One-shot, divide by 16 (divide config 3): 100 counts = 1600 ticks.
	mustWrite(t, m, 0, msrLVTTimer, 0xEC)
	mustWrite(t, m, 0, msrDivide, 3)
	mustWrite(t, m, 0, msrInitCount, 100)
	tsc = 10800
	if c, _ := m.Read(0, msrCurCount); c != 50 {
		t.Errorf("current count %d halfway, want 50", c)
	}
	tsc = 11600
	if v, ok := a.Pending(); !ok || v != 0xEC {
		t.Fatal("one-shot did not fire")
	}
	a.Accept(0xEC)
	mustWrite(t, m, 0, msrEOI, 0)
	tsc = 20000
	if _, ok := a.Pending(); ok {
		t.Fatal("one-shot fired twice")
	}

	// Periodic: fires every period.
	mustWrite(t, m, 0, msrLVTTimer, 1<<17|0xEC)
	mustWrite(t, m, 0, msrInitCount, 10) // 160 ticks
	for i := 1; i <= 3; i++ {
		tsc = 20000 + uint64(i)*160
		if v, ok := a.Pending(); !ok || v != 0xEC {
			t.Fatalf("period %d: no interrupt", i)
		}
		a.Accept(0xEC)
		mustWrite(t, m, 0, msrEOI, 0)
	}
	// masked timer: no interrupt
	mustWrite(t, m, 0, msrLVTTimer, 1<<17|1<<16|0xEC)
	tsc += 1000
	if _, ok := a.Pending(); ok {
		t.Error("masked timer delivered")
	}
}

func TestIPIs(t *testing.T) {
	var tsc uint64
	b, recs, m := newBus(4, &tsc)
	for i := 0; i < 4; i++ {
		mustWrite(t, m, i, msrSVR, 0x1FF)
	}
	// fixed, physical destination 2
	mustWrite(t, m, 0, msrICR, 2<<32|0x50)
	if v, ok := b.APIC(2).Pending(); !ok || v != 0x50 {
		t.Fatal("fixed IPI to 2 not pending there")
	}
	if _, ok := b.APIC(1).Pending(); ok {
		t.Fatal("fixed IPI to 2 reached 1")
	}
	// all but self
	mustWrite(t, m, 1, msrICR, shorthandOthers|0x51)
	for i := 0; i < 4; i++ {
		_, ok := b.APIC(i).Pending()
		if want := i != 1; ok != want && !(i == 2) {
			t.Errorf("all-but-self: vCPU %d pending %v", i, ok)
		}
	}
	// logical cluster 0, vCPUs 1 and 3 (bits 1 and 3)
	mustWrite(t, m, 0, msrICR, uint64(0b1010)<<32|icrDestLogical|0x60)
	if v, _ := b.APIC(3).Pending(); v != 0x60 {
		t.Errorf("logical IPI did not reach vCPU 3: %#x", v)
	}
	// INIT and SIPI
	mustWrite(t, m, 0, msrICR, 3<<32|deliveryINIT<<icrDeliveryShift|icrLevelAssert)
	mustWrite(t, m, 0, msrICR, 3<<32|deliveryStartup<<icrDeliveryShift|0x9A)
	if recs[3].inits != 1 || len(recs[3].sipis()) != 1 || recs[3].sipis()[0] != 0x9A {
		t.Errorf("INIT/SIPI to 3: %d INITs, SIPIs %v", recs[3].inits, recs[3].sipis())
	}
	// self IPI MSR
	mustWrite(t, m, 2, msrSelfIPI, 0x70)
	if v, _ := b.APIC(2).Pending(); v != 0x70 {
		t.Errorf("self IPI: %#x", v)
	}
	if m.Write(0, msrICR, 1<<16) {
		t.Error("ICR with reserved bit 16 accepted")
	}
}

func TestRefusedWrites(t *testing.T) {
	var tsc uint64
	_, _, m := newBus(1, &tsc)
	for _, c := range []struct {
		msr uint32
		v   uint64
	}{
		{MSRAPICBase, 0xFEE00000 | 1<<8 | 1<<11},  // leaving x2APIC mode
		{MSRAPICBase, 0xFEE00000 | 1<<10 | 1<<11}, // dropping BSP
		{msrID, 5}, {msrVersion, 0}, {msrPPR, 0}, {msrLDR, 0}, {msrTPR, 0x100},
		{msrSVR, 1 << 13}, {msrESR, 1}, {msrDivide, 4}, {msrLVTTimer, 3 << 17 >> 1 << 1 << 19},
		{msrLVTLINT0, 1 << 14}, {msrCurCount, 1}, {msrSelfIPI, 0x100}, {0x8FF, 0},
	} {
		if m.Write(0, c.msr, c.v) {
			t.Errorf("write %#x to MSR %#x accepted", c.v, c.msr)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	var tsc uint64
	b, _, m := newBus(2, &tsc)
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	a := b.APIC(0)
	if n := testing.AllocsPerRun(100, func() {
		mustWrite(t, m, 1, msrICR, 0x41)
		mustWrite(t, m, 0, msrSelfIPI, 0x42)
		if v, ok := a.Pending(); ok {
			a.Accept(v)
			m.Write(0, msrEOI, 0)
		}
		m.Read(0, msrLVTTimer)
		tsc++
	}); n != 0 {
		t.Errorf("%v allocations per round", n)
	}
	// The same in xAPIC mode, through the page.
	b, _, m = newXBus(2, &tsc)
	a = b.APIC(0)
	wr(a, 0xF0, 0x1FF)
	wr(b.APIC(1), 0xF0, 0x1FF)
	if n := testing.AllocsPerRun(100, func() {
		wr(a, 0x310, 1<<24)
		wr(a, 0x300, 0x41)       // to APIC 1
		wr(a, 0x300, 1<<18|0x42) // self
		if v, ok := a.Pending(); ok {
			a.Accept(v)
			wr(a, 0xB0, 0)
		}
		b.Interrupt(0xFF, true, deliveryFixed, 0x43, false)
		rd(a, 0x300)
		rd(a, 0x390)
		rd(a, 0x10) // reserved
		wr(a, 0x280, 0)
		a.ReadMMIO(0x81, 1)
		a.MMIOBase()
		m.Read(0, MSRAPICBase)
		if v, ok := b.APIC(1).Pending(); ok {
			b.APIC(1).Accept(v)
			wr(b.APIC(1), 0xB0, 0)
		}
		tsc++
	}); n != 0 {
		t.Errorf("xAPIC: %v allocations per round", n)
	}
}

func FuzzMSR(f *testing.F) {
	f.Add([]byte{0x30, 8, 0x41, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var tsc uint64
		b, _, m := newBus(2, &tsc)
		for len(ops) >= 10 {
			msr := 0x800 + uint32(ops[0])
			if ops[1]&1 != 0 {
				msr = []uint32{MSRAPICBase, MSRTSCDeadline}[ops[1]>>1&1]
			}
			v := uint64(ops[2]) | uint64(ops[3])<<8 | uint64(ops[4])<<16 | uint64(ops[5])<<24 | uint64(ops[6])<<32 | uint64(ops[9])<<56
			cpu := int(ops[7] & 1)
			if ops[8]&1 == 0 {
				m.Write(cpu, msr, v)
			} else {
				m.Read(cpu, msr)
			}
			tsc += uint64(ops[8])
			if vec, ok := b.APIC(cpu).Pending(); ok {
				if vec < 16 {
					t.Fatalf("illegal vector %d offered", vec)
				}
				b.APIC(cpu).Accept(vec)
			}
			checkValid(t, b)
			ops = ops[10:]
		}
	})
}

// TestEOIReentry: the EOI handler may deliver to the same APIC (an IOAPIC
// whose level-triggered pin is still asserted) without deadlocking.
func TestEOIReentry(t *testing.T) {
	var tsc uint64
	b, _, m := newBus(1, &tsc)
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	again := 0
	b.SetEOIHandler(func(v uint8) {
		if again == 0 {
			again++
			b.Interrupt(0, false, deliveryFixed, v, true)
		}
	})
	b.Interrupt(0, false, deliveryFixed, 0x41, true)
	a := b.APIC(0)
	for i := 0; i < 2; i++ {
		vec, ok := a.Pending()
		if !ok || vec != 0x41 {
			t.Fatalf("round %d: pending %#x %v", i, vec, ok)
		}
		a.Accept(vec)
		mustWrite(t, m, 0, msrEOI, 0)
	}
	if again != 1 {
		t.Errorf("EOI handler ran %d times", again)
	}
	if _, ok := a.Pending(); ok {
		t.Error("still pending")
	}
}

// awayRecorder stands for the other nodes of a distributed VM.
type awayRecorder struct {
	away map[int]bool
	sent []string
}

func (a *awayRecorder) Elsewhere(i int) bool { return a.away[i] }
func (a *awayRecorder) Send(i int, mode, vector uint8) {
	a.sent = append(a.sent, fmt.Sprintf("%d:%d:%#x", i, mode, vector))
}

func TestRemoteDestinations(t *testing.T) {
	var tsc uint64
	b, recs, m := newBus(3, &tsc)
	for i := 0; i < 3; i++ {
		mustWrite(t, m, i, msrSVR, 0x1FF)
	}
	away := &awayRecorder{away: map[int]bool{2: true}}
	b.SetRemote(away)
	mustWrite(t, m, 0, msrICR, 2<<32|0x50)                                   // fixed to the away vCPU
	mustWrite(t, m, 0, msrICR, shorthandOthers|0x51)                         // to 1 here and 2 away
	mustWrite(t, m, 0, msrICR, 2<<32|deliveryStartup<<icrDeliveryShift|0x9A) // SIPI away
	b.Interrupt(2, false, deliveryFixed, 0x30, true)                         // a device's, to the away vCPU
	want := []string{"2:0:0x50", "2:0:0x51", "2:6:0x9a", "2:0:0x30"}
	if fmt.Sprint(away.sent) != fmt.Sprint(want) {
		t.Errorf("sent away %v, want %v", away.sent, want)
	}
	if _, ok := b.APIC(2).Pending(); ok || len(recs[2].sipis()) != 0 {
		t.Error("the away vCPU's APIC here took an interrupt")
	}
	if v, ok := b.APIC(1).Pending(); !ok || v != 0x51 {
		t.Errorf("vCPU 1, here, did not get the all-but-self IPI: %#x %v", v, ok)
	}
	away.away[2] = false // it came back
	mustWrite(t, m, 0, msrICR, 2<<32|0x52)
	if v, ok := b.APIC(2).Pending(); !ok || v != 0x52 || len(away.sent) != 4 {
		t.Errorf("vCPU 2, back here, pending %#x %v; sent away %v", v, ok, away.sent)
	}
}

func TestSaveRestore(t *testing.T) {
	tsc := uint64(1000)
	b, _, m := newBus(2, &tsc)
	mustWrite(t, m, 0, msrSVR, 0x1FF)
	mustWrite(t, m, 0, msrTPR, 0x20)
	mustWrite(t, m, 0, msrLVTTimer, 0x40|timerTSCDeadline)
	mustWrite(t, m, 0, MSRTSCDeadline, 5000)
	b.APIC(0).Deliver(0x55, false)
	s, dl := b.APIC(0).Save()
	if dl != 5000 || s.TPR != 0x20 {
		t.Fatalf("saved deadline %d TPR %#x", dl, s.TPR)
	}
	// The other node's APIC takes it over: same registers, same pending
	// interrupt, the timer fires at the same TSC.
	tsc2 := uint64(2000)
	b2, _, m2 := newBus(2, &tsc2)
	b2.APIC(0).Restore(s, dl)
	if v, ok := b2.APIC(0).Pending(); !ok || v != 0x55 {
		t.Errorf("restored APIC pending %#x %v, want 0x55", v, ok)
	}
	b2.APIC(0).Accept(0x55)
	mustWrite(t, m2, 0, msrEOI, 0)
	tsc2 = 5000
	if v, ok := b2.APIC(0).Pending(); !ok || v != 0x40 {
		t.Errorf("restored timer at its deadline: pending %#x %v, want 0x40", v, ok)
	}
	// One-shot: the count goes on from where it was.
	tsc = 10000
	mustWrite(t, m, 1, msrSVR, 0x1FF)
	mustWrite(t, m, 1, msrDivide, 0xB) // divide by 1
	mustWrite(t, m, 1, msrLVTTimer, 0x41)
	mustWrite(t, m, 1, msrInitCount, 1000)
	tsc = 10400
	s, _ = b.APIC(1).Save()
	if s.TimerCurrent != 600 {
		t.Fatalf("saved current count %d, want 600", s.TimerCurrent)
	}
	tsc2 = 70000
	b2.APIC(1).Restore(s, 0)
	tsc2 = 70599
	if _, ok := b2.APIC(1).Pending(); ok {
		t.Error("restored one-shot timer fired early")
	}
	tsc2 = 70600
	if v, ok := b2.APIC(1).Pending(); !ok || v != 0x41 {
		t.Errorf("restored one-shot timer: pending %#x %v, want 0x41 at its time", v, ok)
	}
}

// The state Save returns, after a guest programmed the APIC as Linux
// does, is one a vCPU can travel with: it passes vcpu.State's checks.
func TestSavedStateTravels(t *testing.T) {
	tsc := uint64(1000)
	b, _, m := newBus(2, &tsc)
	for _, w := range []struct {
		msr uint32
		v   uint64
	}{
		{msrSVR, 0x1FF},
		{msrTPR, 0},
		{msrLVTLINT0, 0x10700}, // ExtINT, masked (an application processor)
		{msrLVTLINT1, 0x400},   // NMI
		{msrLVTError, 0xFE},
		{msrLVTTimer, 0xEC | timerTSCDeadline},
		{MSRTSCDeadline, 123456},
		{msrESR, 0},
		{msrICR, 0<<32 | 0xFB},               // an IPI to vCPU 0
		{msrICR, 0x10000<<32 | 0xFD | 1<<11}, // logical cluster 1 (nobody)
	} {
		mustWrite(t, m, 1, w.msr, w.v)
	}
	b.APIC(1).Deliver(0x31, true)
	s, dl := b.APIC(1).Save()
	var st vcpu.State
	st.Reset(1, false)
	st.LAPIC, st.TSCDeadline = s, dl
	enc, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back vcpu.State
	if err := back.UnmarshalBinary(enc); err != nil {
		t.Fatalf("a saved APIC state does not travel: %v", err)
	}
	if back.LAPIC != s || back.TSCDeadline != 123456 {
		t.Error("the APIC state changed on the way")
	}
}
