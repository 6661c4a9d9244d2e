package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/link/memlink"
)

// net is a simulated cluster: endpoints on one in-memory switch, driven by
// a virtual clock.
type net struct {
	t     testing.TB
	now   time.Duration
	sw    *memlink.Switch
	ports []*memlink.Port
	eps   []*Endpoint
	// got[i] collects messages received by endpoint i, keyed by sender and channel.
	got []map[[2]int][][]byte
}

func nodeMAC(i int) link.MAC { return link.MAC{0x02, 0xb1, 0, 0, 0, byte(i + 1)} }

func newNet(t testing.TB, n int, swcfg memlink.Config, mod func(*Config)) *net {
	t.Helper()
	s := &net{t: t, sw: memlink.New(swcfg)}
	for i := range n {
		port := s.sw.AddPort(nodeMAC(i))
		s.ports = append(s.ports, port)
		got := map[[2]int][][]byte{}
		s.got = append(s.got, got)
		cfg := Config{
			ID: NodeID(i + 1), Key: testKey(), Link: port,
			Clock:       func() time.Duration { return s.now },
			CounterBase: 1 << 32,
			OnMessage: func(from NodeID, ch uint8, msg []byte) {
				k := [2]int{int(from), int(ch)}
				got[k] = append(got[k], bytes.Clone(msg))
			},
		}
		if mod != nil {
			mod(&cfg)
		}
		ep, err := NewEndpoint(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.eps = append(s.eps, ep)
	}
	for i, a := range s.eps {
		for j := range s.eps {
			if i != j {
				if err := a.AddPeer(NodeID(j+1), nodeMAC(j)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return s
}

// step advances virtual time by d, delivering frames and ticking endpoints.
func (s *net) step(d time.Duration) {
	s.now += d
	s.sw.Advance(s.now)
	for _, ep := range s.eps {
		ep.Tick()
	}
}

// message builds a verifiable message: sender, channel, index, then a
// pattern derived from them.
func message(from, ch, idx, size int) []byte {
	size = max(size, 12)
	m := make([]byte, size)
	binary.BigEndian.PutUint32(m[0:], uint32(from))
	binary.BigEndian.PutUint32(m[4:], uint32(ch))
	binary.BigEndian.PutUint32(m[8:], uint32(idx))
	for i := 12; i < size; i++ {
		m[i] = byte(from*31 + ch*7 + idx*13 + i)
	}
	return m
}

// runExchange has every node send perNode messages to random peers on
// random channels and checks exact, in-order, once-only delivery.
func runExchange(t *testing.T, seed uint64, nodes, perNode int, swcfg memlink.Config, sizes func(r *rand.Rand) int, mods ...func(*Config)) {
	t.Helper()
	swcfg.Seed = seed
	s := newNet(t, nodes, swcfg, func(c *Config) {
		for _, m := range mods {
			m(c)
		}
	})
	r := rand.New(rand.NewPCG(seed, 7))
	type out struct{ to, ch, size int }
	plan := make([][]out, nodes)
	want := make([]map[[2]int][][]byte, nodes)
	for i := range want {
		want[i] = map[[2]int][][]byte{}
	}
	counts := map[[3]int]int{}
	for i := range nodes {
		for range perNode {
			to := r.IntN(nodes - 1)
			if to >= i {
				to++
			}
			o := out{to: to, ch: r.IntN(DefaultChannels), size: sizes(r)}
			plan[i] = append(plan[i], o)
			k := [3]int{i, o.to, o.ch}
			m := message(i+1, o.ch, counts[k], o.size)
			counts[k]++
			wk := [2]int{i + 1, o.ch}
			want[o.to][wk] = append(want[o.to][wk], m)
		}
	}
	next := make([]int, nodes)
	sent := map[[3]int]int{}
	deadline := 60 * time.Second
	for s.now < deadline {
		for i, ep := range s.eps {
			for next[i] < len(plan[i]) {
				o := plan[i][next[i]]
				k := [3]int{i, o.to, o.ch}
				err := ep.Send(NodeID(o.to+1), uint8(o.ch), message(i+1, o.ch, sent[k], o.size))
				if err == ErrBusy {
					break
				}
				if err != nil {
					t.Fatalf("seed %d: send: %v", seed, err)
				}
				sent[k]++
				next[i]++
			}
		}
		s.step(200 * time.Microsecond)
		checkHeld(t, s.eps)
		done := true
		for i := range nodes {
			if next[i] < len(plan[i]) || !s.eps[i].Idle() {
				done = false
			}
		}
		if done {
			break
		}
	}
	var rtx, frames uint64
	for i, ep := range s.eps {
		for j := range nodes {
			if ps, ok := ep.PeerStats(NodeID(j + 1)); ok && i != j {
				rtx += ps.Retransmits
				frames += ps.FramesOut
			}
		}
	}
	t.Logf("seed %d: virtual time %v, frames %d, retransmits %d, switch %+v, drops %+v", seed, s.now, frames, rtx, s.sw.Stats(), s.eps[0].Stats())
	for i := range nodes {
		for k, w := range want[i] {
			g := s.got[i][k]
			if len(g) != len(w) {
				t.Fatalf("seed %d: node %d from %d channel %d: got %d messages, want %d (time %v)",
					seed, i+1, k[0], k[1], len(g), len(w), s.now)
			}
			for j := range w {
				if !bytes.Equal(g[j], w[j]) {
					t.Fatalf("seed %d: node %d from %d channel %d: message %d differs (len %d, want %d)",
						seed, i+1, k[0], k[1], j, len(g[j]), len(w[j]))
				}
			}
		}
		for k, g := range s.got[i] {
			if len(want[i][k]) != len(g) {
				t.Fatalf("seed %d: node %d got unexpected messages from %v", seed, i+1, k)
			}
		}
	}
}

// checkHeld checks every channel's count of out-of-order frames held
// (which spares an acknowledgement the scan for them) against the ring.
func checkHeld(t *testing.T, eps []*Endpoint) {
	t.Helper()
	for i, ep := range eps {
		for id, p := range ep.peers {
			for ch, c := range p.chans {
				if c == nil {
					continue // not used yet
				}
				n := 0
				for _, s := range c.recv {
					if s.present {
						n++
					}
				}
				if n != c.held {
					t.Fatalf("node %d, from %d, channel %d: %d frames held, counted %d", i+1, id, ch, n, c.held)
				}
			}
		}
	}
}

func delayedAcks(c *Config) { c.AckDelay, c.AckEvery = 3*time.Millisecond, 4 }

func TestReliableDelayedAcks(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runExchange(t, seed, 3, 120, memlink.Config{
				Loss: 0.1, Duplicate: 0.1, Delay: 100 * time.Microsecond, Jitter: 400 * time.Microsecond,
			}, func(r *rand.Rand) int { return 1 + r.IntN(6000) }, delayedAcks)
		})
	}
}

// A request and its reply (a page, three frames at MTU 1500), as
// between nodes of a distributed VM: with delayed acknowledgements the
// acknowledgements ride on the data frames, and fewer frames cross.
func TestDelayedAcksRideOnData(t *testing.T) {
	frames := func(mod func(*Config)) uint64 {
		s := newNet(t, 2, memlink.Config{Delay: 50 * time.Microsecond}, mod)
		for i := range 50 {
			if err := s.eps[0].Send(2, 1, message(1, 1, i, 64)); err != nil {
				t.Fatal(err)
			}
			for len(s.got[1][[2]int{1, 1}]) <= i {
				s.step(100 * time.Microsecond)
			}
			s.step(500 * time.Microsecond) // the reply takes a while
			if err := s.eps[1].Send(1, 1, message(2, 1, i, 4096)); err != nil {
				t.Fatal(err)
			}
			for len(s.got[0][[2]int{2, 1}]) <= i {
				s.step(100 * time.Microsecond)
			}
		}
		for range 100 {
			s.step(time.Millisecond)
		}
		var n uint64
		for i, ep := range s.eps {
			ps, _ := ep.PeerStats(NodeID(2 - i))
			n += ps.FramesOut
		}
		if !s.eps[0].Idle() || !s.eps[1].Idle() {
			t.Fatal("messages unacknowledged at the end")
		}
		return n
	}
	eager, delayed := frames(nil), frames(delayedAcks)
	t.Logf("50 request/reply exchanges: %d frames with immediate acks, %d delayed", eager, delayed)
	if delayed >= eager {
		t.Errorf("delayed acknowledgements sent %d frames, immediate ones %d", delayed, eager)
	}
}

func TestReliablePerfect(t *testing.T) {
	runExchange(t, 1, 3, 200, memlink.Config{Delay: 50 * time.Microsecond},
		func(r *rand.Rand) int { return 1 + r.IntN(6000) })
}

func TestReliableUnderFaults(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runExchange(t, seed, 3, 120, memlink.Config{
				Loss: 0.1, Duplicate: 0.1, Delay: 100 * time.Microsecond, Jitter: 400 * time.Microsecond,
			}, func(r *rand.Rand) int {
				switch r.IntN(4) {
				case 0:
					return 64
				case 1:
					return 4096
				case 2:
					return 1 + r.IntN(20000)
				}
				return 64 << 10
			})
		})
	}
}

