// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// Share is this node's part of one distributed VM as the control plane
// drives it; the hypervisor implements it (its vCPUs, second-level
// tables and devices are its own).
type Share interface {
	// Spec describes the VM; Runtime is this node's share of its
	// protocol.
	Spec() Spec
	Runtime() *Runtime
	// Start runs the vCPUs placed on this node (OpStart).
	Start()
	// Migrate asks vCPU v to move to node (OpMigrate).
	Migrate(v migrate.VCPUID, node memory.NodeID) error
	// Done records that the guest finished, as node from reports
	// (OpDone).
	Done(from memory.NodeID, ok bool)
	// Evacuate moves this node's vCPUs away, gives back the page
	// copies it does not home, and hands its homes on (OpEvacuate); it
	// must not block.
	Evacuate()
	// TakeHomes takes the homes of node from, which is leaving
	// (OpTakeHomes); it must not block.
	TakeHomes(from memory.NodeID)
	// Startup delivers a startup IPI to vCPU v, hosted here, with h
	// holding the runtime's lock (OpStartup); it must not block.
	Startup(h *Handle, v migrate.VCPUID, vector uint8)
	// Clock takes another node's guest TSC (OpClock), in the receive
	// path: it must not block.
	Clock(t uint64)
	// End stops the VM on this node, saying why.
	End(why string)
}

// Host makes this node's share of a VM another node created (OpCreate).
// Create runs in the receive path, so that the VM's coherence traffic,
// which follows on the same channel, finds the share: it must not take
// any runtime's lock.
type Host interface {
	Create(from memory.NodeID, spec Spec) (Share, error)
	// Room returns how many pages of a VM shaped as spec (its nodes,
	// vCPUs and pages) this node could home now: its free frames less
	// the VM's fixed cost here and MinCopyFrames (OpRoom). It runs on
	// the control goroutine and must not take any runtime's lock.
	Room(spec Spec) int
	// Virt returns this node's virtualization backend, and Cores how
	// many cores it gives a VM's vCPUs, which it tells with its room
	// (OpRoomReply).
	Virt() Virt
	Cores() int
}

// PlaneConfig describes a node's control plane.
type PlaneConfig struct {
	Host Host
	// Send carries a message on Channel to another node.
	Send func(to memory.NodeID, msg []byte) error
	// TrySend is Send without the wait for room in the peer's window:
	// it reports false, having sent nothing, when the window is full.
	// Nil: BroadcastLatest waits as Broadcast does.
	TrySend func(to memory.NodeID, msg []byte) (bool, error)
	// ClusterID names a VM node by its cluster node id, for notices.
	ClusterID func(memory.NodeID) uint32
	// Notices gets one line per event the operator should see.
	Notices io.Writer
}

// MaxControls bounds the control messages waiting to be served: a VM's
// nodes send a few per VM and per migration.
const MaxControls = 64

// Plane is a node's distributed-VM control plane: it takes every message
// on Channel, creates, starts, steers and stops this node's share of the
// VM (one at a time) on other nodes' control messages, hands the rest to
// the share's Runtime, and sends this node's control messages.
//
// A VM stopped on one node stops on all: the node that stops its share
// tells the others (OpStop, with the reason), and until another VM
// takes its place it answers a node that still sends to the stopped VM
// with OpStop again (at most once per StopRetell per node), so that no
// node waits for a share that is gone.
//
// Lock order: mu is never held while calling a Share, a Runtime or
// PlaneConfig.Send.
type Plane struct {
	cfg      PlaneConfig
	controls chan controlMsg

	mu    sync.Mutex
	share Share      // guarded by mu
	query *roomQuery // the Rooms call waiting for answers, guarded by mu
	last  *stoppedVM // the VM this node stopped last, guarded by mu
	joins *Joins     // the creator's wait for OpJoined, guarded by mu

	// building is set while a share is built off the receive path
	// (OpCreate); Room says no meanwhile. Guarded by mu.
	building bool
}

// StopRetell is how long a node that stopped a VM waits before it
// answers another message of the VM from the same node with OpStop
// again (in case the first answer found that node's control queue
// full).
const StopRetell = 100 * time.Millisecond

// stoppedVM is a VM this node stopped: the OpStop it tells a node that
// still sends to it, and when it last told each node.
type stoppedVM struct {
	stop Control
	told [memory.MaxNodes]time.Time
}

