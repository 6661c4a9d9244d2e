// Package memlink is an in-memory Ethernet switch for tests and simulation.
//
// A Switch has any number of ports, each a link.Link. Frames are queued with
// a delivery time and handed to receivers only when the owner advances the
// switch's virtual clock with Advance, so a test drives the whole network
// from one goroutine, deterministically for a given seed. The switch can
// lose, duplicate, delay and reorder frames, and partition ports from each
// other. Frame buffers are pooled: in steady state forwarding allocates
// nothing.
package memlink

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

// Config sets the switch's behaviour. The zero value is a perfect, instant
// switch with a 1500-byte MTU.
type Config struct {
	// Seed makes loss, duplication and jitter reproducible.
	Seed uint64
	// MTU is the payload size of every port; 0 means link.DefaultMTU.
	MTU int
	// Loss is the probability that a frame is dropped.
	Loss float64
	// Duplicate is the probability that a frame is delivered twice.
	Duplicate float64
	// Delay is the one-way latency added to every frame.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter), which
	// reorders frames.
	Jitter time.Duration
	// QueueLimit bounds the frames in flight; more are dropped. 0 means 65536.
	QueueLimit int
}

// Stats counts what the switch did with frames.
type Stats struct {
	Transmitted uint64 // frames accepted by Transmit
	Delivered   uint64 // frames handed to a receiver
	Lost        uint64 // frames dropped by the Loss probability
	Duplicated  uint64 // extra copies made by the Duplicate probability
	Blocked     uint64 // frames dropped by a partition or a down port
	Overflow    uint64 // frames dropped because the queue was full
	Unknown     uint64 // unicast frames to an address no port has
}

// pending is a frame in flight to one port.
type pending struct {
	at   time.Duration
	seq  uint64
	port int
	buf  []byte
}

// Switch is an in-memory Ethernet switch. Its methods are safe for
// concurrent use; receivers are called without the switch's lock held, so
// they may transmit.
type Switch struct {
	mu      sync.Mutex
	cfg     Config
	rng     *rand.Rand
	now     time.Duration
	seq     uint64
	ports   []*Port
	queue   []pending // binary min-heap on (at, seq)
	free    [][]byte
	blocked [][]bool
	stats   Stats
}

// New returns a switch with no ports.
func New(cfg Config) *Switch {
	if cfg.MTU == 0 {
		cfg.MTU = link.DefaultMTU
	}
	if cfg.QueueLimit == 0 {
		cfg.QueueLimit = 1 << 16
	}
	return &Switch{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
}

// Port is one port of a Switch. It implements link.Link.
type Port struct {
	sw    *Switch
	index int
	mac   link.MAC
	up    bool
	recv  link.Receiver
}

// AddPort attaches a new port with the given address and returns it. The
// port is up.
func (s *Switch) AddPort(mac link.MAC) *Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &Port{sw: s, index: len(s.ports), mac: mac, up: true}
	s.ports = append(s.ports, p)
	for i := range s.blocked {
		s.blocked[i] = append(s.blocked[i], false)
	}
	s.blocked = append(s.blocked, make([]bool, len(s.ports)))
	return p
}

// Ports returns the number of ports.
func (s *Switch) Ports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ports)
}

// SetLoss changes the loss probability.
func (s *Switch) SetLoss(p float64) {
	s.mu.Lock()
	s.cfg.Loss = p
	s.mu.Unlock()
}

// SetBlocked blocks or unblocks traffic between ports a and b, both ways.
func (s *Switch) SetBlocked(a, b int, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[a][b] = blocked
	s.blocked[b][a] = blocked
}

// Partition splits the ports into groups that cannot reach each other.
// Ports not named in any group form one more group of their own.
func (s *Switch) Partition(groups ...[]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := make([]int, len(s.ports))
	for i := range group {
		group[i] = -1
	}
	for g, ports := range groups {
		for _, p := range ports {
			group[p] = g
		}
	}
	for a := range s.ports {
		for b := range s.ports {
			s.blocked[a][b] = group[a] != group[b]
		}
	}
}

// Heal removes every partition and block.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a := range s.blocked {
		clear(s.blocked[a])
	}
}

// Stats returns a copy of the switch's counters.
func (s *Switch) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Now returns the switch's virtual time.
func (s *Switch) Now() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// NextDelivery returns the delivery time of the earliest frame in flight.
func (s *Switch) NextDelivery() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return 0, false
	}
	return s.queue[0].at, true
}

