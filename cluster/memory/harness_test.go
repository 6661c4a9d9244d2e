package memory

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// eptSlice is a Permissions backed by a slice, as the simulator has.
type eptSlice []Access

func (s eptSlice) SetAccess(gpa uint64, _ *Page, a Access) { s[gpa>>pageShift] = a }

// cluster wires engines together with per-pair FIFO queues of encoded
// messages, delivered in an order chosen by a seeded random source.
type cluster struct {
	engines []*Engine
	perms   []eptSlice
	queues  [][][][]byte // [src][dst] FIFO
	out     *Outbox
	buf     Page
	last    map[uint64]uint64 // word address -> last token written
	bits    map[uint64]uint64 // walked word address -> bits walks set (runWindows)
	token   uint64
	rng     *rand.Rand
	pages   int
}

func newCluster(tb testing.TB, nodes, pages int, seed uint64, mut Mutation, mods ...func(*Config)) *cluster {
	tb.Helper()
	c := &cluster{out: NewOutbox(), last: map[uint64]uint64{}, rng: rand.New(rand.NewPCG(seed, 7)), pages: pages}
	c.queues = make([][][][]byte, nodes)
	for i := 0; i < nodes; i++ {
		c.queues[i] = make([][][]byte, nodes)
		perm := make(eptSlice, pages)
		cfg := Config{Self: NodeID(i), Nodes: nodes, Pages: pages, Perm: perm, Mutation: mut}
		for _, m := range mods {
			m(&cfg)
		}
		e, err := NewEngine(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		c.engines = append(c.engines, e)
		c.perms = append(c.perms, perm)
	}
	return c
}

func (c *cluster) flush() error {
	for i := range c.out.Msgs {
		m := &c.out.Msgs[i]
		b := make([]byte, m.Size())
		n, err := m.MarshalTo(b)
		if err != nil {
			return err
		}
		b = b[:n]
		c.queues[m.Src][m.Dst] = append(c.queues[m.Src][m.Dst], b)
	}
	c.out.Reset()
	return nil
}

// access performs or faults one access by node n; it returns an error on a
// checker or protocol violation.
func (c *cluster) access(n int, page int, word int, write bool) error {
	gpa := uint64(page)<<pageShift | uint64(word*8)
	e := c.engines[n]
	if !c.perms[n][page].Allows(write) {
		res, err := e.Fault(gpa, write, c.out)
		if err != nil {
			return err
		}
		if res == FaultNoRoom {
			return nil // every copy has a request outstanding: later
		}
		if err := c.flush(); err != nil {
			return err
		}
		if !c.perms[n][page].Allows(write) {
			return nil // wait for the answer
		}
	}
	f := e.Frame(gpa)
	if f == nil {
		return fmt.Errorf("node %d: access %v allowed on %#x but no frame", n, c.perms[n][page], gpa)
	}
	w := f[word*8 : word*8+8]
	if write {
		c.token++
		binary.LittleEndian.PutUint64(w, c.token)
		c.last[gpa] = c.token
		return nil
	}
	if got, want := binary.LittleEndian.Uint64(w), c.last[gpa]; got != want {
		return fmt.Errorf("node %d read %#x = %d, latest write is %d", n, gpa, got, want)
	}
	return nil
}

func (c *cluster) deliver(src, dst int) error {
	q := c.queues[src][dst]
	b := q[0]
	c.queues[src][dst] = q[1:]
	var m Message
	if err := m.Unmarshal(b, &c.buf); err != nil {
		return err
	}
	if err := c.engines[dst].HandleMessage(&m, c.out); err != nil {
		return err
	}
	return c.flush()
}

// invariants checks single writer: a Modified copy excludes every other
// valid copy, and EPT permissions mirror the states.
func (c *cluster) invariants() error {
	for p := 0; p < c.pages; p++ {
		gpa := uint64(p) << pageShift
		mod, shared := 0, 0
		for n, e := range c.engines {
			s := e.State(gpa)
			want := s.access()
			switch e.pages[p].window {
			case winOpen:
				want = AccessReadWrite
			case winDraining:
				want = AccessNone
			}
			if c.perms[n][p] != want {
				return fmt.Errorf("node %d page %d: state %v, window %d, but EPT %v", n, p, s, e.pages[p].window, c.perms[n][p])
			}
			switch s {
			case Modified:
				mod++
			case Shared:
				shared++
			}
		}
		if mod > 1 || mod == 1 && shared > 0 {
			return fmt.Errorf("page %d: %d Modified and %d Shared copies", p, mod, shared)
		}
		// One home at most: none only while a grant moving it travels.
		homes := 0
		for _, e := range c.engines {
			if e.Home(gpa) == e.Self() {
				homes++
			}
		}
		if homes > 1 {
			return fmt.Errorf("page %d: %d nodes home it", p, homes)
		}
	}
	return nil
}

// withinBudget checks that no node holds more frames for copies than
// its Config.CopyFrames.
func (c *cluster) withinBudget() error {
	for n, e := range c.engines {
		if b := e.cfg.CopyFrames; b > 0 && e.CopyFrames() > b {
			return fmt.Errorf("node %d holds %d frames for copies, bound %d", n, e.CopyFrames(), b)
		}
		if got := e.copies + len(e.free) + len(e.deferred); got != e.copyFrames {
			return fmt.Errorf("node %d: %d copies and %d pool frames, but %d frames counted", n, e.copies, len(e.free)+len(e.deferred), e.copyFrames)
		}
	}
	return nil
}

func (c *cluster) pendingPairs() [][2]int {
	var ps [][2]int
	for s := range c.queues {
		for d := range c.queues[s] {
			if len(c.queues[s][d]) > 0 {
				ps = append(ps, [2]int{s, d})
			}
		}
	}
	return ps
}

// run drives random accesses, evictions and deliveries for steps steps,
// then drains the network and reads back every written word everywhere.
func (c *cluster) run(steps int) error {
	nodes := len(c.engines)
	for i := 0; i < steps; i++ {
		pairs := c.pendingPairs()
		r := c.rng.IntN(10)
		var err error
		switch {
		case r < 5 && len(pairs) > 0:
			pr := pairs[c.rng.IntN(len(pairs))]
			err = c.deliver(pr[0], pr[1])
		case r == 9:
			n := c.rng.IntN(nodes)
			_, err = c.engines[n].Evict(uint64(c.rng.IntN(c.pages))<<pageShift, c.out)
			if err == nil {
				err = c.flush()
			}
		default:
			err = c.access(c.rng.IntN(nodes), c.rng.IntN(c.pages), c.rng.IntN(4), c.rng.IntN(2) == 0)
		}
		if err == nil {
			err = c.invariants()
		}
		if err == nil {
			err = c.withinBudget()
		}
		if err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	for pairs := c.pendingPairs(); len(pairs) > 0; pairs = c.pendingPairs() {
		if err := c.deliver(pairs[0][0], pairs[0][1]); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	// Every node reads every word it may: values must be the latest.
	for n := range c.engines {
		for p := 0; p < c.pages; p++ {
			for w := 0; w < 4; w++ {
				for tries := 0; tries < 100; tries++ {
					if err := c.access(n, p, w, false); err != nil {
						return fmt.Errorf("final read: %w", err)
					}
					if c.perms[n][p].Allows(false) {
						break
					}
					for pairs := c.pendingPairs(); len(pairs) > 0; pairs = c.pendingPairs() {
						if err := c.deliver(pairs[0][0], pairs[0][1]); err != nil {
							return fmt.Errorf("final drain: %w", err)
						}
					}
				}
				if !c.perms[n][p].Allows(false) {
					return fmt.Errorf("node %d: page %d never became readable (deadlock)", n, p)
				}
			}
		}
	}
	return nil
}

func TestRandomInterleavings(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 60
	}
	var total Stats
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		nodes := 2 + int(seed%3)
		c := newCluster(t, nodes, 3, seed, MutationNone)
		if err := c.run(600); err != nil {
			t.Fatalf("seed %d nodes %d: %v", seed, nodes, err)
		}
		for _, e := range c.engines {
			s := e.Stats()
			total.RemoteFaults += s.RemoteFaults
			total.Writebacks += s.Writebacks
			total.Invalidations += s.Invalidations
			total.QueuedRequests += s.QueuedRequests
		}
	}
	// The random schedule must reach the racy paths, or it proves little.
	if total.RemoteFaults == 0 || total.Writebacks == 0 || total.Invalidations == 0 || total.QueuedRequests == 0 {
		t.Fatalf("schedule too tame: %+v", total)
	}
	t.Logf("%+v", total)
}

// TestMutationsCaught shows the harness fails for broken protocols.
func TestMutationsCaught(t *testing.T) {
	for _, mut := range []Mutation{MutationSkipInvalidate, MutationDropWriteback} {
		caught := false
		for seed := uint64(1); seed <= 50 && !caught; seed++ {
			c := newCluster(t, 3, 2, seed, mut)
			caught = c.run(400) != nil
		}
		if !caught {
			t.Errorf("mutation %d not caught in 50 seeds", mut)
		}
	}
}