// controlMsg is a control message waiting for the control goroutine:
// one from node from to serve, or with tell an OpStop to send to it.
type controlMsg struct {
	from memory.NodeID
	c    Control
	tell bool
}

// NewPlane starts a control plane.
func NewPlane(cfg PlaneConfig) *Plane {
	p := &Plane{cfg: cfg, controls: make(chan controlMsg, MaxControls)}
	go func() {
		for m := range p.controls {
			if m.tell {
				p.send(m.from, &m.c)
				continue
			}
			p.control(m.from, &m.c)
		}
	}()
	return p
}

// Current returns this node's share of the VM, nil if none.
func (p *Plane) Current() Share {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.share
}

// Install makes s this node's share, ending the one it replaces (if
// any) with why.
func (p *Plane) Install(s Share, why string) {
	p.mu.Lock()
	old := p.share
	p.share = s
	if p.last != nil && p.last.stop.Spec.ID == s.Spec().ID {
		p.last = nil // a new VM under the old one's id: its messages are its own
	}
	p.mu.Unlock()
	if old != nil && old != s {
		old.End(why)
	}
}

// Take removes this node's share and returns it (nil if none): the
// caller stops it (the operator's `dvm stop`, or a new VM replaces it).
// A node that sends to its VM from now on is told it stopped.
func (p *Plane) Take() Share {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.share
	p.share = nil
	if s != nil {
		p.stoppedLocked(Control{Op: OpStop, Spec: Spec{ID: s.Spec().ID}, Arg: uint32(StopByOperator)})
	}
	return s
}

// stoppedLocked records that this node stopped the VM stop names, for
// the reason it gives. The caller holds mu.
func (p *Plane) stoppedLocked(stop Control) {
	p.last = &stoppedVM{stop: stop}
}

// NodeLost stops share s on this node because node n of its VM is gone
// (why says how that was found; see Runtime.NodeFailed) and tells the
// VM's other nodes, but n, with OpStop naming n, so that they stop too
// instead of waiting for this node's share; a node that sends to the VM
// later is told again. It returns what went with n, or nil if the VM
// had stopped already (only the first stop counts). The caller still
// ends s (Share.End). It sends on the transport and may block: it must
// not run in the receive path.
func (p *Plane) NodeLost(s Share, n memory.NodeID, why string) *NodeLostError {
	rt := s.Runtime()
	e := rt.NodeFailed(n, why)
	if e == nil {
		return nil
	}
	spec := s.Spec()
	stop := Control{Op: OpStop, Spec: Spec{ID: spec.ID}, Arg: uint32(StopNodeLost), Node: n}
	p.mu.Lock()
	p.stoppedLocked(stop)
	p.mu.Unlock()
	for i := range spec.Nodes {
		if to := memory.NodeID(i); to != rt.Self() && to != n {
			p.send(to, &stop)
		}
	}
	return e
}

// send sends control message c to node to; a failure is a notice.
func (p *Plane) send(to memory.NodeID, c *Control) {
	var b [MaxControlSize]byte
	if err := p.cfg.Send(to, b[:c.MarshalTo(b[:])]); err != nil {
		fmt.Fprintf(p.cfg.Notices, "dvm %d: %v to node %d: %v\n", c.Spec.ID, c.Op, p.cfg.ClusterID(to), err)
	}
}

// Broadcast sends control message c about the VM of s to its other
// nodes.
func (p *Plane) Broadcast(s Share, c Control) error {
	_, err := p.toOthers(s, c, func(to memory.NodeID, msg []byte) (bool, error) { return true, p.cfg.Send(to, msg) })
	return err
}

// toOthers encodes control message c about the VM of s and hands it to
// send for each of the VM's other nodes, stopping at the first error. It
// returns how many send reported not sent.
func (p *Plane) toOthers(s Share, c Control, send func(to memory.NodeID, msg []byte) (bool, error)) (unsent int, err error) {
	spec := s.Spec()
	c.Spec = spec
	var b [MaxControlSize]byte
	n := c.MarshalTo(b[:])
	self := s.Runtime().Self()
	for i := 0; i < spec.Nodes; i++ {
		if memory.NodeID(i) == self {
			continue
		}
		sent, err := send(memory.NodeID(i), b[:n])
		if err != nil {
			return unsent, fmt.Errorf("dvm %d: %v to node %d: %w", spec.ID, c.Op, i, err)
		}
		if !sent {
			unsent++
		}
	}
	return unsent, nil
}

