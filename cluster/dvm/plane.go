// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"io"
	"sync"

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
	// Evacuate moves this node's vCPUs away and gives back the page
	// copies it does not home (OpEvacuate); it must not block.
	Evacuate()
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
}

// PlaneConfig describes a node's control plane.
type PlaneConfig struct {
	Host Host
	// Send carries a message on Channel to another node.
	Send func(to memory.NodeID, msg []byte) error
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
type Plane struct {
	cfg      PlaneConfig
	controls chan controlMsg

	mu    sync.Mutex
	share Share      // guarded by mu
	query *roomQuery // the Rooms call waiting for answers, guarded by mu
}

// controlMsg is a control message waiting for the control goroutine.
type controlMsg struct {
	from memory.NodeID
	c    Control
}

// NewPlane starts a control plane.
func NewPlane(cfg PlaneConfig) *Plane {
	p := &Plane{cfg: cfg, controls: make(chan controlMsg, MaxControls)}
	go func() {
		for m := range p.controls {
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
	p.mu.Unlock()
	if old != nil && old != s {
		old.End(why)
	}
}

// Take removes this node's share and returns it (nil if none).
func (p *Plane) Take() Share {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.share
	p.share = nil
	return s
}

// Broadcast sends control message c about the VM of s to its other
// nodes.
func (p *Plane) Broadcast(s Share, c Control) error {
	spec := s.Spec()
	c.Spec = spec
	var b [MaxControlSize]byte
	n := c.MarshalTo(b[:])
	self := s.Runtime().Self()
	for i := 0; i < spec.Nodes; i++ {
		if memory.NodeID(i) == self {
			continue
		}
		if err := p.cfg.Send(memory.NodeID(i), b[:n]); err != nil {
			return fmt.Errorf("dvm %d: %v to node %d: %w", spec.ID, c.Op, i, err)
		}
	}
	return nil
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
		// At once: the VM's coherence traffic follows on the same
		// channel and must find it.
		p.create(from, c.Spec)
		return
	case OpClock:
		if s := p.Current(); s != nil && s.Spec().ID == c.Spec.ID {
			s.Clock(c.Time)
		}
		return
	case OpRoomReply:
		p.roomReply(from, &c)
		return
	}
	// The rest may take the runtime's lock, which a vCPU may hold while
	// it waits to send on the transport whose lock the caller holds: the
	// control goroutine serves them, in order.
	select {
	case p.controls <- controlMsg{from, c}:
	default:
		fmt.Fprintf(p.cfg.Notices, "dvm: %v for VM %d from node %d dropped: %d control messages wait already\n",
			c.Op, c.Spec.ID, p.cfg.ClusterID(from), MaxControls)
	}
}

// create serves OpCreate in the receive path.
func (p *Plane) create(from memory.NodeID, spec Spec) {
	if old := p.Take(); old != nil {
		go old.End("replaced by a new VM from node " + fmt.Sprint(from))
	}
	s, err := p.cfg.Host.Create(from, spec)
	if err != nil {
		fmt.Fprintf(p.cfg.Notices, "dvm %d: creating this node's share: %v\n", spec.ID, err)
		return
	}
	p.Install(s, "replaced")
	fmt.Fprintf(p.cfg.Notices, "dvm %d: joined for node %d: node %d of %d, %d vCPUs, %d pages\n",
		spec.ID, p.cfg.ClusterID(from), s.Runtime().Self(), spec.Nodes, spec.VCPUs, spec.Pages)
}

// control serves a control message on the control goroutine.
func (p *Plane) control(from memory.NodeID, c *Control) {
	if c.Op == OpRoom {
		p.answerRoom(from, c) // about a VM to come
		return
	}
	s := p.Current()
	if s == nil || s.Spec().ID != c.Spec.ID {
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
	case OpStartup:
		h := s.Runtime().Handle(NoVCPU)
		h.Lock()
		s.Startup(h, c.VCPU, uint8(c.Arg))
		h.Unlock()
	case OpStop:
		s.End("stopped by node " + fmt.Sprint(from))
		p.mu.Lock()
		if p.share == s {
			p.share = nil
		}
		p.mu.Unlock()
	}
}
