package memory

import (
	"errors"
	"slices"
	"testing"
)

// budget gives every engine of a test cluster a bound on copy frames.
func budget(n int) func(*Config) { return func(c *Config) { c.CopyFrames = n } }

// drainAll delivers every message in flight, lowest pair first.
func (c *cluster) drainAll(t *testing.T) {
	t.Helper()
	for pairs := c.pendingPairs(); len(pairs) > 0; pairs = c.pendingPairs() {
		must(t, c.deliver(pairs[0][0], pairs[0][1]))
	}
}

// TestRandomInterleavingsWithBudget runs the random schedules of
// TestRandomInterleavings with at most one or two copy frames per node:
// nearly every fault on a page homed elsewhere evicts a copy first, and
// the harness checks single writer, the latest write read everywhere,
// and the bound after every step.
func TestRandomInterleavingsWithBudget(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	var total Stats
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		nodes := 2 + int(seed%3)
		c := newCluster(t, nodes, 6, seed, MutationNone, budget(1+int(seed/3)%2))
		if err := c.run(600); err != nil {
			t.Fatalf("seed %d nodes %d: %v", seed, nodes, err)
		}
		for _, e := range c.engines {
			s := e.Stats()
			total.Reclaims += s.Reclaims
			total.Writebacks += s.Writebacks
			total.NoRoom += s.NoRoom
			total.QueuedRequests += s.QueuedRequests
		}
	}
	if total.Reclaims == 0 || total.Writebacks == 0 || total.NoRoom == 0 {
		t.Fatalf("budget never bit: %+v", total)
	}
	t.Logf("reclaims %d, writebacks %d, faults without room %d, queued requests %d", total.Reclaims, total.Writebacks, total.NoRoom, total.QueuedRequests)
}

// TestReclaimOvertakesFetch: node 1 holds page 0 Modified and may hold
// one copy. Node 2's write makes the home send node 1 a FetchInv, but
// before it arrives node 1 faults on page 3 and evicts page 0 to make
// room: its writeback overtakes the fetch and the fetch finds nothing.
// Node 2 must get node 1's write, and node 1 page 3 in the frame the
// writeback released.
func TestReclaimOvertakesFetch(t *testing.T) {
	c := newCluster(t, 3, 4, 1, MutationNone, budget(1)) // pages 0 and 3 homed on node 0
	must(t, c.access(1, 0, 0, true))
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	must(t, c.access(1, 0, 0, true)) // the write to keep
	must(t, c.access(2, 0, 0, true)) // WriteReq 2->0
	must(t, c.deliver(2, 0))         // FetchInv 0->1 in flight
	must(t, c.access(1, 3, 0, false))
	e := c.engines[1]
	if s := e.Stats(); s.Reclaims != 1 || s.Writebacks != 1 || e.State(0) != Invalid {
		t.Fatalf("node 1 did not reclaim page 0: %+v, page 0 %v", s, e.State(0))
	}
	if c.queued(1, 0) != 2 {
		t.Fatalf("node 1 sent %d messages, want a writeback and a read request", c.queued(1, 0))
	}
	must(t, c.deliver(0, 1)) // FetchInv finds node 1 Invalid: reply without data
	must(t, c.deliver(1, 0)) // writeback: the home has the data
	must(t, c.deliver(1, 0)) // page 3's request: served at once
	must(t, c.deliver(1, 0)) // the empty fetch reply completes node 2's grant
	c.drainAll(t)
	must(t, c.access(2, 0, 0, false)) // node 1's write
	must(t, c.access(1, 3, 0, false))
	if e.State(3<<pageShift) != Shared || e.CopyFrames() != 1 {
		t.Fatalf("node 1: page 3 %v, %d copy frames", e.State(3<<pageShift), e.CopyFrames())
	}
	must(t, c.invariants())
	must(t, c.withinBudget())
}

