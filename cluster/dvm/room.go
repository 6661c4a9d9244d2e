// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// MinCopyFrames is the fewest frames a node keeps for copies of pages
// other nodes home (16 MiB), on top of the pages it homes: many more
// than the faults its vCPUs (at most MaxVCPUs) and the hyperkernel can
// have outstanding at once, so that a fault seldom waits for a frame
// (memory.FaultNoRoom), and room for the pages a guest's CPUs share
// (kernel text, stacks, locks) to stay while they work.
const MinCopyFrames = 4096

// CopyBudget is the bound on copy frames (Config.CopyFrames) of a node
// with free frames left for the VM's pages once its fixed cost (page
// tables, VMCSs) is counted, that homes homed of them: the rest, and at
// least MinCopyFrames. Frames beyond the rest are taken only while the
// node's frame pool has them: when it runs short the engine evicts
// instead.
func CopyBudget(free, homed int) int { return max(free-homed, MinCopyFrames) }

// RoomTimeout bounds how long Plane.Rooms waits for the other nodes'
// answers.
const RoomTimeout = 5 * time.Second

// RoomError is the refusal of a VM the cluster cannot hold: its size,
// the pages each node would home under its home policy, and the pages
// each can home (Host.Room).
type RoomError struct {
	Spec  Spec
	Homed []int
	Room  []int
	// Names are the nodes' cluster ids, by VM node index.
	Names []uint32
}

// pageBytes formats a number of pages as a size.
func pageBytes(pages int) string { return memmap.FormatSize(uint64(max(pages, 0)) * memory.PageSize) }

// Error says what does not fit, with the figures.
func (e *RoomError) Error() string {
	var b strings.Builder
	total := 0
	for _, r := range e.Room {
		total += r
	}
	fmt.Fprintf(&b, "dvm: the VM's %s (%d pages) do not fit in the cluster: ", pageBytes(e.Spec.Pages), e.Spec.Pages)
	if total < e.Spec.Pages {
		fmt.Fprintf(&b, "its %d nodes can home %s in all (", len(e.Room), pageBytes(total))
		e.list(&b)
		fmt.Fprintf(&b, "), each keeping %s for copies of pages it does not home: give the VM less memory or more nodes", pageBytes(MinCopyFrames))
		return b.String()
	}
	sep := ""
	for i, h := range e.Homed {
		if h > e.Room[i] {
			fmt.Fprintf(&b, "%swith homes=%v node %d would home %s and has room for %s", sep, e.Spec.Homes, e.Names[i], pageBytes(h), pageBytes(e.Room[i]))
			sep = "; "
		}
	}
	fmt.Fprintf(&b, " (")
	e.list(&b)
	fmt.Fprintf(&b, ", %s in all): use homes=fill", pageBytes(total))
	return b.String()
}

// list writes each node's room.
func (e *RoomError) list(b *strings.Builder) {
	for i, r := range e.Room {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "node %d %s", e.Names[i], pageBytes(r))
	}
}

// FillShares sizes the homes=fill ranges of a VM of pages pages over
// nodes that can home rooms[i] pages each: in proportion to room, so
// that every node keeps the same part of its room for copies. It fails
// if the nodes cannot home the pages between them.
func FillShares(pages int, rooms []int) ([memory.MaxNodes]uint32, error) {
	var shares [memory.MaxNodes]uint32
	total := 0
	for _, r := range rooms {
		total += max(r, 0)
	}
	if len(rooms) > memory.MaxNodes || total < pages {
		return shares, fmt.Errorf("dvm: %d nodes with room for %d pages cannot home %d", len(rooms), total, pages)
	}
	given := 0
	for i, r := range rooms {
		s := int(int64(pages) * int64(max(r, 0)) / int64(total))
		shares[i] = uint32(s)
		given += s
	}
	// What rounding left over (fewer pages than nodes), to the first
	// nodes with room to spare.
	for i := 0; given < pages; i = (i + 1) % len(rooms) {
		if int(shares[i]) < rooms[i] {
			shares[i]++
			given++
		}
	}
	return shares, nil
}

