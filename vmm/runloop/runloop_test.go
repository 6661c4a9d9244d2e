// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package runloop

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// step is one scripted exit of the fake CPU: what the guest "did" (it
// may change the fake's state: RFLAGS.IF, a cut-short event) and the
// exit the processor reports.
type step struct {
	exit exits.Exit
	// interrupted is an event the exit cut short (IDT-vectoring).
	interrupted *Event
	// ifOn, ifOff set or clear RFLAGS.IF as the guest ran; sti leaves
	// it in an STI shadow.
	ifOn, ifOff, sti bool
	// iret: the guest returned from its NMI handler (NMIs unblocked).
	iret bool
}

// entry records what the fake saw at one VM entry.
type entry struct {
	rip       uint64
	rax       uint64
	inject    *Event
	window    bool
	nmiWindow bool
}

// fakeCPU is the virtualization hardware for the tests: a script of
// exits, and the state the loop is supposed to keep right.
type fakeCPU struct {
	script  []step
	entries []entry

	loaded, everLoaded bool
	loads, puts        int
	now                uint64
	tick               uint64 // cycles each Now call adds
	core               int

	regs        vmx.GuestRegs
	rip         uint64
	ifFlag      bool
	shadow      bool
	window      bool
	nmiWindow   bool
	nmiBlocked  bool
	injecting   *Event
	interrupted *Event
	tscOffset   uint64
	// tf is the guest's RFLAGS.TF; stepTraps counts StepTrap calls
	// that owed it a #DB.
	tf        bool
	stepTraps int
	// stale is set by Enter while the CPU still holds a state the
	// loop has already saved and sent away.
	departed bool
}

func (f *fakeCPU) Load() error {
	if !f.loaded {
		f.loaded, f.everLoaded = true, true
		f.loads++
	}
	return nil
}

func (f *fakeCPU) Put() {
	if f.loaded {
		f.loaded = false
		f.puts++
	}
}

func (f *fakeCPU) Loaded() bool { return f.loaded }
func (f *fakeCPU) Core() int    { return f.core }
func (f *fakeCPU) Now() uint64 {
	f.now += f.tick
	return f.now
}

func (f *fakeCPU) mustBeLoaded(what string) {
	if !f.loaded {
		panic(what + " with the vCPU off its core")
	}
}

func (f *fakeCPU) Enter(e *exits.Exit) error {
	f.mustBeLoaded("Enter")
	if f.departed {
		panic("Enter after the vCPU departed")
	}
	f.entries = append(f.entries, entry{rip: f.rip, rax: f.regs.RAX, inject: f.injecting, window: f.window, nmiWindow: f.nmiWindow})
	if f.injecting != nil && f.injecting.Type == NMI {
		f.nmiBlocked = true // delivered: blocked until IRET
	}
	f.injecting, f.interrupted = nil, nil
	if len(f.script) == 0 {
		// the end of the script: the guest shuts down
		*e = exits.Exit{Reason: uint64(vmx.ExitTripleFault)}
		return nil
	}
	s := f.script[0]
	f.script = f.script[1:]
	f.interrupted = s.interrupted
	if s.ifOn {
		f.ifFlag = true
	}
	if s.ifOff {
		f.ifFlag = false
	}
	f.shadow = s.sti
	if s.iret {
		f.nmiBlocked = false
	}
	*e = s.exit
	return nil
}

