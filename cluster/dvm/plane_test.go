// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// fakeShare records what the control plane asked of it.
type fakeShare struct {
	spec Spec
	rt   *Runtime

	mu     sync.Mutex
	calls  []string
	block  chan struct{} // Start waits on it when set
	called chan string
}

func (s *fakeShare) Spec() Spec        { return s.spec }
func (s *fakeShare) Runtime() *Runtime { return s.rt }
func (s *fakeShare) record(c string) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if s.called != nil {
		s.called <- c
	}
}
func (s *fakeShare) Start() {
	if s.block != nil {
		<-s.block
	}
	s.record("start")
}
func (s *fakeShare) Migrate(v migrate.VCPUID, node memory.NodeID) error {
	s.record(fmt.Sprintf("migrate %d to %d", v, node))
	if node > 5 {
		return errors.New("no such node")
	}
	return nil
}
func (s *fakeShare) Done(from memory.NodeID, ok bool) {
	s.record(fmt.Sprintf("done from %d ok=%v", from, ok))
}
func (s *fakeShare) Evacuate() { s.record("evacuate") }
func (s *fakeShare) TakeHomes(from memory.NodeID) {
	s.record(fmt.Sprintf("take homes of %d", from))
}
func (s *fakeShare) Startup(h *Handle, v migrate.VCPUID, vector uint8) {
	s.record(fmt.Sprintf("startup %d at %#x held=%v", v, vector, h.Held()))
}
func (s *fakeShare) Clock(t uint64) { s.record(fmt.Sprintf("clock %d", t)) }
func (s *fakeShare) End(why string) { s.record("end: " + why) }

// fakeHost creates fakeShares over the runtimes of a test cluster.
type fakeHost struct {
	rt      *Runtime
	created chan *fakeShare
	fail    error
	room    int  // pages it says it can home
	virt    Virt // the virtualization it says it uses
	cores   int  // the cores it says it gives a VM
	// hold, if set, keeps Create building until it is closed.
	hold chan struct{}
}

func (h *fakeHost) Room(Spec) int { return h.room }
func (h *fakeHost) Virt() Virt    { return h.virt }
func (h *fakeHost) Cores() int    { return h.cores }

func (h *fakeHost) Create(from memory.NodeID, spec Spec) (Share, error) {
	if h.hold != nil {
		<-h.hold
	}
	if h.fail != nil {
		return nil, h.fail
	}
	s := &fakeShare{spec: spec, rt: h.rt, called: make(chan string, 16)}
	h.created <- s
	return s, nil
}

// syncBuffer is a notices writer the test reads while the plane writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func control(c Control) []byte {
	b := make([]byte, c.Size())
	return b[:c.MarshalTo(b)]
}

// sentLog records what a Plane sends, from its control goroutine and
// from the test's: each message is the destination's index, then the
// message.
type sentLog struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (l *sentLog) send(to memory.NodeID, msg []byte) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, append([]byte{byte(to)}, msg...))
	l.mu.Unlock()
	return nil
}

// controls returns the destinations of the control messages of op about
// VM id sent so far.
func (l *sentLog) controls(op Op, id uint32) []memory.NodeID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var to []memory.NodeID
	for _, b := range l.msgs {
		var c Control
		if c.Unmarshal(b[1:]) == nil && c.Op == op && c.Spec.ID == id {
			to = append(to, memory.NodeID(b[0]))
		}
	}
	return to
}

func newPlane(t *testing.T) (*Plane, *fakeHost, *syncBuffer, *sentLog) {
	c := newCluster(t, 2, 2, 4)
	host := &fakeHost{rt: c.rts[1], created: make(chan *fakeShare, 4)}
	notices := &syncBuffer{}
	sent := &sentLog{}
	p := NewPlane(PlaneConfig{Host: host, Notices: notices, Send: sent.send,
		ClusterID: func(n memory.NodeID) uint32 { return uint32(n) + 1 }})
	return p, host, notices, sent
}

