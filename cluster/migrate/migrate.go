// Package migrate moves vCPUs between hyperkernel nodes and delivers
// interrupts to a vCPU wherever it runs.
//
// A vCPU is frozen at a VM exit by its node, shipped in one KindMigrate
// message (opaque architectural state produced by package vmm/vcpu,
// plus pending interrupts and the armed timer), and resumed by the
// receiver. Every node keeps a location table: for each vCPU a node and the
// migration epoch at which that node was known to have it. A node that
// ships a vCPU points its entry at the destination; an interrupt (IPI,
// device interrupt) that reaches a node no longer hosting the vCPU is
// forwarded along these pointers. Epochs grow along every forwarding
// chain, so chains end at the host; the host then tells the interrupt's
// origin where the vCPU is (KindLocation) so later interrupts go direct.
//
// Like package memory, [Migrator] is a pure state machine over a transport
// that is reliable, exactly-once and FIFO per ordered pair of nodes; FIFO
// is what guarantees that a forwarded interrupt never overtakes the vCPU it
// is forwarded after.
package migrate

import (
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/cluster/memory"
)

// VCPUID names a vCPU of the guest.
type VCPUID uint16

// DefaultStateSize is the size of a vCPU's architectural state when the
// caller does not say: GPRs, control and segment state, MSRs and a 4 KiB
// XSAVE area (Intel SDM Vol. 1, 13.4: the XSAVE area of a processor with
// AVX-512 is about 2.7 KiB; 4 KiB leaves room) plus LAPIC registers.
const DefaultStateSize = 4608

// MaxStateSize bounds the opaque state a message may carry.
const MaxStateSize = 64 << 10

// maxHops bounds interrupt forwarding; a longer chain means a bug.
const maxHops = 2 * memory.MaxNodes

// VCPU is a vCPU as it travels: identity, migration epoch, pending
// interrupts, timer, and opaque architectural state.
type VCPU struct {
	ID    VCPUID
	Epoch uint32 // number of migrations so far
	// IRR holds pending interrupt vectors, one bit per vector, as the LAPIC
	// interrupt request register (Intel SDM Vol. 3A, 11.8.4).
	IRR [4]uint64
	// TimerDeadline is the virtual time (ns) the vCPU's one-shot timer fires
	// at, 0 if disarmed; TimerVector is the vector it raises.
	TimerDeadline uint64
	TimerVector   uint8
	// NMIs counts the NMIs sent to the vCPU and not yet taken, at most
	// MaxNMIs: as on the processor, one waits while another is
	// delivered, and further ones are lost (Intel SDM Vol. 3A, 6.7.1).
	NMIs uint8
	// State is the opaque architectural state; its length is fixed by the
	// Migrator's configuration.
	State []byte
	// StateLen is how many bytes at the start of State hold the state
	// (what a migration carries); 0 means all of it.
	StateLen int
}

// SetPending marks vector pending; it reports false if it already was (the
// LAPIC coalesces a vector raised twice before it is taken).
func (v *VCPU) SetPending(vector uint8) bool {
	w, b := vector/64, uint64(1)<<(vector%64)
	was := v.IRR[w]&b != 0
	v.IRR[w] |= b
	return !was
}

// MaxNMIs is the most NMIs a VCPU holds pending.
const MaxNMIs = 2

// AddNMI makes one more NMI pending; it reports false if MaxNMIs already
// were, and the NMI is lost.
func (v *VCPU) AddNMI() bool {
	if v.NMIs >= MaxNMIs {
		return false
	}
	v.NMIs++
	return true
}

// TakeNMIs clears and returns the count of pending NMIs.
func (v *VCPU) TakeNMIs() int {
	n := v.NMIs
	v.NMIs = 0
	return int(n)
}

// TakePending clears and returns the highest pending vector, as the LAPIC
// delivers the highest priority first (Intel SDM Vol. 3A, 11.8.3).
func (v *VCPU) TakePending() (vector uint8, ok bool) {
	for w := 3; w >= 0; w-- {
		if x := v.IRR[w]; x != 0 {
			b := 63
			for x&(1<<uint(b)) == 0 {
				b--
			}
			v.IRR[w] &^= 1 << uint(b)
			return uint8(w*64 + b), true
		}
	}
	return 0, false
}

