//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/netstack/cluster"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// The distributed VM both sides run a share of: two nodes, two vCPUs
// (vCPU 0 starts on node 0, the measuring side), four pages striped over
// the nodes, so that page 1 (faultGPA) is homed on node 1.
const (
	faultGPA = 0x1000
	vmPages  = 4
	vmVCPUs  = 2
)

// vmSpec is the VM's description, the same on both sides.
func vmSpec() dvm.Spec { return dvm.Spec{ID: 1, Nodes: 2, VCPUs: vmVCPUs, Pages: vmPages} }

// ept is the node's second-level table as the engine sets it: only the
// access of each page. The Runtime's lock serializes its callers.
type ept []memory.Access

// SetAccess implements memory.Permissions.
func (e ept) SetAccess(gpa uint64, _ *memory.Page, a memory.Access) { e[gpa/memory.PageSize] = a }

// Control messages on chCtl: the measuring side asks the other to write
// faultGPA (taking the page back) or to send the vCPU that arrived back,
// and the other answers each write request, and each vCPU arrival, with
// ctlDone.
const (
	ctlWrite byte = 'W'
	ctlBack  byte = 'B'
	ctlDone  byte = 'D'
	// ctlStats asks the serving side for its count of heap allocations
	// so far (runtime.MemStats.Mallocs), which it answers with
	// ctlMallocs and the count, 8 bytes little-endian.
	ctlStats   byte = 'S'
	ctlMallocs byte = 'M'
)

// work is a job for the serving side's worker goroutine, which may block
// on the transport where the receive path may not.
type work struct {
	write bool           // write faultGPA and answer
	v     migrate.VCPUID // else: vCPU v arrived; send it back
}

// side is one node: its transport station and its share of the VM.
type side struct {
	self     memory.NodeID
	st       *station
	rt       *dvm.Runtime
	echoed   chan struct{}       // the measuring side: an echo came back
	ctlDone  chan struct{}       // the measuring side: a control answer came
	arrived  chan struct{}       // the measuring side: vCPU 0 came back
	work     chan work           // the serving side
	state    vcpu.State          // the serving side: the vCPU that arrived
	parked   chan migrate.VCPUID // and its number, until ctlBack
	timer    *time.Timer
	echoResp [8]byte
	doneMsg  [1]byte // ctlDone
	// The measuring side: the serving side's last allocation count,
	// and a signal that it came.
	peerMallocs atomic.Uint64
	statsDone   chan struct{}
	// The serving side: the answer to ctlStats.
	mallocsMsg [9]byte
	mem        runtime.MemStats
}

// transport is the Runtime's dvm.Transport: the station on dvm.Channel.
type transport side

// Send implements dvm.Transport.
func (t *transport) Send(to memory.NodeID, msg []byte) error {
	return t.st.send(dvm.ClusterID(to), dvm.Channel, msg)
}

// newSide builds node self (0 measures, 1 serves) on interface ifname,
// the peer at the other end of the veth pair.
func newSide(self memory.NodeID, ifname string, pol nic.Polling) (*side, error) {
	s := &side{
		self: self, echoed: make(chan struct{}, 1), ctlDone: make(chan struct{}, 1),
		arrived: make(chan struct{}, 1), work: make(chan work, 16), timer: time.NewTimer(time.Hour),
		statsDone: make(chan struct{}, 1), parked: make(chan migrate.VCPUID, 1),
	}
	s.timer.Stop()
	s.doneMsg[0] = ctlDone
	rt, err := dvm.New(dvm.Config{
		Spec: vmSpec(), Self: self, Perm: make(ept, vmPages), Transport: (*transport)(s),
		OnArrive: s.onArrive, Poll: s.poll,
	})
	if err != nil {
		return nil, fmt.Errorf("side %d: %w", self, err)
	}
	s.rt = rt
	ma, mb := macs()
	me, peer, peerMAC := idA, idB, mb
	if self == 1 {
		me, peer, peerMAC = idB, idA, ma
	}
	if s.st, err = newStation(ifname, me, peer, peerMAC, pol, s.onMessage, s.room); err != nil {
		rt.Close()
		return nil, fmt.Errorf("side %d: %w", self, err)
	}
	s.st.start()
	go rt.Run()
	if self == 1 {
		go s.serve()
	}
	return s, nil
}

// room is the station's Room: on dvm.Channel, whether the Runtime's
// inbox has room for another message of the sender, as the hyperkernel
// asks it (hypervisor.go: the agent's room for dvm.Channel).
func (s *side) room(from cluster.NodeID, ch uint8) bool {
	if ch != dvm.Channel {
		return true
	}
	i, ok := dvm.NodeIndex(from)
	return !ok || s.rt.Room(i)
}

