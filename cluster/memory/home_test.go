package memory

import (
	"errors"
	"testing"
)

// moving configures every engine of a test cluster to move homes: on
// first touch, after a run of after requests, with room for room more
// homes each.
func moving(firstTouch bool, after, room int) func(*Config) {
	return func(c *Config) { c.FirstTouch, c.MoveAfter, c.HomeRoom = firstTouch, after, room }
}

// homeOf returns the node that homes page p, or -1 while none does.
func (c *cluster) homeOf(p int) int {
	for n, e := range c.engines {
		if e.Home(uint64(p)<<pageShift) == e.Self() {
			return n
		}
	}
	return -1
}

// TestRandomInterleavingsMovingHomes runs random schedules with homes
// that move on first touch and after short runs, some nodes without
// room for more, some with a bound on copies: after every step single
// writer, at most one home per page and the copies' bound hold, and at
// the end every node reads the latest write of every word and every
// page has exactly one home.
func TestRandomInterleavingsMovingHomes(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 80
	}
	var total Stats
	leftHomes := 0 // homes the leaving nodes handed on
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		nodes := 2 + int(seed%3)
		mods := []func(*Config){moving(seed%2 == 0, 1+int(seed/2)%3, 1+int(seed/6)%3)}
		if seed%5 == 0 {
			mods = append(mods, budget(1+int(seed/5)%2))
		}
		if seed%7 == 0 {
			mods = append(mods, func(c *Config) {
				if c.Self == 1 {
					c.HomeRoom = 0 // this node never takes a home
				}
			})
		}
		c := newCluster(t, nodes, 4, seed, MutationNone, mods...)
		leaver := -1
		if seed%4 == 1 {
			leaver = nodes - 1 // leaving from the start: hands its homes on
			c.engines[leaver].Leave()
		}
		if err := c.run(800); err != nil {
			t.Fatalf("seed %d nodes %d: %v", seed, nodes, err)
		}
		for p := 0; p < c.pages; p++ {
			if c.homeOf(p) < 0 {
				t.Fatalf("seed %d: page %d has no home after the run", seed, p)
			}
		}
		for n, e := range c.engines {
			s := e.Stats()
			if got, want := e.Homes(), e.startHomes+int(s.HomesGained)-int(s.HomesGiven); got != want {
				t.Fatalf("seed %d node %d homes %d pages, counters say %d", seed, n, got, want)
			}
			if room := e.cfg.HomeRoom; e.Homes() > e.startHomes+room {
				t.Fatalf("seed %d node %d homes %d pages, started with %d and has room for %d more", seed, n, e.Homes(), e.startHomes, room)
			}
			if n == leaver && s.HomesGained != 0 {
				t.Fatalf("seed %d node %d took %d homes while leaving", seed, n, s.HomesGained)
			}
			if n == leaver {
				leftHomes += e.startHomes - e.Homes()
			}
			total.HomesGained += s.HomesGained
			total.Forwards += s.Forwards
			total.QueuedRequests += s.QueuedRequests
			total.Reclaims += s.Reclaims
		}
	}
	// The schedules must move homes under load and pass requests on.
	if total.HomesGained == 0 || total.Forwards == 0 || total.QueuedRequests == 0 || total.Reclaims == 0 || leftHomes == 0 {
		t.Fatalf("schedule too tame: %+v, %d homes handed on by leaving nodes", total, leftHomes)
	}
	t.Logf("homes moved %d (%d by leaving nodes), requests passed on %d, queued %d, reclaims %d", total.HomesGained, leftHomes, total.Forwards, total.QueuedRequests, total.Reclaims)
}