func (f *fakeCPU) Regs() *vmx.GuestRegs { return &f.regs }
func (f *fakeCPU) RIP() uint64          { f.mustBeLoaded("RIP"); return f.rip }
func (f *fakeCPU) Advance(n uint32)     { f.mustBeLoaded("Advance"); f.rip += uint64(n) }
func (f *fakeCPU) Inject(ev Event) {
	f.mustBeLoaded("Inject")
	if f.injecting != nil {
		panic(fmt.Sprintf("Inject %+v over %+v: an event is lost", ev, *f.injecting))
	}
	f.injecting = &ev
}
func (f *fakeCPU) Injecting() bool { return f.injecting != nil }
func (f *fakeCPU) Interrupted() (Event, bool) {
	if f.interrupted == nil {
		return Event{}, false
	}
	return *f.interrupted, true
}
func (f *fakeCPU) Interruptible() bool {
	f.mustBeLoaded("Interruptible")
	return f.ifFlag && !f.shadow
}
func (f *fakeCPU) InterruptsEnabled() bool { f.mustBeLoaded("InterruptsEnabled"); return f.ifFlag }
func (f *fakeCPU) EndShadow()              { f.mustBeLoaded("EndShadow"); f.shadow = false }
func (f *fakeCPU) StepTrap() {
	f.mustBeLoaded("StepTrap")
	if f.tf {
		f.stepTraps++
	}
}
func (f *fakeCPU) SetInterruptWindow(on bool) {
	f.mustBeLoaded("SetInterruptWindow")
	f.window = on
}
func (f *fakeCPU) NMIBlocked() (bool, bool) {
	f.mustBeLoaded("NMIBlocked")
	return f.nmiBlocked || f.shadow, f.nmiBlocked
}
func (f *fakeCPU) SetNMIWindow(on bool) {
	f.mustBeLoaded("SetNMIWindow")
	f.nmiWindow = on
}
func (f *fakeCPU) SetTSCOffset(off uint64) { f.mustBeLoaded("SetTSCOffset"); f.tscOffset = off }
func (f *fakeCPU) Diagnose() []string      { return []string{"fake: CR0.PG without PE"} }

func (f *fakeCPU) Save(st *vcpu.State) error {
	f.mustBeLoaded("Save")
	st.Reset(0, true)
	st.RIP = f.rip
	st.GPR[vmx.RAX] = f.regs.RAX
	if f.ifFlag {
		st.RFLAGS = 1 << 9
	}
	f.departed = true
	return nil
}

// restore makes a CPU on another node from a saved state.
func restore(st *vcpu.State) *fakeCPU {
	f := &fakeCPU{rip: st.RIP, ifFlag: st.RFLAGS&(1<<9) != 0, tick: 1}
	f.regs.RAX = st.GPR[vmx.RAX]
	return f
}

// fakeGuest records which strategy each exit reached.
type fakeGuest struct {
	calls   []string
	pending []uint8
	moveTo  int // -1: none
	// retryNext makes the next Resumed ask for the instruction to run
	// again, elsewhere (moveTo).
	retryNext bool
	departed  *vcpu.State
	to        int
	halts     int
	stopAfter int // Service returns Stop at this call (0: never)
	services  int
	other     error
}

func newGuest() *fakeGuest { return &fakeGuest{moveTo: -1} }

func (g *fakeGuest) Service(c CPU) (Step, error) {
	g.services++
	if g.stopAfter != 0 && g.services >= g.stopAfter {
		return Stop, nil
	}
	return Continue, nil
}

func (g *fakeGuest) Move() (int, bool) { return g.moveTo, g.moveTo >= 0 }

func (g *fakeGuest) Depart(node int, st *vcpu.State) (bool, error) {
	g.calls = append(g.calls, "depart")
	cp := *st
	g.departed, g.to, g.moveTo = &cp, node, -1
	return true, nil
}

func (g *fakeGuest) InterruptPending() bool { return len(g.pending) > 0 }
func (g *fakeGuest) TakeInterrupt() (uint8, bool) {
	if len(g.pending) == 0 {
		return 0, false
	}
	v := g.pending[0]
	g.pending = g.pending[1:]
	return v, true
}
func (g *fakeGuest) TSCOffset() uint64 { return 77 }

func (g *fakeGuest) Resumed(c CPU, mayMove bool) (Step, error) {
	g.calls = append(g.calls, "resumed")
	if g.retryNext && mayMove {
		g.retryNext = false
		return Retry, nil
	}
	return Continue, nil
}

func (g *fakeGuest) Fault(c CPU, e *exits.Exit, mayMove bool) (Step, error) {
	g.calls = append(g.calls, fmt.Sprintf("fault %#x", e.GuestPhysical))
	return Continue, nil
}

func (g *fakeGuest) Halt(c CPU, interruptible bool) (Step, error) {
	g.halts++
	g.calls = append(g.calls, fmt.Sprintf("halt if=%v", interruptible))
	return Continue, nil
}

func (g *fakeGuest) Other(c CPU, e *exits.Exit, a *exits.Action) (Step, error) {
	g.calls = append(g.calls, fmt.Sprintf("other %v", a.Reason))
	if g.other != nil {
		return Stop, g.other
	}
	return Continue, nil
}

func (g *fakeGuest) Yield() { g.calls = append(g.calls, "yield") }

// testPort answers IN with 0x5A and counts OUTs.
type testPort struct{ outs int }

