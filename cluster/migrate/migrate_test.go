package migrate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
)

// net is a set of migrators joined by per-pair FIFO queues of encoded
// messages, delivered in a seeded random order.
type net struct {
	m      []*Migrator
	q      [][][][]byte
	out    *Outbox
	raised int // interrupts raised
	taken  int // interrupts made pending (Delivered events and local deliveries)
	runs   []uint64
}

func newNet(tb testing.TB, nodes, vcpus, stateSize int) *net {
	n := &net{out: NewOutbox(), runs: make([]uint64, vcpus)}
	n.q = make([][][][]byte, nodes)
	for i := 0; i < nodes; i++ {
		n.q[i] = make([][][]byte, nodes)
		m, err := New(Config{Self: memory.NodeID(i), Nodes: nodes, VCPUs: vcpus, StateSize: stateSize})
		if err != nil {
			tb.Fatal(err)
		}
		n.m = append(n.m, m)
	}
	return n
}

func (n *net) flush() error {
	for i := range n.out.Msgs {
		msg := &n.out.Msgs[i]
		b := make([]byte, msg.Size())
		if _, err := msg.MarshalTo(b); err != nil {
			return err
		}
		n.q[msg.Src][msg.Dst] = append(n.q[msg.Src][msg.Dst], b)
	}
	n.out.Reset()
	return nil
}

func (n *net) deliver(s, d int) error {
	b := n.q[s][d][0]
	n.q[s][d] = n.q[s][d][1:]
	var msg Message
	if err := msg.Unmarshal(b); err != nil {
		return err
	}
	ev, err := n.m[d].HandleMessage(&msg, n.out)
	if err != nil {
		return err
	}
	switch ev.Kind {
	case EventDelivered:
		n.taken++
	case EventArrived:
		// The state must be what its last host left in it.
		rec := n.m[d].VCPU(ev.VCPU)
		if got := binary.LittleEndian.Uint64(rec.State); got != n.runs[ev.VCPU] {
			return fmt.Errorf("vCPU %d arrived at %d with run count %d, want %d", ev.VCPU, d, got, n.runs[ev.VCPU])
		}
	}
	return n.flush()
}

// move sends vCPU v from node src to node dst and delivers everything
// src has queued for dst, the vCPU last.
func (n *net) move(tb testing.TB, v VCPUID, src, dst int) {
	tb.Helper()
	if err := n.m[src].Send(v, memory.NodeID(dst), n.out); err != nil {
		tb.Fatal(err)
	}
	if err := n.flush(); err != nil {
		tb.Fatal(err)
	}
	for len(n.q[src][dst]) > 0 {
		if err := n.deliver(src, dst); err != nil {
			tb.Fatal(err)
		}
	}
}

func (n *net) pairs() [][2]int {
	var ps [][2]int
	for s := range n.q {
		for d := range n.q[s] {
			if len(n.q[s][d]) > 0 {
				ps = append(ps, [2]int{s, d})
			}
		}
	}
	return ps
}

// census checks each vCPU is hosted once, or in flight in one message.
func (n *net) census(vcpus int) error {
	for v := 0; v < vcpus; v++ {
		c := 0
		for _, m := range n.m {
			if m.Hosts(VCPUID(v)) {
				c++
			}
		}
		for s := range n.q {
			for d := range n.q[s] {
				for _, b := range n.q[s][d] {
					if b[1] == byte(KindMigrate) && binary.LittleEndian.Uint16(b[8:]) == uint16(v) {
						c++
					}
				}
			}
		}
		if c != 1 {
			return fmt.Errorf("vCPU %d exists %d times", v, c)
		}
	}
	return nil
}