func TestReliableJumbo(t *testing.T) {
	for seed := uint64(100); seed < 105; seed++ {
		runExchange(t, seed, 2, 150, memlink.Config{
			MTU: link.JumboMTU, Loss: 0.1, Duplicate: 0.1, Delay: 100 * time.Microsecond, Jitter: 400 * time.Microsecond,
		}, func(r *rand.Rand) int { return 1 + r.IntN(64<<10) })
	}
}

// TestLongestSilence: a peer's longest silence is the longest time
// between two of its authenticated frames, on the endpoint's clock; the
// wait for its first frame does not count.
func TestLongestSilence(t *testing.T) {
	s := newNet(t, 2, memlink.Config{Delay: 50 * time.Microsecond}, nil)
	send := func(i int) {
		if err := s.eps[1].Send(1, 1, message(2, 1, i, 64)); err != nil {
			t.Fatal(err)
		}
		for len(s.got[0][[2]int{2, 1}]) <= i {
			s.step(100 * time.Microsecond)
		}
	}
	s.step(3 * time.Second) // node 2 boots: its first frame comes late, which is no silence
	send(0)
	s.step(700 * time.Millisecond) // node 2 is silent: no message, acknowledged long ago
	send(1)
	s.step(200 * time.Millisecond)
	send(2)
	ps, _ := s.eps[0].PeerStats(2)
	if ps.LongestSilence < 700*time.Millisecond || ps.LongestSilence > 701*time.Millisecond {
		t.Fatalf("longest silence %v, want 700ms", ps.LongestSilence)
	}
}