func (p *testPort) In(port uint16, size uint8) uint32         { return 0x5A }
func (p *testPort) Out(port uint16, size uint8, value uint32) { p.outs++ }

const testPortNumber = 0x80

func newLoop(t *testing.T, c *fakeCPU, g *fakeGuest) *Loop {
	t.Helper()
	bus := exits.NewIOBus()
	if err := bus.Register(testPortNumber, 1, "test port", &testPort{}); err != nil {
		t.Fatal(err)
	}
	return &Loop{CPU: c, Guest: g, Exits: &exits.Dispatcher{IO: bus, MSR: exits.NewMSRTable()}, Slice: 1 << 40}
}

// Exits as the processor reports them.
func hlt() step {
	return step{exit: exits.Exit{Reason: uint64(vmx.ExitHLT), InstructionLength: 1}}
}
func inb() step { // in al, 0x80 (2 bytes)
	return step{exit: exits.Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 1<<3 | testPortNumber<<16, InstructionLength: 2}}
}
func eptViolation(gpa uint64) step {
	return step{exit: exits.Exit{Reason: uint64(vmx.ExitEPTViolation), Qualification: 2, GuestPhysical: gpa}}
}
func wrmsrUnknown() step { // wrmsr to an MSR nobody registered: #GP
	return step{exit: exits.Exit{Reason: uint64(vmx.ExitWRMSR), InstructionLength: 2}}
}
func exitOf(r vmx.ExitReason) step { return step{exit: exits.Exit{Reason: uint64(r)}} }

func TestExitsReachTheirStrategy(t *testing.T) {
	c := &fakeCPU{tick: 1, rip: 0x1000}
	c.script = []step{
		inb(),
		eptViolation(0x7000),
		hlt(),
		exitOf(vmx.ExitCRAccess),
		exitOf(vmx.ExitPreemptionTimer),
		exitOf(vmx.ExitExternalInterrupt),
		exitOf(vmx.ExitInterruptWindow),
	}
	g := newGuest()
	err := newLoop(t, c, g).Run()
	if !errors.Is(err, ErrTripleFault) {
		t.Fatalf("Run: %v, want the triple fault that ends the script", err)
	}
	want := []string{"resumed", "fault 0x7000", "halt if=false", "other control-register access", "yield", "yield"}
	if got := strings.Join(g.calls, ", "); got != strings.Join(want, ", ") {
		t.Errorf("strategies called: %s\nwant                %s", got, strings.Join(want, ", "))
	}
	if c.rip != 0x1000+2+1 {
		t.Errorf("RIP %#x, want %#x: past the IN and the HLT only", c.rip, 0x1000+3)
	}
	if c.regs.RAX&0xFF != 0x5A {
		t.Errorf("RAX %#x: the port read did not reach the guest", c.regs.RAX)
	}
	if c.loaded {
		t.Error("Run returned with the vCPU on its core")
	}
	if c.tscOffset != 77 {
		t.Errorf("TSC offset %d, want the guest's 77", c.tscOffset)
	}
}

func TestUnhandledAndFatalExits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     step
		other error
		want  string
	}{
		{"unhandled", exitOf(vmx.ExitINVD), ErrUnhandled, "unhandled exit INVD at RIP 0x2000"},
		{"strategy error", exitOf(vmx.ExitCRAccess), errors.New("bad CR4"), "bad CR4"},
		{"triple fault", exitOf(vmx.ExitTripleFault), nil, "triple fault at RIP 0x2000"},
		{"triple fault in delivery", step{exit: exits.Exit{Reason: uint64(vmx.ExitTripleFault)},
			interrupted: &Event{Vector: 8, Type: HardwareException, HasErrorCode: true}}, nil, "triple fault at RIP 0x2000 delivering vector 8 (type 3)"},
		{"entry failure", step{exit: exits.Exit{Reason: 1<<31 | uint64(vmx.ExitInvalidGuestState)}}, nil, "VM entry failed ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeCPU{tick: 1, rip: 0x2000, script: []step{tc.s, hlt()}}
			g := newGuest()
			g.other = tc.other
			err := newLoop(t, c, g).Run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error with %q", err, tc.want)
			}
			if g.halts != 0 {
				t.Error("the loop went on after a fatal exit")
			}
			var ee *EntryError
			if errors.As(err, &ee) && len(ee.Diagnosis) == 0 {
				t.Error("entry failure without the diagnosis")
			}
		})
	}
}