// onMessage is the station's handler, called with its lock held.
func (s *side) onMessage(from cluster.NodeID, ch uint8, msg []byte) {
	switch {
	case ch == dvm.Channel:
		if i, ok := dvm.NodeIndex(from); ok {
			s.rt.Deliver(i, msg)
		}
	case ch == chEcho && s.self == 1:
		// Answer at once, from the receive path: the reply carries
		// the acknowledgement.
		s.st.ep.Send(from, chEcho, s.echoResp[:])
	case ch == chEcho:
		notify(s.echoed)
	case ch == chCtl && s.self == 1 && len(msg) > 0 && msg[0] == ctlWrite:
		s.work <- work{write: true}
	case ch == chCtl && s.self == 1 && len(msg) > 0 && msg[0] == ctlBack:
		// The channels order onArrive's write of s.state before the
		// worker's read: onArrive parked the vCPU before it answered.
		s.work <- work{v: <-s.parked}
	case ch == chCtl && s.self == 1 && len(msg) > 0 && msg[0] == ctlStats:
		runtime.ReadMemStats(&s.mem)
		s.mallocsMsg[0] = ctlMallocs
		binary.LittleEndian.PutUint64(s.mallocsMsg[1:], s.mem.Mallocs)
		s.st.ep.Send(from, chCtl, s.mallocsMsg[:])
	case ch == chCtl && len(msg) == len(s.mallocsMsg) && msg[0] == ctlMallocs:
		s.peerMallocs.Store(binary.LittleEndian.Uint64(msg[1:]))
		notify(s.statsDone)
	case ch == chCtl:
		notify(s.ctlDone)
	}
}

// onArrive is the Runtime's OnArrive, called with its lock held. On the
// serving side the vCPU is installed here (its state decoded and handed
// over, as the hyperkernel hands it to the vCPU's loop) and the arrival
// answered at once; the worker sends the vCPU back when the measuring
// side asks (ctlBack), outside the timed part, so that the return trip
// does not overlap the answer.
func (s *side) onArrive(v migrate.VCPUID, st *vcpu.State) {
	if s.self == 0 {
		notify(s.arrived)
		return
	}
	s.state = *st
	s.parked <- v
	if err := s.st.send(idA, chCtl, s.doneMsg[:]); err != nil {
		fmt.Printf("error: serving side: %v\n", err)
	}
}

// notify signals c without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// serve is the serving side's worker: it takes faultGPA back when asked,
// answering on chCtl, and sends arriving vCPUs home (onArrive answered
// them).
func (s *side) serve() {
	var page [8]byte
	for w := range s.work {
		var err error
		if w.write {
			binary.LittleEndian.PutUint64(page[:], uint64(time.Now().UnixNano()))
			if err = s.rt.Write(faultGPA, page[:]); err == nil {
				err = s.st.send(idA, chCtl, s.doneMsg[:])
			}
		} else {
			h := s.rt.Handle(w.v)
			h.Lock()
			err = h.Depart(0, &s.state)
			h.Unlock()
		}
		if err != nil {
			fmt.Printf("error: serving side: %v\n", err)
			return
		}
	}
}

// poll is the Runtime's Config.Poll: the frames the link holds now, as
// the hyperkernel's waiters poll its NIC.
func (s *side) poll() bool { return s.st.l.Poll(pollBudget) > 0 }

// pollBudget is the most frames one poll takes in.
const pollBudget = 16

// wait waits up to a second for a signal on c, polling the link for
// dvm.PollSpin first, as the Runtime's waiters do.
func (s *side) wait(c chan struct{}, what string) error {
	if dvm.PollFor(s.poll, func() bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}) {
		return nil
	}
	s.timer.Reset(time.Second)
	select {
	case <-c:
		s.timer.Stop()
		return nil
	case <-s.timer.C:
		return fmt.Errorf("no %s within a second", what)
	}
}

// servingMallocs asks the serving side for its count of heap
// allocations so far.
func (s *side) servingMallocs() (uint64, error) {
	if err := s.st.send(idB, chCtl, []byte{ctlStats}); err != nil {
		return 0, err
	}
	if err := s.wait(s.statsDone, "allocation count"); err != nil {
		return 0, err
	}
	return s.peerMallocs.Load(), nil
}

// close stops the station and the Runtime.
func (s *side) close() error {
	err := s.st.close()
	s.rt.Close()
	return err
}