// TestFirstTouchMovesHome: page 0 starts homed at node 0. Node 1 writes
// it first: the grant hands node 1 the home, and node 0 frees its frame.
// Node 2, which still takes node 0 for the home, reads it: node 0 passes
// the request on and node 2 gets node 1's write. A page node 0 wrote
// first stays at node 0.
func TestFirstTouchMovesHome(t *testing.T) {
	frames := make([]*countingFrames, 3)
	c := newCluster(t, 3, 6, 1, MutationNone, moving(true, 0, 4), func(cfg *Config) {
		frames[cfg.Self] = &countingFrames{}
		cfg.Frames = frames[cfg.Self]
	})
	held0 := frames[0].held
	must(t, c.access(1, 0, 0, true)) // WriteReq(can home) 1->0
	must(t, c.deliver(1, 0))         // grant with the home
	if c.homeOf(0) != -1 {
		t.Fatalf("page 0 homed at %d while the grant that moves it travels", c.homeOf(0))
	}
	must(t, c.deliver(0, 1))
	must(t, c.access(1, 0, 0, true)) // the write, now local
	if c.homeOf(0) != 1 || c.engines[1].State(0) != Modified {
		t.Fatalf("page 0 homed at %d, node 1 %v", c.homeOf(0), c.engines[1].State(0))
	}
	_, err := c.engines[0].Fault(3<<pageShift, false, c.out) // any call on node 0 releases the frame
	must(t, err)
	must(t, c.flush())
	if frames[0].held != held0-1 {
		t.Fatalf("node 0 holds %d frames, want %d (page 0's given back)", frames[0].held, held0-1)
	}
	if ok, _ := c.engines[1].Evict(0, c.out); ok {
		t.Fatal("node 1 evicted a page it homes")
	}
	must(t, c.access(2, 0, 0, false)) // ReadReq 2->0: node 2 still takes node 0 for the home
	must(t, c.deliver(2, 0))          // passed on to node 1
	if c.engines[0].Stats().Forwards != 1 || c.queued(0, 1) != 1 {
		t.Fatalf("node 0 passed on %d requests", c.engines[0].Stats().Forwards)
	}
	c.drainAll(t)
	must(t, c.access(2, 0, 0, false)) // reads node 1's token
	if c.engines[2].Home(0) != 1 {
		t.Fatalf("node 2 takes node %d for the home, want 1 (it answered)", c.engines[2].Home(0))
	}
	// Node 0 writes page 3 first: it stays; node 1's write later does not move it.
	must(t, c.access(0, 3, 0, true))
	must(t, c.access(1, 3, 0, true))
	c.drainAll(t)
	must(t, c.access(1, 3, 0, true))
	if c.homeOf(3) != 0 {
		t.Fatalf("page 3, first written at its home, moved to node %d", c.homeOf(3))
	}
	must(t, c.invariants())
}

// TestMoveAfterRun: with MoveAfter 2, a node that reads and then writes
// a page, no other node's request in between, takes its home; a run
// broken by another node's request does not.
func TestMoveAfterRun(t *testing.T) {
	c := newCluster(t, 3, 6, 1, MutationNone, moving(false, 2, 4))
	must(t, c.access(1, 0, 0, false))
	c.drainAll(t)
	must(t, c.access(1, 0, 0, true)) // second request in a row
	c.drainAll(t)
	if c.homeOf(0) != 1 {
		t.Fatalf("page 0 homed at %d after node 1's read and write, want 1", c.homeOf(0))
	}
	must(t, c.access(1, 3, 0, false))
	c.drainAll(t)
	must(t, c.access(2, 3, 0, false)) // breaks node 1's run
	c.drainAll(t)
	must(t, c.access(1, 3, 0, true))
	c.drainAll(t)
	if c.homeOf(3) != 0 {
		t.Fatalf("page 3 moved to node %d though node 2 read it between node 1's requests", c.homeOf(3))
	}
	must(t, c.access(2, 3, 0, true)) // node 2 reads (run 1 after node 1's write) then writes: run 2
	c.drainAll(t)
	must(t, c.access(1, 3, 0, true)) // node 1's write: run of 1
	c.drainAll(t)
	if c.homeOf(3) != 0 {
		t.Fatalf("page 3 moved to node %d on a run of one", c.homeOf(3))
	}
	must(t, c.access(2, 3, 0, false))
	c.drainAll(t)
	must(t, c.access(2, 3, 0, true))
	c.drainAll(t)
	if c.homeOf(3) != 2 {
		t.Fatalf("page 3 homed at %d after node 2's read and write, want 2", c.homeOf(3))
	}
	must(t, c.access(0, 3, 0, false)) // node 0 handed it on: passes its own request on
	c.drainAll(t)
	must(t, c.access(0, 3, 0, false))
	must(t, c.invariants())
}

// TestHomeRoomBounds: a node with room for one more home offers to take
// a page's home only while it has room, counting the offers outstanding.
func TestHomeRoomBounds(t *testing.T) {
	c := newCluster(t, 2, 6, 1, MutationNone, moving(true, 0, 1)) // node 0 homes 0, 2, 4
	must(t, c.access(1, 0, 0, true))
	must(t, c.access(1, 2, 0, true)) // offer outstanding for page 0: no room left to offer
	c.drainAll(t)
	if c.homeOf(0) != 1 || c.homeOf(2) != 0 {
		t.Fatalf("homes of pages 0 and 2: %d and %d, want 1 and 0", c.homeOf(0), c.homeOf(2))
	}
	must(t, c.access(1, 4, 0, true))
	c.drainAll(t)
	if c.homeOf(4) != 0 || c.engines[1].Homes() != 4 {
		t.Fatalf("page 4 homed at %d, node 1 homes %d pages, want 0 and 4", c.homeOf(4), c.engines[1].Homes())
	}
	// A grant that moves a home to a node that did not offer is refused.
	must(t, c.access(0, 2, 0, true)) // node 0 takes page 2 back
	c.drainAll(t)
	must(t, c.access(1, 2, 0, true)) // a write request without an offer
	bad := &Message{Kind: KindWriteGrant, Flags: FlagHasData | FlagHome, Src: 0, Dst: 1, Requester: 1, GPA: 2 << pageShift, Version: 9, Data: new(Page)}
	if err := c.engines[1].HandleMessage(bad, c.out); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a home pushed on a node that did not ask: %v, want ErrProtocol", err)
	}
}