func TestInterruptedEventDeliveredAgain(t *testing.T) {
	for _, ev := range []Event{
		{Vector: 0x31, Type: ExternalInterrupt},
		{Vector: 14, Type: HardwareException, HasErrorCode: true, ErrorCode: 2},
		{Vector: 0x80, Type: SoftwareInterrupt, InstructionLength: 2},
	} {
		c := &fakeCPU{tick: 1}
		s := eptViolation(0x9000)
		s.interrupted, s.ifOn = &ev, true
		c.script = []step{s, hlt()}
		g := newGuest()
		g.pending = []uint8{0x40} // must wait: the cut-short event goes first
		newLoop(t, c, g).Run()
		if len(c.entries) < 2 || c.entries[1].inject == nil || *c.entries[1].inject != ev {
			t.Fatalf("entry after the exit that cut %+v short: %+v, want it delivered again", ev, c.entries)
		}
		if !c.entries[1].window {
			t.Errorf("%+v: the pending interrupt did not ask for an interrupt window", ev)
		}
		if len(c.entries) < 3 || c.entries[2].inject == nil || c.entries[2].inject.Vector != 0x40 {
			t.Errorf("%+v: the pending interrupt was not injected at the entry after: %+v", ev, c.entries)
		}
	}
}

func TestInterruptWaitsForTheWindow(t *testing.T) {
	c := &fakeCPU{tick: 1}
	on := exitOf(vmx.ExitInterruptWindow)
	on.ifOn = true
	c.script = []step{on, hlt()}
	g := newGuest()
	g.pending = []uint8{0x41}
	newLoop(t, c, g).Run()
	if e := c.entries[0]; e.inject != nil || !e.window {
		t.Errorf("first entry with IF=0: %+v, want no injection and the window on", e)
	}
	if e := c.entries[1]; e.inject == nil || e.inject.Vector != 0x41 || e.inject.Type != ExternalInterrupt || e.window {
		t.Errorf("entry after the window exit: %+v, want vector 0x41 injected and the window off", e)
	}
	if len(g.pending) != 0 {
		t.Error("the interrupt stayed pending after delivery")
	}
}

func TestHandlerExceptionGoesFirst(t *testing.T) {
	c := &fakeCPU{tick: 1, ifFlag: true}
	c.script = []step{wrmsrUnknown(), hlt()}
	g := newGuest()
	newLoop(t, c, g).Run()
	g.pending = nil
	if e := c.entries[1]; e.inject == nil || e.inject.Vector != 13 || e.inject.Type != HardwareException || !e.inject.HasErrorCode {
		t.Fatalf("entry after WRMSR to an unknown MSR: %+v, want #GP(0)", e)
	}

	// An interrupt pending at the same time waits for the next entry.
	c = &fakeCPU{tick: 1, ifFlag: true}
	c.script = []step{wrmsrUnknown(), inb(), hlt()}
	g = newGuest()
	g.pending = []uint8{0x50}
	// the interrupt becomes pending only after the first entry
	g2 := &lateInterrupt{fakeGuest: g, at: 2}
	g.pending = nil
	l := newLoop(t, c, g)
	l.Guest = g2
	l.Run()
	if e := c.entries[1]; e.inject == nil || e.inject.Vector != 13 {
		t.Fatalf("second entry: %+v, want the #GP, not the interrupt", e)
	}
	if e := c.entries[2]; e.inject == nil || e.inject.Vector != 0x50 {
		t.Fatalf("third entry: %+v, want the interrupt that waited", e)
	}
}

// lateInterrupt makes vector 0x50 pending at the at-th Service.
type lateInterrupt struct {
	*fakeGuest
	at int
}

func (g *lateInterrupt) Service(c CPU) (Step, error) {
	if g.fakeGuest.services+1 == g.at {
		g.pending = append(g.pending, 0x50)
	}
	return g.fakeGuest.Service(c)
}

// wakeOnHalt makes vector 0x60 pending when the guest halts, as a timer
// would.
type wakeOnHalt struct{ *fakeGuest }

func (g *wakeOnHalt) Halt(c CPU, interruptible bool) (Step, error) {
	g.pending = append(g.pending, 0x60)
	return g.fakeGuest.Halt(c, interruptible)
}