func TestRandomMigrationsAndInterrupts(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	var fwd uint64
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		nodes, vcpus := 2+int(seed%4), 1+int(seed%5)
		n := newNet(t, nodes, vcpus, 64+int(seed%100))
		fail := func(step int, err error) { t.Fatalf("seed %d step %d: %v", seed, step, err) }
		for step := 0; step < 500; step++ {
			var err error
			switch r := rng.IntN(10); {
			case r < 4:
				if ps := n.pairs(); len(ps) > 0 {
					p := ps[rng.IntN(len(ps))]
					err = n.deliver(p[0], p[1])
				}
			case r < 7: // a node raises an interrupt
				var local bool
				local, err = n.m[rng.IntN(nodes)].Interrupt(VCPUID(rng.IntN(vcpus)), uint8(rng.IntN(256)), n.out)
				n.raised++
				if local {
					n.taken++
				}
				if err == nil {
					err = n.flush()
				}
			default: // a host runs a vCPU a little, then maybe ships it
				src := rng.IntN(nodes)
				v := VCPUID(rng.IntN(vcpus))
				if rec := n.m[src].VCPU(v); rec != nil {
					n.runs[v]++
					binary.LittleEndian.PutUint64(rec.State, n.runs[v])
					dst := rng.IntN(nodes)
					if dst != src {
						err = n.m[src].Send(v, memory.NodeID(dst), n.out)
						if err == nil {
							err = n.flush()
						}
					}
				}
			}
			if err == nil {
				err = n.census(vcpus)
			}
			if err != nil {
				fail(step, err)
			}
		}
		for ps := n.pairs(); len(ps) > 0; ps = n.pairs() {
			if err := n.deliver(ps[0][0], ps[0][1]); err != nil {
				fail(-1, err)
			}
		}
		if n.raised != n.taken {
			t.Fatalf("seed %d: %d interrupts raised, %d reached their vCPU", seed, n.raised, n.taken)
		}
		for _, m := range n.m {
			fwd += m.Stats().Forwarded
		}
	}
	if fwd == 0 {
		t.Fatal("no interrupt was ever forwarded: the test does not reach the forwarding path")
	}
}

func TestPendingTravels(t *testing.T) {
	n := newNet(t, 2, 1, 32)
	rec := n.m[0].VCPU(0)
	rec.SetPending(0x31)
	rec.SetPending(0xEC)
	rec.TimerDeadline, rec.TimerVector = 12345, 0xEC
	n.move(t, 0, 0, 1)
	got := n.m[1].VCPU(0)
	if got == nil || got.TimerDeadline != 12345 || got.TimerVector != 0xEC {
		t.Fatalf("timer lost: %+v", got)
	}
	for _, want := range []uint8{0xEC, 0x31} {
		if v, ok := got.TakePending(); !ok || v != want {
			t.Fatalf("TakePending = %#x, %v; want %#x", v, ok, want)
		}
	}
	if _, ok := got.TakePending(); ok {
		t.Fatal("extra pending vector")
	}
}

// TestNMIsFollowTheVCPU sends NMIs to a vCPU that moved (the sender's
// belief is stale, so the first is forwarded), has them collapse at two
// as on the processor, and carries the pending ones with a migration.
func TestNMIsFollowTheVCPU(t *testing.T) {
	n := newNet(t, 3, 1, 32)
	// vCPU 0 moves 0 -> 1; node 2 still believes it is on node 0.
	n.move(t, 0, 0, 1)
	for i := 0; i < 3; i++ {
		if delivered, err := n.m[2].NMI(0, n.out); err != nil || delivered {
			t.Fatalf("NMI from node 2: delivered %v, %v; want sent", delivered, err)
		}
	}
	if err := n.flush(); err != nil {
		t.Fatal(err)
	}
	for len(n.q[2][0]) > 0 { // to the stale location, forwarded to node 1
		if err := n.deliver(2, 0); err != nil {
			t.Fatal(err)
		}
		if err := n.deliver(0, 1); err != nil {
			t.Fatal(err)
		}
	}
	rec := n.m[1].VCPU(0)
	if rec.NMIs != MaxNMIs || rec.IRR != [4]uint64{} {
		t.Fatalf("after three NMIs: %d pending, IRR %x; want %d and no interrupt", rec.NMIs, rec.IRR, MaxNMIs)
	}
	n.move(t, 0, 1, 2) // after the location node 2 was told
	got := n.m[2].VCPU(0)
	if got == nil || got.TakeNMIs() != MaxNMIs || got.TakeNMIs() != 0 {
		t.Fatalf("the pending NMIs did not travel: %+v", got)
	}
}

func TestNMIBytesChecked(t *testing.T) {
	for _, msg := range []Message{
		{Kind: KindDeliver, Src: 1, Dst: 2, VCPU: 3, NMIs: 2},
		{Kind: KindDeliver, Src: 1, Dst: 2, VCPU: 3, NMIs: 1, Vector: 0x30},
		{Kind: KindLocation, Src: 1, Dst: 2, VCPU: 3, NMIs: 1},
		{Kind: KindMigrate, Src: 0, Dst: 1, VCPU: 3, NMIs: MaxNMIs + 1, State: []byte("s")},
	} {
		b := make([]byte, msg.Size())
		if _, err := msg.MarshalTo(b); err != nil {
			t.Fatal(err)
		}
		var got Message
		if err := got.Unmarshal(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%v: Unmarshal = %v, want %v", msg.String(), err, ErrBadMessage)
		}
	}
}