// TestMovingHomeAllocs: a fault that takes a page's home, and the grant
// that hands it over, allocate nothing in steady state.
func TestMovingHomeAllocs(t *testing.T) {
	p := newPair(t, moving(false, 1, 4), pooled) // pages 0 and 2 homed on node 0
	for i := 0; i < 10; i++ {
		p.fault(t, 1, 0, true)
		p.fault(t, 0, 0, true)
	}
	before := p.e[1].Stats()
	allocs := testing.AllocsPerRun(1000, func() {
		p.fault(t, 1, 0, true) // the home moves to node 1
		p.fault(t, 0, 0, true) // and back
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per two moving faults, want 0", allocs)
	}
	if s := p.e[1].Stats(); s.HomesGained-before.HomesGained < 1000 {
		t.Fatalf("homes did not move: %+v", s)
	}
}

// countingFrames is a FrameSource that counts the frames it has out
// and reuses those it got back, as a node's frame pool does.
type countingFrames struct {
	held int
	free []*Page
}

func (f *countingFrames) AllocPage() (*Page, error) {
	f.held++
	if n := len(f.free); n > 0 {
		p := f.free[n-1]
		f.free = f.free[:n-1]
		*p = Page{}
		return p, nil
	}
	return new(Page), nil
}

func (f *countingFrames) FreePage(p *Page) { f.held--; f.free = append(f.free, p) }

// pooled gives every engine of a test cluster its own countingFrames.
func pooled(c *Config) { c.Frames = &countingFrames{} }

// TestHomeRoomCostsNothingUpFront: a node with room for many more homes
// does not size its directory for all of them at the start (on a 2 GiB
// node that room is some 400 k pages: about 19 MB of Go heap).
func TestHomeRoomCostsNothingUpFront(t *testing.T) {
	const pages = 64
	e, err := NewEngine(Config{Self: 0, Nodes: 2, Pages: pages, Perm: make(eptSlice, pages), MoveAfter: 1, HomeRoom: 400_000})
	must(t, err)
	if c := cap(e.dir); c > pages/2+1024 {
		t.Fatalf("directory sized for %d entries with %d pages homed", c, pages/2)
	}
}

// TestLeaveHandsHomesOn: homes stay put under writes until their node
// leaves; then every write request that offers to take a home takes it,
// a Modified copy is evicted first so that its write asks the home, and
// the node that left never takes a home back.
func TestLeaveHandsHomesOn(t *testing.T) {
	c := newCluster(t, 2, 6, 1, MutationNone, moving(false, 0, 4)) // node 1 homes 1, 3, 5
	must(t, c.access(0, 1, 0, true))
	c.drainAll(t)
	must(t, c.access(0, 1, 0, true))
	if c.homeOf(1) != 1 || c.engines[0].State(1<<pageShift) != Modified {
		t.Fatalf("before leaving: page 1 homed at %d, node 0 holds it %v", c.homeOf(1), c.engines[0].State(1<<pageShift))
	}
	c.engines[1].Leave()
	if ok, err := c.engines[0].Evict(1<<pageShift, c.out); !ok || err != nil {
		t.Fatalf("evicting node 0's Modified copy of page 1: %v, %v", ok, err)
	}
	c.drainAll(t)
	for _, p := range []int{1, 3, 5} {
		must(t, c.access(0, p, 0, true))
		c.drainAll(t)
		must(t, c.access(0, p, 0, true))
		if c.homeOf(p) != 0 {
			t.Fatalf("page %d homed at %d after node 0's write, node 1 leaving", p, c.homeOf(p))
		}
	}
	if c.engines[1].Homes() != 0 || c.engines[0].Homes() != 6 {
		t.Fatalf("node 1 homes %d pages, node 0 %d; want 0 and 6", c.engines[1].Homes(), c.engines[0].Homes())
	}
	must(t, c.access(1, 2, 0, true)) // offers nothing: it is leaving
	c.drainAll(t)
	must(t, c.access(1, 2, 0, true))
	if c.homeOf(2) != 0 {
		t.Fatalf("the node that left took page 2's home")
	}
	must(t, c.invariants())
}