// BroadcastLatest sends control message c to the VM's other nodes as
// Broadcast does, but skips a node whose window is full instead of
// waiting for room: it is for a message that the next one replaces (the
// guest clock, every few milliseconds), which is worth nothing late and
// whose sender must not stall. It returns how many nodes it skipped.
func (p *Plane) BroadcastLatest(s Share, c Control) (skipped int, err error) {
	if p.cfg.TrySend == nil {
		return 0, p.Broadcast(s, c)
	}
	return p.toOthers(s, c, p.cfg.TrySend)
}

// SendTo sends control message c about the VM of s to node to.
func (p *Plane) SendTo(s Share, to memory.NodeID, c Control) error {
	c.Spec = s.Spec()
	var b [MaxControlSize]byte
	n := c.MarshalTo(b[:])
	return p.cfg.Send(to, b[:n])
}

// Receive takes a message on Channel from node from. It never blocks: a
// control message that must wait goes to the control goroutine (a node
// that sends more than MaxControls ahead loses the excess), anything else
// to the share's Runtime.
func (p *Plane) Receive(from memory.NodeID, msg []byte) {
	if len(msg) == 0 || msg[0] != ControlMagic {
		if id, ok := envelopeID(msg); ok && p.tellStopped(from, id) {
			return
		}
		if s := p.Current(); s != nil {
			s.Runtime().Deliver(from, msg)
		}
		return
	}
	var c Control
	if err := c.Unmarshal(msg); err != nil {
		fmt.Fprintf(p.cfg.Notices, "dvm: from node %d: %v\n", from, err)
		return
	}
	switch c.Op {
	case OpCreate:
		// Built off the receive path: building a large share (the
		// frames of its homes zeroed) takes seconds, in an emulator
		// tens, and this path carries every acknowledgement, so a node
		// that built here fell silent for that long and was taken for
		// lost (two Bochs nodes, a 2.5 GiB guest: 15 s). What follows
		// on the channel must find the share: until it is installed,
		// Room says no to every sender, and the transport keeps their
		// messages unacknowledged and delivers them after (another
		// OpCreate too, so builds run one at a time, in order). The
		// creator waits for OpJoined before it sends the VM's traffic.
		p.mu.Lock()
		p.building = true
		p.mu.Unlock()
		go func() {
			p.create(from, c.Spec)
			p.mu.Lock()
			p.building = false
			p.mu.Unlock()
		}()
		return
	case OpJoined:
		p.joined(from, c.Spec.ID)
		return
	case OpClock:
		if s := p.Current(); s != nil && s.Spec().ID == c.Spec.ID {
			s.Clock(c.Time)
		}
		return
	case OpRoomReply:
		p.roomReply(from, &c)
		return
	case OpStop:
		// Wake the share's waiters now, even if the control queue is
		// full; the control goroutine ends the share.
		if s := p.Current(); s != nil && s.Spec().ID == c.Spec.ID {
			s.Runtime().Halt(stopError(from, &c, s.Spec().Nodes))
		}
	}
	// The rest may take the runtime's lock, which a vCPU may hold while
	// it waits to send on the transport whose lock the caller holds: the
	// control goroutine serves them, in order.
	select {
	case p.controls <- controlMsg{from: from, c: c}:
	default:
		fmt.Fprintf(p.cfg.Notices, "dvm: %v for VM %d from node %d dropped: %d control messages wait already\n",
			c.Op, c.Spec.ID, p.cfg.ClusterID(from), MaxControls)
	}
}

// Room reports whether node from may send this node another message on
// Channel now: whether the current VM's inbox has room for it
// (Runtime.Room), and none while a share is being built (see OpCreate
// in Receive). Otherwise control messages need no room: they are few,
// and those beyond MaxControls are dropped with a notice.
func (p *Plane) Room(from memory.NodeID) bool {
	p.mu.Lock()
	building := p.building
	p.mu.Unlock()
	if building {
		return false
	}
	if s := p.Current(); s != nil {
		return s.Runtime().Room(from)
	}
	return true
}

