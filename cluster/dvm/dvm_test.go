// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// perms records the access the engine gives each page, and checks that a
// readable page always comes with a frame.
type perms struct {
	mu  sync.Mutex
	acc map[uint64]memory.Access
	fr  map[uint64]*memory.Page // the frame mapped, while one is
	bad []uint64
}

func (p *perms) SetAccess(gpa uint64, frame *memory.Page, a memory.Access) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a != memory.AccessNone && frame == nil {
		p.bad = append(p.bad, gpa)
	}
	p.acc[gpa] = a
	if p.fr == nil {
		p.fr = map[uint64]*memory.Page{}
	}
	p.fr[gpa] = frame
}

// countingFrames is a FrameSource that counts frames out.
type countingFrames struct {
	mu  sync.Mutex
	out int
}

func (c *countingFrames) AllocPage() (*memory.Page, error) {
	c.mu.Lock()
	c.out++
	c.mu.Unlock()
	return new(memory.Page), nil
}

func (c *countingFrames) FreePage(*memory.Page) {
	c.mu.Lock()
	c.out--
	c.mu.Unlock()
}

// memNet is an in-memory transport: one FIFO goroutine per ordered pair
// of nodes, as the cluster transport's channels behave.
type memNet struct {
	nodes []*Runtime
	pipes map[[2]memory.NodeID]chan []byte
	wg    sync.WaitGroup
	// delay is each message's time on the wire, set before any is sent.
	delay time.Duration
	// stall, if set (before any message is sent), is called before
	// each delivery, and the pipe waits for it to return.
	stall func(from, to memory.NodeID)
}

type memPort struct {
	n    *memNet
	self memory.NodeID
}

func (p memPort) Send(to memory.NodeID, msg []byte) error {
	c, ok := p.n.pipes[[2]memory.NodeID{p.self, to}]
	if !ok {
		return errors.New("no such peer")
	}
	c <- append([]byte(nil), msg...)
	return nil
}

type testCluster struct {
	net    *memNet
	rts    []*Runtime
	perms  []*perms
	frames []*countingFrames
	arrive chan arrival
	device chan DeviceWrite
	irq    chan arrival // interrupts made pending by a message (rip unused)
}

type arrival struct {
	node memory.NodeID
	v    migrate.VCPUID
	rip  uint64
}

func newCluster(t testing.TB, nodes, vcpus, pages int, mods ...func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{net: &memNet{pipes: map[[2]memory.NodeID]chan []byte{}}, arrive: make(chan arrival, 8), device: make(chan DeviceWrite, 8), irq: make(chan arrival, 8)}
	spec := Spec{ID: 7, Nodes: nodes, VCPUs: vcpus, Pages: pages}
	for i := 0; i < nodes; i++ {
		self := memory.NodeID(i)
		p := &perms{acc: map[uint64]memory.Access{}}
		f := &countingFrames{}
		cfg := Config{
			Spec: spec, Self: self, Perm: p, Frames: f, Transport: memPort{c.net, self},
			OnArrive:    func(v migrate.VCPUID, st *vcpu.State) { c.arrive <- arrival{self, v, st.RIP} },
			OnDevice:    func(_ *Handle, d DeviceWrite) { c.device <- d },
			OnInterrupt: func(v migrate.VCPUID) { c.irq <- arrival{node: self, v: v} },
			// The device node answers with the port and which node it is.
			OnDeviceRead: func(d DeviceRead) uint64 { return d.Addr<<8 | uint64(self) },
		}
		for _, m := range mods {
			m(&cfg)
		}
		rt, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.rts = append(c.rts, rt)
		c.perms = append(c.perms, p)
		c.frames = append(c.frames, f)
		go rt.Run()
	}
	for i := range c.rts {
		for j := range c.rts {
			if i == j {
				continue
			}
			ch := make(chan []byte, 1024)
			c.net.pipes[[2]memory.NodeID{memory.NodeID(i), memory.NodeID(j)}] = ch
			dst, src := c.rts[j], memory.NodeID(i)
			c.net.wg.Add(1)
			go func() {
				defer c.net.wg.Done()
				for m := range ch {
					if c.net.delay > 0 {
						time.Sleep(c.net.delay)
					}
					if c.net.stall != nil {
						c.net.stall(src, dst.cfg.Self)
					}
					dst.Deliver(src, m)
				}
			}()
		}
	}
	t.Cleanup(func() {
		for _, ch := range c.net.pipes {
			close(ch)
		}
		c.net.wg.Wait()
		for i, rt := range c.rts {
			rt.Close()
			if out := c.frames[i].out; out != 0 {
				t.Errorf("node %d: %d frames not returned after Close", i, out)
			}
			if len(c.perms[i].bad) > 0 {
				t.Errorf("node %d: readable pages without a frame: %#x", i, c.perms[i].bad)
			}
		}
	})
	return c
}

func TestWriteOnOneNodeReadOnAnother(t *testing.T) {
	c := newCluster(t, 2, 2, 16)
	// Page 1 is homed at node 1, page 2 at node 0: write each from the
	// node that is not its home, read it back from the other.
	for _, tc := range []struct {
		gpa         uint64
		writer, rdr int
	}{{0x1010, 0, 1}, {0x2ff0, 1, 0}, {0x3ffe, 0, 1}} {
		want := []byte("big-iron page " + time.Now().Format("150405.000000"))
		if err := c.rts[tc.writer].Write(tc.gpa, want); err != nil {
			t.Fatalf("write %#x on node %d: %v", tc.gpa, tc.writer, err)
		}
		got := make([]byte, len(want))
		if err := c.rts[tc.rdr].Read(tc.gpa, got); err != nil {
			t.Fatalf("read %#x on node %d: %v", tc.gpa, tc.rdr, err)
		}
		if string(got) != string(want) {
			t.Errorf("gpa %#x written on node %d as %q, read on node %d as %q", tc.gpa, tc.writer, want, tc.rdr, got)
		}
	}
	s0, s1 := c.rts[0].Stats(), c.rts[1].Stats()
	if s0.Memory.RemoteFaults == 0 || s1.Memory.RemoteFaults == 0 || s0.RemoteWaits == 0 {
		t.Errorf("expected remote faults on both nodes: %+v / %+v", s0.Memory, s1.Memory)
	}
	var bucketed uint64
	for _, n := range s0.Waits {
		bucketed += n
	}
	if bucketed != s0.RemoteWaits {
		t.Errorf("the wait histogram holds %d waits, RemoteWaits %d", bucketed, s0.RemoteWaits)
	}
}

