package sim

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	transport "github.com/big-iron/big-iron/netstack/cluster"
)

// The cluster transport under the simulator (Config.RealTransport): each
// node gets the real netstack/transport.Endpoint, on a port whose frames
// take this simulator's links (latency, serialisation, loss, duplication,
// reordering, partitions shorter than the failure timeout), driven by the
// virtual clock and by a Tick event per node. Frames are AES-GCM sealed
// and opened, messages fragmented to the port's MTU, acknowledged
// cumulatively and selectively and retransmitted by the Endpoint's own
// RTT estimate; a full send queue (ErrBusy) leaves a message in a
// backlog the node sends from as acknowledgements free room, as the
// hyperkernel's agent waits and retries. What it does not model yet:
// crashes and cuts (the loss report's ground truth looks into the
// reliable layer's in-flight messages, which the Endpoint keeps to
// itself), so New refuses them with it.

// realChannel is the transport channel the simulated VM uses, and
// realMaxRTO the Endpoint's largest retransmission timeout in multiples
// of its smallest (the simulator's rto, a round trip with slack).
const (
	realChannel = 1
	realMaxRTO  = 64
)

// realNet is the per-run state of the real transport.
type realNet struct {
	s   *Sim
	eps []*transport.Endpoint
	// backlog holds, per sender and destination, the messages waiting
	// for room in the Endpoint's send queue, in order.
	backlog [][][][]byte
	tickNS  int64
	// err is the first error a delivery returned; the run stops on it.
	err error
}

// simPort is a node's NIC on the simulated links.
type simPort struct {
	n    *realNet
	node int
	recv link.Receiver
}

func nodeMAC(i int) link.MAC { return link.MAC{0x02, 0x51, 0, 0, 0, byte(i + 1)} }

// Transmit puts a copy of frame on the link to the node its destination
// address names (every other node for a broadcast).
func (p *simPort) Transmit(frame []byte) error {
	var dst link.MAC
	copy(dst[:], frame)
	for i := range p.n.eps {
		if i != p.node && (dst.IsMulticast() || dst == nodeMAC(i)) {
			p.n.s.transmitFrame(p.node, i, bytes.Clone(frame), len(frame)-link.HeaderLen)
		}
	}
	return nil
}

func (p *simPort) SetReceiver(r link.Receiver) { p.recv = r }
func (p *simPort) MAC() link.MAC               { return nodeMAC(p.node) }
func (p *simPort) MTU() int                    { return link.DefaultMTU }
func (p *simPort) Up() bool                    { return true }

// realKey is the simulated cluster's key.
var realKey = bytes.Repeat([]byte{0x5a}, transport.KeyLen)

// newRealNet gives every node an Endpoint, peers of each other, with
// retransmission timeouts scaled to the simulated link, and schedules
// the first ticks.
func newRealNet(s *Sim) (*realNet, error) {
	n := &realNet{s: s, tickNS: max(s.rto/4, 1000)}
	nodes := s.cfg.Nodes
	n.backlog = make([][][][]byte, nodes)
	for i := range nodes {
		n.backlog[i] = make([][][]byte, nodes)
		node := i
		ep, err := transport.NewEndpoint(transport.Config{
			ID: transport.NodeID(i + 1), Key: realKey, Link: &simPort{n: n, node: i},
			Clock:       func() time.Duration { return time.Duration(s.now) },
			CounterBase: 1 << 32,
			MaxMessage:  len(s.wire),
			MinRTO:      time.Duration(s.rto), InitialRTO: time.Duration(s.rto), MaxRTO: time.Duration(realMaxRTO * s.rto),
			OnMessage: func(from transport.NodeID, ch uint8, msg []byte) {
				if n.err == nil && ch == realChannel {
					n.err = s.deliver(node, int(from)-1, bytes.Clone(msg))
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("node %d's endpoint: %w", i, err)
		}
		n.eps = append(n.eps, ep)
	}
	for i, ep := range n.eps {
		for j := range nodes {
			if i != j {
				if err := ep.AddPeer(transport.NodeID(j+1), nodeMAC(j)); err != nil {
					return nil, err
				}
			}
		}
		s.schedule(event{at: n.tickNS, kind: evTick, node: i})
	}
	return n, nil
}

// send queues payload from src to dst behind what waits already.
func (n *realNet) send(src, dst int, payload []byte) {
	n.backlog[src][dst] = append(n.backlog[src][dst], bytes.Clone(payload))
	n.pump(src)
}

// pump hands node src's Endpoint what its send queues have room for.
func (n *realNet) pump(src int) {
	for dst, q := range n.backlog[src] {
		for len(q) > 0 {
			err := n.eps[src].Send(transport.NodeID(dst+1), realChannel, q[0])
			if errors.Is(err, transport.ErrBusy) {
				break
			}
			if err != nil && n.err == nil {
				n.err = fmt.Errorf("node %d: send to node %d: %w", src, dst, err)
			}
			q = q[1:]
		}
		n.backlog[src][dst] = q
	}
}

// receive hands a frame to node dst's Endpoint, then lets it acknowledge
// and send what the frame made room for.
func (n *realNet) receive(dst int, f []byte) error {
	// The Endpoint opens frames in place; a duplicated frame is
	// another event with the same buffer.
	n.eps[dst].HandleFrame(bytes.Clone(f))
	n.eps[dst].Flush()
	n.pump(dst)
	return n.takeErr()
}

// tick runs node i's Endpoint timers, and schedules the next tick
// unless the run is over: every vCPU done and every message delivered.
func (n *realNet) tick(i int) error {
	n.eps[i].Tick()
	n.pump(i)
	if !n.s.allDone() || !n.quiet() {
		n.s.schedule(event{at: n.s.now + n.tickNS, kind: evTick, node: i})
	}
	return n.takeErr()
}

func (n *realNet) takeErr() error {
	err := n.err
	n.err = nil
	return err
}

// quiet reports whether every message sent has been delivered and
// acknowledged.
func (n *realNet) quiet() bool {
	for i, ep := range n.eps {
		if !ep.Idle() {
			return false
		}
		for _, q := range n.backlog[i] {
			if len(q) > 0 {
				return false
			}
		}
	}
	return true
}

// stats adds the Endpoints' retransmissions and suppressed duplicates
// to the run's result.
func (n *realNet) stats(r *Result) {
	for i, ep := range n.eps {
		for j := range n.eps {
			if ps, ok := ep.PeerStats(transport.NodeID(j + 1)); ok && i != j {
				r.Retransmits += ps.Retransmits
				r.Duplicates += ps.Duplicates
			}
		}
	}
}

// checkRealTransport refuses what the real transport does not model.
func checkRealTransport(cfg *Config) error {
	switch {
	case len(cfg.Faults.Crashes) > 0:
		return errors.New("RealTransport models no crashes yet")
	case len(cfg.Faults.Cuts) > 0:
		return errors.New("RealTransport models no link cuts yet")
	case cfg.Faults.Partitions > 0 && cfg.Faults.PartitionNS >= cfg.FailureTimeoutNS:
		return fmt.Errorf("RealTransport models no partition of %d ns, the failure timeout or longer", cfg.Faults.PartitionNS)
	}
	return nil
}
