// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package node runs this hyperkernel's place in the cluster: the
// authenticated transport endpoint on the cluster port, the Raft-agreed
// membership above it, a loop that drives both in real time, a log of
// membership events, and the shell's `nodes` and `node` commands.
//
// The transport and membership are single-threaded by design; an Agent
// serializes the three goroutines that reach them (frame receive, the
// tick loop and the shell) with one mutex.
package node

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// TickInterval is how often the loop drives the transport (retransmits,
// acks) and the membership (Raft ticks, heartbeats, failure detection).
const TickInterval = time.Millisecond

// Config configures an Agent.
type Config struct {
	// Link is the cluster port: it must deliver only cluster frames
	// (EtherType 0x88B5), e.g. a mux.Port.
	Link link.Link
	// ID is this node's id; Key the cluster key.
	ID  cluster.NodeID
	Key []byte
	// Bootstrap lists the initial members; empty with Join false forms a
	// cluster of this node alone. Join makes the node ask a running
	// cluster to admit it instead.
	Bootstrap []membership.Member
	Join      bool
	// IP is this node's control-plane address as text, shown to peers.
	IP string
	// CounterBase starts this incarnation's frame counters (see
	// cluster.Config): it must exceed every counter of earlier boots.
	CounterBase uint64
	// Clock is monotonic time; Log receives one line per membership
	// event, in log order (nil: not logged).
	Clock func() time.Duration
	Log   io.Writer
	// FailureTimeout overrides membership.DefaultFailureTimeout.
	FailureTimeout time.Duration
	// KeyName names the cluster key in `nodes` (a fingerprint, or the
	// development key), never the key itself.
	KeyName string
	// Poll, if set, takes in the frames the NIC holds now without
	// waiting (nic.Device.Poll) and reports whether there were any: what
	// Agent.Poll does for a goroutine that waits for a peer.
	Poll func() bool
}

// Agent is this node's cluster presence.
type Agent struct {
	cfg  Config
	mu   sync.Mutex
	recv link.Receiver // the endpoint's frame handler
	ep   *cluster.Endpoint
	mem  *membership.Node
	// logged counts the membership events already written to Log.
	logged int
	// raft keeps Raft's and membership's warnings and errors.
	raft raftLog
	// handlers receive the messages of channels other than Raft's;
	// rooms say whether a handler can take another message now.
	handlers map[uint8]func(from cluster.NodeID, msg []byte)
	rooms    map[uint8]func(from cluster.NodeID) bool
	stop     chan struct{}
	done     chan struct{}
}

