// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// stopBound is how long a node may take to stop once another node of its
// VM stopped: a few message deliveries, with room for a loaded machine.
const stopBound = 2 * time.Second

// cutNet joins the control planes of a test cluster as the cluster
// transport does: one goroutine per ordered pair delivers in order to
// Plane.Receive. A cut pair drops what it would carry, both ways, as a
// cut link does for a VM's messages until the nodes give up on each
// other.
type cutNet struct {
	planes []*Plane
	pipes  map[[2]memory.NodeID]chan []byte
	wg     sync.WaitGroup

	mu  sync.Mutex
	cut map[[2]memory.NodeID]bool // guarded by mu, both orders
}

// setCut cuts (or heals) the link between nodes a and b.
func (n *cutNet) setCut(a, b memory.NodeID, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]memory.NodeID{a, b}] = cut
	n.cut[[2]memory.NodeID{b, a}] = cut
}

// send carries msg from node from to node to, unless their link is cut.
func (n *cutNet) send(from, to memory.NodeID, msg []byte) error {
	n.mu.Lock()
	cut := n.cut[[2]memory.NodeID{from, to}]
	n.mu.Unlock()
	if cut {
		return nil
	}
	c, ok := n.pipes[[2]memory.NodeID{from, to}]
	if !ok {
		return errors.New("no such peer")
	}
	c <- append([]byte(nil), msg...)
	return nil
}

// netPort is a node's Transport on a cutNet.
type netPort struct {
	n    *cutNet
	self memory.NodeID
}

func (p netPort) Send(to memory.NodeID, msg []byte) error { return p.n.send(p.self, to, msg) }

// runShare is a Share over a real Runtime: End closes the runtime, as
// the hypervisor's share does, and records why.
type runShare struct {
	rt    *Runtime
	ended chan string // gets why, once
	once  sync.Once
}

func (s *runShare) Spec() Spec                                  { return s.rt.Spec() }
func (s *runShare) Runtime() *Runtime                           { return s.rt }
func (s *runShare) Start()                                      {}
func (s *runShare) Migrate(migrate.VCPUID, memory.NodeID) error { return nil }
func (s *runShare) Done(memory.NodeID, bool)                    {}
func (s *runShare) Evacuate()                                   {}
func (s *runShare) TakeHomes(memory.NodeID)                     {}
func (s *runShare) Startup(*Handle, migrate.VCPUID, uint8)      {}
func (s *runShare) Clock(uint64)                                {}
func (s *runShare) End(why string) {
	s.once.Do(func() {
		s.rt.Close()
		s.ended <- why
	})
}

// planeCluster is a VM of id 7 over nodes with a control plane each,
// every share installed; node i's cluster id is i+1.
type planeCluster struct {
	net     *cutNet
	planes  []*Plane
	shares  []*runShare
	notices []*syncBuffer
}

func newPlaneCluster(t *testing.T, nodes, vcpus, pages int) *planeCluster {
	t.Helper()
	n := &cutNet{pipes: map[[2]memory.NodeID]chan []byte{}, cut: map[[2]memory.NodeID]bool{}}
	c := &planeCluster{net: n}
	spec := Spec{ID: 7, Nodes: nodes, VCPUs: vcpus, Pages: pages}
	for i := range nodes {
		self := memory.NodeID(i)
		notices := &syncBuffer{}
		p := NewPlane(PlaneConfig{
			Host:      &fakeHost{created: make(chan *fakeShare, 1)},
			Send:      func(to memory.NodeID, msg []byte) error { return n.send(self, to, msg) },
			ClusterID: func(n memory.NodeID) uint32 { return uint32(n) + 1 },
			Notices:   notices,
		})
		rt, err := New(Config{Spec: spec, Self: self, Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: netPort{n, self}})
		if err != nil {
			t.Fatal(err)
		}
		go rt.Run()
		s := &runShare{rt: rt, ended: make(chan string, 1)}
		p.Install(s, "")
		c.planes, c.shares, c.notices = append(c.planes, p), append(c.shares, s), append(c.notices, notices)
	}
	n.planes = c.planes
	for i := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			ch := make(chan []byte, 1024)
			n.pipes[[2]memory.NodeID{memory.NodeID(i), memory.NodeID(j)}] = ch
			dst, src := c.planes[j], memory.NodeID(i)
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				for m := range ch {
					dst.Receive(src, m)
				}
			}()
		}
	}
	t.Cleanup(func() {
		for _, s := range c.shares {
			s.End("test over")
		}
		for _, ch := range n.pipes {
			close(ch)
		}
		n.wg.Wait()
	})
	return c
}