func TestPlaneDrivesTheShare(t *testing.T) {
	p, host, notices, _ := newPlane(t)
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	s := <-host.created
	if p.Current() != Share(s) {
		t.Fatal("the share created on OpCreate is not current")
	}
	if !strings.Contains(notices.String(), "dvm 7: joined for node 1: node 1 of 2, 2 vCPUs, 4 pages") {
		t.Errorf("notices: %q", notices.String())
	}
	for _, tc := range []struct {
		c    Control
		want string
	}{
		{Control{Op: OpStart}, "start"},
		{Control{Op: OpMigrate, VCPU: 1, Node: 0}, "migrate 1 to 0"},
		{Control{Op: OpDone, Arg: 0}, "done from 0 ok=true"},
		{Control{Op: OpDone, Arg: 1}, "done from 0 ok=false"},
		{Control{Op: OpEvacuate}, "evacuate"},
		{Control{Op: OpTakeHomes}, "take homes of 0"},
		{Control{Op: OpStartup, VCPU: 1, Arg: 0x9a}, "startup 1 at 0x9a held=true"},
		{Control{Op: OpClock, Time: 12345}, "clock 12345"},
		{Control{Op: OpStop}, "end: stopped by node 1"},
	} {
		tc.c.Spec = spec
		p.Receive(0, control(tc.c))
		select {
		case got := <-s.called:
			if got != tc.want {
				t.Errorf("%v: share did %q, want %q", tc.c.Op, got, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: the share was not called", tc.c.Op)
		}
	}
	if p.Current() != nil {
		t.Error("the share is still current after OpStop")
	}
}

func TestPlaneRefusesWhatIsNotItsVM(t *testing.T) {
	p, host, notices, _ := newPlane(t)
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}
	p.Receive(0, control(Control{Op: OpStart, Spec: spec}))
	p.Receive(0, []byte{ControlMagic, 0xEE})
	waitFor(t, notices, "dvm: Start for VM 7 from node 0: no such VM here")
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	s := <-host.created
	p.Receive(0, control(Control{Op: OpStart, Spec: Spec{ID: 8, Nodes: 2, VCPUs: 2, Pages: 4}}))
	p.Receive(0, control(Control{Op: OpMigrate, Spec: spec, VCPU: 0, Node: 9}))
	if got := <-s.called; got != "migrate 0 to 9" {
		t.Fatalf("share did %q", got)
	}
	waitFor(t, notices, "migrate from node 0: no such node")
	out := notices.String()
	for _, want := range []string{
		"dvm: Start for VM 7 from node 0: no such VM here",
		"dvm: from node 0: ",
		"dvm: Start for VM 8 from node 0: no such VM here",
		"dvm 7: migrate from node 0: no such node",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("notices lack %q:\n%s", want, out)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) != 1 {
		t.Errorf("the share was asked %v; only the migration was its", s.calls)
	}
}

// waitFor waits until the notices say want (the control goroutine writes
// them).
func waitFor(t *testing.T, notices *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(notices.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no notice %q in %q", want, notices.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPlaneBoundsWaitingControls(t *testing.T) {
	p, host, notices, _ := newPlane(t)
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	s := <-host.created
	s.block = make(chan struct{}) // the control goroutine is stuck in Start
	s.called = nil
	for range MaxControls + 10 {
		p.Receive(0, control(Control{Op: OpStart, Spec: spec}))
	}
	if !strings.Contains(notices.String(), "dropped: 64 control messages wait already") {
		t.Errorf("a flood of control messages was not bounded: %q", notices.String())
	}
	close(s.block)
}

func TestPlaneReplacesAndFails(t *testing.T) {
	p, host, notices, sent := newPlane(t)
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	old := <-host.created
	spec.ID = 9
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	<-host.created
	select {
	case got := <-old.called:
		if got != "end: replaced by a new VM from node 0" {
			t.Errorf("old share: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced share was not ended")
	}
	host.fail = errors.New("no memory")
	spec.ID = 11
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	if p.Current() != nil {
		t.Error("a share is current after its creation failed")
	}
	if !strings.Contains(notices.String(), "dvm 11: creating this node's share: no memory") {
		t.Errorf("notices: %q", notices.String())
	}
	// Broadcast goes to every other node of the VM.
	s := &fakeShare{spec: Spec{ID: 3, Nodes: 3, VCPUs: 1, Pages: 4}, rt: host.rt}
	if err := p.Broadcast(s, Control{Op: OpStart}); err != nil {
		t.Fatal(err)
	}
	// (The failed creation's OpStop to node 0 comes from the control
	// goroutine meanwhile.)
	if to := sent.controls(OpStart, 3); !slices.Equal(to, []memory.NodeID{0, 2}) {
		t.Fatalf("OpStart of VM 3 broadcast from node 1 of 3 went to nodes %v, want [0 2]", to)
	}
}

// TestCreateFailureTellsCreator: a node that cannot build its share of a
// VM (out of frames, say) tells the creating node at once with OpStop
// (StopNotCreated), and answers the VM's later messages the same way;
// the creator's share stops with an error that says so. Before, the
// failure was only a notice on that node, and the creator waited for
// the node's pages for ever (found by making each frame allocation of
// node 2 fail in turn, TestQEMUClusterAMDV).
func TestCreateFailureTellsCreator(t *testing.T) {
	sent := make(chan []byte, 16)
	notices := &syncBuffer{}
	p := NewPlane(PlaneConfig{
		Host:    &fakeHost{fail: errors.New("frames: allocation failed on purpose"), created: make(chan *fakeShare, 1)},
		Notices: notices,
		Send: func(to memory.NodeID, msg []byte) error {
			sent <- append([]byte{byte(to)}, msg...)
			return nil
		},
		ClusterID: func(n memory.NodeID) uint32 { return uint32(n) + 1 },
	})
	spec := Spec{ID: 9, Nodes: 2, VCPUs: 2, Pages: 4}
	p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
	p.waitBuilt()
	stopOf := func(what string) Control {
		t.Helper()
		select {
		case b := <-sent:
			var c Control
			if b[0] != 0 || c.Unmarshal(b[1:]) != nil || c.Op != OpStop || c.Spec.ID != spec.ID {
				t.Fatalf("%s: sent %x, want OpStop of VM %d to node 0", what, b, spec.ID)
			}
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the creator was not told", what)
		}
		return Control{}
	}
	c := stopOf("after the failed create")
	if StopReason(c.Arg) != StopNotCreated {
		t.Errorf("OpStop says %d, want StopNotCreated", c.Arg)
	}
	if !strings.Contains(notices.String(), "creating this node's share: frames: allocation failed on purpose") {
		t.Errorf("notices: %q", notices.String())
	}
	// The creator's share stops with what it was told.
	e := stopError(1, &c, spec.Nodes)
	if !errors.Is(e, ErrStopped) || !strings.Contains(e.Error(), "node 1 could not build its share") {
		t.Errorf("the creator's error: %v", e)
	}
	// A page request for the VM that was never built is answered too,
	// once StopRetell has passed.
	time.Sleep(StopRetell + 10*time.Millisecond)
	m := memory.Message{Kind: memory.KindReadReq, Src: 0, Dst: 1, Requester: 0, GPA: 0}
	b := make([]byte, m.Size())
	if _, err := m.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	p.Receive(0, enveloped(spec.ID, b))
	stopOf("after a page request")
}

// TestPlaneBuildsOffTheReceivePath: OpCreate returns at once while the
// share is built (the receive path carries every acknowledgement; a node
// that built there fell silent for 15 s building 1.25 GiB of homes in
// Bochs, and was taken for lost). Meanwhile Room says no to every sender,
// so what follows waits in the transport; once the share is installed
// Room says yes and the creator is told with OpJoined.
func TestPlaneBuildsOffTheReceivePath(t *testing.T) {
	p, host, _, sent := newPlane(t)
	host.hold = make(chan struct{})
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}
	returned := make(chan struct{})
	go func() {
		p.Receive(0, control(Control{Op: OpCreate, Spec: spec}))
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		close(host.hold)
		t.Fatal("Receive did not return while the share was built")
	}
	if p.Room(0) || p.Room(1) {
		t.Error("Room said yes while the share was built: the VM's traffic would find no share")
	}
	if got := sent.controls(OpJoined, spec.ID); len(got) != 0 {
		t.Errorf("OpJoined went to %v before the share was built", got)
	}
	close(host.hold)
	s := <-host.created
	p.waitBuilt()
	if p.Current() != Share(s) {
		t.Fatal("the share built is not current")
	}
	if !p.Room(0) {
		t.Error("Room still says no after the share was built")
	}
	if got := sent.controls(OpJoined, spec.ID); !slices.Equal(got, []memory.NodeID{0}) {
		t.Errorf("OpJoined went to %v, want the creator, node 0", got)
	}
}

// TestJoinsWait: the creator's wait ends when every other node has
// joined (a node's second OpJoined and another VM's do not count), when
// its share stops, or at its timeout, naming the nodes that did not join.
func TestJoinsWait(t *testing.T) {
	p, _, _, _ := newPlane(t)
	spec := Spec{ID: 5, Nodes: 3, VCPUs: 3, Pages: 4}
	joined := func(from memory.NodeID, id uint32) {
		p.Receive(from, control(Control{Op: OpJoined, Spec: Spec{ID: id}}))
	}
	running := func() error { return nil }

	j := p.ExpectJoins(spec)
	joined(1, 5)
	joined(1, 5)
	joined(2, 6)
	if err := j.Wait(0, 100*time.Millisecond, running); err == nil || err.Error() != "dvm 5: node 3 did not build its share within 100ms" {
		t.Errorf("node 3 (index 2) silent: %v", err)
	}
	joined(2, 5) // too late: the wait is over

	j = p.ExpectJoins(spec)
	go func() { joined(2, 5); joined(1, 5) }()
	if err := j.Wait(0, 5*time.Second, running); err != nil {
		t.Errorf("both joined: %v", err)
	}

	j = p.ExpectJoins(spec)
	lost := errors.New("node 2 lost")
	if err := j.Wait(0, 5*time.Second, func() error { return lost }); err != lost {
		t.Errorf("the share stopped: %v, want %v", err, lost)
	}
}

// waitBuilt waits until the plane builds no share (see OpCreate in
// Receive).
func (p *Plane) waitBuilt() {
	for {
		p.mu.Lock()
		building := p.building
		p.mu.Unlock()
		if !building {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBroadcastLatestSkipsAFullWindow: a message that the next one
// replaces (the guest clock) skips a node whose window is full, without
// waiting, and still reaches the others; without TrySend it is sent as
// Broadcast sends.
func TestBroadcastLatestSkipsAFullWindow(t *testing.T) {
	c := newCluster(t, 3, 3, 4)
	share := &fakeShare{spec: c.rts[0].cfg.Spec, rt: c.rts[0]}
	sent := &sentLog{}
	full := memory.NodeID(1)
	p := NewPlane(PlaneConfig{Host: &fakeHost{}, Notices: &syncBuffer{}, Send: func(memory.NodeID, []byte) error {
		t.Error("BroadcastLatest waited for room with Send")
		return nil
	}, TrySend: func(to memory.NodeID, msg []byte) (bool, error) {
		if to == full {
			return false, nil
		}
		return true, sent.send(to, msg)
	}})
	skipped, err := p.BroadcastLatest(share, Control{Op: OpClock, Time: 42})
	if err != nil || skipped != 1 {
		t.Errorf("BroadcastLatest: %d skipped, %v; want 1, nil", skipped, err)
	}
	if to := sent.controls(OpClock, share.spec.ID); !slices.Equal(to, []memory.NodeID{2}) {
		t.Errorf("the clock went to %v, want [2]", to)
	}
	p.cfg.TrySend = func(memory.NodeID, []byte) (bool, error) { return false, errors.New("node lost") }
	if _, err := p.BroadcastLatest(share, Control{Op: OpClock}); err == nil || !strings.Contains(err.Error(), "node lost") {
		t.Errorf("a failed send: %v", err)
	}
	plain := &sentLog{}
	p = NewPlane(PlaneConfig{Host: &fakeHost{}, Notices: &syncBuffer{}, Send: plain.send})
	if skipped, err := p.BroadcastLatest(share, Control{Op: OpClock}); skipped != 0 || err != nil {
		t.Errorf("without TrySend: %d skipped, %v", skipped, err)
	}
	if to := plain.controls(OpClock, share.spec.ID); !slices.Equal(to, []memory.NodeID{1, 2}) {
		t.Errorf("without TrySend the clock went to %v, want [1 2]", to)
	}
}