// Config describes one node's migrator.
type Config struct {
	Self      memory.NodeID
	Nodes     int
	VCPUs     int
	StateSize int // 0 means DefaultStateSize
	// Initial is the node each vCPU starts on; the same on all nodes.
	Initial func(v VCPUID) memory.NodeID
}

// EventKind tells the caller what a message did.
type EventKind uint8

// Events.
const (
	EventNone      EventKind = iota
	EventArrived             // a vCPU arrived and is hosted here: resume it
	EventDelivered           // an interrupt became pending on a vCPU hosted here
)

// Event is the outcome of [Migrator.HandleMessage] for the caller.
type Event struct {
	Kind   EventKind
	VCPU   VCPUID
	Vector uint8
	NMI    bool // EventDelivered: an NMI, not an interrupt of Vector
}

// Stats counts migrator activity.
type Stats struct {
	MigrationsOut uint64
	MigrationsIn  uint64
	Delivered     uint64 // interrupts and NMIs made pending on vCPUs hosted here
	Forwarded     uint64 // interrupts passed on to another node
	Messages      uint64
	Bytes         uint64
}

// Outbox collects outgoing messages. A KindMigrate message borrows the
// Migrator's state buffer: encode it before the next call.
type Outbox struct {
	Msgs []Message
}

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox { return &Outbox{Msgs: make([]Message, 0, 4)} }

// Reset empties the outbox.
func (o *Outbox) Reset() { o.Msgs = o.Msgs[:0] }

type location struct {
	node  memory.NodeID
	epoch uint32
}

// ErrProtocol reports a message impossible in the current state.
var ErrProtocol = errors.New("migrate: protocol violation")

// Migrator is one node's vCPU migration and interrupt routing state
// machine. It is not safe for concurrent use.
type Migrator struct {
	cfg    Config
	hosted []bool
	vcpus  []VCPU // one record per vCPU; meaningful while hosted
	where  []location
	stats  Stats
}

// New returns the migrator of cfg.Self. vCPUs whose Initial node is Self
// start hosted here with zeroed state.
func New(cfg Config) (*Migrator, error) {
	if cfg.Nodes < 1 || cfg.Nodes > memory.MaxNodes || int(cfg.Self) >= cfg.Nodes {
		return nil, fmt.Errorf("migrate: new: node %d of %d", cfg.Self, cfg.Nodes)
	}
	if cfg.VCPUs < 1 || cfg.VCPUs > 1<<16 {
		return nil, fmt.Errorf("migrate: new: %d vCPUs", cfg.VCPUs)
	}
	if cfg.StateSize == 0 {
		cfg.StateSize = DefaultStateSize
	}
	if cfg.StateSize < 0 || cfg.StateSize > MaxStateSize {
		return nil, fmt.Errorf("migrate: new: state size %d, want 0..%d", cfg.StateSize, MaxStateSize)
	}
	if cfg.Initial == nil {
		n := cfg.Nodes
		cfg.Initial = func(v VCPUID) memory.NodeID { return memory.NodeID(int(v) % n) }
	}
	m := &Migrator{cfg: cfg, hosted: make([]bool, cfg.VCPUs), vcpus: make([]VCPU, cfg.VCPUs), where: make([]location, cfg.VCPUs)}
	slab := make([]byte, cfg.VCPUs*cfg.StateSize)
	for i := range m.vcpus {
		v := VCPUID(i)
		m.vcpus[i] = VCPU{ID: v, State: slab[i*cfg.StateSize : (i+1)*cfg.StateSize : (i+1)*cfg.StateSize]}
		n := cfg.Initial(v)
		if int(n) >= cfg.Nodes {
			return nil, fmt.Errorf("migrate: new: vCPU %d starts on node %d of %d", v, n, cfg.Nodes)
		}
		m.where[i] = location{node: n}
		m.hosted[i] = n == cfg.Self
	}
	return m, nil
}

