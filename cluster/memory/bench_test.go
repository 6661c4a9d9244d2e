package memory

import (
	"testing"
)

// pair is two engines exchanging encoded messages through preallocated
// buffers, as a transport would: the steady-state remote fault path.
type pair struct {
	e     [2]*Engine
	perm  [2]eptSlice
	out   *Outbox
	wire  [][]byte // encoded messages in flight, FIFO
	used  int
	buf   Page
	msgs  int
	trans int
}

func newPair(tb testing.TB, mods ...func(*Config)) *pair {
	p := &pair{out: NewOutbox()}
	for i := range p.e {
		p.perm[i] = make(eptSlice, 4)
		cfg := Config{Self: NodeID(i), Nodes: 2, Pages: 4, Perm: p.perm[i]}
		for _, m := range mods {
			m(&cfg)
		}
		e, err := NewEngine(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		p.e[i] = e
	}
	p.wire = make([][]byte, 16)
	for i := range p.wire {
		p.wire[i] = make([]byte, MaxMessageSize)
	}
	return p
}

// fault makes node n fault on gpa and runs the exchange to completion.
// Messages are delivered in the order they were sent (FIFO: with two
// nodes every message of a call goes to the same peer).
func (p *pair) fault(tb testing.TB, n int, gpa uint64, write bool) {
	if _, err := p.e[n].Fault(gpa, write, p.out); err != nil {
		tb.Fatal(err)
	}
	var lens [16]int
	for {
		// Encode everything the last call produced, then deliver in order.
		p.used = 0
		for i := range p.out.Msgs {
			k, err := p.out.Msgs[i].MarshalTo(p.wire[p.used])
			if err != nil {
				tb.Fatal(err)
			}
			lens[p.used] = k
			p.used++
		}
		p.out.Reset()
		if p.used == 0 {
			break
		}
		if p.used > 2 {
			tb.Fatalf("two-node exchange produced %d messages at once", p.used)
		}
		// A reclaim sends its writeback before the request: both go to
		// the peer, in order; the writeback answers nothing.
		for i := 0; i < p.used; i++ {
			b := p.wire[i][:lens[i]]
			var m Message
			if err := m.Unmarshal(b, &p.buf); err != nil {
				tb.Fatal(err)
			}
			p.msgs++
			if err := p.e[m.Dst].HandleMessage(&m, p.out); err != nil {
				tb.Fatal(err)
			}
			if i+1 < p.used && len(p.out.Msgs) != 0 {
				tb.Fatalf("a writeback produced %d messages", len(p.out.Msgs))
			}
		}
	}
	if !p.perm[n][gpa>>pageShift].Allows(write) {
		tb.Fatalf("node %d: fault on %#x not resolved", n, gpa)
	}
}

func TestRemoteFaultAllocs(t *testing.T) {
	p := newPair(t)
	for i := 0; i < 10; i++ { // warm the frame pool
		p.fault(t, 1, 0, true)
		p.fault(t, 0, 0, true)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		p.fault(t, 1, 0, true)
		p.fault(t, 0, 0, true)
		p.fault(t, 1, 0, false)
		p.fault(t, 1, 0, true)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 4 remote faults, want 0", allocs)
	}
}

// BenchmarkRemoteWriteFault measures one remote write fault round trip
// between two engines including message encoding and decoding (page data
// travels both ways). Each op is four coherence transitions: I->M at the
// requester, M->I at the old owner, and the reverse.
func BenchmarkRemoteWriteFault(b *testing.B) {
	p := newPair(b)
	p.fault(b, 1, 0, true)
	p.fault(b, 0, 0, true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.fault(b, 1, 0, true)
		p.fault(b, 0, 0, true)
	}
	b.ReportMetric(float64(b.N*4)/b.Elapsed().Seconds(), "transitions/s")
	b.ReportMetric(float64(p.msgs)/float64(b.N), "msgs/op")
}

// BenchmarkReadUpgrade measures the cheap transitions: a remote read
// (shared copy with data) followed by an upgrade without data.
func BenchmarkReadUpgrade(b *testing.B) {
	p := newPair(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.fault(b, 1, 0, false)
		p.fault(b, 1, 0, true)
		p.fault(b, 0, 0, true)
	}
	b.ReportMetric(float64(b.N*6)/b.Elapsed().Seconds(), "transitions/s")
}