func TestPageMap(t *testing.T) {
	c := newCluster(t, 2, 2, 16)
	// Node 1 writes page 3 (homed on node 1) and reads page 4 (homed on
	// node 0).
	if err := c.rts[1].Write(3*memory.PageSize, []byte{1}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if err := c.rts[1].Read(4*memory.PageSize, b[:]); err != nil {
		t.Fatal(err)
	}
	var cells [16]memory.State
	per, n := c.rts[1].PageMap(cells[:])
	if per != 1 || n != 16 {
		t.Fatalf("16 pages in 16 cells: %d per cell, %d cells", per, n)
	}
	// Node 1 holds its own pages (odd) from the start, and page 4 now.
	if cells[3] != memory.Modified || cells[4] != memory.Shared || cells[5] != memory.Shared || cells[6] != memory.Invalid {
		t.Fatalf("cells 3-6: %v, want M S S I", cells[3:7])
	}
	per, n = c.rts[1].PageMap(cells[:5])
	if per != 4 || n != 4 || cells[0] != memory.Modified || cells[1] != memory.Shared || cells[2] != memory.Shared {
		t.Fatalf("16 pages in 5 cells: %d per cell, %d cells, %v", per, n, cells[:n])
	}
}

func TestConcurrentIncrementsAreExact(t *testing.T) {
	c := newCluster(t, 3, 3, 8)
	const per, workers = 200, 2
	const gpa = 0x1008 // homed at node 1
	var wg sync.WaitGroup
	errs := make(chan error, len(c.rts)*workers)
	for _, rt := range c.rts {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					err := rt.Access(gpa, true, func(p *memory.Page) {
						v := binary.LittleEndian.Uint64(p[gpa%memory.PageSize:])
						binary.LittleEndian.PutUint64(p[gpa%memory.PageSize:], v+1)
					})
					if err != nil {
						errs <- err
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
	var b [8]byte
	if err := c.rts[2].Read(gpa, b[:]); err != nil {
		t.Fatal(err)
	}
	if got, want := binary.LittleEndian.Uint64(b[:]), uint64(len(c.rts)*workers*per); got != want {
		t.Fatalf("counter = %d, want %d (a lost write)", got, want)
	}
}

func TestMigrationCarriesTheState(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	var st vcpu.State
	st.Reset(0, true)
	st.RIP = 0x8123
	rt := c.rts[0]
	if !rt.Hosts(0) || rt.Hosts(1) {
		t.Fatal("vCPU 0 should start on node 0 and vCPU 1 on node 1")
	}
	rt.lock()
	err := rt.departLocked(0, 1, &st)
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-c.arrive:
		if a.node != 1 || a.v != 0 || a.rip != 0x8123 {
			t.Fatalf("arrival %+v, want vCPU 0 on node 1 at RIP 0x8123", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("vCPU did not arrive")
	}
	if rt.Hosts(0) || !c.rts[1].Hosts(0) || rt.Location(0) != 1 {
		t.Fatal("location tables not updated")
	}
	rt.lock()
	err = rt.departLocked(0, 1, &st)
	rt.unlock()
	if err == nil {
		t.Fatal("a node sent away a vCPU it does not host")
	}
}

// departAndWait sends vCPU v, hosted at node src whose lock the caller
// holds (and which departAndWait releases), to node dst, and waits for it
// to arrive there.
func (c *testCluster) departAndWait(t *testing.T, v migrate.VCPUID, src, dst memory.NodeID) {
	t.Helper()
	var st vcpu.State
	st.Reset(uint32(v), false)
	err := c.rts[src].departLocked(v, dst, &st)
	c.rts[src].unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-c.arrive:
		if a.node != dst || a.v != v {
			t.Fatalf("arrival %+v, want vCPU %d on node %d", a, v, dst)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("vCPU %d did not arrive at node %d", v, dst)
	}
}

// waitIRQ waits for an interrupt or NMI to become pending on vCPU v at
// node n.
func (c *testCluster) waitIRQ(t *testing.T, n memory.NodeID, v migrate.VCPUID) {
	t.Helper()
	select {
	case a := <-c.irq:
		if a.node != n || a.v != v {
			t.Fatalf("event pending on vCPU %d at node %d, want vCPU %d at node %d", a.v, a.node, v, n)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing reached vCPU %d at node %d", v, n)
	}
}

// takeAfter waits for an interrupt to become pending on vCPU v at node n
// and takes it.
func (c *testCluster) takeAfter(t *testing.T, n memory.NodeID, v migrate.VCPUID) uint8 {
	t.Helper()
	c.waitIRQ(t, n, v)
	rt := c.rts[n]
	rt.lock()
	defer rt.unlock()
	vec, ok := rt.takeInterruptLocked(v)
	if !ok {
		t.Fatalf("node %d: vCPU %d has nothing pending", n, v)
	}
	if rt.interruptPendingLocked(v) {
		t.Fatalf("node %d: vCPU %d still has an interrupt pending after the only one was taken", n, v)
	}
	return vec
}

func TestInterruptsReachVCPUsWhereverTheyRun(t *testing.T) {
	c := newCluster(t, 3, 3, 4)
	// vCPU 0 (node 0) interrupts vCPU 1 (node 1).
	rt := c.rts[0]
	rt.lock()
	err := rt.interruptLocked(1, 0x41)
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	if vec := c.takeAfter(t, 1, 1); vec != 0x41 {
		t.Fatalf("vCPU 1 got vector %#x, want 0x41", vec)
	}
	// A local interrupt is pending at once, with no message.
	rt.lock()
	if err := rt.interruptLocked(0, 0x30); err != nil || !rt.interruptPendingLocked(0) {
		t.Fatalf("local interrupt: %v, pending %v", err, rt.interruptPendingLocked(0))
	}
	if vec, ok := rt.takeInterruptLocked(0); !ok || vec != 0x30 {
		t.Fatalf("local interrupt taken as %#x %v", vec, ok)
	}
	// Illegal vectors are refused and do not stop the VM.
	if err := rt.interruptLocked(1, 3); err == nil {
		t.Fatal("vector 3 was sent")
	}
	rt.unlock()
	if err := rt.Err(); err != nil {
		t.Fatalf("an illegal vector stopped the VM: %v", err)
	}
	// vCPU 1 moves to node 2 with an interrupt pending; node 0 still
	// believes it is on node 1, whose forward finds it.
	r1 := c.rts[1]
	r1.lock()
	if err := r1.interruptLocked(1, 0x50); err != nil {
		t.Fatal(err)
	}
	c.departAndWait(t, 1, 1, 2)
	r2 := c.rts[2]
	r2.lock()
	vec, ok := r2.takeInterruptLocked(1)
	r2.unlock()
	if !ok || vec != 0x50 {
		t.Fatalf("the pending interrupt did not travel with vCPU 1: %#x %v", vec, ok)
	}
	rt.lock()
	err = rt.interruptLocked(1, 0x42)
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	if vec := c.takeAfter(t, 2, 1); vec != 0x42 {
		t.Fatalf("vCPU 1 got vector %#x after moving, want 0x42", vec)
	}
	if st := c.rts[1].Stats().Migration; st.Forwarded != 1 {
		t.Errorf("node 1 forwarded %d interrupts, want 1", st.Forwarded)
	}
}

// TestNMIsReachVCPUsWhereverTheyRun sends NMIs across nodes, to a vCPU
// here, and to one that moved with NMIs pending.
func TestNMIsReachVCPUsWhereverTheyRun(t *testing.T) {
	c := newCluster(t, 3, 3, 4)
	rt, r1, r2 := c.rts[0], c.rts[1], c.rts[2]
	rt.lock()
	err := rt.nmiLocked(1) // vCPU 1 runs on node 1
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	c.waitIRQ(t, 1, 1)
	r1.lock()
	n, irq := r1.takeNMIsLocked(1), r1.interruptPendingLocked(1)
	r1.unlock()
	if n != 1 || irq {
		t.Fatalf("vCPU 1 has %d NMIs and interrupt pending %v, want 1 NMI and no interrupt", n, irq)
	}
	// Local: pending at once; a third one is lost, as on the processor.
	rt.lock()
	for i := 0; i < 3; i++ {
		if err := rt.nmiLocked(0); err != nil {
			t.Fatal(err)
		}
	}
	if n := rt.takeNMIsLocked(0); n != migrate.MaxNMIs {
		t.Fatalf("three local NMIs left %d pending, want %d", n, migrate.MaxNMIs)
	}
	rt.unlock()
	// vCPU 1 moves to node 2 with an NMI pending, which goes with it; the
	// next NMI from node 0 is forwarded by node 1.
	r1.lock()
	if err := r1.nmiLocked(1); err != nil {
		t.Fatal(err)
	}
	c.departAndWait(t, 1, 1, 2)
	rt.lock()
	err = rt.nmiLocked(1)
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	c.waitIRQ(t, 2, 1)
	r2.lock()
	n = r2.takeNMIsLocked(1)
	r2.unlock()
	if n != 2 {
		t.Fatalf("vCPU 1 has %d NMIs on node 2, want the one that travelled and the one forwarded", n)
	}
}

func TestDeviceWritesReachTheDeviceNode(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	rt := c.rts[1]
	rt.lock()
	err := rt.forwardLocked(DeviceWrite{VCPU: 1, MMIO: true, Addr: 0xD0000050, Size: 8, Value: 0xfeedf00d12345678})
	rt.unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c.device:
		if !d.MMIO || d.Addr != 0xD0000050 || d.Value != 0xfeedf00d12345678 || d.VCPU != 1 || d.VM != 7 || d.Size != 8 {
			t.Fatalf("device write %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("device write not delivered")
	}
}

func TestDeviceReadsReachTheDeviceNode(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	for _, n := range []memory.NodeID{0, 1} {
		rt := c.rts[n]
		for i := 0; i < 3; i++ {
			rt.lock()
			addr, mmio := uint64(0x3F8+i), i == 2
			if mmio {
				addr = 0xFEC00010
			}
			v, err := rt.readDeviceLocked(migrate.VCPUID(n), mmio, addr, 4)
			rt.unlock()
			if err != nil {
				t.Fatal(err)
			}
			if want := addr<<8 | 0; v != want {
				t.Fatalf("node %d read %#x, want %#x (served by node 0)", n, v, want)
			}
		}
	}
	if s := c.rts[1].Stats(); s.DeviceReads != 3 || s.DeviceReadTime <= 0 {
		t.Errorf("node 1 counted %d forwarded reads taking %v, want 3", s.DeviceReads, s.DeviceReadTime)
	}
	if s := c.rts[0].Stats(); s.DeviceReads != 0 {
		t.Errorf("the device node forwarded %d reads", s.DeviceReads)
	}
}

// A device that reaches guest memory (DMA) through the Runtime must run
// without its lock: with DevicesUnlocked, forwarded accesses are served
// in order on the device goroutine, and a read may read guest memory.
func TestDevicesUnlockedMayReachGuestMemory(t *testing.T) {
	var dev *Runtime
	var writes []uint64
	c := newCluster(t, 2, 2, 4, func(cfg *Config) {
		cfg.DevicesUnlocked = true
		cfg.OnDevice = func(_ *Handle, d DeviceWrite) { writes = append(writes, d.Value) }
		cfg.OnDeviceRead = func(d DeviceRead) uint64 {
			var b [1]byte
			if err := dev.Read(d.Addr, b[:]); err != nil {
				return 0xEE
			}
			return uint64(b[0])
		}
	})
	dev = c.rts[0]
	rt := c.rts[1]
	if err := rt.Write(0x1234, []byte{42}); err != nil { // the page's copy is now node 1's
		t.Fatal(err)
	}
	rt.lock()
	defer rt.unlock()
	for i := uint64(1); i <= 3; i++ {
		if err := rt.forwardLocked(DeviceWrite{VCPU: 1, Addr: 0x80, Size: 1, Value: i}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := rt.readDeviceLocked(1, true, 0x1234, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v != 42 {
		t.Errorf("the device read guest memory as %#x, want 42 (written on node 1)", v)
	}
	if fmt.Sprint(writes) != "[1 2 3]" { // served before the read, in order
		t.Errorf("device writes served %v before the read, want [1 2 3]", writes)
	}
}

func TestUnaskedDeviceReplyStopsTheVM(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	var b [DeviceReadSize]byte
	(&DeviceRead{VM: 7, VCPU: 1, Addr: 0x3F8, Size: 1, Seq: 1, Reply: true, Value: 5}).MarshalTo(b[:])
	c.rts[1].Deliver(0, enveloped(7, b[:]))
	deadline := time.Now().Add(5 * time.Second)
	for c.rts[1].Err() == nil && time.Now().Before(deadline) {
		c.rts[1].lock() // drains the inbox
		c.rts[1].unlock()
		time.Sleep(time.Millisecond)
	}
	if err := c.rts[1].Err(); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("a reply nobody asked for: %v", err)
	}
}

func FuzzDeviceRead(f *testing.F) {
	var b [DeviceReadSize]byte
	(&DeviceRead{VM: 3, VCPU: 1, Addr: 0x3FD, Size: 1, Seq: 9}).MarshalTo(b[:])
	f.Add(b[:])
	(&DeviceRead{VM: 3, VCPU: 1, MMIO: true, Addr: 0xFEC00000, Size: 8, Seq: 9, Reply: true, Value: 0x60}).MarshalTo(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var d DeviceRead
		if d.Unmarshal(b) != nil {
			return
		}
		var again [DeviceReadSize]byte
		d.MarshalTo(again[:])
		var d2 DeviceRead
		if err := d2.Unmarshal(again[:]); err != nil || d2 != d {
			t.Fatalf("re-encoding %+v: %+v %v", d, d2, err)
		}
	})
}

func TestLyingPeerStopsTheVM(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	// Node 1 claims to be node 0 in a coherence message.
	m := memory.Message{Kind: memory.KindReadReq, Src: 0, Dst: 0, Requester: 0, GPA: 0}
	b := make([]byte, m.Size())
	if _, err := m.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	c.rts[0].Deliver(1, enveloped(7, b))
	c.rts[0].Deliver(1, enveloped(7, []byte{0x42, 1, 2}))
	deadline := time.Now().Add(5 * time.Second)
	for c.rts[0].Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c.rts[0].Err() == nil {
		t.Fatal("a forged message was accepted")
	}
	if s := c.rts[0].Stats(); s.Rejected == 0 {
		t.Fatalf("rejected = 0: %+v", s)
	}
	if err := c.rts[0].Write(0, []byte{1}); err == nil {
		t.Fatal("a stopped VM still serves accesses")
	}
}

func TestControlRoundTrip(t *testing.T) {
	in := Control{Op: OpCreate, Spec: Spec{ID: 9, Nodes: 2, VCPUs: 2, Pages: 1024, Payload: 3, Arg: 5, Homes: HomesDeviceNode, Place: PlaceDeviceNode, Dilation: 10, Move: MoveHysteresis, Devices: DevicesMove, Balance: BalanceLearned,
		FirstTouch: true, MoveAfter: MaxMoveAfter, WalkWindows: true, SmallPages: true, Cores: [memory.MaxNodes]uint8{4, 1}}, VCPU: 1, Node: 1, Arg: 5, Time: 1 << 40}
	var buf [MaxControlSize]byte
	b := buf[:in.MarshalTo(buf[:])]
	if len(b) != ControlSize+2 {
		t.Fatalf("a Create over 2 nodes is %d bytes, want %d (its cores after the fixed part)", len(b), ControlSize+2)
	}
	var out Control
	if err := out.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	in.Spec.Arg = 0 // Arg travels in Control.Arg
	if out != in {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
	// Each flag of byte 25 travels on its own.
	for _, s := range []Spec{{WalkWindows: true}, {SmallPages: true}, {Balance: BalanceLearned}} {
		s.ID, s.Nodes, s.VCPUs, s.Pages = 1, 2, 2, 8
		c := Control{Op: OpCreate, Spec: s}
		if err := out.Unmarshal(buf[:c.MarshalTo(buf[:])]); err != nil || out != c {
			t.Fatalf("round trip of %+v: %+v, %v", c.Spec, out.Spec, err)
		}
	}
	// A room reply carries the sender's cores where other ops carry a
	// vCPU.
	reply := Control{Op: OpRoomReply, Spec: Spec{ID: 9}, Arg: 1 << 18, Virt: VirtAMDV, Cores: 300}
	if err := out.Unmarshal(buf[:reply.MarshalTo(buf[:])]); err != nil || out != reply {
		t.Fatalf("room reply round trip: %+v, %v", out, err)
	}
	// A Spec with cores for a node beyond its nodes is not valid (the
	// encoding carries only its nodes' cores).
	bad := in
	bad.Spec.Cores[2] = 1
	if err := bad.Spec.Validate(); err == nil {
		t.Fatal("a Spec with cores for node 2 of 2 validated")
	}
	b = buf[:in.MarshalTo(buf[:])]
	b[24] = 3 // no such home policy
	if err := out.Unmarshal(b[:]); err == nil {
		t.Fatal("a Create with home policy 3 decoded")
	}
	b[24] = 1
	b[25] = 2 // no such placement policy
	if err := out.Unmarshal(b[:]); err == nil {
		t.Fatal("a Create with placement policy 2 decoded")
	}
	b[25], b[27] = 1, 4 // no such move policy
	if err := out.Unmarshal(b[:]); err == nil {
		t.Fatal("a Create with move policy 4 decoded")
	}
	b[27] = 0x21 // no such device policy
	if err := out.Unmarshal(b[:]); err == nil {
		t.Fatal("a Create with device policy 2 decoded")
	}
	b[27], b[3] = 0, 0 // zero nodes
	if err := out.Unmarshal(b[:]); err == nil {
		t.Fatal("a Create of 0 nodes decoded")
	}
	sipi := Control{Op: OpStartup, Spec: Spec{ID: 9}, VCPU: 1, Arg: 0x08}
	b = buf[:sipi.MarshalTo(buf[:])]
	if err := out.Unmarshal(b); err != nil || out.Op != OpStartup || out.VCPU != 1 || out.Arg != 8 || out.Op.String() != "Startup" {
		t.Fatalf("startup round trip: %+v %v", out, err)
	}
	sipi.Arg = 0x100
	sipi.MarshalTo(b)
	if err := out.Unmarshal(b); err == nil {
		t.Fatal("a startup vector of 0x100 decoded")
	}
	d := DeviceWrite{VM: 3, VCPU: 2, Addr: 0xE9, Size: 2, Value: 0xbeef}
	var db [DeviceSize]byte
	d.MarshalTo(db[:])
	var d2 DeviceWrite
	if err := d2.Unmarshal(db[:]); err != nil || d2 != d {
		t.Fatalf("device round trip: %+v %v", d2, err)
	}
	for _, bad := range []DeviceWrite{
		{Addr: 0x10000, Size: 1},                // no such port
		{Addr: 0x60, Size: 8},                   // ports are at most 4 bytes wide
		{MMIO: true, Addr: 0xFEC00000, Size: 3}, // no such access size
	} {
		bad.MarshalTo(db[:])
		if err := d2.Unmarshal(db[:]); err == nil {
			t.Errorf("device write %+v decoded", bad)
		}
	}
	d.MarshalTo(db[:])
	db[2] = 2 // no such address space
	if err := d2.Unmarshal(db[:]); err == nil {
		t.Error("a device write in address space 2 decoded")
	}
}

func FuzzControl(f *testing.F) {
	var b [MaxControlSize]byte
	f.Add(b[:(&Control{Op: OpMigrate, VCPU: 1, Node: 1, Spec: Spec{ID: 1}}).MarshalTo(b[:])])
	fill := Spec{ID: 2, Nodes: 2, VCPUs: 2, Pages: 10, Homes: HomesFill, Shares: [memory.MaxNodes]uint32{6, 4}}
	f.Add(b[:(&Control{Op: OpCreate, Spec: fill}).MarshalTo(b[:])])
	fill.FirstTouch, fill.MoveAfter = true, 2
	f.Add(b[:(&Control{Op: OpCreate, Spec: fill}).MarshalTo(b[:])])
	fill.Balance, fill.Place, fill.WalkWindows = BalanceSpread, PlaceDeviceNode, true
	f.Add(b[:(&Control{Op: OpCreate, Spec: fill}).MarshalTo(b[:])])
	fill.SmallPages, fill.Cores = true, [memory.MaxNodes]uint8{2, 1}
	f.Add(b[:(&Control{Op: OpCreate, Spec: fill}).MarshalTo(b[:])])
	f.Add(b[:(&Control{Op: OpStop, Spec: Spec{ID: 3}, Arg: uint32(StopNodeLost), Node: 2}).MarshalTo(b[:])])
	f.Add(b[:(&Control{Op: OpRoomReply, Spec: Spec{ID: 4}, Arg: 1 << 18, Virt: VirtAMDV}).MarshalTo(b[:])])
	f.Add(b[:(&Control{Op: OpRoomReply, Spec: Spec{ID: 4}, Arg: 7}).MarshalTo(b[:])]) // an older node's: no Virt
	f.Add(b[:(&Control{Op: OpJoined, Spec: Spec{ID: 5}}).MarshalTo(b[:])])
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Control
		if c.Unmarshal(b) != nil {
			return
		}
		var again [MaxControlSize]byte
		n := c.MarshalTo(again[:])
		var c2 Control
		if err := c2.Unmarshal(again[:n]); err != nil || c2 != c {
			t.Fatalf("re-encoding %+v: %+v %v", c, c2, err)
		}
	})
}

func FuzzDeviceWrite(f *testing.F) {
	var b [DeviceSize]byte
	(&DeviceWrite{Addr: 0xE9, Size: 1, Value: 7}).MarshalTo(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var d DeviceWrite
		if d.Unmarshal(b) != nil {
			return
		}
		var again [DeviceSize]byte
		d.MarshalTo(again[:])
		var d2 DeviceWrite
		if err := d2.Unmarshal(again[:]); err != nil || d2 != d {
			t.Fatalf("re-encoding %+v: %+v %v", d, d2, err)
		}
	})
}

// FuzzDeliver feeds arbitrary bytes to a runtime: it must reject or serve
// them without panicking, and dvm stat's account of what it holds (the
// runtime's vCPU has just written page 0, so a request for it waits in
// the page's hold window) must not panic either.
func FuzzDeliver(f *testing.F) {
	m := memory.Message{Kind: memory.KindReadReq, Src: 1, Dst: 0, Requester: 1, GPA: 0}
	b := make([]byte, m.Size())
	m.MarshalTo(b)
	f.Add(b)
	f.Add([]byte{DeviceMagic, 4, 0xE9, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Add([]byte{migrate.MessageMagic, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rt, err := New(Config{Spec: Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 4}, Self: 0,
			Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: discard{}, Hold: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		h := rt.Handle(0)
		h.Lock()
		if err := h.Fault(0, true); err != nil {
			t.Fatal(err)
		}
		h.Unlock()
		rt.Deliver(1, enveloped(7, b))
		rt.lock()
		rt.unlock()
		st := rt.Stats()
		if st.Held != len(st.HeldFirst) && len(st.HeldFirst) != maxHeldShown {
			t.Fatalf("%d held, %d described", st.Held, len(st.HeldFirst))
		}
		rt.Close()
	})
}

type discard struct{}

func (discard) Send(memory.NodeID, []byte) error { return nil }

func BenchmarkRemoteWrite(b *testing.B) {
	c := newCluster(b, 2, 2, 4)
	buf := []byte{1, 2, 3, 4}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// alternate writers so that every write moves the page
		if err := c.rts[i%2].Write(0x1000, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEvictAllWritesBack(t *testing.T) {
	c := newCluster(t, 2, 2, 8)
	// Node 0 writes page 1 (homed at node 1) and reads page 3.
	if err := c.rts[0].Write(0x1000, []byte("evacuated")); err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	if err := c.rts[0].Read(0x3000, b[:]); err != nil {
		t.Fatal(err)
	}
	n, err := c.rts[0].EvictAll()
	if err != nil || n != 2 {
		t.Fatalf("EvictAll = %d, %v; want 2 copies dropped", n, err)
	}
	if s := c.rts[0].Stats(); s.Modified != 0 || s.Shared != 4 {
		t.Fatalf("node 0 still holds %d modified and %d shared pages (its 4 homed pages are shared)", s.Modified, s.Shared)
	}
	got := make([]byte, 9)
	if err := c.rts[1].Read(0x1000, got); err != nil || string(got) != "evacuated" {
		t.Fatalf("home read %q, %v after the writeback", got, err)
	}
}

// syncPort delivers straight into the peer's inbox, as the cluster
// transport's receive path does, without a copy of its own.
type syncPort struct{ peers []*Runtime }

type syncSender struct {
	p    *syncPort
	self memory.NodeID
}

func (s syncSender) Send(to memory.NodeID, msg []byte) error {
	s.p.peers[to].Deliver(s.self, msg)
	return nil
}

// BenchmarkPageRoundTrip moves one page back and forth between two nodes:
// every iteration is a remote write fault served by the other node (a
// fetch-invalidate of the owner's copy and a grant with the data).
// Allocations are the runtime's own: the transport here copies nothing.
func BenchmarkPageRoundTrip(b *testing.B) {
	p := &syncPort{}
	spec := Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: 4}
	for i := 0; i < 2; i++ {
		rt, err := New(Config{Spec: spec, Self: memory.NodeID(i), Perm: &perms{acc: map[uint64]memory.Access{}},
			Transport: syncSender{p, memory.NodeID(i)}})
		if err != nil {
			b.Fatal(err)
		}
		p.peers = append(p.peers, rt)
		go rt.Run()
	}
	defer func() {
		for _, rt := range p.peers {
			rt.Close()
		}
	}()
	buf := []byte{1, 2, 3, 4}
	for i := 0; i < 64; i++ { // warm the inbox buffers
		p.peers[i%2].Write(0x1000, buf)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.peers[i%2].Write(0x1000, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHomePolicies(t *testing.T) {
	striped, node0 := HomesStriped.Home(3), HomesDeviceNode.Home(3)
	for p := uint64(0); p < 9; p++ {
		if got := striped(p); got != memory.NodeID(p%3) {
			t.Errorf("striped: page %d homed on %d", p, got)
		}
		if got := node0(p); got != 0 {
			t.Errorf("node0: page %d homed on %d", p, got)
		}
	}
	if HomesDeviceNode.String() != "node0" || HomesStriped.String() != "striped" {
		t.Error("policy names")
	}
	for v := migrate.VCPUID(0); v < 4; v++ {
		if PlaceSpread.Node(v, 3) != memory.NodeID(v%3) || PlaceDeviceNode.Node(v, 3) != 0 {
			t.Errorf("vCPU %d placed on %d (spread) and %d (node0)", v, PlaceSpread.Node(v, 3), PlaceDeviceNode.Node(v, 3))
		}
	}
	if PlaceSpread.String() != "spread" || PlaceDeviceNode.String() != "node0" {
		t.Error("placement names")
	}
}

func TestHotPages(t *testing.T) {
	c := newCluster(t, 2, 2, 8)
	rt := c.rts[1]
	// Node 1 faults on pages homed on node 0 (even pages): page 2 three
	// times, page 4 once, page 6 twice, each time after node 0 took the
	// page back.
	for _, p := range []uint64{2, 2, 4, 6, 2, 6} {
		if err := rt.Write(p*memory.PageSize, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := c.rts[0].Write(p*memory.PageSize, []byte{2}); err != nil {
			t.Fatal(err)
		}
	}
	hot := make([]HotPage, 2)
	n := rt.HotPages(hot)
	if n != 2 || hot[0] != (HotPage{2 * memory.PageSize, 3}) || hot[1] != (HotPage{6 * memory.PageSize, 2}) {
		t.Errorf("hot pages %v", hot[:n])
	}
	all := make([]HotPage, 8)
	if n := rt.HotPages(all); n != 3 || all[2] != (HotPage{4 * memory.PageSize, 1}) {
		t.Errorf("all hot pages %v", all[:n])
	}
}

// With a hold window, a page a vCPU's fault has just gained stays on
// its node for the window before another node's request takes it; the
// requests held meanwhile are served in order once it ends. A page the
// hyperkernel itself gained (a device's DMA) opens no window: that
// access is over when it returns.
func TestHoldWindowKeepsAFreshPage(t *testing.T) {
	const hold = 150 * time.Millisecond
	for _, tc := range []struct {
		hold     time.Duration
		device   bool // node 1 gains the page by Runtime.Write, not a vCPU's fault
		wantHeld bool
	}{{0, false, false}, {hold, false, true}, {hold, true, false}} {
		c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Hold = tc.hold })
		// Page 2 is homed on node 0; node 1 writes it (gains it) ...
		const gpa = 2 * memory.PageSize
		if tc.device {
			if err := c.rts[1].Write(gpa, []byte{7}); err != nil {
				t.Fatal(err)
			}
		} else {
			h := c.rts[1].Handle(1)
			h.Lock()
			err := h.Fault(gpa, true)
			if err == nil {
				c.rts[1].eng.Frame(gpa)[0] = 7
			}
			h.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
		// ... and node 0 wants it back at once.
		start := time.Now()
		var b [1]byte
		if err := c.rts[0].Read(gpa, b[:]); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		if b[0] != 7 {
			t.Fatalf("%+v: read %d, want 7", tc, b[0])
		}
		if held := waited >= hold/2; held != tc.wantHeld {
			t.Errorf("hold window %v, gained by a device %v: the page came back after %v", tc.hold, tc.device, waited)
		}
		t.Logf("hold %v, device %v: node 0 got the page back after %v", tc.hold, tc.device, waited.Round(time.Millisecond))
	}
}

// A device's access to a buffer of many pages homed on another node (a
// disk request's data) asks for them all before it waits for any: one
// round trip for the buffer, not one per page. Node 0 reads 8 pages
// homed on node 1 while node 1's answers are stalled: node 1 must see
// all 8 requests before the first answer gets through.
func TestDeviceAccessAsksForEveryPageAtOnce(t *testing.T) {
	const pages = 16 // odd ones homed on node 1
	for _, tc := range []struct {
		name         string
		write, pages bool // write the buffer; page by page, each prefetched first
	}{{"read", false, false}, {"write", true, false}, {"prefetched pages", false, true}} {
		write := tc.write
		c := newCluster(t, 2, 2, pages)
		release := make(chan struct{})
		c.net.stall = func(from, to memory.NodeID) {
			if from == 1 {
				<-release
			}
		}
		buf := make([]byte, pages*memory.PageSize)
		done := make(chan error, 1)
		go func() {
			switch {
			case tc.pages: // a request's scattered buffers (devices.Prefetcher)
				for gpa := uint64(0); gpa < uint64(len(buf)); gpa += memory.PageSize {
					c.rts[0].Prefetch(gpa, memory.PageSize, false)
				}
				for gpa := uint64(0); gpa < uint64(len(buf)); gpa += memory.PageSize {
					if err := c.rts[0].Read(gpa, buf[gpa:gpa+memory.PageSize]); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			case write:
				done <- c.rts[0].Write(0, buf)
			default:
				done <- c.rts[0].Read(0, buf)
			}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for c.rts[1].Stats().Received < pages/2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		got := c.rts[1].Stats().Received
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got < pages/2 {
			t.Errorf("%s: node 1 got %d requests before its first answer, want %d (one per page it homes)", tc.name, got, pages/2)
		}
		// Once the pages are here, a device's access allocates nothing.
		if n := testing.AllocsPerRun(10, func() { c.rts[0].Read(0, buf) }); n != 0 {
			t.Errorf("a read of %d pages held here allocates %.0f times", pages, n)
		}
	}
}

// Pages go on the wire packed: a page that is mostly zeros costs far
// less than its 4 KiB, and BytesOut counts what was sent.
func TestBytesOutCountsTheWire(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	if err := c.rts[1].Write(2*memory.PageSize, []byte{7}); err != nil { // page 2 is homed on node 0
		t.Fatal(err)
	}
	s := c.rts[0].Stats()
	if s.Memory.DataMessages == 0 || s.BytesOut == 0 || s.BytesOut >= s.Memory.Bytes {
		t.Errorf("node 0 sent %d messages with a page, %d bytes on the wire, %d bytes whole", s.Memory.DataMessages, s.BytesOut, s.Memory.Bytes)
	}
}

// pingPongUntilMove has node 0 write page 0 (homed there) and node 1's
// vCPU 1 fault on it for writing, asking the move policy first, until
// the policy says move or rounds run out. It returns the round of the
// move (-1: none) and node 0's answers for vCPU 0, which faults on page
// 1 (homed on node 1) that node 1 writes.
func pingPongUntilMove(t *testing.T, c *testCluster, rounds int) (moved int, dst memory.NodeID, moves0 int) {
	t.Helper()
	a, b := c.rts[0], c.rts[1]
	for i := range rounds {
		if err := a.Write(0, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(memory.PageSize, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		a.lock()
		if _, ok := a.placeLocked(0, memory.PageSize, true); ok {
			moves0++
		}
		err := a.faultLocked(NoVCPU, memory.PageSize, true)
		a.unlock()
		if err != nil {
			t.Fatal(err)
		}
		b.lock()
		n, ok := b.placeLocked(1, 0, true)
		if !ok {
			err = b.faultLocked(NoVCPU, 0, true)
		}
		b.unlock()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return i, n, moves0
		}
	}
	return -1, 0, moves0
}

// stepClock returns a Config.Clock that moves on by step at every
// reading: a Runtime that reads it the same number of times decides the
// same, however fast the machine runs the test (the race detector slows
// the wall clock's pulls several times over).
func stepClock(step time.Duration) func() time.Duration {
	var n atomic.Int64
	return func() time.Duration { return time.Duration(n.Add(1)) * step }
}

// policyConfig sets the move policy and a clock the test controls.
func policyConfig(p MovePolicy) func(*Config) {
	return func(cfg *Config) {
		cfg.Spec.Move = p
		cfg.Clock = stepClock(5 * time.Microsecond)
	}
}

func TestMovePolicyTakesTheVCPUToItsPage(t *testing.T) {
	for _, tc := range []struct {
		policy   MovePolicy
		min, max int // rounds before the move; -1: never
	}{
		{MovePull, -1, -1},
		{MoveAlways, 0, 0},      // at the first fault
		{MoveHysteresis, 3, 64}, // after a few contended faults, not the first
		{MoveLearned, 1, 64},    // after a burst of contended faults
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			c := newCluster(t, 2, 2, 4, policyConfig(tc.policy))
			moved, dst, moves0 := pingPongUntilMove(t, c, 100)
			if moved < tc.min || moved > tc.max {
				t.Fatalf("vCPU 1 moved in round %d, want %d..%d", moved, tc.min, tc.max)
			}
			if moved >= 0 && dst != 0 {
				t.Fatalf("vCPU 1 would move to node %d, want 0 (which writes the page)", dst)
			}
			if moves0 != 0 {
				t.Fatalf("vCPU 0 on node 0 was sent toward node 1 %d times: the two would swap", moves0)
			}
			t.Logf("%v: vCPU 1 moves in round %d", tc.policy, moved)
			if got := c.rts[1].Stats().PolicyMoves; got != uint64(min(moved+1, 1)) {
				t.Fatalf("PolicyMoves = %d after the move in round %d", got, moved)
			}
		})
	}
}

func TestMovePolicyAfterAMove(t *testing.T) {
	for _, policy := range []MovePolicy{MoveAlways, MoveHysteresis, MoveLearned} {
		t.Run(policy.String(), func(t *testing.T) {
			c := newCluster(t, 2, 2, 4, policyConfig(policy))
			if moved, _, _ := pingPongUntilMove(t, c, 100); moved < 0 {
				t.Fatal("no move")
			}
			// vCPU 1 goes to node 0; node 0's policy hears of the arrival.
			var st vcpu.State
			st.Reset(1, false)
			a, b := c.rts[0], c.rts[1]
			b.lock()
			err := b.departLocked(1, 0, &st)
			b.unlock()
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.arrive:
			case <-time.After(5 * time.Second):
				t.Fatal("vCPU 1 did not arrive")
			}
			// Node 1 writes page 1 and hosts no vCPU now. AlwaysMove sends
			// vCPU 1 back at once; Hysteresis keeps it for its cool-down
			// (60 remote-fault times), longer than these rounds.
			for i := range 8 {
				if err := b.Write(memory.PageSize, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				a.lock()
				n, ok := a.placeLocked(1, memory.PageSize, true)
				if !ok {
					err = a.faultLocked(NoVCPU, memory.PageSize, true)
				}
				a.unlock()
				if err != nil {
					t.Fatal(err)
				}
				if policy == MoveAlways {
					if !ok || n != 1 {
						t.Fatalf("placeLocked = %d, %v; want node 1 (it hosts no vCPU)", n, ok)
					}
					return
				}
				if ok {
					t.Fatalf("vCPU 1 sent back to node %d in round %d after arriving", n, i)
				}
			}
		})
	}
}

func TestPlaceLockedAllocatesNothing(t *testing.T) {
	c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Spec.Move = MoveHysteresis })
	a, b := c.rts[0], c.rts[1]
	if err := b.Write(memory.PageSize, []byte{1}); err != nil {
		t.Fatal(err)
	}
	a.lock()
	defer a.unlock()
	if n := testing.AllocsPerRun(100, func() { a.placeLocked(1, memory.PageSize, true) }); n != 0 {
		t.Fatalf("placeLocked: %v allocations", n)
	}
}

func TestDevicePolicy(t *testing.T) {
	for _, policy := range []DevicePolicy{DevicesForward, DevicesMove} {
		c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Spec.Devices = policy })
		for i, rt := range c.rts {
			rt.lock()
			n, ok := rt.deviceMoveLocked()
			rt.unlock()
			want := policy == DevicesMove && i != 0
			if ok != want || ok && n != 0 {
				t.Errorf("%v: node %d: deviceMoveLocked = %d, %v; want move %v to node 0", policy, i, n, ok, want)
			}
		}
	}
}

// BenchmarkPlaceLocked is what the move policy adds to a remote fault:
// the engine's hint and the policy's decision (vCPU 1 on node 1 faulting
// on a page node 0 wrote; the hysteresis policy scores the fault).
func BenchmarkPlaceLocked(b *testing.B) {
	for _, policy := range []MovePolicy{MovePull, MoveHysteresis} {
		b.Run(policy.String(), func(b *testing.B) {
			c := newCluster(b, 2, 2, 4, func(cfg *Config) { cfg.Spec.Move = policy })
			if err := c.rts[0].Write(0, []byte{1}); err != nil {
				b.Fatal(err)
			}
			r := c.rts[1]
			r.lock()
			defer r.unlock()
			b.ReportAllocs()
			for b.Loop() {
				r.placeLocked(1, 0, true)
			}
		})
	}
}

func TestPolicyNamesRoundTrip(t *testing.T) {
	for p := range moveLimit {
		if got, err := ParseMovePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParseMovePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	for p := range devicesLimit {
		if got, err := ParseDevicePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParseDevicePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	for p := range placeLimit {
		if got, err := ParsePlacePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParsePlacePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	for p := range homesLimit {
		if got, err := ParseHomePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParseHomePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseMovePolicy("sometimes"); err == nil || !strings.Contains(err.Error(), "pull, hysteresis, always, learned") {
		t.Errorf("ParseMovePolicy(sometimes): %v", err)
	}
	if got := moveLimit.String(); got != "MovePolicy(4)" {
		t.Errorf("an unnamed value prints as %q", got)
	}
}

// enveloped is msg as a Runtime of VM id sends it.
func enveloped(id uint32, msg []byte) []byte {
	b := make([]byte, EnvelopeSize+len(msg))
	putEnvelope(b, id)
	copy(b[EnvelopeSize:], msg)
	return b
}

// TestMessagesOfAnotherVMDropped: a message enveloped for an earlier VM
// (still in flight when a link came back and a new VM started) is
// dropped and counted, and the new VM goes on; before the envelope it
// reached the new VM's engine, which stopped with "unexpected FetchReply"
// (seen in the Bochs link-cut test).
func TestMessagesOfAnotherVMDropped(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	m := memory.Message{Kind: memory.KindFetchReply, Src: 1, Dst: 0, Requester: 0, GPA: 0}
	b := make([]byte, m.Size())
	if _, err := m.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	c.rts[0].Deliver(1, enveloped(6, b)) // VM 6, not this VM 7
	c.rts[0].Deliver(1, b)               // no envelope at all
	if err := c.rts[0].Write(0x1000, []byte{1}); err != nil {
		t.Fatalf("the VM after another VM's messages: %v", err)
	}
	if s := c.rts[0].Stats(); s.Stale != 2 || s.Rejected != 0 {
		t.Errorf("stale %d, rejected %d; want 2 and 0", s.Stale, s.Rejected)
	}
}

// access is the access node n's tables give the page at gpa.
func (c *testCluster) access(n int, gpa uint64) memory.Access {
	p := c.perms[n]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acc[gpa]
}

// An instruction may need several pages writable at once: on AMD-V the
// guest's page walk writes every paging-structure entry it reads through
// the nested tables (to set accessed bits; QEMU's TCG always asks for
// write), so each vCPU's first access after an entry needs the kernel's
// shared page-table pages Modified together. Two nodes whose vCPUs
// need the same two pages, each faulting them in the walk's order, must
// both make progress: with hold windows of one length the node that has
// just gained the first page loses it, when its window ends, to the other
// node, whose window on the second ends at the same moment, round after
// round (issue 18: TestQEMUClusterLinuxAMDV, the kernel's level3 and
// level2 page tables handed back and forth 22000 times, the guest stuck).
func TestPagesNeededTogetherReachBothNodes(t *testing.T) {
	const (
		hold  = 5 * time.Millisecond
		delay = 2 * time.Millisecond
		// Both nodes keep contending until each has completed want
		// instructions; a livelock never gets there, and the deadline
		// only bounds how long a failure takes (it is no speed target).
		want     = 5
		deadline = 30 * time.Second
	)
	c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Hold = hold })
	c.net.delay = delay
	pages := []uint64{0, 2 * memory.PageSize} // both homed on node 0, walked in this order
	var done [2]atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for n := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := c.rts[n].Handle(migrate.VCPUID(n))
			h.Lock()
			defer h.Unlock()
			for (done[0].Load() < want || done[1].Load() < want) && time.Since(start) < deadline {
				if err := h.Serve(); err != nil {
					t.Error(err)
					return
				}
				missing := -1
				for i, gpa := range pages {
					if c.access(n, gpa) != memory.AccessReadWrite {
						missing = i
						break
					}
				}
				if missing < 0 {
					// The instruction completes; the guest runs on
					// and its next entry walks the tables again.
					done[n].Add(1)
					h.Unlock()
					time.Sleep(time.Millisecond)
					h.Lock()
					continue
				}
				if err := h.Fault(pages[missing], true); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("instructions completed in %v: node 0 %d, node 1 %d", time.Since(start).Round(time.Millisecond), done[0].Load(), done[1].Load())
	for n := range 2 {
		if done[n].Load() < want {
			t.Errorf("node %d completed %d instructions in %v: the pages went back and forth without it ever holding both", n, done[n].Load(), deadline)
		}
	}
}

func TestWaitBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {10 * time.Microsecond, 0}, {11 * time.Microsecond, 1}, {time.Millisecond, 2}, {4 * time.Millisecond, 3},
		{10 * time.Second, 6}, {11 * time.Second, 7}, {time.Hour, 7}} {
		if got := waitBucket(c.d); got != c.want {
			t.Errorf("waitBucket(%v) = %d, want %d", c.d, got, c.want)
		}
		if b := WaitBound(c.want); b >= 0 && c.d > b || c.want > 0 && c.d <= WaitBound(c.want-1) {
			t.Errorf("%v in bucket %d, bounds %v..%v", c.d, c.want, WaitBound(c.want-1), b)
		}
	}
}

// TestTrace: with tracing on, each node's ring holds its remote faults
// with their waits, the invalidations it was sent, and a vCPU's
// departure and arrival; with it off, nothing.
func TestTrace(t *testing.T) {
	rings := []*trace.Ring{trace.NewRing(8), trace.NewRing(8)}
	next := 0
	c := newCluster(t, 2, 2, 16, func(cfg *Config) { cfg.Trace = rings[next]; next++ })
	if err := c.rts[0].Write(0x1010, []byte("before")); err != nil { // page 1, homed on node 1
		t.Fatal(err)
	}
	if rings[0].Recorded() != 0 {
		t.Fatal("events recorded while tracing is off")
	}
	for _, r := range rings {
		r.Start()
	}
	buf := make([]byte, 4)
	if err := c.rts[1].Read(0x2010, buf); err != nil { // page 2, homed on node 0
		t.Fatal(err)
	}
	if err := c.rts[1].Write(0x1010, []byte("after")); err != nil { // takes page 1 from node 0
		t.Fatal(err)
	}
	h := c.rts[1].Handle(1) // vCPU 1's fault names it
	h.Lock()
	err := h.Fault(0x4000, true) // page 4, homed on node 0
	h.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var st vcpu.State
	st.Reset(0, true)
	c.rts[0].lock()
	err = c.rts[0].departLocked(0, 1, &st)
	c.rts[0].unlock()
	if err != nil {
		t.Fatal(err)
	}
	<-c.arrive
	ev1, _ := rings[1].Events(nil, 0, trace.Filter{}, 0)
	ev0, _ := rings[0].Events(nil, 0, trace.Filter{}, 0)
	has := func(evs []trace.Event, want func(e trace.Event) bool) bool {
		for _, e := range evs {
			if want(e) {
				return true
			}
		}
		return false
	}
	if !has(ev1, func(e trace.Event) bool {
		return e.Kind == trace.KindFault && e.Addr == 0x2010 && !e.Write && e.Wait > 0 && e.VCPU == -1
	}) {
		t.Errorf("node 1's read fault on 0x2010 not traced: %+v", ev1)
	}
	if !has(ev1, func(e trace.Event) bool {
		return e.Kind == trace.KindFault && e.Addr == 0x4000 && e.Write && e.VCPU == 1
	}) {
		t.Errorf("vCPU 1's write fault on 0x4000 not traced with its vCPU: %+v", ev1)
	}
	if !has(ev0, func(e trace.Event) bool { return e.Kind == trace.KindInvalidate && e.Addr == 0x1000 && e.Node == 1 }) {
		t.Errorf("node 0's copy of page 1 taken away, not traced: %+v", ev0)
	}
	if !has(ev0, func(e trace.Event) bool {
		return e.Kind == trace.KindMigrateOut && e.VCPU == 0 && e.Node == 1 && e.Bytes > 0
	}) ||
		!has(ev1, func(e trace.Event) bool {
			return e.Kind == trace.KindMigrateIn && e.VCPU == 0 && e.Node == 0 && e.Bytes > 0
		}) {
		t.Errorf("the migration not traced on both nodes: %+v / %+v", ev0, ev1)
	}
}

// TestSpecMovingHomes: a Spec's home moves reach the coherence engine,
// and a run length beyond the wire's three bits is refused.
func TestSpecMovingHomes(t *testing.T) {
	spec := Spec{ID: 1, Nodes: 2, VCPUs: 1, Pages: 8, Homes: HomesFill, Shares: [memory.MaxNodes]uint32{5, 3}, FirstTouch: true, MoveAfter: 2}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if !spec.MovesHomes() || (&Spec{MoveAfter: 1}).MovesHomes() != true || (&Spec{}).MovesHomes() {
		t.Fatal("MovesHomes disagrees with FirstTouch and MoveAfter")
	}
	var b [MaxControlSize]byte
	n := (&Control{Op: OpCreate, Spec: spec}).MarshalTo(b[:])
	var c Control
	if err := c.Unmarshal(b[:n]); err != nil || c.Spec != spec {
		t.Fatalf("round trip with homes=fill and moves: %+v, %v", c.Spec, err)
	}
	spec.MoveAfter = MaxMoveAfter + 1
	if err := spec.Validate(); err == nil {
		t.Fatalf("homes moving after %d requests validated", spec.MoveAfter)
	}
}

// TestFirstTouchMovesHomeAcrossRuntimes: with Spec.FirstTouch, a page
// homed at node 0 and first written from node 1 moves its home to node
// 1 over the real message path; node 0 reads the write back, and every
// frame comes back at Close (the cluster's clean-up checks).
func TestFirstTouchMovesHomeAcrossRuntimes(t *testing.T) {
	c := newCluster(t, 2, 2, 16, func(cfg *Config) {
		cfg.Spec.FirstTouch = true
		cfg.HomeRoom = 4
	})
	const gpa = 0x2010 // page 2: homed at node 0 at the start
	if h := c.rts[1].Home(gpa); h != 0 {
		t.Fatalf("page 2 starts homed at node %d", h)
	}
	want := []byte("first touch")
	if err := c.rts[1].Write(gpa, want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if err := c.rts[0].Read(gpa, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("node 0 read %q, node 1 wrote %q", got, want)
	}
	s0, s1 := c.rts[0].Stats(), c.rts[1].Stats()
	if c.rts[1].Home(gpa) != 1 || s1.Homes != 9 || s0.Homes != 7 || s1.Memory.HomesGained != 1 || s0.Memory.HomesGiven != 1 {
		t.Fatalf("page 2 homed at %d; node 0 homes %d (gave %d), node 1 %d (gained %d)",
			c.rts[1].Home(gpa), s0.Homes, s0.Memory.HomesGiven, s1.Homes, s1.Memory.HomesGained)
	}
}

// TestTakeHomes: node 1 leaves; node 0 takes the home of every page node
// 1 homes, its own Modified copy of one of them evicted first, and every
// page keeps what was written. With room for fewer homes, node 0 takes
// what fits and counts the rest.
func TestTakeHomes(t *testing.T) {
	for _, room := range []int{8, 2} {
		c := newCluster(t, 2, 2, 8, func(cfg *Config) { cfg.Spec.Homes = HomesStriped; cfg.HomeRoom = room })
		a, b := c.rts[0], c.rts[1]
		var own []uint64 // the pages node 1 homes
		for p := range uint64(8) {
			gpa := p * memory.PageSize
			if a.Home(gpa) == 1 {
				own = append(own, gpa)
			}
			w := b
			if p == 1 {
				w = a // node 0 holds page 1 Modified
			}
			if err := w.Write(gpa+8, []byte{byte(p + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		if len(own) != 4 || a.Home(memory.PageSize) != 1 {
			t.Fatalf("node 1 homes %v, want 4 pages with page 1", own)
		}
		b.Leave()
		taken, left, err := a.TakeHomes(1)
		if err != nil {
			t.Fatal(err)
		}
		want := min(room, len(own))
		if taken != want || left != len(own)-want {
			t.Fatalf("room %d: took %d homes, %d left; want %d, %d", room, taken, left, want, len(own)-want)
		}
		if a.Stats().Homes != 4+want || b.Stats().Homes != 4-want {
			t.Fatalf("room %d: homes %d and %d after taking %d", room, a.Stats().Homes, b.Stats().Homes, want)
		}
		for p := range uint64(8) {
			var got [1]byte
			if err := b.Read(p*memory.PageSize+8, got[:]); err != nil {
				t.Fatal(err)
			}
			if got[0] != byte(p+1) {
				t.Fatalf("room %d: page %d reads %d after the homes moved, want %d", room, p, got[0], p+1)
			}
		}
	}
}

// TestTakeHomesThreeNodes: a home that moved on use to the node that
// leaves (first touch) is known to the node that handed it over, not to
// the third: between them the other two take every home the leaving
// node has, each the ones it knows of.
func TestTakeHomesThreeNodes(t *testing.T) {
	c := newCluster(t, 3, 3, 9, func(cfg *Config) { cfg.Spec.Homes = HomesStriped; cfg.Spec.FirstTouch = true; cfg.HomeRoom = 9 })
	gpa := 2 * uint64(memory.PageSize) // homed at node 2
	if err := c.rts[1].Write(gpa, []byte{42}); err != nil {
		t.Fatal(err)
	}
	if c.rts[1].Home(gpa) != 1 || c.rts[0].Home(gpa) != 2 {
		t.Fatalf("page 2 homed at %d; node 0 takes node %d for its home; want 1 and 2", c.rts[1].Home(gpa), c.rts[0].Home(gpa))
	}
	c.rts[1].Leave()
	got := 0
	for _, n := range []int{0, 2} {
		taken, left, err := c.rts[n].TakeHomes(1)
		if err != nil || left != 0 {
			t.Fatalf("node %d: %d taken, %d left: %v", n, taken, left, err)
		}
		got += taken
		if h := c.rts[1].Stats().Homes; n == 0 && h != 1 {
			t.Fatalf("after node 0 took what it knows of, node 1 homes %d pages, want 1 (page 2)", h)
		}
	}
	if h := c.rts[1].Stats().Homes; got != 4 || h != 0 {
		t.Fatalf("the others took %d homes, node 1 homes %d; want 4 and 0", got, h)
	}
	var b [1]byte
	if err := c.rts[0].Read(gpa, b[:]); err != nil || b[0] != 42 {
		t.Fatalf("page 2 reads %d (%v) after its home moved twice, want 42", b[0], err)
	}
}

// BenchmarkMigrationRoundTrip sends vCPU 0 to node 1 and back, each
// migration served at once by the receiving node (no Run goroutine, no
// link): what the runtime spends on a migration's encode, send, receive
// and decode, twice per iteration, with the state of a vCPU using the
// x87, SSE and AVX registers.
func BenchmarkMigrationRoundTrip(b *testing.B) {
	p := &syncPort{}
	spec := Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: 4}
	var arrived [2]vcpu.State
	for i := range 2 {
		rt, err := New(Config{Spec: spec, Self: memory.NodeID(i), Perm: &perms{acc: map[uint64]memory.Access{}},
			Transport: syncSender{p, memory.NodeID(i)},
			OnArrive:  func(_ migrate.VCPUID, st *vcpu.State) { arrived[i] = *st }})
		if err != nil {
			b.Fatal(err)
		}
		p.peers = append(p.peers, rt)
	}
	defer func() {
		for _, rt := range p.peers {
			rt.Close()
		}
	}()
	st := avxState()
	move := func(from int, st *vcpu.State) {
		h := p.peers[from].Handle(0)
		h.Lock()
		if err := h.Depart(memory.NodeID(1-from), st); err != nil {
			b.Fatal(err)
		}
		h.Unlock()
		to := p.peers[1-from]
		to.lock()
		to.unlock()
	}
	b.SetBytes(int64(2 * st.Size()))
	b.ReportAllocs()
	for b.Loop() {
		move(0, &st)
		move(1, &arrived[1])
	}
	if arrived[0].XSAVELen != st.XSAVELen || arrived[0].GPR != st.GPR {
		b.Fatalf("the vCPU came back changed")
	}
}

// avxState is a valid vCPU state whose XSAVE area holds x87, SSE and AVX
// state: 832 bytes, half of it the upper halves of the YMM registers
// (Intel SDM Vol. 1, 13.4 and 13.5).
func avxState() vcpu.State {
	var st vcpu.State
	st.Reset(0, true)
	for i := range st.GPR {
		st.GPR[i] = uint64(i) * 0x0123456789abcdef
	}
	st.XCR0 = vcpu.XCR0X87 | vcpu.XCR0SSE | vcpu.XCR0AVX
	st.XSAVELen = 832
	for i := 160; i < 160+256; i++ { // XMM0-15
		st.XSAVE[i] = byte(i)
	}
	st.XSAVE[512] = byte(st.XCR0) // XSTATE_BV
	for i := 576; i < 832; i++ {  // YMM_Hi128
		st.XSAVE[i] = byte(i * 7)
	}
	return st
}

// A hold window delays a request once: a vCPU that keeps touching the
// page (each fault renews the page's window) does not keep it from
// another node for longer than about a window. Node 1's vCPU gains page
// 2 and then faults on it every 10 ms for 2 s (spurious faults, as a
// guest's stale translations give); node 0 must get the page back well
// before the 2 s are up. Before the fix each fault reopened the window
// and node 0 waited the whole 2 s (a three-node QEMU run's vCPU waited
// 4m55s for a per-CPU page).
func TestHoldWindowDelaysARequestOnce(t *testing.T) {
	const hold = 150 * time.Millisecond
	c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Hold = hold })
	const gpa = 2 * memory.PageSize
	h := c.rts[1].Handle(1)
	fault := func() {
		h.Lock()
		defer h.Unlock()
		if err := h.Fault(gpa, true); err != nil {
			t.Error(err)
		}
	}
	fault()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			select {
			case <-stop:
				return
			default:
			}
			fault()
		}
	}()
	start := time.Now()
	var b [1]byte
	err := c.rts[0].Read(gpa, b[:])
	waited := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if waited > 4*hold {
		t.Errorf("node 0 got the page after %v, with a hold window of %v", waited.Round(time.Millisecond), hold)
	}
	t.Logf("node 0 got the page after %v (hold window %v)", waited.Round(time.Millisecond), hold)
}

// A drain that holds a request wakes Run, which serves held requests
// when their windows end and waits on cond only while none are held.
// The race this models: a vCPU waiting for a page polls the network,
// takes node 0's fetch into the queue and drains it, holding it in the
// page's window, while Run, woken by the arrival, looks at the queue
// after the vCPU took it and before the hold was recorded, and waits
// again. Here a goroutine waits as Run then does (for a hold to be
// recorded) from after the arrival; the vCPU's drain must wake it.
// Before the fix nothing did until the next message came, and a
// three-node QEMU run hung 4m54s on an invalidation so.
func TestDrainThatHoldsWakesRun(t *testing.T) {
	const hold = 100 * time.Millisecond
	c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Hold = hold })
	const gpa = 2 * memory.PageSize // homed on node 0
	h := c.rts[1].Handle(1)
	h.Lock()
	if err := h.Fault(gpa, true); err != nil {
		t.Fatal(err)
	}
	r := c.rts[1]
	read := make(chan error, 1)
	go func() { // node 0 wants the page back: its fetch waits in node 1's queue
		var b [1]byte
		read <- c.rts[0].Read(gpa, b[:])
	}()
	for r.pending.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	woke := make(chan struct{})
	parked := make(chan struct{})
	go func() { // Run, having looked too late
		r.qmu.Lock()
		close(parked)
		for r.heldN.Load() == 0 {
			r.cond.Wait()
		}
		r.qmu.Unlock()
		close(woke)
	}()
	<-parked
	if err := h.Serve(); err != nil { // node 1's vCPU drains, holding the fetch
		t.Fatal(err)
	}
	if r.heldN.Load() == 0 {
		t.Fatal("the fetch was not held: the test shows nothing")
	}
	// dvm stat's account of it (Stats.HeldFirst).
	if d := r.describeHeldLocked(r.held[0], r.now()); d.From != 0 || d.GPA != gpa || d.Why != "window" || !strings.HasPrefix(d.What, "Fetch") {
		t.Errorf("held message described as %+v, want node 0's fetch of %#x, in its window", d, gpa)
	}
	h.Unlock()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("a drain held a request and did not wake the goroutines waiting on cond")
	}
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node 0 did not get the page back")
	}
}

// TestRebalance: a node whose vCPUs outnumber its cores (Config.Cores)
// moves one to a node with a core free when the VM asks for balancing
// (Spec.Balance), decides for its own vCPUs only, and counts the move;
// without it, nothing moves.
// TestBalanceCountsEachNodesCores: the balancer counts a node's load
// against the cores the node told (Spec.Cores), and against this node's
// own where a node did not say: a two-core node takes a second vCPU, a
// one-core node does not.
func TestBalanceCountsEachNodesCores(t *testing.T) {
	for _, tc := range []struct {
		cores [3]uint8 // told, by node
		to    memory.NodeID
		move  bool
	}{
		{[3]uint8{1, 1, 2}, 2, true},  // node 2 has a core free for vCPU 1
		{[3]uint8{1, 1, 0}, 0, false}, // node 2 did not say: one core, as here, and it is busy
		{[3]uint8{2, 1, 1}, 0, false}, // node 0 has a core for each of its two
	} {
		t.Run(fmt.Sprint(tc.cores), func(t *testing.T) {
			c := newCluster(t, 3, 4, 6, func(cfg *Config) {
				cfg.Spec.Place, cfg.Spec.Balance, cfg.Cores = PlaceDeviceNode, BalanceSpread, 1
				copy(cfg.Spec.Cores[:], tc.cores[:])
				cfg.Clock = stepClock(time.Millisecond)
			})
			// vCPUs 0 and 1 run on node 0, vCPU 2 on node 1, vCPU 3 on
			// node 2.
			c.rts[0].lock()
			c.departAndWait(t, 2, 0, 1)
			c.rts[0].lock()
			c.departAndWait(t, 3, 0, 2)
			v, to, ok := c.rts[0].Rebalance(func(v migrate.VCPUID) bool { return v < 2 })
			if ok != tc.move || ok && (v != 1 || to != tc.to) {
				t.Fatalf("node 0 chose vCPU %d to node %d (%v), want a move %v of vCPU 1 to node %d", v, to, ok, tc.move, tc.to)
			}
		})
	}
}

func TestRebalance(t *testing.T) {
	for _, tc := range []struct {
		policy BalancePolicy
		cores  int
		move   bool
	}{
		{BalanceNone, 1, false},
		{BalanceSpread, 1, true},
		{BalanceSpread, 2, false}, // node 0 has a core for each
		{BalanceLearned, 1, true},
	} {
		t.Run(fmt.Sprintf("%v/%d cores", tc.policy, tc.cores), func(t *testing.T) {
			c := newCluster(t, 2, 2, 4, func(cfg *Config) {
				cfg.Spec.Place, cfg.Spec.Balance, cfg.Cores = PlaceDeviceNode, tc.policy, tc.cores
				cfg.Clock = stepClock(time.Millisecond)
			})
			any := func(migrate.VCPUID) bool { return true }
			if _, _, ok := c.rts[1].Rebalance(any); ok {
				t.Error("node 1, which hosts no vCPU, chose a move")
			}
			if tc.move {
				if v, _, ok := c.rts[0].Rebalance(func(v migrate.VCPUID) bool { return v == 0 }); !ok || v != 0 {
					t.Errorf("with vCPU 1 not movable: vCPU %d (%v), want vCPU 0", v, ok)
				}
			}
			v, to, ok := c.rts[0].Rebalance(any)
			if ok != tc.move || ok && (v != 1 || to != 1) {
				t.Fatalf("node 0 chose vCPU %d to node %d (%v), want a move %v of vCPU 1 to node 1", v, to, ok, tc.move)
			}
			if got := c.rts[0].Stats().BalanceMoves; got != map[bool]uint64{false: 0, true: 2}[tc.move] {
				t.Errorf("BalanceMoves %d", got)
			}
		})
	}
}

// TestBalanceEvery: the balancer is asked every sched.BalancePeriod
// remote faults' time as the node measures them, within the bounds.
func TestBalanceEvery(t *testing.T) {
	c := newCluster(t, 2, 2, 4, func(cfg *Config) { cfg.Spec.Balance = BalanceLearned })
	r := c.rts[0]
	for _, tc := range []struct {
		pull time.Duration // measured, 0 for none yet
		want time.Duration
	}{
		{0, MinBalanceEvery}, // 50 LAN faults (initialPullNS) are less
		{570 * time.Microsecond, 28500 * time.Microsecond},
		{time.Second, MaxBalanceEvery},
	} {
		r.pullNS.Store(int64(tc.pull))
		if got := r.BalanceEvery(); got != tc.want {
			t.Errorf("a remote fault measured at %v: every %v, want %v", tc.pull, got, tc.want)
		}
	}
}
