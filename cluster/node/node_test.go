// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// hub is a real-time Ethernet switch: each port's frames are delivered
// by the port's own goroutine, as a NIC's poll loop would.
type hub struct {
	mu    sync.Mutex
	ports []*port
}

type port struct {
	h    *hub
	mac  link.MAC
	in   chan []byte
	recv atomic.Pointer[link.Receiver]
	up   atomic.Bool
}

func (h *hub) add(t *testing.T, mac link.MAC) *port {
	p := &port{h: h, mac: mac, in: make(chan []byte, 1024)}
	p.up.Store(true)
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case f := <-p.in:
				if r := p.recv.Load(); r != nil && *r != nil && p.up.Load() {
					(*r)(f)
				}
			case <-done:
				return
			}
		}
	}()
	return p
}

func (p *port) Transmit(f []byte) error {
	if !p.up.Load() {
		return link.ErrDown
	}
	var dst link.MAC
	copy(dst[:], f)
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, q := range p.h.ports {
		// A port that is down neither sends nor receives.
		if q != p && q.up.Load() && (dst.IsMulticast() || q.mac == dst) {
			select {
			case q.in <- bytes.Clone(f):
			default: // full: dropped, as a switch would
			}
		}
	}
	return nil
}
func (p *port) SetReceiver(r link.Receiver) { p.recv.Store(&r) }
func (p *port) MAC() link.MAC               { return p.mac }
func (p *port) MTU() int                    { return 1500 }
func (p *port) Up() bool                    { return p.up.Load() }

var testKey = bytes.Repeat([]byte{7}, cluster.KeyLen)

func mac(i int) link.MAC { return link.MAC{0x52, 0x54, 0, 0xbe, 0, byte(i)} }