// FitHomes checks that the nodes, which can home rooms[i] of the VM's
// pages each (by node index), can hold spec; with HomesFill it first
// sizes spec.Shares by room. names gives a node's cluster id for the
// refusal, a *RoomError.
func FitHomes(spec *Spec, rooms []int, names func(memory.NodeID) uint32) error {
	if len(rooms) != spec.Nodes {
		return fmt.Errorf("dvm: room of %d nodes for a VM of %d", len(rooms), spec.Nodes)
	}
	refuse := func() error {
		e := &RoomError{Spec: *spec, Homed: spec.Homed(), Room: rooms, Names: make([]uint32, len(rooms))}
		for i := range e.Names {
			e.Names[i] = names(memory.NodeID(i))
		}
		return e
	}
	if spec.Homes == HomesFill {
		shares, err := FillShares(spec.Pages, rooms)
		if err != nil {
			return refuse()
		}
		spec.Shares = shares
	}
	for i, h := range spec.Homed() {
		if h > rooms[i] {
			return refuse()
		}
	}
	return nil
}

// roomQuery is a Rooms call waiting for answers.
type roomQuery struct {
	id      uint32
	replies chan roomReply
}

// roomReply is one node's answer to OpRoom.
type roomReply struct {
	from memory.NodeID
	room NodeRoom
}

// Rooms asks every node of the VM spec describes how many of its pages
// it can home and which virtualization it uses (Host.Room, Host.Virt;
// this node, self, answers itself) and returns the answers by node
// index, waiting at most timeout for the other nodes'. The control plane
// runs one query at a time.
func (p *Plane) Rooms(self memory.NodeID, spec Spec, timeout time.Duration) ([]NodeRoom, error) {
	q := &roomQuery{id: spec.ID, replies: make(chan roomReply, spec.Nodes)}
	p.mu.Lock()
	p.query = q
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.query == q {
			p.query = nil
		}
		p.mu.Unlock()
	}()
	rooms := make([]NodeRoom, spec.Nodes)
	answered := make([]bool, spec.Nodes)
	rooms[self], answered[self] = NodeRoom{Pages: p.cfg.Host.Room(spec), Virt: p.cfg.Host.Virt(), Cores: p.cfg.Host.Cores()}, true
	c := Control{Op: OpRoom, Spec: spec}
	var b [MaxControlSize]byte
	n := c.MarshalTo(b[:])
	for i := range rooms {
		if memory.NodeID(i) == self {
			continue
		}
		if err := p.cfg.Send(memory.NodeID(i), b[:n]); err != nil {
			return nil, fmt.Errorf("dvm %d: asking node %d for room: %w", spec.ID, p.cfg.ClusterID(memory.NodeID(i)), err)
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for missing := spec.Nodes - 1; missing > 0; {
		select {
		case r := <-q.replies:
			if int(r.from) < len(rooms) && !answered[r.from] {
				rooms[r.from], answered[r.from] = r.room, true
				missing--
			}
		case <-timer.C:
			var silent []string
			for i, ok := range answered {
				if !ok {
					silent = append(silent, fmt.Sprint(p.cfg.ClusterID(memory.NodeID(i))))
				}
			}
			return nil, fmt.Errorf("dvm %d: node %s did not say within %v how much room it has", spec.ID, strings.Join(silent, ", "), timeout)
		}
	}
	return rooms, nil
}

// answerRoom serves OpRoom from node from, on the control goroutine.
func (p *Plane) answerRoom(from memory.NodeID, c *Control) {
	room := min(max(p.cfg.Host.Room(c.Spec), 0), math.MaxUint32)
	r := Control{Op: OpRoomReply, Spec: Spec{ID: c.Spec.ID}, Arg: uint32(room), Virt: p.cfg.Host.Virt(),
		Cores: uint16(min(max(p.cfg.Host.Cores(), 0), math.MaxUint16))}
	var b [MaxControlSize]byte
	if err := p.cfg.Send(from, b[:r.MarshalTo(b[:])]); err != nil {
		fmt.Fprintf(p.cfg.Notices, "dvm %d: answering node %d's room query: %v\n", c.Spec.ID, p.cfg.ClusterID(from), err)
	}
}

// roomReply hands OpRoomReply from node from to the Rooms call waiting
// for it, if any; it never blocks.
func (p *Plane) roomReply(from memory.NodeID, c *Control) {
	p.mu.Lock()
	q := p.query
	p.mu.Unlock()
	if q == nil || q.id != c.Spec.ID {
		return
	}
	select {
	case q.replies <- roomReply{from: from, room: NodeRoom{Pages: int(c.Arg), Virt: c.Virt, Cores: int(c.Cores)}}:
	default:
	}
}