func TestHaltEndsTheSTIShadow(t *testing.T) {
	c := &fakeCPU{tick: 1}
	s := hlt() // sti; hlt
	s.ifOn, s.sti = true, true
	c.script = []step{s, inb()}
	g := newGuest()
	l := newLoop(t, c, g)
	l.Guest = &wakeOnHalt{g}
	l.Run()
	if g.calls[0] != "halt if=true" {
		t.Fatalf("strategies %v, want an interruptible halt first", g.calls)
	}
	if e := c.entries[1]; e.inject == nil || e.inject.Vector != 0x60 {
		t.Errorf("entry after STI;HLT: %+v, want the interrupt that ended the halt injected (the shadow ends with HLT)", e)
	}
}

func TestMigrationCarriesCurrentState(t *testing.T) {
	a := &fakeCPU{tick: 1, rip: 0x4000, ifFlag: true}
	a.script = []step{inb(), inb()}
	g := newGuest()
	// Move after the second IN: it must have completed (RIP past it,
	// AL read) before the state leaves.
	g2 := &moveAfter{fakeGuest: g, n: 2, node: 3}
	l := newLoop(t, a, g)
	l.Guest = g2
	if err := l.Run(); err != nil {
		t.Fatalf("Run on node A: %v", err)
	}
	if g.departed == nil || g.to != 3 {
		t.Fatalf("the vCPU did not depart to node 3 (calls %v)", g.calls)
	}
	if g.departed.RIP != 0x4004 || g.departed.GPR[vmx.RAX]&0xFF != 0x5A {
		t.Fatalf("state sent: RIP %#x RAX %#x, want RIP 0x4004 and AL 0x5A", g.departed.RIP, g.departed.GPR[vmx.RAX])
	}

	b := restore(g.departed)
	b.script = []step{hlt()}
	gb := newGuest()
	newLoop(t, b, gb).Run()
	if b.entries[0].rip != 0x4004 || b.entries[0].rax&0xFF != 0x5A {
		t.Errorf("node B entered at RIP %#x RAX %#x, want the state node A sent", b.entries[0].rip, b.entries[0].rax)
	}
}

// moveAfter asks to move to node after n exits.
type moveAfter struct {
	*fakeGuest
	n, node int
}

func (g *moveAfter) Service(c CPU) (Step, error) {
	if len(c.(*fakeCPU).entries) == g.n && g.fakeGuest.departed == nil {
		g.fakeGuest.moveTo = g.node
	}
	return g.fakeGuest.Service(c)
}

func TestMoveWaitsForEventDelivery(t *testing.T) {
	ev := Event{Vector: 0x33, Type: ExternalInterrupt}
	// as after an exit that cut the delivery of ev short
	c := &fakeCPU{tick: 1, ifFlag: true, interrupted: &ev, script: []step{inb()}}
	g := newGuest()
	g.moveTo = 1
	if err := newLoop(t, c, g).Run(); err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 1 || c.entries[0].inject == nil || *c.entries[0].inject != ev {
		t.Fatalf("entries before moving: %+v, want one, delivering the cut-short event", c.entries)
	}
	if g.departed == nil {
		t.Fatal("the vCPU never moved")
	}
}

func TestRetryLeavesInstructionToRunElsewhere(t *testing.T) {
	c := &fakeCPU{tick: 1, rip: 0x6000}
	c.script = []step{inb()}
	g := newGuest()
	g.retryNext = true
	g2 := &moveOnRetry{fakeGuest: g}
	l := newLoop(t, c, g)
	l.Guest = g2
	if err := l.Run(); err != nil {
		t.Fatal(err)
	}
	if g.departed == nil || g.departed.RIP != 0x6000 {
		t.Fatalf("departed %+v, want RIP still at the IN (0x6000)", g.departed)
	}
}

// moveOnRetry asks to move when Resumed says Retry, as a device policy
// does.
type moveOnRetry struct{ *fakeGuest }

func (g *moveOnRetry) Resumed(c CPU, mayMove bool) (Step, error) {
	s, err := g.fakeGuest.Resumed(c, mayMove)
	if s == Retry {
		g.moveTo = 2
	}
	return s, err
}

func TestSliceEndsEvenWithoutTimerExits(t *testing.T) {
	c := &fakeCPU{tick: 10}
	for range 50 {
		c.script = append(c.script, inb())
	}
	g := newGuest()
	l := newLoop(t, c, g)
	l.Slice = 100
	l.Run()
	yields := strings.Count(strings.Join(g.calls, ","), "yield")
	if yields < 5 {
		t.Errorf("%d yields in 50 port exits of 10+ cycles each with a 100-cycle slice", yields)
	}
	if c.puts < yields {
		t.Errorf("%d yields but the vCPU left its core %d times", yields, c.puts)
	}
}