// lose is what a node's failure detector does when node lost has been
// silent too long (the hypervisor's watch): the plane stops the share
// and tells the others, then the share ends.
func (c *planeCluster) lose(t *testing.T, node, lost memory.NodeID) {
	t.Helper()
	s := c.shares[node]
	e := c.planes[node].NodeLost(s, lost, "silent for 1.5s")
	if e == nil {
		t.Fatalf("node %d: NodeLost(%d) did not count", node, lost)
	}
	s.End(e.Describe(func(n memory.NodeID) uint32 { return uint32(n) + 1 }))
}

// waitErr waits up to stopBound for errs and returns what came.
func waitErr(t *testing.T, errs <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(stopBound):
		t.Fatalf("%s still waits %v after the VM stopped on the other nodes", what, stopBound)
	}
	return nil
}

// TestPartialCutStopsThirdNode: the link between nodes 0 and 1 of three
// is cut while node 2 waits for a page that node 0 homes and node 1 holds
// Modified (node 0 must fetch it across the cut). Nodes 0 and 1 declare
// each other lost and stop their shares; node 2, whose links are fine,
// must stop too, within a bound, saying which node was lost and who said
// so. Before OpStop carried a loss, node 2 waited for ever (issue 16):
// the stopped shares dropped its requests while their transports kept
// answering its heartbeats.
func TestPartialCutStopsThirdNode(t *testing.T) {
	c := newPlaneCluster(t, 3, 3, 30)
	const page0 = 0 // striped: homed on node 0
	if err := c.shares[1].rt.Write(page0, []byte{0xAB}); err != nil {
		t.Fatal(err)
	}
	c.net.setCut(0, 1, true)
	errs := make(chan error, 1)
	go func() { errs <- c.shares[2].rt.Read(page0, make([]byte, 1)) }()
	select {
	case err := <-errs:
		t.Fatalf("node 2's read across the cut returned %v before anything was lost", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.lose(t, 0, 1)
	c.lose(t, 1, 0)

	err := waitErr(t, errs, "node 2's read")
	var se *StopError
	if !errors.As(err, &se) || se.Lost > 1 || se.By > 1 || se.Lost == se.By || !errors.Is(err, ErrStopped) {
		t.Fatalf("node 2's read ended with %v, want a StopError naming node 0 or 1 lost", err)
	}
	select {
	case why := <-c.shares[2].ended:
		if !strings.HasPrefix(why, "stopped: node ") || !strings.Contains(why, " lost (reported by node ") {
			t.Errorf("node 2's share ended with %q", why)
		}
	case <-time.After(stopBound):
		t.Fatal("node 2's share was not ended")
	}
	waitFor(t, c.notices[2], "dvm 7: stopped: node ")
	if c.planes[2].Current() != nil {
		t.Error("node 2 still has the stopped VM as its share")
	}
}

// TestStoppedShareAnswers: node 0 finds node 1 lost while its link to
// node 2 is down too, so its OpStop never reaches node 2. Once that link
// is back, node 2's next request to node 0 is answered with OpStop
// instead of being dropped, and node 2 stops at once.
func TestStoppedShareAnswers(t *testing.T) {
	c := newPlaneCluster(t, 3, 3, 30)
	c.net.setCut(0, 1, true)
	c.net.setCut(0, 2, true)
	c.lose(t, 0, 1)
	c.net.setCut(0, 2, false)

	errs := make(chan error, 1)
	go func() { errs <- c.shares[2].rt.Read(0, make([]byte, 1)) }() // homed on node 0
	err := waitErr(t, errs, "node 2's read of a page the stopped node homes")
	want := "stopped: node 2 lost (reported by node 1)"
	var se *StopError
	if !errors.As(err, &se) || se.Describe(func(n memory.NodeID) uint32 { return uint32(n) + 1 }) != want {
		t.Fatalf("node 2's read ended with %v, want %q", err, want)
	}
	waitFor(t, c.notices[2], "dvm 7: "+want)
}

// TestStaleStopSparesNewVM: a stop for an older VM (a node's loss report,
// or its answer to a message of that VM, still in flight when a new VM
// started) does not touch the VM that replaced it, and the newer VM's
// messages reach it although the node told others the old one stopped.
func TestStaleStopSparesNewVM(t *testing.T) {
	c := newPlaneCluster(t, 2, 2, 4)
	old := c.planes[1].Take() // the operator stops VM 7 on node 1 ...
	old.End("stopped")
	spec := Spec{ID: 9, Nodes: 2, VCPUs: 2, Pages: 4}
	rt, err := New(Config{Spec: spec, Self: 1, Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: netPort{c.net, 1}})
	if err != nil {
		t.Fatal(err)
	}
	go rt.Run()
	s := &runShare{rt: rt, ended: make(chan string, 1)}
	c.planes[1].Install(s, "replaced") // ... and starts VM 9
	defer s.End("test over")

	// Node 0, still on VM 7, reports a loss and sends a request of VM 7.
	c.planes[1].Receive(0, control(Control{Op: OpStop, Spec: Spec{ID: 7}, Arg: uint32(StopNodeLost), Node: 0}))
	c.planes[1].Receive(0, enveloped(7, []byte{EnvelopeMagic}))
	time.Sleep(50 * time.Millisecond)
	if err := rt.Err(); err != nil {
		t.Fatalf("VM 9 stopped on a stop for VM 7: %v", err)
	}
	if c.planes[1].Current() != Share(s) {
		t.Fatal("VM 9 is no longer node 1's share")
	}
	// Node 1 told node 0 that VM 7 stopped here: node 0 stops VM 7.
	select {
	case why := <-c.shares[0].ended:
		if why != "stopped by node 2" {
			t.Errorf("node 0's VM 7 ended with %q, want %q", why, "stopped by node 2")
		}
	case <-time.After(stopBound):
		t.Fatal("node 0 was not told VM 7 stopped on node 1")
	}
	// The old VM's failure detector, firing late, neither counts nor
	// tells anyone.
	if e := c.planes[1].NodeLost(old, 0, "late"); e != nil {
		t.Errorf("a loss counted for the ended VM 7: %v", e)
	}
	if strings.Contains(c.notices[1].String(), "dvm 7: stopped") {
		t.Errorf("node 1 took a stop of VM 7 for its share: %q", c.notices[1].String())
	}
}

// TestUserStopRacesLoss: the operator stops the VM on node 0 while node
// 1 finds node 0 lost: node 2 stops once, for whichever it heard first,
// and later stops are ignored.
func TestUserStopRacesLoss(t *testing.T) {
	c := newPlaneCluster(t, 3, 3, 30)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s := c.planes[0].Take()
		for to := memory.NodeID(1); to < 3; to++ {
			c.planes[0].send(to, &Control{Op: OpStop, Spec: Spec{ID: 7}})
		}
		s.End("stopped")
	}()
	go func() {
		defer wg.Done()
		if e := c.planes[1].NodeLost(c.shares[1], 0, "silent"); e != nil {
			c.shares[1].End(e.Error())
		}
	}()
	wg.Wait()
	select {
	case why := <-c.shares[2].ended:
		if why != "stopped by node 1" && why != "stopped: node 1 lost (reported by node 2)" {
			t.Errorf("node 2 ended with %q", why)
		}
	case <-time.After(stopBound):
		t.Fatal("node 2 did not stop")
	}
	time.Sleep(20 * time.Millisecond)
	if n := strings.Count(c.notices[2].String(), "dvm 7: stopped"); n != 1 {
		t.Errorf("node 2 noted %d stops: %q", n, c.notices[2].String())
	}
}
