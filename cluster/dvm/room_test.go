// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
)

func TestFillShares(t *testing.T) {
	shares, err := FillShares(10, []int{30, 10, 0})
	if err != nil || shares[0] != 8 || shares[1] != 2 || shares[2] != 0 {
		t.Fatalf("FillShares(10, 30/10/0) = %v, %v", shares[:3], err)
	}
	// Rounding leaves pages over: they go to nodes with room.
	shares, err = FillShares(5, []int{2, 2, 2})
	if err != nil || shares[0]+shares[1]+shares[2] != 5 || shares[0] > 2 || shares[1] > 2 || shares[2] > 2 {
		t.Fatalf("FillShares(5, 2/2/2) = %v, %v", shares[:3], err)
	}
	if _, err := FillShares(7, []int{3, 3}); err == nil {
		t.Fatal("7 pages fit in room for 6")
	}
}

func TestHomesFill(t *testing.T) {
	spec := Spec{ID: 1, Nodes: 3, VCPUs: 3, Pages: 10, Homes: HomesFill, Shares: [memory.MaxNodes]uint32{4, 0, 6}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	home := spec.Home()
	var got []memory.NodeID
	for p := uint64(0); p < 10; p++ {
		got = append(got, home(p))
	}
	if fmt.Sprint(got) != "[0 0 0 0 2 2 2 2 2 2]" {
		t.Fatalf("homes %v", got)
	}
	if h := spec.Homed(); fmt.Sprint(h) != "[4 0 6]" {
		t.Fatalf("Homed = %v", h)
	}
	if HomesFill.String() != "fill" {
		t.Fatalf("name %q", HomesFill)
	}
	if p, err := ParseHomePolicy("fill"); err != nil || p != HomesFill {
		t.Fatalf("parse fill: %v %v", p, err)
	}
	bad := spec
	bad.Shares[2] = 5 // sums to 9
	if bad.Validate() == nil {
		t.Error("shares that do not sum to the pages validated")
	}
	bad = spec
	bad.Shares[3] = 1 // a node beyond the VM's
	if bad.Validate() == nil {
		t.Error("a share for node 3 of 3 validated")
	}
	bad = Spec{ID: 1, Nodes: 2, VCPUs: 1, Pages: 4, Homes: HomesStriped, Shares: [memory.MaxNodes]uint32{2, 2}}
	if bad.Validate() == nil {
		t.Error("shares with homes=striped validated")
	}
	// The existing policies are unchanged.
	striped := Spec{Nodes: 3, Pages: 10}
	if h := striped.Homed(); fmt.Sprint(h) != "[4 3 3]" || striped.Home()(5) != 2 {
		t.Errorf("striped: Homed %v, page 5 on %d", h, striped.Home()(5))
	}
}

// TestControlCarriesShares: a Create of a homes=fill VM carries the
// shares after the fixed fields, then every Create the nodes' cores;
// other messages stay ControlSize bytes, and a Create whose length does
// not match its policy is refused.
func TestControlCarriesShares(t *testing.T) {
	spec := Spec{ID: 9, Nodes: 3, VCPUs: 3, Pages: 10, Homes: HomesFill, Shares: [memory.MaxNodes]uint32{4, 0, 6}, Cores: [memory.MaxNodes]uint8{2, 1, 8}}
	in := Control{Op: OpCreate, Spec: spec}
	var b [MaxControlSize]byte
	n := in.MarshalTo(b[:])
	if n != ControlSize+12+3 {
		t.Fatalf("fill Create of %d bytes, want %d", n, ControlSize+12+3)
	}
	var out Control
	if err := out.Unmarshal(b[:n]); err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	if err := out.Unmarshal(b[:ControlSize]); err == nil {
		t.Error("a fill Create without its shares decoded")
	}
	binary.LittleEndian.PutUint32(b[ControlSize+4:], 1) // 11 pages
	if err := out.Unmarshal(b[:n]); err == nil {
		t.Error("shares that do not sum to the pages decoded")
	}
	start := Control{Op: OpStart, Spec: spec}
	if n := start.MarshalTo(b[:]); n != ControlSize {
		t.Errorf("Start of a fill VM is %d bytes", n)
	}
	striped := Control{Op: OpCreate, Spec: Spec{ID: 9, Nodes: 3, VCPUs: 3, Pages: 10}}
	if n := striped.MarshalTo(b[:]); n != ControlSize+3 {
		t.Errorf("striped Create is %d bytes, want %d (no shares, the cores)", n, ControlSize+3)
	}
	room := Control{Op: OpRoomReply, Spec: Spec{ID: 9}, Arg: 1234}
	n = room.MarshalTo(b[:])
	if err := out.Unmarshal(b[:n]); err != nil || out != room || out.Op.String() != "RoomReply" {
		t.Errorf("room reply round trip: %+v %v", out, err)
	}
}

// planeNet joins control planes: a message is received on a goroutine
// per destination, in order, as the cluster transport does.
type planeNet struct {
	planes []*Plane
	pipes  []chan [2][]byte // per destination: {from}, msg
	wg     sync.WaitGroup
	deaf   map[memory.NodeID]bool
}

func newPlanes(t *testing.T, rooms []int, deaf ...memory.NodeID) (*planeNet, *syncBuffer) {
	hosts := make([]NodeRoom, len(rooms))
	for i, r := range rooms {
		hosts[i] = NodeRoom{Pages: r, Virt: VirtVTx, Cores: i + 1}
	}
	return newPlanesOf(t, hosts, deaf...)
}

// newPlanesOf joins planes whose hosts answer room queries with hosts.
func newPlanesOf(t *testing.T, hosts []NodeRoom, deaf ...memory.NodeID) (*planeNet, *syncBuffer) {
	n := &planeNet{deaf: map[memory.NodeID]bool{}}
	for _, d := range deaf {
		n.deaf[d] = true
	}
	notices := &syncBuffer{}
	for i, h := range hosts {
		self := memory.NodeID(i)
		n.planes = append(n.planes, NewPlane(PlaneConfig{Host: &fakeHost{room: h.Pages, virt: h.Virt, cores: h.Cores}, Notices: notices,
			Send: func(to memory.NodeID, msg []byte) error {
				if int(to) >= len(n.pipes) {
					return errors.New("no such node")
				}
				n.pipes[to] <- [2][]byte{{byte(self)}, append([]byte(nil), msg...)}
				return nil
			},
			ClusterID: func(n memory.NodeID) uint32 { return uint32(n) + 1 }}))
		n.pipes = append(n.pipes, make(chan [2][]byte, 16))
	}
	for i, c := range n.pipes {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for m := range c {
				if !n.deaf[memory.NodeID(i)] {
					n.planes[i].Receive(memory.NodeID(m[0][0]), m[1])
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range n.pipes {
			close(c)
		}
		n.wg.Wait()
	})
	return n, notices
}

// TestRoomsAndRefusal: the node that starts a VM learns every node's
// room over the control plane, sizes homes=fill by it, and refuses what
// the cluster cannot hold with the figures.
func TestRoomsAndRefusal(t *testing.T) {
	const gib = 1 << 18 // pages
	n, _ := newPlanes(t, []int{gib * 19 / 10, gib * 19 / 10})
	spec := Spec{ID: 5, Nodes: 2, VCPUs: 2, Pages: gib * 5 / 2, Homes: HomesFill} // 2.5 GiB
	answers, err := n.planes[0].Rooms(0, spec, time.Second)
	if err != nil || fmt.Sprint(answers) != fmt.Sprint([]NodeRoom{{gib * 19 / 10, VirtVTx, 1}, {gib * 19 / 10, VirtVTx, 2}}) {
		t.Fatalf("Rooms = %v, %v", answers, err)
	}
	rooms := roomPages(answers)
	names := func(n memory.NodeID) uint32 { return uint32(n) + 1 }
	fill := spec
	// The operator's request is checked before Fit sizes the shares, the
	// whole Spec after (the image once refused every homes=fill VM).
	if err := fill.ValidateRequest(); err != nil {
		t.Fatalf("homes=fill request before Fit: %v", err)
	}
	if err := fill.Validate(); err == nil {
		t.Fatal("a homes=fill Spec with unsized shares validated")
	}
	if err := Fit(&fill, answers, names); err != nil {
		t.Fatalf("2.5 GiB over two nodes with room for 1.9 GiB each: %v", err)
	}
	if fill.Shares[0] != gib*5/4 || fill.Shares[1] != gib*5/4 || fill.Validate() != nil {
		t.Fatalf("shares %v", fill.Shares[:2])
	}
	// Each node told its cores with its room (node 1 itself, node 2 in
	// its reply), and the Spec carries them to every node.
	if fill.Cores[0] != 1 || fill.Cores[1] != 2 || fill.Cores[2] != 0 {
		t.Fatalf("cores %v, want each node's", fill.Cores[:3])
	}
	node0 := spec
	node0.Homes = HomesDeviceNode
	err = FitHomes(&node0, rooms, names)
	var re *RoomError
	if !errors.As(err, &re) {
		t.Fatalf("2.5 GiB homed on node 0: %v", err)
	}
	want := "dvm: the VM's 2.5 GiB (655360 pages) do not fit in the cluster: with homes=node0 node 1 would home 2.5 GiB and has room for 1.8 GiB (node 1 1.8 GiB, node 2 1.8 GiB, 3.7 GiB in all): use homes=fill"
	if err.Error() != want {
		t.Errorf("refusal:\n%s\nwant\n%s", err, want)
	}
	big := spec
	big.Pages = 4 * gib
	err = FitHomes(&big, rooms, names)
	want = "dvm: the VM's 4 GiB (1048576 pages) do not fit in the cluster: its 2 nodes can home 3.7 GiB in all (node 1 1.8 GiB, node 2 1.8 GiB), each keeping 16 MiB for copies of pages it does not home: give the VM less memory or more nodes"
	if err == nil || err.Error() != want {
		t.Errorf("refusal:\n%v\nwant\n%s", err, want)
	}
	striped := spec
	striped.Homes = HomesStriped
	if err := FitHomes(&striped, rooms, names); err != nil {
		t.Errorf("striped 1.25 GiB per node: %v", err)
	}
}

// TestRoomsTimeout: a node that does not answer is named.
func TestRoomsTimeout(t *testing.T) {
	n, _ := newPlanes(t, []int{10, 10, 10}, 2)
	_, err := n.planes[0].Rooms(0, Spec{ID: 5, Nodes: 3, VCPUs: 1, Pages: 4}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "node 3 did not say") {
		t.Fatalf("Rooms with node 3 deaf: %v", err)
	}
}

// TestRuntimeBeyondOneNode: three nodes, each allowed 4 (or 1) copy
// frames, share a guest of 48 pages homed by homes=fill; every node
// writes and then reads all of it, concurrently, from several
// goroutines. Faults on pages homed elsewhere evict copies (writing back
// the Modified ones), faults wait for frames when every copy awaits an
// answer, and no node ever holds more than its homed pages and its copy
// frames.
func TestRuntimeBeyondOneNode(t *testing.T) {
	for _, budget := range []int{4, 1} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) { runBeyondOneNode(t, budget) })
	}
}