func TestStopFromService(t *testing.T) {
	c := &fakeCPU{tick: 1, script: []step{inb(), inb(), inb()}}
	g := newGuest()
	g.stopAfter = 2
	if err := newLoop(t, c, g).Run(); err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 1 {
		t.Errorf("%d entries, want 1 before Service said stop", len(c.entries))
	}
}

func TestEventInfoRoundTrip(t *testing.T) {
	for _, ev := range []Event{
		{Vector: 0x20},
		{Vector: 13, Type: HardwareException, HasErrorCode: true, ErrorCode: 0},
		{Vector: 2, Type: NMI},
	} {
		got, ok := EventFromInfo(ev.Info(), ev.ErrorCode)
		if !ok || got != ev {
			t.Errorf("%+v -> %#x -> %+v", ev, ev.Info(), got)
		}
	}
	if vmx.InjectGP() != (Event{Vector: 13, Type: HardwareException, HasErrorCode: true}).Info() {
		t.Errorf("InjectGP %#x disagrees with Event.Info", vmx.InjectGP())
	}
	if _, ok := EventFromInfo(0x30, 0); ok {
		t.Error("an invalid word decoded")
	}
}

func TestLoopDoesNotAllocate(t *testing.T) {
	c := &fakeCPU{tick: 1}
	g := newGuest()
	l := newLoop(t, c, g)
	script := make([]step, 64)
	for i := range script {
		script[i] = inb()
	}
	g.calls = make([]string, 0, 1<<16)
	c.entries = make([]entry, 0, 1<<16)
	allocs := testing.AllocsPerRun(10, func() {
		c.script = script
		g.stopAfter, g.services = 0, 0
		l.Run()
	})
	// the fake's triple fault at the end of the script builds one
	// error (two allocations); the loop itself must add none
	if allocs > 3 {
		t.Errorf("%.0f allocations per run of 64 exits", allocs)
	}
}

// nmiGuest is a fakeGuest whose vCPU receives NMIs: at[e] of them are
// sent before entry e.
type nmiGuest struct {
	*fakeGuest
	cpu *fakeCPU
	at  map[int]int
}

func (g *nmiGuest) TakeNMIs() int {
	entry := len(g.cpu.entries)
	n := 0
	for e, sent := range g.at {
		if e <= entry {
			n += sent
			delete(g.at, e)
		}
	}
	return n
}

// taken lists the entries that injected an NMI.
func taken(c *fakeCPU) []int {
	var at []int
	for i, e := range c.entries {
		if e.inject != nil && e.inject.Type == NMI {
			at = append(at, i)
		}
	}
	return at
}

// An NMI goes in at the next entry whatever RFLAGS.IF, but not at an
// entry that redelivers an event an exit cut short: it waits for the
// entry after.
func TestNMIIgnoresIFButWaitsForACutShortEvent(t *testing.T) {
	c := &fakeCPU{tick: 1}
	cut := Event{Vector: 14, Type: HardwareException, HasErrorCode: true, ErrorCode: 2}
	s := eptViolation(0x9000)
	s.interrupted = &cut
	iret := exitOf(vmx.ExitInterruptWindow)
	iret.iret = true
	c.script = []step{iret, s, exitOf(vmx.ExitInterruptWindow), hlt()}
	g := &nmiGuest{fakeGuest: newGuest(), cpu: c, at: map[int]int{0: 1, 2: 1}}
	l := newLoop(t, c, g.fakeGuest)
	l.Guest = g
	l.Run()
	if len(c.entries) < 4 {
		t.Fatalf("entries %+v", c.entries)
	}
	if e := c.entries[0]; e.inject == nil || e.inject.Vector != nmiVector || e.inject.Type != NMI {
		t.Errorf("first entry with IF=0 and an NMI waiting: %+v, want the NMI injected", e)
	}
	if e := c.entries[2]; e.inject == nil || *e.inject != cut {
		t.Errorf("entry after the exit that cut %+v short: %+v, want it delivered again", cut, e)
	}
	if e := c.entries[3]; e.inject == nil || e.inject.Type != NMI {
		t.Errorf("entry after the redelivery: %+v, want the waiting NMI", e)
	}
	if at := taken(c); len(at) != 2 || at[1] != 3 {
		t.Errorf("NMIs taken at entries %v, want 0 and 3", at)
	}
}