// TestReclaimThenRefault: node 1 evicts its Modified copy of page 0 to
// fetch page 3, and faults on page 0 again before anything arrives. The
// only frame is promised to page 3's answer, and no copy is left to
// evict: the fault must wait (FaultNoRoom), not take the frame, not fail.
// Once page 3 is in, the fault evicts it, and page 0 comes back with
// node 1's own write (the writeback reached the home before the new
// request: FIFO per pair).
func TestReclaimThenRefault(t *testing.T) {
	c := newCluster(t, 2, 4, 1, MutationNone, budget(1)) // pages 0 and 2 homed on node 0
	must(t, c.access(1, 0, 0, true))
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	must(t, c.access(1, 0, 0, true))
	e := c.engines[1]
	if res, err := e.Fault(2<<pageShift, false, c.out); err != nil || res != FaultRemote {
		t.Fatalf("fault on page 2: %v %v", res, err)
	}
	must(t, c.flush())
	if res, err := e.Fault(0, true, c.out); err != nil || res != FaultNoRoom {
		t.Fatalf("fault on page 0 with its frame promised to page 2: %v %v, want FaultNoRoom", res, err)
	}
	c.drainAll(t)
	if e.State(2<<pageShift) != Shared {
		t.Fatalf("page 2 is %v on node 1", e.State(2<<pageShift))
	}
	must(t, c.access(1, 0, 0, false))
	c.drainAll(t)
	must(t, c.access(1, 0, 0, false)) // node 1's write, through the home
	if s := e.Stats(); s.Reclaims != 2 || s.NoRoom != 1 || s.Writebacks != 1 || s.SilentEvicts != 1 {
		t.Fatalf("stats %+v", s)
	}
	must(t, c.invariants())
	must(t, c.withinBudget())
}

// TestReclaimSkipsPending: a copy with a request outstanding (an
// upgrade) is never the victim. When it is the only copy, another fault
// waits; when the home invalidates it meanwhile, the grant brings the
// data into the frame the invalidation released.
func TestReclaimSkipsPending(t *testing.T) {
	c := newCluster(t, 3, 4, 1, MutationNone, budget(1))
	for _, n := range []int{1, 2} {
		must(t, c.access(n, 0, 0, false))
		must(t, c.deliver(n, 0))
		must(t, c.deliver(0, n))
	}
	must(t, c.access(2, 0, 0, true)) // node 2 upgrades first
	must(t, c.deliver(2, 0))         // Inv 0->1 in flight
	must(t, c.access(1, 0, 0, true)) // node 1's upgrade: pending, copy kept
	e := c.engines[1]
	if res, err := e.Fault(3<<pageShift, false, c.out); err != nil || res != FaultNoRoom {
		t.Fatalf("fault with the only copy pending: %v %v, want FaultNoRoom", res, err)
	}
	if e.State(0) != Shared {
		t.Fatalf("the pending copy was evicted: %v", e.State(0))
	}
	must(t, c.deliver(0, 1)) // Inv: node 1 loses its copy while its upgrade waits
	c.drainAll(t)
	if e.State(0) != Modified || e.CopyFrames() != 1 {
		t.Fatalf("node 1: page 0 %v with %d copy frames, want M with 1", e.State(0), e.CopyFrames())
	}
	must(t, c.access(1, 0, 0, true))
	must(t, c.access(1, 3, 0, false)) // now page 0 is the victim
	c.drainAll(t)
	must(t, c.access(0, 0, 0, false)) // the home reads node 1's write
	must(t, c.invariants())
	must(t, c.withinBudget())
}

// failingFrames hands out n frames, then fails.
type failingFrames struct{ n int }

func (f *failingFrames) AllocPage() (*Page, error) {
	if f.n == 0 {
		return nil, errors.New("pool empty")
	}
	f.n--
	return new(Page), nil
}

func (f *failingFrames) FreePage(*Page) { f.n++ }