func TestShortStateTravels(t *testing.T) {
	p := newPingPong(t)
	rec := p.ms[0].VCPU(0)
	for i := range rec.State {
		rec.State[i] = 0xAA // stale bytes past the state must not travel
	}
	copy(rec.State, "short")
	rec.StateLen = 5
	p.hop(t, 0)
	if n := len(p.msg.State); n != 5 {
		t.Fatalf("the message carried %d bytes of a 5-byte state", n)
	}
	got := p.ms[1].VCPU(0)
	if got.StateLen != 5 || string(got.State[:5]) != "short" || got.State[5] != 0 || got.State[len(got.State)-1] != 0 {
		t.Fatalf("arrived: length %d, %q..., last byte %#x", got.StateLen, got.State[:8], got.State[len(got.State)-1])
	}
	got.StateLen = len(got.State) + 1
	if err := p.ms[1].Send(0, 0, p.out); err == nil {
		t.Fatal("a state length beyond the buffer was sent")
	}
}

// TestShorterStateClearsTheLonger: a vCPU that arrives with a long state,
// leaves, and comes back with a shorter one holds nothing of the long one
// past the short one's end, though only the stale part is cleared.
func TestShorterStateClearsTheLonger(t *testing.T) {
	p := newPingPong(t)
	for _, n := range []int{300, 40, 300, 7} {
		rec := p.ms[0].VCPU(0)
		for i := range n {
			rec.State[i] = byte(n)
		}
		rec.SetStateLen(n)
		p.hop(t, 0)
		got := p.ms[1].VCPU(0)
		for i, c := range got.State {
			if want := byte(n) * b2u8(i < n); c != want {
				t.Fatalf("after a %d-byte state: byte %d is %#x, want %#x", n, i, c, want)
			}
		}
		p.hop(t, 1)
	}
}

// b2u8 is 1 for true and 0 for false.
func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// pingPong moves vCPU 0 between two migrators through an encode/decode.
type pingPong struct {
	ms  [2]*Migrator
	out *Outbox
	buf []byte
	msg Message
}

func newPingPong(tb testing.TB) *pingPong {
	p := &pingPong{out: NewOutbox(), buf: make([]byte, 8192)}
	for i := range p.ms {
		m, err := New(Config{Self: memory.NodeID(i), Nodes: 2, VCPUs: 1})
		if err != nil {
			tb.Fatal(err)
		}
		p.ms[i] = m
	}
	return p
}

func (p *pingPong) hop(tb testing.TB, from int) {
	if err := p.ms[from].Send(0, memory.NodeID(1-from), p.out); err != nil {
		tb.Fatal(err)
	}
	k, err := p.out.Msgs[0].MarshalTo(p.buf)
	if err != nil {
		tb.Fatal(err)
	}
	p.out.Reset()
	if err := p.msg.Unmarshal(p.buf[:k]); err != nil {
		tb.Fatal(err)
	}
	ev, err := p.ms[1-from].HandleMessage(&p.msg, p.out)
	if err != nil || ev.Kind != EventArrived {
		tb.Fatalf("arrival: %v %v", ev, err)
	}
}

func TestMigrateAllocs(t *testing.T) {
	p := newPingPong(t)
	if allocs := testing.AllocsPerRun(1000, func() { p.hop(t, 0); p.hop(t, 1) }); allocs != 0 {
		t.Fatalf("%v allocations per two migrations, want 0", allocs)
	}
}

// BenchmarkMigration measures freezing, encoding, decoding and resuming a
// vCPU with the default 4608-byte state.
func BenchmarkMigration(b *testing.B) {
	p := newPingPong(b)
	b.ReportAllocs()
	b.SetBytes(DefaultStateSize)
	for i := 0; i < b.N; i++ {
		p.hop(b, i%2)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, msg := range []Message{
		{Kind: KindDeliver, Src: 1, Dst: 2, Origin: 1, VCPU: 3, Epoch: 4, Vector: 0x30},
		{Kind: KindDeliver, Src: 1, Dst: 2, Origin: 1, VCPU: 3, Epoch: 4, NMIs: 1},
		{Kind: KindLocation, Src: 2, Dst: 1, Node: 2, VCPU: 3, Epoch: 5},
		{Kind: KindMigrate, Src: 0, Dst: 1, VCPU: 7, Epoch: 1, IRR: [4]uint64{1, 2, 3, 4}, TimerDeadline: 99, TimerVector: 0xEC, NMIs: 2, State: []byte("state")},
	} {
		b := make([]byte, msg.Size())
		if _, err := msg.MarshalTo(b); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var msg Message
		if err := msg.Unmarshal(b); err != nil {
			return
		}
		out := make([]byte, msg.Size())
		if _, err := msg.MarshalTo(out); err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding of %v differs", msg.String())
		}
	})
}
