package cluster

import (
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/link/memlink"
)

// pair is two endpoints on an in-memory switch with no faults, for
// allocation tests and benchmarks. Both ends run on the calling goroutine,
// so a benchmark's time per message is the sender's and receiver's work
// together on one core.
type pair struct {
	now      time.Duration
	sw       *memlink.Switch
	a, b     *Endpoint
	received int
	bytes    int
}

func newPair(tb testing.TB, mtu int) *pair {
	p := &pair{sw: memlink.New(memlink.Config{MTU: mtu})}
	clock := func() time.Duration { return p.now }
	pa, pb := p.sw.AddPort(nodeMAC(0)), p.sw.AddPort(nodeMAC(1))
	var err error
	p.a, err = NewEndpoint(Config{ID: 1, Key: testKey(), Link: pa, Clock: clock, CounterBase: 1})
	if err != nil {
		tb.Fatal(err)
	}
	p.b, err = NewEndpoint(Config{ID: 2, Key: testKey(), Link: pb, Clock: clock, CounterBase: 1,
		OnMessage: func(_ NodeID, _ uint8, m []byte) { p.received++; p.bytes += len(m) }})
	if err != nil {
		tb.Fatal(err)
	}
	p.a.AddPeer(2, pb.MAC())
	p.b.AddPeer(1, pa.MAC())
	return p
}

// send delivers one message from a to b, stepping time when the window is full.
func (p *pair) send(tb testing.TB, msg []byte) {
	for {
		err := p.a.Send(2, 1, msg)
		if err == nil {
			break
		}
		if err != ErrBusy {
			tb.Fatal(err)
		}
		p.step()
	}
	p.sw.Advance(p.now)
}

func (p *pair) step() {
	p.now += 10 * time.Microsecond
	p.sw.Advance(p.now)
	p.b.Tick()
	p.a.Tick()
	p.sw.Advance(p.now)
}

func TestSteadyStateAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		mtu  int
		size int
	}{
		{"64B/mtu1500", link.DefaultMTU, 64},
		{"4KiB/mtu1500", link.DefaultMTU, 4096},
		{"4KiB/mtu9000", link.JumboMTU, 4096},
		{"64KiB/mtu1500", link.DefaultMTU, 64 << 10},
	} {
		p := newPair(t, tc.mtu)
		msg := make([]byte, tc.size)
		for range 500 { // warm up: channel buffers, switch pool
			p.send(t, msg)
			p.step()
		}
		before := p.received
		allocs := testing.AllocsPerRun(1000, func() {
			p.send(t, msg)
			p.step()
		})
		if p.received-before < 1000 {
			t.Fatalf("%s: only %d messages arrived", tc.name, p.received-before)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per message", tc.name, allocs)
		}
	}
}

func benchmarkSend(b *testing.B, mtu, size int) {
	p := newPair(b, mtu)
	msg := make([]byte, size)
	for range 200 {
		p.send(b, msg)
	}
	p.step()
	start := p.received
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.send(b, msg)
		if i%16 == 15 {
			p.step()
		}
	}
	for !p.a.Idle() {
		p.step()
	}
	b.StopTimer()
	if got := p.received - start; got != b.N {
		b.Fatalf("%d of %d messages arrived", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSend64BMTU1500(b *testing.B)  { benchmarkSend(b, link.DefaultMTU, 64) }
func BenchmarkSend64BMTU9000(b *testing.B)  { benchmarkSend(b, link.JumboMTU, 64) }
func BenchmarkSend4KiBMTU1500(b *testing.B) { benchmarkSend(b, link.DefaultMTU, 4096) }
func BenchmarkSend4KiBMTU9000(b *testing.B) { benchmarkSend(b, link.JumboMTU, 4096) }