type testCluster struct {
	agents map[cluster.NodeID]*Agent
	ports  map[cluster.NodeID]*port
	logs   map[cluster.NodeID]*syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startCluster(t *testing.T, n int) *testCluster {
	h := &hub{}
	start := time.Now()
	clock := func() time.Duration { return time.Since(start) }
	var boot []membership.Member
	for i := 1; i <= n; i++ {
		boot = append(boot, membership.Member{ID: cluster.NodeID(i), MAC: mac(i)})
	}
	c := &testCluster{agents: map[cluster.NodeID]*Agent{}, ports: map[cluster.NodeID]*port{}, logs: map[cluster.NodeID]*syncBuffer{}}
	for i := 1; i <= n; i++ {
		id := cluster.NodeID(i)
		p := h.add(t, mac(i))
		log := &syncBuffer{}
		a, err := New(Config{Link: p, ID: id, Key: testKey, Bootstrap: boot, Clock: clock, Log: log,
			CounterBase: uint64(i) << 32, FailureTimeout: 300 * time.Millisecond,
			KeyName: "fingerprint " + cluster.KeyFingerprint(testKey)})
		if err != nil {
			t.Fatal(err)
		}
		a.Start()
		t.Cleanup(a.Stop)
		c.agents[id], c.ports[id], c.logs[id] = a, p, log
	}
	return c
}

// waitAgreement waits until every agent has a quorum of n members.
func (c *testCluster) waitAgreement(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "agreement", func() bool {
		for _, a := range c.agents {
			if !a.Status().Quorum || len(a.Status().Members) != n {
				return false
			}
		}
		return true
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func aliveCount(a *Agent) int {
	n := 0
	for _, i := range a.Nodes() {
		if i.State == "alive" || i.State == "self" {
			n++
		}
	}
	return n
}

func TestThreeNodesAgreeAndDetectFailure(t *testing.T) {
	c := startCluster(t, 3)
	waitFor(t, 5*time.Second, "agreement", func() bool {
		for _, a := range c.agents {
			if !a.Status().Quorum || aliveCount(a) != 3 {
				return false
			}
		}
		return true
	})
	// What `nodes` shows (package console prints it).
	states := map[string]int{}
	for _, n := range c.agents[1].Nodes() {
		states[n.State]++
	}
	if states["alive"] != 2 || states["self"] != 1 {
		t.Errorf("nodes: %+v", c.agents[1].Nodes())
	}
	// The key by its fingerprint only.
	if fp := cluster.KeyFingerprint(testKey); c.agents[1].KeyName() != "fingerprint "+fp ||
		strings.Contains(c.agents[1].KeyName(), fmt.Sprintf("%x", testKey)[:16]) {
		t.Errorf("the agent does not name the key by fingerprint alone: %q", c.agents[1].KeyName())
	}
	t.Logf("node 1: %v", c.agents[1].Status())

	// Node 3 falls silent.
	c.agents[3].Stop()
	c.ports[3].up.Store(false)
	took := waitFor(t, 5*time.Second, "failure detection", func() bool {
		for _, id := range []cluster.NodeID{1, 2} {
			ev := c.agents[id].Events()
			if len(ev) == 0 || ev[len(ev)-1].Kind != membership.Failed || ev[len(ev)-1].ID != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("node 3 declared failed %v after it fell silent (timeout 300ms)", took)
	e1, e2 := c.agents[1].Events(), c.agents[2].Events()
	if len(e1) != len(e2) {
		t.Fatalf("event logs differ:\n%v\n%v", e1, e2)
	}
	for i := range e1 {
		if e1[i] != e2[i] {
			t.Fatalf("event %d differs: %v vs %v", i, e1[i], e2[i])
		}
	}
	waitFor(t, time.Second, "logged failure", func() bool {
		return strings.Contains(c.logs[1].String(), "node 3 failed") && strings.Contains(c.logs[2].String(), "node 3 failed")
	})
}

func TestLeave(t *testing.T) {
	c := startCluster(t, 3)
	c.waitAgreement(t, 3)
	if err := c.agents[2].Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "leave", func() bool {
		ev := c.agents[1].Events()
		return len(ev) > 0 && ev[len(ev)-1].Kind == membership.Left && ev[len(ev)-1].ID == 2
	})
}

// Messages sent with Send on an application channel reach the peer's
// Handle callback whole and in order, even when they outrun the window
// (Send then waits for acknowledgements), and Raft's channel cannot be
// taken.
func TestSendAndHandle(t *testing.T) {
	c := startCluster(t, 2)
	a, b := c.agents[1], c.agents[2]
	if err := b.Handle(0, func(cluster.NodeID, []byte) {}); err == nil {
		t.Fatal("Handle took the Raft channel")
	}
	const n = 200
	got := make(chan []byte, n)
	if err := b.Handle(2, func(from cluster.NodeID, msg []byte) {
		if from == 1 {
			got <- append([]byte(nil), msg...)
		}
	}); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 4096+24)
	for i := 0; i < n; i++ {
		msg[0], msg[len(msg)-1] = byte(i), byte(i>>8)
		if err := a.Send(2, 2, msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case m := <-got:
			if len(m) != len(msg) || m[0] != byte(i) || m[len(m)-1] != byte(i>>8) {
				t.Fatalf("message %d arrived as %d bytes [%d ... %d]", i, len(m), m[0], m[len(m)-1])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
	if err := a.Send(9, 2, msg); err == nil {
		t.Fatal("sent to an unknown peer")
	}
}

// TestTrySendDoesNotWait: TrySend returns ErrBusy at once when the
// peer's window is full (here: it can acknowledge nothing), where Send
// waits up to sendTimeout; what was queued arrives, in order, once the
// peer answers again.
func TestTrySendDoesNotWait(t *testing.T) {
	c := startCluster(t, 2)
	a, b := c.agents[1], c.agents[2]
	got := make(chan byte, 4096)
	if err := b.Handle(2, func(from cluster.NodeID, msg []byte) { got <- msg[0] }); err != nil {
		t.Fatal(err)
	}
	c.ports[2].up.Store(false)
	msg := make([]byte, 64)
	sent := 0
	for ; sent < 4096; sent++ {
		msg[0] = byte(sent)
		start := time.Now()
		err := a.TrySend(2, 2, msg)
		if errors.Is(err, cluster.ErrBusy) {
			if d := time.Since(start); d > sendTimeout/2 {
				t.Errorf("TrySend waited %v for room", d)
			}
			break
		}
		if err != nil {
			t.Fatalf("message %d: %v", sent, err)
		}
	}
	if sent == 4096 {
		t.Fatal("the window never filled")
	}
	c.ports[2].up.Store(true)
	for i := 0; i < sent; i++ {
		select {
		case m := <-got:
			if m != byte(i) {
				t.Fatalf("message %d arrived as %d", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d never arrived", i, sent)
		}
	}
}

// TestClusterKey: the development key only on an emulator or when asked
// for; a real key is named by its fingerprint (issue 16, finding 7).
func TestClusterKey(t *testing.T) {
	if _, _, err := ClusterKey(nil, false, ""); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key on bare metal: %v, want ErrNoKey", err)
	}
	k, name, err := ClusterKey(nil, false, "CPUID hypervisor bit")
	if err != nil || string(k) != developmentKey || !strings.Contains(name, "development key (emulator: CPUID hypervisor bit") {
		t.Errorf("emulator: %q %q %v", k, name, err)
	}
	if _, name, err := ClusterKey(nil, true, ""); err != nil || !strings.Contains(name, "insecure") {
		t.Errorf("insecure: %q %v", name, err)
	}
	k, name, err = ClusterKey(testKey, false, "")
	if err != nil || &k[0] != &testKey[0] || name != "fingerprint "+cluster.KeyFingerprint(testKey) {
		t.Errorf("given key: %q %v", name, err)
	}
}

// TestRaftLog: a malformed Raft message from a peer is counted and its
// warning kept for `node log`; before, the logger discarded every line
// and the count was shown nowhere (issue 16, finding 10).
func TestRaftLog(t *testing.T) {
	c := startCluster(t, 2)
	a := c.agents[1]
	a.mu.Lock()
	// Node 2's incarnation (its counter base), then no Raft message.
	a.mem.HandleMessage(2, []byte{0, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff})
	a.mu.Unlock()
	// What `node log` shows (package console prints it).
	lines, _, _, bad := a.RaftLog()
	if bad != 1 || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "warning: membership: bad raft message from 2") }) {
		t.Errorf("node log: %d malformed messages dropped, lines:\n%s", bad, strings.Join(lines, "\n"))
	}
	// The ring keeps the latest lines only.
	for i := range 2 * raftLogLines {
		a.raft.Warningf("line %d", i)
	}
	lines, warnings, _ := a.raft.Recent()
	if len(lines) != raftLogLines || lines[len(lines)-1] != fmt.Sprintf("warning: line %d", 2*raftLogLines-1) || warnings < 2*raftLogLines {
		t.Errorf("after %d warnings: %d lines, last %q, %d counted", 2*raftLogLines, len(lines), lines[len(lines)-1], warnings)
	}
}

// TestFloodHeldBack: an authenticated peer that sends faster than a
// handler takes messages in is held back by the transport: the handler's
// queue stays within its bound, the flooded node stays a responsive
// member (no failure is declared, a third node's messages on the same
// channel keep flowing), and once the handler catches up every message
// of the flood arrives, in order (issue 16, finding 8: a bound could
// only stop the VM).
func TestFloodHeldBack(t *testing.T) {
	c := startCluster(t, 3)
	flooder, victim, bystander := c.agents[1], c.agents[2], c.agents[3]
	waitFor(t, 5*time.Second, "three members", func() bool { return aliveCount(victim) == 3 })
	const bound = 64
	var (
		mu      sync.Mutex
		queue   [4][][]byte // by sender
		most    int
		stalled = true
	)
	if err := victim.SetRoom(2, func(from cluster.NodeID) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(queue[from]) < bound
	}); err != nil {
		t.Fatal(err)
	}
	if err := victim.Handle(2, func(from cluster.NodeID, msg []byte) {
		mu.Lock()
		queue[from] = append(queue[from], bytes.Clone(msg))
		most = max(most, len(queue[from]))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	// The flood: as fast as Send takes it, until Send gives up.
	sent := make(chan int)
	go func() {
		msg := make([]byte, 2000)
		i := 0
		for ; i < 100000; i++ {
			msg[0], msg[1], msg[2] = byte(i), byte(i>>8), byte(i>>16)
			if err := flooder.Send(2, 2, msg); err != nil {
				if !strings.Contains(err.Error(), "window full") {
					t.Errorf("flood message %d: %v", i, err)
				}
				break
			}
		}
		sent <- i
	}()
	// While the victim's handler takes the bystander's messages only
	// (the flooder's queue is full), the bystander gets through.
	go func() {
		for {
			mu.Lock()
			done := !stalled
			queue[3] = queue[3][:0]
			mu.Unlock()
			if done {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range 50 {
		if err := bystander.Send(2, 2, []byte{byte(i)}); err != nil {
			t.Fatalf("bystander's message %d: %v", i, err)
		}
	}
	n := <-sent // the flooder's Send gave up after sendTimeout
	for id, a := range c.agents {
		if got := aliveCount(a); got != 3 {
			t.Errorf("node %d sees %d live members after the flood, want 3", id, got)
		}
	}
	mu.Lock()
	stalled = false
	held := len(queue[1])
	if most > bound {
		t.Errorf("a queue held %d messages, bound %d", most, bound)
	}
	mu.Unlock()
	// The handler catches up: what the flooder's Send took arrives.
	var got int
	waitFor(t, 10*time.Second, "the flood delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range queue[1] {
			if want := got; m[0] != byte(want) || m[1] != byte(want>>8) || m[2] != byte(want>>16) {
				t.Fatalf("flood message %d arrived as %d", want, int(m[0])|int(m[1])<<8|int(m[2])<<16)
			}
			got++
		}
		queue[1] = queue[1][:0]
		return got == n
	})
	d := victim.TransportStats()
	t.Logf("flooder sent %d messages before Send gave up; %d were queued at the victim then; windows closed %d times", n, held, d.Closed)
	if d.Closed == 0 {
		t.Error("the victim's windows never closed")
	}
}

// TestPoll: Agent.Poll is Config.Poll, for goroutines that wait for a
// peer: it reports what the NIC's poll found, and false without one.
func TestPoll(t *testing.T) {
	h := &hub{}
	clock := func() time.Duration { return 0 }
	found := false
	polls := 0
	a, err := New(Config{Link: h.add(t, mac(1)), ID: 1, Key: testKey, Clock: clock,
		Poll: func() bool { polls++; return found }})
	if err != nil {
		t.Fatal(err)
	}
	if a.Poll() {
		t.Error("Poll reported frames the NIC's poll did not find")
	}
	found = true
	if !a.Poll() || polls != 2 {
		t.Errorf("Poll: the NIC's poll ran %d times, want 2, the second finding frames", polls)
	}
	b, err := New(Config{Link: h.add(t, mac(2)), ID: 2, Key: testKey, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if b.Poll() {
		t.Error("Poll without Config.Poll reported frames")
	}
}
