//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/link/afpacket"
	"github.com/big-iron/big-iron/machine/nic"
)

// The polled floor is the floor's exchange over the links the cluster
// transport uses (afpacket.Link: a receive ring polled by nic.PollLoop on
// the serving side and by the waiter on the measuring side), with no
// protocol: what the figures' way of taking frames in costs without the
// transport, the coherence protocol and the migration above it. The
// floor proper waits in read(2) instead; the figures poll, which a plain
// program does not, so the report gives each figure's ratio to both.

// etherPollFloor is the polled floor's EtherType, so that its frames
// reach neither the floor's sockets nor the cluster transport's. It is
// 0x9000, the old Ethernet configuration-test (loopback) type, which no
// protocol of the namespaces' kernel handles.
const etherPollFloor link.EtherType = 0x9000

// servePollFloor answers the polled floor's exchanges on l, from its
// receive loop, until stop is closed.
func servePollFloor(l *afpacket.Link, pol nic.Polling, stop <-chan struct{}) {
	answers := newFloorAnswers(etherPollFloor, l.MTU())
	l.SetReceiver(func(f []byte) {
		for _, a := range answers.to(f) {
			if err := l.Transmit(a); err != nil {
				fmt.Printf("error: polled floor: %v\n", err)
			}
		}
	})
	nic.PollLoop(l, pol, nic.NewSystemClock(), stop)
}

// pollExchange is the measuring side of the polled floor: as
// floorExchange, but it polls the link's ring for the answer.
type pollExchange struct {
	l      *afpacket.Link
	frames [][]byte
	nBack  int
	seq    uint64
	got    int // frames of exchange seq received
}

// newPollExchange prepares exchanges of out payload bytes from src to
// dst and back bytes in return at mtu on l, taking l's receiver.
func newPollExchange(l *afpacket.Link, dst, src link.MAC, out, back, mtu int) *pollExchange {
	e := &pollExchange{l: l, frames: floorFrames(etherPollFloor, dst, src, out, back, mtu), nBack: len(frameSizes(back, mtu))}
	l.SetReceiver(e.receive)
	return e
}

// receive counts the frames of the current exchange.
func (e *pollExchange) receive(f []byte) {
	if len(f) >= link.HeaderLen+floorHeaderLen && binary.LittleEndian.Uint64(f[link.HeaderLen:]) == e.seq {
		e.got++
	}
}

// pollTimeout bounds how long an exchange polls for its answer.
const pollTimeout = time.Second

// run sends the exchange's frames and polls until every frame of the
// answer came.
func (e *pollExchange) run() error {
	e.seq++
	e.got = 0
	for _, fr := range e.frames {
		binary.LittleEndian.PutUint64(fr[link.HeaderLen:], e.seq)
		if err := e.l.Transmit(fr); err != nil {
			return fmt.Errorf("polled floor: %w", err)
		}
	}
	start := time.Now()
	for e.got < e.nBack {
		if e.l.Poll(pollBudget) == 0 && time.Since(start) > pollTimeout {
			return fmt.Errorf("polled floor: exchange %d: %d of %d frames back within %v", e.seq, e.got, e.nBack, pollTimeout)
		}
	}
	return nil
}