// create serves OpCreate, off the receive path (see Receive), and tells
// the creator with OpJoined once the share is installed.
func (p *Plane) create(from memory.NodeID, spec Spec) {
	if old := p.Take(); old != nil {
		go old.End("replaced by a new VM from node " + fmt.Sprint(from))
	}
	s, err := p.cfg.Host.Create(from, spec)
	if err != nil {
		fmt.Fprintf(p.cfg.Notices, "dvm %d: creating this node's share: %v\n", spec.ID, err)
		// The creator would wait for this node's pages for ever: it is
		// told now, and so is any node that sends to the VM later.
		p.mu.Lock()
		p.stoppedLocked(Control{Op: OpStop, Spec: Spec{ID: spec.ID}, Arg: uint32(StopNotCreated)})
		p.mu.Unlock()
		p.tellStopped(from, spec.ID)
		return
	}
	p.Install(s, "replaced")
	fmt.Fprintf(p.cfg.Notices, "dvm %d: joined for node %d: node %d of %d, %d vCPUs, %d pages\n",
		spec.ID, p.cfg.ClusterID(from), s.Runtime().Self(), spec.Nodes, spec.VCPUs, spec.Pages)
	p.send(from, &Control{Op: OpJoined, Spec: Spec{ID: spec.ID}})
}

// control serves a control message on the control goroutine.
func (p *Plane) control(from memory.NodeID, c *Control) {
	if c.Op == OpRoom {
		p.answerRoom(from, c) // about a VM to come
		return
	}
	s := p.Current()
	if s == nil || s.Spec().ID != c.Spec.ID {
		if c.Op == OpStop {
			return // stopped already (another node told first), or an older VM's
		}
		fmt.Fprintf(p.cfg.Notices, "dvm: %v for VM %d from node %d: no such VM here\n", c.Op, c.Spec.ID, from)
		return
	}
	switch c.Op {
	case OpStart:
		s.Start()
	case OpMigrate:
		if err := s.Migrate(c.VCPU, c.Node); err != nil {
			fmt.Fprintf(p.cfg.Notices, "dvm %d: migrate from node %d: %v\n", c.Spec.ID, from, err)
		}
	case OpDone:
		s.Done(from, c.Arg == 0)
	case OpEvacuate:
		s.Evacuate()
	case OpTakeHomes:
		s.TakeHomes(from)
	case OpStartup:
		h := s.Runtime().Handle(NoVCPU)
		h.Lock()
		s.Startup(h, c.VCPU, uint8(c.Arg))
		h.Unlock()
	case OpStop:
		p.stop(s, from, c)
	}
}

// stop serves OpStop c from node from for share s, on the control
// goroutine: the share stops, with a notice saying why, and a node that
// sends to its VM from now on is told the same. A share that had
// stopped for a reason of its own (a node it found lost, an error) ends
// without a notice: that reason was told already.
func (p *Plane) stop(s Share, from memory.NodeID, c *Control) {
	rt := s.Runtime()
	rt.Halt(stopError(from, c, s.Spec().Nodes)) // done already in the receive path, unless the share changed
	e, told := rt.halted().(*StopError)
	p.mu.Lock()
	if p.share == s {
		p.share = nil
	}
	if told {
		stop := Control{Op: OpStop, Spec: Spec{ID: c.Spec.ID}, Arg: uint32(StopByOperator)}
		if e.Lost != memory.NoNode {
			stop.Arg, stop.Node = uint32(StopNodeLost), e.Lost
		}
		p.stoppedLocked(stop)
	}
	p.mu.Unlock()
	if !told {
		s.End(rt.halted().Error())
		return
	}
	why := e.Describe(p.cfg.ClusterID)
	fmt.Fprintf(p.cfg.Notices, "dvm %d: %s\n", c.Spec.ID, why)
	s.End(why)
}

// stopError is what OpStop c from node from stops this node's share of
// a VM of nodes nodes with.
func stopError(from memory.NodeID, c *Control, nodes int) *StopError {
	e := &StopError{By: from, Lost: memory.NoNode, NotCreated: StopReason(c.Arg) == StopNotCreated}
	if StopReason(c.Arg) == StopNodeLost && int(c.Node) < nodes {
		e.Lost = c.Node
	}
	return e
}

// tellStopped reports whether VM id is the one this node stopped last;
// if so it has the control goroutine tell node from, which sent to it,
// with OpStop (at most once per StopRetell). It never blocks.
func (p *Plane) tellStopped(from memory.NodeID, id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.last
	if last == nil || last.stop.Spec.ID != id {
		return false
	}
	if int(from) >= len(last.told) {
		return true
	}
	now := time.Now()
	if t := last.told[from]; !t.IsZero() && now.Sub(t) < StopRetell {
		return true
	}
	select {
	case p.controls <- controlMsg{from: from, c: last.stop, tell: true}:
		last.told[from] = now
	default: // the next message from that node tries again
	}
	return true
}