// InFlight returns the number of frames queued for delivery.
func (s *Switch) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Advance moves virtual time to now (it never goes backwards) and delivers,
// in time order, every frame due at or before it, including frames that
// receivers transmit meanwhile. It returns the number of frames delivered.
func (s *Switch) Advance(now time.Duration) int {
	n := 0
	s.mu.Lock()
	if now > s.now {
		s.now = now
	}
	for len(s.queue) > 0 && s.queue[0].at <= s.now {
		f := s.pop()
		dst := s.ports[f.port]
		recv := dst.recv
		if !dst.up || recv == nil {
			s.stats.Blocked++
			s.free = append(s.free, f.buf)
			continue
		}
		s.stats.Delivered++
		s.mu.Unlock()
		recv(f.buf)
		n++
		s.mu.Lock()
		s.free = append(s.free, f.buf[:cap(f.buf)])
	}
	s.mu.Unlock()
	return n
}

// transmit queues frame from port src. Called with s.mu held.
func (s *Switch) transmit(src *Port, frame []byte) error {
	if !src.up {
		return link.ErrDown
	}
	if err := link.CheckFrame(frame, s.cfg.MTU); err != nil {
		return err
	}
	s.stats.Transmitted++
	var dst link.MAC
	copy(dst[:], frame[:6])
	if dst.IsMulticast() {
		for _, p := range s.ports {
			if p != src {
				s.forward(src, p, frame)
			}
		}
		return nil
	}
	for _, p := range s.ports {
		if p.mac == dst {
			s.forward(src, p, frame)
			return nil
		}
	}
	s.stats.Unknown++
	return nil
}

// forward applies the fault model to one copy of frame headed to dst.
func (s *Switch) forward(src, dst *Port, frame []byte) {
	if s.blocked[src.index][dst.index] || !dst.up {
		s.stats.Blocked++
		return
	}
	if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
		s.stats.Lost++
		return
	}
	copies := 1
	if s.cfg.Duplicate > 0 && s.rng.Float64() < s.cfg.Duplicate {
		copies = 2
		s.stats.Duplicated++
	}
	for range copies {
		if len(s.queue) >= s.cfg.QueueLimit {
			s.stats.Overflow++
			return
		}
		at := s.now + s.cfg.Delay
		if s.cfg.Jitter > 0 {
			at += time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
		}
		var buf []byte
		if n := len(s.free); n > 0 {
			buf = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			buf = make([]byte, link.HeaderLen+s.cfg.MTU)
		}
		buf = buf[:len(frame)]
		copy(buf, frame)
		s.seq++
		s.push(pending{at: at, seq: s.seq, port: dst.index, buf: buf})
	}
}

// less orders the heap by delivery time, then by transmission order.
func (s *Switch) less(i, j int) bool {
	a, b := &s.queue[i], &s.queue[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (s *Switch) push(p pending) {
	s.queue = append(s.queue, p)
	i := len(s.queue) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			break
		}
		s.queue[i], s.queue[parent] = s.queue[parent], s.queue[i]
		i = parent
	}
}

func (s *Switch) pop() pending {
	top := s.queue[0]
	last := len(s.queue) - 1
	s.queue[0] = s.queue[last]
	s.queue[last] = pending{}
	s.queue = s.queue[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && s.less(l, m) {
			m = l
		}
		if r < last && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s.queue[i], s.queue[m] = s.queue[m], s.queue[i]
		i = m
	}
	return top
}

// Transmit implements link.Link.
func (p *Port) Transmit(frame []byte) error {
	p.sw.mu.Lock()
	defer p.sw.mu.Unlock()
	return p.sw.transmit(p, frame)
}

// SetReceiver implements link.Link.
func (p *Port) SetReceiver(r link.Receiver) {
	p.sw.mu.Lock()
	p.recv = r
	p.sw.mu.Unlock()
}

// MAC implements link.Link.
func (p *Port) MAC() link.MAC { return p.mac }

// MTU implements link.Link.
func (p *Port) MTU() int { return p.sw.cfg.MTU }

// Up implements link.Link.
func (p *Port) Up() bool {
	p.sw.mu.Lock()
	defer p.sw.mu.Unlock()
	return p.up
}

// SetUp brings the port up or down. A down port neither sends nor receives,
// which models a crashed node or a pulled cable.
func (p *Port) SetUp(up bool) {
	p.sw.mu.Lock()
	p.up = up
	p.sw.mu.Unlock()
}

// Index returns the port's number, as used by Partition and SetBlocked.
func (p *Port) Index() int { return p.index }

var _ link.Link = (*Port)(nil)