// Stats returns the migrator's counters.
func (m *Migrator) Stats() Stats { return m.stats }

// StateSize returns the size of every vCPU's opaque state.
func (m *Migrator) StateSize() int { return m.cfg.StateSize }

// Hosts reports whether vCPU v runs on this node.
func (m *Migrator) Hosts(v VCPUID) bool { return int(v) < len(m.hosted) && m.hosted[v] }

// VCPU returns the record of a vCPU hosted here, nil otherwise. The caller
// updates it (state, timer, interrupts) while the vCPU runs here.
func (m *Migrator) VCPU(v VCPUID) *VCPU {
	if !m.Hosts(v) {
		return nil
	}
	return &m.vcpus[v]
}

// Location returns where this node believes vCPU v is and the epoch of
// that belief.
func (m *Migrator) Location(v VCPUID) (memory.NodeID, uint32) {
	if int(v) >= len(m.where) {
		return 0, 0
	}
	l := m.where[v]
	return l.node, l.epoch
}

// Send ships vCPU v, which must be hosted here and frozen at an exit, to
// node dst. From now on this node forwards v's interrupts to dst.
func (m *Migrator) Send(v VCPUID, dst memory.NodeID, out *Outbox) error {
	if !m.Hosts(v) {
		return fmt.Errorf("migrate: send vCPU %d from node %d: not hosted here", v, m.cfg.Self)
	}
	if dst == m.cfg.Self || int(dst) >= m.cfg.Nodes {
		return fmt.Errorf("migrate: send vCPU %d from node %d to node %d: bad destination", v, m.cfg.Self, dst)
	}
	rec := &m.vcpus[v]
	state := rec.State
	if rec.StateLen > 0 {
		if rec.StateLen > len(rec.State) {
			return fmt.Errorf("migrate: send vCPU %d: state length %d exceeds %d", v, rec.StateLen, len(rec.State))
		}
		state = rec.State[:rec.StateLen]
	}
	rec.Epoch++
	m.hosted[v] = false
	m.where[v] = location{node: dst, epoch: rec.Epoch}
	m.stats.MigrationsOut++
	m.send(out, Message{Kind: KindMigrate, Src: m.cfg.Self, Dst: dst, VCPU: v, Epoch: rec.Epoch,
		IRR: rec.IRR, TimerDeadline: rec.TimerDeadline, TimerVector: rec.TimerVector, NMIs: rec.NMIs, State: state})
	rec.NMIs = 0
	return nil
}

// Interrupt raises vector on vCPU v on behalf of this node (an IPI from a
// local vCPU, or a device living here). If v is hosted here the interrupt
// is made pending at once and delivered is true; otherwise it is sent
// towards v's location.
func (m *Migrator) Interrupt(v VCPUID, vector uint8, out *Outbox) (delivered bool, err error) {
	if int(v) >= len(m.hosted) {
		return false, fmt.Errorf("migrate: interrupt for vCPU %d: only %d vCPUs", v, len(m.hosted))
	}
	if m.hosted[v] {
		m.vcpus[v].SetPending(vector)
		m.stats.Delivered++
		return true, nil
	}
	m.send(out, Message{Kind: KindDeliver, Src: m.cfg.Self, Dst: m.where[v].node, VCPU: v, Epoch: m.where[v].epoch, Origin: m.cfg.Self, Vector: vector})
	return false, nil
}

// NMI sends vCPU v an NMI on behalf of this node, as Interrupt does an
// interrupt: made pending at once if v is hosted here (delivered is
// true), otherwise sent towards v's location.
func (m *Migrator) NMI(v VCPUID, out *Outbox) (delivered bool, err error) {
	if int(v) >= len(m.hosted) {
		return false, fmt.Errorf("migrate: NMI for vCPU %d: only %d vCPUs", v, len(m.hosted))
	}
	if m.hosted[v] {
		m.vcpus[v].AddNMI()
		m.stats.Delivered++
		return true, nil
	}
	m.send(out, Message{Kind: KindDeliver, Src: m.cfg.Self, Dst: m.where[v].node, VCPU: v, Epoch: m.where[v].epoch, Origin: m.cfg.Self, NMIs: 1})
	return false, nil
}