func runBeyondOneNode(t *testing.T, budget int) {
	const pages, nodes = 48, 3
	c := newCluster(t, nodes, nodes, pages, func(cfg *Config) {
		cfg.Spec.Homes, cfg.Spec.Shares = HomesFill, [memory.MaxNodes]uint32{20, 16, 12}
		cfg.CopyFrames = budget
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for n := range nodes {
		for g := range 3 { // goroutines per node: faults race for frames
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := g; p < pages; p += 3 {
					if p%nodes != n {
						continue
					}
					if err := c.rts[n].Write(uint64(p)*memory.PageSize+8, []byte(fmt.Sprintf("page %2d by %d", p, n))); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for n := range nodes {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make([]byte, 12)
				for p := g; p < pages; p += 3 {
					if err := c.rts[n].Read(uint64(p)*memory.PageSize+8, got); err != nil {
						errs <- err
						return
					}
					if want := fmt.Sprintf("page %2d by %d", p, p%nodes); string(got) != want {
						errs <- fmt.Errorf("node %d read %q, want %q", n, got, want)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total memory.Stats
	for n, rt := range c.rts {
		s := rt.Stats().Memory
		total.Reclaims += s.Reclaims
		total.Writebacks += s.Writebacks
		total.NoRoom += s.NoRoom
		homed := []int{20, 16, 12}[n]
		c.frames[n].mu.Lock()
		out := c.frames[n].out
		c.frames[n].mu.Unlock()
		if out > homed+budget {
			t.Errorf("node %d took %d frames: %d homed and %d for copies at most", n, out, homed, budget)
		}
	}
	if total.Reclaims == 0 || total.Writebacks == 0 {
		t.Fatalf("nothing reclaimed: %+v", total)
	}
	t.Logf("reclaims %d, writebacks %d, faults that waited for a frame %d", total.Reclaims, total.Writebacks, total.NoRoom)
}