// TestReclaimWhenFramesFail: without a bound, a FrameSource that runs
// dry makes the engine evict instead of failing the fault; with nothing
// to evict the fault fails with ErrNoFrames.
func TestReclaimWhenFramesFail(t *testing.T) {
	const pages = 8
	perm := make(eptSlice, pages)
	frames := &failingFrames{n: pages/2 + 2} // node 1 homes 4 pages: 2 frames left
	e, err := NewEngine(Config{Self: 1, Nodes: 2, Pages: pages, Perm: perm, Frames: frames})
	must(t, err)
	out := NewOutbox()
	for p := uint64(0); p < pages; p += 2 { // pages homed on node 0
		res, err := e.Fault(p<<pageShift, false, out)
		if err != nil || res != FaultRemote {
			t.Fatalf("page %d: %v %v", p, res, err)
		}
		out.Reset()
		m := Message{Kind: KindReadData, Flags: FlagHasData, Src: 0, Dst: 1, Requester: 1, GPA: p << pageShift, Data: new(Page)}
		must(t, e.HandleMessage(&m, out))
	}
	if e.CopyFrames() != 2 || e.Copies() != 2 || e.Stats().Reclaims != 2 {
		t.Fatalf("%d copy frames, %d copies, %+v", e.CopyFrames(), e.Copies(), e.Stats())
	}
	e.Close()
	if frames.n != pages/2+2 {
		t.Fatalf("%d frames back, want %d", frames.n, pages/2+2)
	}
	frames.n = pages / 2 // only the homed pages
	e, err = NewEngine(Config{Self: 1, Nodes: 2, Pages: pages, Perm: perm, Frames: frames})
	must(t, err)
	if _, err := e.Fault(0, false, out); !errors.Is(err, ErrNoFrames) {
		t.Fatalf("fault with no frame at all: %v, want ErrNoFrames", err)
	}
}

// TestReclaimFaultAllocs: the fault path allocates nothing when every
// fault evicts a copy (a write fault evicting a Modified copy sends its
// writeback with the request).
func TestReclaimFaultAllocs(t *testing.T) {
	p := newPair(t, budget(1)) // pages 0 and 2 homed on node 0
	for i := 0; i < 10; i++ {
		p.fault(t, 1, 0, true)
		p.fault(t, 1, 2<<pageShift, true)
	}
	before := p.e[1].Stats()
	allocs := testing.AllocsPerRun(1000, func() {
		p.fault(t, 1, 0, true)
		p.fault(t, 1, 2<<pageShift, false)
		p.fault(t, 1, 0, false)
		p.fault(t, 1, 2<<pageShift, true)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 4 reclaiming faults, want 0", allocs)
	}
	s := p.e[1].Stats()
	if s.Reclaims-before.Reclaims < 4000 || s.Writebacks == before.Writebacks || p.e[1].CopyFrames() != 1 {
		t.Fatalf("faults did not reclaim: %+v", s)
	}
}

// BenchmarkReclaimingFault measures a remote write fault that first
// writes back the node's only copy: the working set is twice the bound.
func BenchmarkReclaimingFault(b *testing.B) {
	p := newPair(b, budget(1))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.fault(b, 1, uint64(i%2)<<(pageShift+1), true)
	}
}

// homeFrames is a HomeFrameSource that records the pages it placed.
type homeFrames struct {
	countingFrames
	placed []uint64
}

func (f *homeFrames) AllocHomePage(p uint64) (*Page, error) {
	f.placed = append(f.placed, p)
	return f.AllocPage()
}

// TestHomeFramesArePlacedByPage: a HomeFrameSource is told which page
// each home frame is for, in page order (so that it can back a 2 MiB
// range with one run of frames), and copies still come from AllocPage.
func TestHomeFramesArePlacedByPage(t *testing.T) {
	const pages = 8
	frames := &homeFrames{}
	e, err := NewEngine(Config{Self: 1, Nodes: 2, Pages: pages, Perm: make(eptSlice, pages), Frames: frames})
	must(t, err)
	if want := []uint64{1, 3, 5, 7}; !slices.Equal(frames.placed, want) {
		t.Fatalf("home frames placed for pages %v, want %v", frames.placed, want)
	}
	out := NewOutbox()
	if res, err := e.Fault(0, false, out); err != nil || res != FaultRemote {
		t.Fatalf("fault on a page node 0 homes: %v %v", res, err)
	}
	if frames.held != pages/2+1 || len(frames.placed) != pages/2 {
		t.Fatalf("%d frames out, %d placed: a copy's frame should come from AllocPage", frames.held, len(frames.placed))
	}
	e.Close()
	if frames.held != 0 {
		t.Fatalf("%d frames still out after Close", frames.held)
	}
}