// New builds the endpoint and membership node; Start runs them.
func New(cfg Config) (*Agent, error) {
	if cfg.Link == nil || cfg.Clock == nil {
		return nil, errors.New("node: Link and Clock are required")
	}
	a := &Agent{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	a.ep, err = cluster.NewEndpoint(cluster.Config{
		ID:          cfg.ID,
		Key:         cfg.Key,
		Link:        (*lockedLink)(a),
		Clock:       cfg.Clock,
		CounterBase: cfg.CounterBase,
		// Acknowledgements wait up to three ticks for a data frame to
		// ride on (a reply, or the next request): fewer frames per
		// remote page fault.
		AckDelay: 3 * TickInterval,
		AckEvery: 4,
		OnMessage: func(from cluster.NodeID, ch uint8, msg []byte) {
			if ch == membership.ChannelRaft {
				a.mem.HandleMessage(from, msg)
			} else if h := a.handlers[ch]; h != nil {
				h(from, msg)
			}
		},
		Room: func(from cluster.NodeID, ch uint8) bool {
			r := a.rooms[ch]
			return r == nil || r(from)
		},
		OnDatagram: func(from cluster.NodeID, msg []byte) { a.mem.HandleDatagram(from, msg) },
		OnHello:    func(from cluster.NodeID, mac link.MAC, p []byte) { a.mem.HandleHello(from, mac, p) },
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
	}
	boot := cfg.Bootstrap
	if len(boot) == 0 && !cfg.Join {
		boot = []membership.Member{{ID: cfg.ID, MAC: cfg.Link.MAC(), IP: cfg.IP}}
	}
	if cfg.Join {
		boot = nil
	}
	a.mem, err = membership.New(membership.Config{
		Endpoint:       a.ep,
		Clock:          cfg.Clock,
		IP:             cfg.IP,
		Bootstrap:      boot,
		FailureTimeout: cfg.FailureTimeout,
		Logger:         &a.raft,
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
	}
	cfg.Link.SetReceiver(a.receive)
	return a, nil
}

// lockedLink is the endpoint's view of the cluster port: it keeps the
// endpoint's receiver so that frames reach it under the Agent's lock.
type lockedLink Agent

func (l *lockedLink) Transmit(f []byte) error     { return l.cfg.Link.Transmit(f) }
func (l *lockedLink) SetReceiver(r link.Receiver) { l.recv = r }
func (l *lockedLink) MAC() link.MAC               { return l.cfg.Link.MAC() }
func (l *lockedLink) MTU() int                    { return l.cfg.Link.MTU() }
func (l *lockedLink) Up() bool                    { return l.cfg.Link.Up() }

// receive takes a cluster frame from the port.
func (a *Agent) receive(frame []byte) {
	a.mu.Lock()
	if a.recv != nil {
		a.recv(frame)
	}
	a.mu.Unlock()
}

// Poll takes in the frames the NIC holds now (Config.Poll), for a
// goroutine that waits for a peer's answer and would otherwise wait for
// the NIC's receive loop, which sleeps between polls. Frames go where
// the receive loop sends them, handlers run on the caller as they run
// on that loop, so the caller must not hold the Agent's lock or a lock
// a handler takes. It reports whether frames came; false without
// Config.Poll.
func (a *Agent) Poll() bool { return a.cfg.Poll != nil && a.cfg.Poll() }

// Handle makes fn receive the messages of channel ch (not Raft's). fn runs
// in the receive path with the Agent's lock held: it must not call the
// Agent, and should hand long work to another goroutine. msg is valid only
// during the call.
func (a *Agent) Handle(ch uint8, fn func(from cluster.NodeID, msg []byte)) error {
	if ch == membership.ChannelRaft {
		return fmt.Errorf("node: channel %d carries Raft", ch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handlers == nil {
		a.handlers = map[uint8]func(cluster.NodeID, []byte){}
	}
	a.handlers[ch] = fn
	return nil
}

// SetRoom bounds what channel ch's handler is given: room reports whether
// the handler can take another message from node from now. While it says
// no, that node's messages on ch wait in the transport and the node is
// asked to hold back (cluster.Config.Room); its Send calls then wait, and
// fail after sendTimeout. room runs in the receive path and the tick loop
// with the Agent's lock held: it must be quick and must not call the
// Agent.
func (a *Agent) SetRoom(ch uint8, room func(from cluster.NodeID) bool) error {
	if ch == membership.ChannelRaft {
		return fmt.Errorf("node: channel %d carries Raft", ch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rooms == nil {
		a.rooms = map[uint8]func(cluster.NodeID) bool{}
	}
	a.rooms[ch] = room
	return nil
}

// sendTimeout bounds how long Send waits for room in a peer's window.
const sendTimeout = 5 * time.Second

// Send queues msg on channel ch to peer to, waiting while the channel's
// send queue is full (the tick loop frees it as acknowledgements arrive).
// It must not be called from a Handle callback.
func (a *Agent) Send(to cluster.NodeID, ch uint8, msg []byte) error {
	var deadline time.Time
	for {
		err := a.TrySend(to, ch, msg)
		if !errors.Is(err, cluster.ErrBusy) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(sendTimeout)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("node: send to node %d: window full for %v: %w", to, sendTimeout, cluster.ErrBusy)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TrySend is Send without the wait: when ch's send queue to peer to is
// full it returns at once with an error wrapping cluster.ErrBusy. It
// suits a message that a later one replaces (a clock reading), which is
// better skipped than late.
func (a *Agent) TrySend(to cluster.NodeID, ch uint8, msg []byte) error {
	a.mu.Lock()
	err := a.ep.Send(to, ch, msg)
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("node: send to node %d: %w", to, err)
	}
	return nil
}

// Start runs the tick loop until Stop.
func (a *Agent) Start() {
	go func() {
		defer close(a.done)
		t := time.NewTicker(TickInterval)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.Tick()
			}
		}
	}()
}

// Stop ends the tick loop (the node falls silent; peers will declare it
// failed). It does not leave the cluster: see Leave.
func (a *Agent) Stop() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
		<-a.done
	}
}

// Tick drives the transport and membership once and logs new events.
func (a *Agent) Tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ep.Tick()
	a.mem.Tick()
	a.ep.Flush()
	if a.cfg.Log == nil {
		return
	}
	ev := a.mem.Events()
	for _, e := range ev[min(a.logged, len(ev)):] {
		fmt.Fprintf(a.cfg.Log, "membership: %v\n", e)
	}
	a.logged = len(ev)
}

// Leave asks the cluster to remove this node cleanly.
func (a *Agent) Leave() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem.Leave()
}

// Status returns this node's view of the cluster.
func (a *Agent) Status() membership.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem.Status()
}

// Lost reports whether node id is gone as this node sees it: removed,
// or silent for longer than silence (see membership.Node.Lost).
func (a *Agent) Lost(id cluster.NodeID, silence time.Duration) (why string, lost bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem.Lost(id, silence)
}

// Nodes returns the rows of the `nodes` command.
func (a *Agent) Nodes() []membership.NodeInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem.Nodes()
}

// KeyName names the cluster key as Config.KeyName gives it (a
// fingerprint, never the key).
func (a *Agent) KeyName() string { return a.cfg.KeyName }

// Events returns the membership events applied so far.
func (a *Agent) Events() []membership.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem.Events()
}

// RaftLog returns the latest warnings and errors of Raft and membership,
// oldest first, how many of each there were, and the Raft messages
// dropped as malformed.
func (a *Agent) RaftLog() (lines []string, warnings, errors, badMessages uint64) {
	lines, warnings, errors = a.raft.Recent()
	a.mu.Lock()
	defer a.mu.Unlock()
	return lines, warnings, errors, a.mem.BadMessages()
}

// TransportStats returns the endpoint's counters (drops by reason).
func (a *Agent) TransportStats() cluster.Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ep.Stats()
}