// An NMI sent while the guest handles one waits until its handler
// returns (IRET): the loop asks for the NMI window meanwhile, and
// injects it at the first entry after.
func TestNMIWaitsForIRET(t *testing.T) {
	c := &fakeCPU{tick: 1}
	iret := exitOf(vmx.ExitNMIWindow)
	iret.iret = true
	c.script = []step{exitOf(vmx.ExitInterruptWindow), exitOf(vmx.ExitInterruptWindow), iret, exitOf(vmx.ExitInterruptWindow), hlt()}
	g := &nmiGuest{fakeGuest: newGuest(), cpu: c, at: map[int]int{0: 1, 1: 1}}
	l := newLoop(t, c, g.fakeGuest)
	l.Guest = g
	l.Run()
	if at := taken(c); len(at) != 2 || at[0] != 0 || at[1] != 3 {
		t.Errorf("NMIs taken at entries %v, want 0 and 3 (after the IRET)", at)
	}
	for i, want := range []bool{false, true, true, false} {
		if c.entries[i].nmiWindow != want {
			t.Errorf("entry %d: NMI window %v, want %v", i, c.entries[i].nmiWindow, want)
		}
	}
}

// NMIs collapse as on the processor: of those sent while none is in
// service two are delivered (one latched behind the other), and of
// those sent while one is, one.
func TestNMIsCollapse(t *testing.T) {
	c := &fakeCPU{tick: 1}
	iret := exitOf(vmx.ExitNMIWindow)
	iret.iret = true
	c.script = []step{exitOf(vmx.ExitInterruptWindow), iret, exitOf(vmx.ExitInterruptWindow), iret, exitOf(vmx.ExitInterruptWindow), iret,
		exitOf(vmx.ExitInterruptWindow), iret, exitOf(vmx.ExitInterruptWindow), hlt()}
	g := &nmiGuest{fakeGuest: newGuest(), cpu: c, at: map[int]int{0: 5, 3: 1, 4: 7}}
	l := newLoop(t, c, g.fakeGuest)
	l.Guest = g
	l.Run()
	// 5 before entry 0: in at 0 and, after the IRET, at 2; one at 3
	// while none is in service (the second IRET ends at entry 4): at 4;
	// 7 at 4, with the one injected there in service: one more, at 6
	if at, want := taken(c), []int{0, 2, 4, 6}; fmt.Sprint(at) != fmt.Sprint(want) {
		t.Errorf("NMIs taken at entries %v, want %v", at, want)
	}
}

// nmiMover is an nmiGuest that asks to move to node 1 after n exits.
type nmiMover struct {
	*nmiGuest
	n int
}

func (g *nmiMover) Service(c CPU) (Step, error) {
	if len(g.cpu.entries) == g.n && g.departed == nil {
		g.moveTo = 1
	}
	return g.fakeGuest.Service(c)
}

// NMIs waiting for a vCPU go with it when it moves: those latched by the
// loop and those sent since, as many as the processor keeps.
func TestNMIsMoveWithTheVCPU(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // exits before the move
		sent  int // NMIs sent before entry 0
		want  uint8
	}{
		// 3 sent: one injected at entry 0, in service at the move, so
		// one more waits
		{"one in service", 1, 3, 1},
		// none injected yet: two wait
		{"none in service", 0, 3, 2},
		{"none sent", 1, 0, 0},
	} {
		c := &fakeCPU{tick: 1}
		c.script = []step{exitOf(vmx.ExitInterruptWindow), exitOf(vmx.ExitInterruptWindow), hlt()}
		g := &nmiMover{nmiGuest: &nmiGuest{fakeGuest: newGuest(), cpu: c, at: map[int]int{0: tc.sent}}, n: tc.after}
		l := newLoop(t, c, g.fakeGuest)
		l.Guest = g
		if err := l.Run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if g.departed == nil {
			t.Fatalf("%s: the vCPU never moved", tc.name)
		}
		if got := g.departed.Events.PendingNMIs; got != tc.want {
			t.Errorf("%s: %d NMIs pending in the departed state, want %d", tc.name, got, tc.want)
		}
	}
}

