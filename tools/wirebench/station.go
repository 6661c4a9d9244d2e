//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/big-iron/big-iron/cluster/node"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/link/afpacket"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// Node ids of the two sides on the cluster transport, and the channels the
// figures use (dvm.Channel carries the coherence and migration messages).
const (
	idA, idB cluster.NodeID = 1, 2
	chEcho   uint8          = 1
	chCtl    uint8          = 3
)

// clusterKey is the benchmark's cluster key: both sides use the same.
func clusterKey() []byte { return bytes.Repeat([]byte{0x5a}, cluster.KeyLen) }

// station is one side's cluster transport: an endpoint on an AF_PACKET
// link, driven as the image drives its NIC and cluster/node its endpoint
// (one lock around the endpoint, frames taken in by the image's receive
// loop, nic.PollLoop, a tick loop every node.TickInterval) but without
// membership: the peer is fixed.
type station struct {
	mu     sync.Mutex
	recv   link.Receiver // the endpoint's, called under mu
	l      *afpacket.Link
	ep     *cluster.Endpoint
	pol    nic.Polling
	stop   chan struct{}
	done   chan struct{} // the tick loop ended
	polled chan struct{} // the receive loop ended
}

// stationLink is the endpoint's view of the link: it keeps the endpoint's
// receiver so that frames reach it under the station's lock.
type stationLink station

func (s *stationLink) Transmit(f []byte) error     { return s.l.Transmit(f) }
func (s *stationLink) SetReceiver(r link.Receiver) { s.recv = r }
func (s *stationLink) MAC() link.MAC               { return s.l.MAC() }
func (s *stationLink) MTU() int                    { return s.l.MTU() }
func (s *stationLink) Up() bool                    { return s.l.Up() }

// newStation opens interface ifname as node self with the peer at
// peerMAC, and calls onMessage, with the station's lock held, for every
// message that arrives, once room says there is room for it (as the
// hyperkernel's agent does: cluster.Config.Room). Its receive loop polls
// the link as pol says. start starts the receive and tick loops.
func newStation(ifname string, self, peer cluster.NodeID, peerMAC link.MAC, pol nic.Polling, onMessage cluster.Handler, room func(cluster.NodeID, uint8) bool) (*station, error) {
	l, err := afpacket.Open(ifname, link.EtherTypeCluster)
	if err != nil {
		return nil, fmt.Errorf("station: %w", err)
	}
	s := &station{l: l, pol: pol, stop: make(chan struct{}), done: make(chan struct{}), polled: make(chan struct{})}
	start := time.Now()
	s.ep, err = cluster.NewEndpoint(cluster.Config{
		ID: self, Key: clusterKey(), Link: (*stationLink)(s),
		Clock:       func() time.Duration { return time.Since(start) },
		CounterBase: uint64(time.Now().Unix()) << 32,
		// As cluster/node sets them: acknowledgements wait up to three
		// ticks for a reply to ride on.
		AckDelay: 3 * node.TickInterval, AckEvery: 4,
		OnMessage: onMessage,
		Room:      room,
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("station: %w", err)
	}
	if err := s.ep.AddPeer(peer, peerMAC); err != nil {
		l.Close()
		return nil, fmt.Errorf("station: %w", err)
	}
	l.SetReceiver(s.receive)
	return s, nil
}

// start starts the receive loop and the tick loop.
func (s *station) start() {
	go func() {
		defer close(s.polled)
		nic.PollLoop(s.l, s.pol, nic.NewSystemClock(), s.stop)
	}()
	go s.tickLoop()
}

// receive hands a frame to the endpoint under the lock.
func (s *station) receive(frame []byte) {
	s.mu.Lock()
	if s.recv != nil {
		s.recv(frame)
	}
	s.mu.Unlock()
}

// tickLoop drives the endpoint's timers until close.
func (s *station) tickLoop() {
	defer close(s.done)
	t := time.NewTicker(node.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.ep.Tick()
			s.ep.Flush()
			s.mu.Unlock()
		}
	}
}

// sendTimeout bounds how long send waits for room in the peer's window.
const sendTimeout = 5 * time.Second

// send queues msg on channel ch to node to, waiting while the window is
// full, as node.Agent.Send does. It must not be called with the lock held.
func (s *station) send(to cluster.NodeID, ch uint8, msg []byte) error {
	var deadline time.Time
	for {
		s.mu.Lock()
		err := s.ep.Send(to, ch, msg)
		s.mu.Unlock()
		if !errors.Is(err, cluster.ErrBusy) {
			if err != nil {
				return fmt.Errorf("station: send to %d: %w", to, err)
			}
			return nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(sendTimeout)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("station: send to %d: %w", to, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// close stops the receive and tick loops and the link.
func (s *station) close() error {
	close(s.stop)
	<-s.done
	<-s.polled
	return s.l.Close()
}
