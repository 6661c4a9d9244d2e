package sim

import "encoding/binary"

// The simulator's reliable-delivery layer: what the cluster transport does
// on real links, so the protocols above see reliable, exactly-once delivery
// in FIFO order per ordered pair of nodes over links that lose, duplicate
// and reorder frames. Every data frame carries a per-pair sequence number;
// the receiver delivers in order, buffers frames that arrive early, drops
// duplicates and answers every data frame with a cumulative
// acknowledgement (the next sequence number it expects); the sender keeps
// unacknowledged frames and retransmits those older than the
// retransmission timeout.

// Transport frame header: type (1 byte), sequence or cumulative ack (8).
const (
	frameData   = 1
	frameAck    = 2
	frameHeader = 9
)

type packet struct {
	seq    uint64
	sentAt int64
	frame  []byte
}

// channel is the state of one ordered pair (src -> dst) at both ends.
type channel struct {
	src, dst int
	// Sender side.
	nextSeq uint64
	unacked []packet
	armed   bool // a retransmission check is scheduled
	// Receiver side.
	expect uint64
	early  map[uint64][]byte // payloads that arrived ahead of expect
}

func newChannel(src, dst int) *channel {
	return &channel{src: src, dst: dst, early: map[uint64][]byte{}}
}

func putHeader(b []byte, typ byte, n uint64) {
	b[0] = typ
	binary.LittleEndian.PutUint64(b[1:], n)
}

// send queues payload for reliable delivery from c.src to c.dst.
func (s *Sim) send(src, dst int, payload []byte) {
	if s.real != nil {
		s.res.Messages++
		s.real.send(src, dst, payload)
		return
	}
	c := s.chans[src][dst]
	f := make([]byte, frameHeader+len(payload))
	putHeader(f, frameData, c.nextSeq)
	copy(f[frameHeader:], payload)
	c.unacked = append(c.unacked, packet{seq: c.nextSeq, sentAt: s.now, frame: f})
	c.nextSeq++
	s.res.Messages++
	s.transmit(src, dst, f)
	if !c.armed {
		c.armed = true
		s.schedule(event{at: s.now + s.rto, kind: evRetransmit, node: src, peer: dst})
	}
}

// transmit puts one frame on the link src -> dst, subject to the
// configured faults.
func (s *Sim) transmit(src, dst int, f []byte) { s.transmitFrame(src, dst, f, len(f)) }

// transmitFrame is transmit for a frame whose payload, without the
// Ethernet header and FCS that wireBytes adds, is n bytes.
func (s *Sim) transmitFrame(src, dst int, f []byte, n int) {
	start := s.now
	if b := s.linkBusy[src][dst]; b > start {
		start = b
	}
	end := start + s.cfg.Link.serialiseNS(n)
	s.linkBusy[src][dst] = end
	s.res.Frames++
	s.res.WireBytes += uint64(wireBytes(n))
	if s.partitioned(src, dst) || s.nodes[src].crashed || s.nodes[dst].crashed {
		s.res.Dropped++
		return
	}
	fl := &s.cfg.Faults
	if fl.Loss > 0 && s.rng.Float64() < fl.Loss {
		s.res.Dropped++
		return
	}
	at := end + s.cfg.Link.LatencyNS
	if fl.Reorder > 0 && s.rng.Float64() < fl.Reorder {
		at += 1 + s.rng.Int64N(fl.ReorderNS+1)
	}
	s.schedule(event{at: at, kind: evFrame, node: dst, peer: src, buf: f})
	if fl.Dup > 0 && s.rng.Float64() < fl.Dup {
		s.schedule(event{at: at + 1 + s.rng.Int64N(fl.ReorderNS+1), kind: evFrame, node: dst, peer: src, buf: f})
	}
}

func (s *Sim) partitioned(a, b int) bool {
	for _, p := range s.parts {
		if (p.a == a && p.b == b || p.a == b && p.b == a) && s.now >= p.from && s.now < p.to {
			return true
		}
	}
	return false
}

// receive handles a frame arriving at node dst from src.
func (s *Sim) receive(dst, src int, f []byte) error {
	if s.nodes[dst].crashed || s.nodes[src].crashed {
		s.res.Dropped++ // a crashed node's NIC died with it
		return nil
	}
	if s.real != nil {
		return s.real.receive(dst, f)
	}
	if len(f) < frameHeader {
		return nil
	}
	n := binary.LittleEndian.Uint64(f[1:])
	if f[0] == frameAck {
		c := s.chans[dst][src] // our sending side towards src
		i := 0
		for i < len(c.unacked) && c.unacked[i].seq < n {
			i++
		}
		c.unacked = c.unacked[i:]
		return nil
	}
	c := s.chans[src][dst]
	switch {
	case n < c.expect:
		s.res.Duplicates++
	case n == c.expect:
		c.expect++
		if err := s.deliver(dst, src, f[frameHeader:]); err != nil {
			return err
		}
		for {
			p, ok := c.early[c.expect]
			if !ok {
				break
			}
			delete(c.early, c.expect)
			c.expect++
			if err := s.deliver(dst, src, p); err != nil {
				return err
			}
		}
	default:
		if _, dup := c.early[n]; dup {
			s.res.Duplicates++
		} else {
			c.early[n] = f[frameHeader:]
		}
	}
	ack := make([]byte, frameHeader)
	putHeader(ack, frameAck, c.expect)
	s.transmit(dst, src, ack)
	return nil
}

// retransmit resends frames of channel src -> dst older than the timeout.
func (s *Sim) retransmit(src, dst int) {
	c := s.chans[src][dst]
	c.armed = false
	if len(c.unacked) == 0 || s.nodes[src].crashed || s.nodes[src].gone[dst] {
		return // nothing to resend, or no one to resend it (membership removed the peer)
	}
	next := int64(-1)
	for i := range c.unacked {
		p := &c.unacked[i]
		if s.now-p.sentAt >= s.rto {
			p.sentAt = s.now
			s.res.Retransmits++
			s.transmit(src, dst, p.frame)
		}
		if due := p.sentAt + s.rto; next < 0 || due < next {
			next = due
		}
	}
	c.armed = true
	s.schedule(event{at: next, kind: evRetransmit, node: src, peer: dst})
}