func TestEventFault(t *testing.T) {
	faults := map[uint8]bool{0: true, 5: true, 6: true, 7: true, 10: true, 11: true, 12: true, 13: true, 14: true, 16: true, 17: true, 19: true, 20: true, 21: true}
	for v := 0; v < 32; v++ {
		ev := Event{Vector: uint8(v), Type: HardwareException}
		if got := ev.Fault(); got != faults[uint8(v)] {
			t.Errorf("hardware exception %d: Fault = %v, want %v", v, got, faults[uint8(v)])
		}
	}
	for _, ev := range []Event{
		{Vector: 3, Type: SoftwareException},                        // INT3 is a trap
		{Vector: 1, Type: PrivilegedSoftware},                       // INT1
		{Vector: 2, Type: NMI},                                      // an interrupt
		{Vector: 14, Type: ExternalInterrupt},                       // vector 14 as an IRQ
		{Vector: 13, Type: SoftwareInterrupt, InstructionLength: 2}, // INT 13
	} {
		if ev.Fault() {
			t.Errorf("%+v: Fault = true, want false", ev)
		}
	}
}

func TestEmulatedInstructionEndsTheSTIShadow(t *testing.T) {
	c := &fakeCPU{tick: 1}
	s := inb() // sti; in al, 0x80
	s.ifOn, s.sti = true, true
	c.script = []step{s, hlt()}
	g := newGuest()
	g.pending = []uint8{0x41}
	newLoop(t, c, g).Run()
	if e := c.entries[1]; e.inject == nil || e.inject.Vector != 0x41 {
		t.Errorf("entry after STI;IN: %+v, want vector 0x41 injected (the shadow covers only the IN)", e)
	}

	// An instruction left to run again keeps its shadow.
	c = &fakeCPU{tick: 1}
	s = inb()
	s.ifOn, s.sti = true, true
	c.script = []step{s, hlt()}
	g = newGuest()
	g.pending = []uint8{0x41}
	g.retryNext = true
	l := newLoop(t, c, g)
	l.Run()
	if e := c.entries[1]; e.inject != nil || !e.window {
		t.Errorf("entry after STI;IN left to retry: %+v, want no injection and the window on", e)
	}
}

// TestEmulatedInstructionSingleSteps checks that an instruction the
// hypervisor carries out for a guest that single-steps (RFLAGS.TF) owes
// it its #DB, once per instruction, and a guest that does not step gets
// none; an instruction left to run again owes nothing yet.
func TestEmulatedInstructionSingleSteps(t *testing.T) {
	c := &fakeCPU{tick: 1, tf: true}
	c.script = []step{inb(), inb(), hlt()}
	newLoop(t, c, newGuest()).Run()
	if c.stepTraps != 3 { // two INs and the HLT
		t.Errorf("%d single-step traps for IN, IN, HLT with TF set, want 3", c.stepTraps)
	}

	c = &fakeCPU{tick: 1}
	c.script = []step{inb(), hlt()}
	newLoop(t, c, newGuest()).Run()
	if c.stepTraps != 0 {
		t.Errorf("%d single-step traps with TF clear, want 0", c.stepTraps)
	}

	c = &fakeCPU{tick: 1, tf: true}
	c.script = []step{inb(), hlt()}
	g := newGuest()
	g.retryNext = true
	newLoop(t, c, g).Run()
	if c.stepTraps != 1 { // the HLT only: the IN runs again
		t.Errorf("%d single-step traps with the IN left to run again, want 1 (the HLT)", c.stepTraps)
	}
}

// exitWatcher records, as an ExitGuest, each exit before the loop
// handles it.
type exitWatcher struct{ *fakeGuest }

func (g *exitWatcher) Exited(c CPU, e *exits.Exit, a *exits.Action) error {
	g.calls = append(g.calls, fmt.Sprintf("exited %v", a.Reason))
	return nil
}

// An ExitGuest hears of every exit before the loop handles it.
func TestExitGuestHearsEveryExitFirst(t *testing.T) {
	c := &fakeCPU{tick: 1}
	c.script = []step{inb(), eptViolation(0x7000), hlt()}
	g := newGuest()
	l := newLoop(t, c, g)
	l.Guest = &exitWatcher{g}
	l.Run()
	want := []string{"exited I/O instruction", "resumed", "exited EPT violation", "fault 0x7000", "exited HLT", "halt if=false", "exited triple fault"}
	if got := strings.Join(g.calls, ", "); got != strings.Join(want, ", ") {
		t.Errorf("calls: %s\nwant   %s", got, strings.Join(want, ", "))
	}
}