// HandleMessage processes a message from another node.
func (m *Migrator) HandleMessage(msg *Message, out *Outbox) (Event, error) {
	if msg.Dst != m.cfg.Self || msg.Src == m.cfg.Self || int(msg.Src) >= m.cfg.Nodes || int(msg.VCPU) >= len(m.hosted) {
		return Event{}, fmt.Errorf("%w: node %d got %v", ErrProtocol, m.cfg.Self, msg.String())
	}
	v := msg.VCPU
	switch msg.Kind {
	case KindMigrate:
		if m.hosted[v] || len(msg.State) == 0 || len(msg.State) > m.cfg.StateSize || msg.Epoch <= m.where[v].epoch && m.where[v].node != m.cfg.Self {
			return Event{}, fmt.Errorf("%w: node %d: %v (hosted %v, known epoch %d, state size %d)", ErrProtocol, m.cfg.Self, msg.String(), m.hosted[v], m.where[v].epoch, m.cfg.StateSize)
		}
		rec := &m.vcpus[v]
		rec.Epoch, rec.IRR, rec.TimerDeadline, rec.TimerVector = msg.Epoch, msg.IRR, msg.TimerDeadline, msg.TimerVector
		rec.NMIs = min(msg.NMIs, MaxNMIs)
		rec.SetStateLen(copy(rec.State, msg.State))
		m.hosted[v] = true
		m.where[v] = location{node: m.cfg.Self, epoch: msg.Epoch}
		m.stats.MigrationsIn++
		return Event{Kind: EventArrived, VCPU: v}, nil
	case KindDeliver:
		if m.hosted[v] {
			nmi := msg.NMIs != 0
			if nmi {
				m.vcpus[v].AddNMI()
			} else {
				m.vcpus[v].SetPending(msg.Vector)
			}
			m.stats.Delivered++
			if msg.Hops > 0 && msg.Origin != m.cfg.Self {
				m.send(out, Message{Kind: KindLocation, Src: m.cfg.Self, Dst: msg.Origin, VCPU: v, Epoch: m.vcpus[v].Epoch, Node: m.cfg.Self})
			}
			return Event{Kind: EventDelivered, VCPU: v, Vector: msg.Vector, NMI: nmi}, nil
		}
		next := m.where[v].node
		if next == m.cfg.Self || msg.Hops >= maxHops {
			return Event{}, fmt.Errorf("%w: node %d cannot forward %v (location %d)", ErrProtocol, m.cfg.Self, msg.String(), next)
		}
		fwd := *msg
		fwd.Src, fwd.Dst, fwd.Hops, fwd.Epoch = m.cfg.Self, next, msg.Hops+1, m.where[v].epoch
		m.stats.Forwarded++
		m.send(out, fwd)
		return Event{}, nil
	case KindLocation:
		if !m.hosted[v] && msg.Epoch > m.where[v].epoch {
			m.where[v] = location{node: msg.Node, epoch: msg.Epoch}
		}
		return Event{}, nil
	}
	return Event{}, fmt.Errorf("%w: node %d: unknown %v", ErrProtocol, m.cfg.Self, msg.String())
}

func (m *Migrator) send(out *Outbox, msg Message) {
	m.stats.Messages++
	m.stats.Bytes += uint64(msg.Size())
	out.Msgs = append(out.Msgs, msg)
}

// SetStateLen records that the first n bytes of State hold the state,
// zeroing what an earlier, longer state left after them. Bytes past
// StateLen are kept zero (StateLen 0: all of State may hold state), so
// that a vCPU moving back and forth clears only what a longer state
// left, not its whole buffer.
func (v *VCPU) SetStateLen(n int) {
	end := len(v.State)
	if v.StateLen > 0 {
		end = min(v.StateLen, end)
	}
	if n < end {
		clear(v.State[n:end])
	}
	v.StateLen = n
}
