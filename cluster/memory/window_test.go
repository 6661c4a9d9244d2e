package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// withWindows turns walk windows on.
func withWindows(cfg *Config) { cfg.Windows = true }

// word returns word w of node n's copy of page p (0 without a copy).
func (c *cluster) word(n, p, w int) uint64 {
	f := c.engines[n].Frame(uint64(p) << pageShift)
	if f == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(f[w*8:])
}

// store writes word w of node n's copy of page p as its vCPU would,
// through the mapping: it must allow writes.
func (c *cluster) store(t *testing.T, n, p, w int, v uint64) {
	t.Helper()
	if !c.perms[n][p].Allows(true) {
		t.Fatalf("node %d may not write page %d (%v)", n, p, c.perms[n][p])
	}
	binary.LittleEndian.PutUint64(c.engines[n].Frame(uint64(p) << pageShift)[w*8:], v)
}

// closeWindows ends node n's walk windows and queues the upgrades.
func (c *cluster) closeWindows(n int) (int, error) {
	k, err := c.engines[n].CloseWindows(c.out)
	if err != nil {
		return k, err
	}
	return k, c.flush()
}

// flushWindows ends node n's changed walk windows, as its runtime does
// before serving or sending a message, and queues the upgrades.
func (c *cluster) flushWindows(n int) (int, error) {
	k, err := c.engines[n].FlushWindows(c.out)
	if err != nil {
		return k, err
	}
	return k, c.flush()
}

// share gives each of nodes a Shared copy of page 0 (homed on node 0),
// delivering everything queued.
func (c *cluster) share(t *testing.T, nodes ...int) {
	t.Helper()
	for _, n := range nodes {
		must(t, c.access(n, 0, 0, false))
		c.drainAll(t)
	}
}

// A walk that changes nothing costs no message: the window closes
// silently and the copy stays Shared.
func TestWindowUnchangedClosesSilently(t *testing.T) {
	c := newCluster(t, 2, 1, 1, MutationNone, withWindows)
	c.share(t, 1)
	if !c.engines[1].OpenWindow(0) {
		t.Fatal("no window on a Shared copy")
	}
	if c.perms[1][0] != AccessReadWrite || c.engines[1].WindowsOpen() != 1 {
		t.Fatalf("window open: EPT %v, %d open", c.perms[1][0], c.engines[1].WindowsOpen())
	}
	must(t, c.invariants())
	k, err := c.closeWindows(1)
	must(t, err)
	if k != 0 || len(c.pendingPairs()) != 0 || c.perms[1][0] != AccessRead || c.engines[1].State(0) != Shared {
		t.Fatalf("unchanged window: %d upgrades, %v queued, EPT %v, %v", k, c.pendingPairs(), c.perms[1][0], c.engines[1].State(0))
	}
	if s := c.engines[1].Stats(); s.WindowsOpened != 1 || s.WindowsClean != 1 || s.WindowsChanged != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A window that set an accessed bit asks for ownership; with nobody
// else writing, the grant comes without data and the copy keeps the bit.
func TestWindowChangeUpgrades(t *testing.T) {
	c := newCluster(t, 2, 1, 1, MutationNone, withWindows)
	c.share(t, 1)
	c.engines[1].OpenWindow(0)
	c.store(t, 1, 0, 3, 1<<5)
	k, err := c.closeWindows(1)
	must(t, err)
	if k != 1 || c.perms[1][0] != AccessNone || !c.engines[1].Draining() {
		t.Fatalf("changed window: %d upgrades, EPT %v, draining %v", k, c.perms[1][0], c.engines[1].Draining())
	}
	must(t, c.invariants())
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	if c.engines[1].State(0) != Modified || c.engines[1].Draining() || c.word(1, 0, 3) != 1<<5 {
		t.Fatalf("after the grant: %v, draining %v, word %#x", c.engines[1].State(0), c.engines[1].Draining(), c.word(1, 0, 3))
	}
	must(t, c.invariants())
}

// Another node writes the page while this node's changed window drains:
// this node's copy is invalidated but kept, and the grant's page, with
// the other node's store, gets this node's accessed bit merged in.
func TestWindowMergesAnotherNodesWrite(t *testing.T) {
	c := newCluster(t, 3, 1, 1, MutationNone, withWindows)
	must(t, c.access(2, 0, 0, true)) // node 2 writes entry 3 = 0x1000
	must(t, c.deliver(2, 0))
	must(t, c.deliver(0, 2))
	c.store(t, 2, 0, 3, 0x1000)
	c.share(t, 1) // fetches from node 2: node 1 and the home share it
	if c.word(1, 0, 3) != 0x1000 {
		t.Fatalf("node 1 reads %#x", c.word(1, 0, 3))
	}
	c.engines[1].OpenWindow(0)
	c.store(t, 1, 0, 3, 0x1000|1<<5) // node 1's walk sets entry 3's accessed bit
	must(t, c.access(2, 0, 5, true)) // node 2 upgrades first: WriteReq 2->0
	must(t, c.deliver(2, 0))         // Inv 0->1 queued
	k, err := c.closeWindows(1)      // node 1 closes before serving the Inv
	must(t, err)
	if k != 1 {
		t.Fatalf("%d upgrades", k)
	}
	must(t, c.deliver(1, 0)) // node 1's upgrade queues behind node 2's
	must(t, c.deliver(0, 1)) // Inv: node 1 keeps its copy for the merge
	if c.engines[1].pages[0].frame == nil || c.engines[1].State(0) != Invalid || c.perms[1][0] != AccessNone {
		t.Fatalf("node 1 after the Inv: %v, frame %v, EPT %v", c.engines[1].State(0), c.engines[1].pages[0].frame != nil, c.perms[1][0])
	}
	must(t, c.deliver(1, 0)) // InvAck: node 2 is granted
	must(t, c.deliver(0, 2))
	c.store(t, 2, 0, 5, 0x77) // node 2's store to entry 5
	must(t, c.deliver(0, 2))  // FetchInv for node 1's upgrade
	must(t, c.deliver(2, 0))  // data: grant to node 1 with the page
	must(t, c.deliver(0, 1))
	if got := [2]uint64{c.word(1, 0, 3), c.word(1, 0, 5)}; got != [2]uint64{0x1000 | 1<<5, 0x77} {
		t.Fatalf("node 1 holds entry 3 %#x, entry 5 %#x; want 0x1020 and 0x77", got[0], got[1])
	}
	if c.engines[1].State(0) != Modified || c.engines[1].Draining() {
		t.Fatalf("node 1 %v, draining %v", c.engines[1].State(0), c.engines[1].Draining())
	}
	must(t, c.invariants())
}

// mergeCase runs two nodes' changes to one entry (was 0x1000): node 2
// stores theirs as owner first, node 1's window made it ours; it returns
// node 1's entry after the merge, or the error.
func mergeCase(t *testing.T, ours, theirs uint64) (uint64, error) {
	t.Helper()
	c := newCluster(t, 3, 1, 1, MutationNone, withWindows)
	must(t, c.access(2, 0, 0, true))
	must(t, c.deliver(2, 0))
	must(t, c.deliver(0, 2))
	c.store(t, 2, 0, 3, 0x1000)
	c.share(t, 1)
	c.engines[1].OpenWindow(0)
	c.store(t, 1, 0, 3, ours)
	must(t, c.access(2, 0, 0, true))
	must(t, c.deliver(2, 0))
	if _, err := c.closeWindows(1); err != nil {
		return 0, err
	}
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 2))
	c.store(t, 2, 0, 3, theirs)
	must(t, c.deliver(0, 2))
	must(t, c.deliver(2, 0))
	if err := c.deliver(0, 1); err != nil {
		return 0, err
	}
	return c.word(1, 0, 3), nil
}

func TestWindowMergeRules(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ours, theirs uint64
		want         uint64
		conflict     bool
	}{
		{"accessed here, dirty there", 0x1000 | 1<<5, 0x1000 | 1<<6, 0x1000 | 1<<5 | 1<<6, false},
		{"accessed on both", 0x1000 | 1<<5, 0x1000 | 1<<5, 0x1000 | 1<<5, false},
		{"software here, nothing there", 0x2000, 0x1000, 0x2000, false},
		{"accessed here, rewritten there", 0x1000 | 1<<5, 0x3000, 0, true},
		{"software on both", 0x2000, 0x3000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeCase(t, tc.ours, tc.theirs)
			if tc.conflict {
				if !errors.Is(err, ErrWindowConflict) {
					t.Fatalf("merge: %#x, %v; want ErrWindowConflict", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("merge: %#x, %v; want %#x", got, err, tc.want)
			}
		})
	}
}

// At its home a page shared with other nodes gets a window too; a change
// invalidates the other copies before the home writes on.
func TestWindowAtHome(t *testing.T) {
	c := newCluster(t, 2, 1, 1, MutationNone, withWindows)
	if c.engines[0].OpenWindow(0) {
		t.Fatal("a window at the home of a page nobody else holds: a local fault is cheaper")
	}
	c.share(t, 1)
	if !c.engines[0].OpenWindow(0) {
		t.Fatal("no window at the home of a shared page")
	}
	c.store(t, 0, 0, 1, 1<<5)
	k, err := c.closeWindows(0)
	must(t, err)
	if k != 1 || c.queued(0, 1) != 1 {
		t.Fatalf("%d upgrades, %d messages to node 1", k, c.queued(0, 1))
	}
	must(t, c.deliver(0, 1)) // Inv
	must(t, c.deliver(1, 0)) // InvAck: the home's own grant
	if c.engines[0].State(0) != Modified || c.engines[1].State(0) != Invalid || c.word(0, 0, 1) != 1<<5 || c.engines[0].Draining() {
		t.Fatalf("home %v, node 1 %v, word %#x", c.engines[0].State(0), c.engines[1].State(0), c.word(0, 0, 1))
	}
	must(t, c.invariants())
}

// The caller's rule, checked by the engine: no message is served, and no
// fault sends one, while a window is open; windows are not evicted and
// open only where they may.
func TestWindowRules(t *testing.T) {
	c := newCluster(t, 2, 3, 1, MutationNone, withWindows)
	c.share(t, 1)
	must(t, c.access(1, 2, 0, false)) // a copy of page 2 too
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	if c.engines[1].OpenWindow(1 << pageShift) {
		t.Fatal("a window on a page node 1 does not hold")
	}
	c.engines[1].OpenWindow(0)
	if c.engines[1].OpenWindow(0) {
		t.Fatal("a second window on one page")
	}
	if ok, err := c.engines[1].Evict(0, c.out); ok || err != nil {
		t.Fatalf("evicted a window: %v %v", ok, err)
	}
	for range 3 {
		if v, ok := c.engines[1].victim(); ok && v == 0 {
			t.Fatal("the clock chose a window")
		}
	}
	c.store(t, 1, 0, 2, 1<<5)
	if _, err := c.engines[1].Evict(2<<pageShift, c.out); !errors.Is(err, ErrProtocol) {
		t.Fatalf("an eviction (a writeback) with a changed window not flushed: %v", err)
	}
	m := &Message{Kind: KindInv, Src: 0, Dst: 1, Requester: 0, GPA: 0}
	if err := c.engines[1].HandleMessage(m, c.out); !errors.Is(err, ErrProtocol) {
		t.Fatalf("an invalidation of a changed window not flushed: %v", err)
	}
	// An unchanged window stays open across flushes, until an
	// invalidation ends it.
	u := newCluster(t, 3, 1, 1, MutationNone, withWindows)
	u.share(t, 1)
	u.engines[1].OpenWindow(0)
	if k, err := u.flushWindows(1); k != 0 || err != nil || u.perms[1][0] != AccessReadWrite {
		t.Fatalf("flushing an unchanged window: %d upgrades, %v, EPT %v", k, err, u.perms[1][0])
	}
	must(t, u.access(2, 0, 0, true)) // node 2 writes: the home invalidates node 1
	u.drainAll(t)
	if u.perms[1][0] != AccessNone || u.engines[1].WindowsOpen() != 0 || u.engines[2].State(0) != Modified {
		t.Fatalf("after node 2's write: node 1 EPT %v, %d windows, node 2 %v", u.perms[1][0], u.engines[1].WindowsOpen(), u.engines[2].State(0))
	}
	must(t, u.invariants())
	off := newCluster(t, 2, 1, 1, MutationNone)
	off.share(t, 1)
	if off.engines[1].OpenWindow(0) {
		t.Fatal("a window with windows off")
	}
}

// fullWindows is two nodes with 2*MaxWindows+2 pages, node 0 sharing
// the odd ones (homed on node 1) and holding a walk window open on each
// of the first MaxWindows of them (pages 1, 3, ...).
func fullWindows(tb testing.TB) *cluster {
	tb.Helper()
	c := newCluster(tb, 2, 2*MaxWindows+2, 1, MutationNone, withWindows)
	for p := 1; p < c.pages; p += 2 {
		must(tb, c.access(0, p, 0, false))
		must(tb, c.deliver(0, 1))
		must(tb, c.deliver(1, 0))
	}
	for i, p := 0, 1; i < MaxWindows; i, p = i+1, p+2 {
		if !c.engines[0].OpenWindow(uint64(p) << pageShift) {
			tb.Fatalf("window %d refused", i)
		}
	}
	return c
}

// MaxWindows bound the windows open at once: a new window takes the slot
// of an unchanged one (its copy read-only again), never of a changed one.
func TestWindowSlots(t *testing.T) {
	c := fullWindows(t)
	last := 2*MaxWindows + 1
	if !c.engines[0].OpenWindow(uint64(last)<<pageShift) || c.perms[0][1] != AccessRead {
		t.Fatalf("the next window did not take the first unchanged one's slot (page 1 %v)", c.perms[0][1])
	}
	for p := 3; p <= last; p += 2 {
		c.store(t, 0, p, 0, 1<<5)
	}
	if c.engines[0].OpenWindow(1<<pageShift) || c.engines[0].Stats().WindowsFull != 1 {
		t.Fatalf("a window opened with every slot's window changed (%d refused)", c.engines[0].Stats().WindowsFull)
	}
	must(t, c.invariants())
}

// walk is a guest page walk on node n that sets bit (accessed or dirty)
// in word w (4..7, words only walks write) of page p: through a window
// if it can open one, else by the ordinary write fault after closing
// the node's windows. It returns without the store while an answer is
// awaited.
func (c *cluster) walk(n, p, w int, bit uint64) error {
	gpa := uint64(p) << pageShift
	e := c.engines[n]
	if !c.perms[n][p].Allows(true) && !e.OpenWindow(gpa) {
		if _, err := c.flushWindows(n); err != nil {
			return err
		}
		if _, err := e.Fault(gpa, true, c.out); err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		if !c.perms[n][p].Allows(true) {
			return nil
		}
	}
	f := e.Frame(gpa)
	v := binary.LittleEndian.Uint64(f[w*8:])
	binary.LittleEndian.PutUint64(f[w*8:], v|bit)
	c.bits[uint64(p)<<pageShift|uint64(w*8)] |= bit
	return nil
}

// runWindows drives random accesses, walks, evictions and deliveries, a
// node closing its windows before it serves, sends or evicts, then
// drains and checks every word: the software ones hold the latest store
// (as in run), the walked ones every bit any walk set.
func (c *cluster) runWindows(steps int) error {
	nodes := len(c.engines)
	c.bits = map[uint64]uint64{}
	for i := 0; i < steps; i++ {
		pairs := c.pendingPairs()
		r := c.rng.IntN(12)
		n := c.rng.IntN(nodes)
		var err error
		switch {
		case r < 5 && len(pairs) > 0:
			pr := pairs[c.rng.IntN(len(pairs))]
			if _, err = c.flushWindows(pr[1]); err == nil {
				err = c.deliver(pr[0], pr[1])
			}
		case r == 5:
			if _, err = c.flushWindows(n); err == nil {
				_, err = c.engines[n].Evict(uint64(c.rng.IntN(c.pages))<<pageShift, c.out)
			}
			if err == nil {
				err = c.flush()
			}
		case r < 9:
			err = c.walk(n, c.rng.IntN(c.pages), 4+c.rng.IntN(4), 1<<(5+c.rng.IntN(2)))
		default:
			// Software stores and loads outside windows (stores to page
			// tables under the guest's lock: never in another's window).
			if _, err = c.closeWindows(n); err == nil {
				err = c.access(n, c.rng.IntN(c.pages), c.rng.IntN(4), c.rng.IntN(2) == 0)
			}
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
	for n := range c.engines {
		if _, err := c.closeWindows(n); err != nil {
			return err
		}
	}
	for pairs := c.pendingPairs(); len(pairs) > 0; pairs = c.pendingPairs() {
		if err := c.deliver(pairs[0][0], pairs[0][1]); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	for n, e := range c.engines {
		if e.Draining() || e.WindowsOpen() != 0 {
			return fmt.Errorf("node %d: windows left after the drain", n)
		}
	}
	// The walked words, read on node 0 once all is served.
	for p := 0; p < c.pages; p++ {
		for tries := 0; !c.perms[0][p].Allows(false); tries++ {
			if tries == 100 {
				return fmt.Errorf("page %d never became readable on node 0", p)
			}
			if err := c.access(0, p, 0, false); err != nil {
				return err
			}
			for pairs := c.pendingPairs(); len(pairs) > 0; pairs = c.pendingPairs() {
				if err := c.deliver(pairs[0][0], pairs[0][1]); err != nil {
					return fmt.Errorf("final drain: %w", err)
				}
			}
		}
		for w := 4; w < 8; w++ {
			gpa := uint64(p)<<pageShift | uint64(w*8)
			if got, want := c.word(0, p, w), c.bits[gpa]; got != want {
				return fmt.Errorf("page %d word %d reads %#x on node 0, walks set %#x", p, w, got, want)
			}
		}
	}
	return nil
}

// TestWindowRandomInterleavings: walks through windows beside ordinary
// accesses, evictions and deliveries in random orders keep the single
// writer, every store and every accessed and dirty bit; dropping a
// window's changes at the merge is caught.
func TestWindowRandomInterleavings(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	var total Stats
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		nodes := 2 + int(seed%3)
		c := newCluster(t, nodes, 3, seed, MutationNone, withWindows, func(cfg *Config) {
			if seed%4 == 0 {
				cfg.CopyFrames = 1
			}
		})
		if err := c.runWindows(800); err != nil {
			t.Fatalf("seed %d nodes %d: %v", seed, nodes, err)
		}
		for _, e := range c.engines {
			s := e.Stats()
			total.WindowsOpened += s.WindowsOpened
			total.WindowsClean += s.WindowsClean
			total.WindowsChanged += s.WindowsChanged
			total.Invalidations += s.Invalidations
		}
	}
	if total.WindowsClean == 0 || total.WindowsChanged == 0 {
		t.Fatalf("schedule too tame: %+v", total)
	}
	t.Logf("windows opened %d, closed clean %d, changed %d", total.WindowsOpened, total.WindowsClean, total.WindowsChanged)
	caught := false
	for seed := uint64(1); seed <= 100 && !caught; seed++ {
		c := newCluster(t, 3, 2, seed, MutationWindowNoMerge, withWindows)
		caught = c.runWindows(600) != nil
	}
	if !caught {
		t.Error("a merge that drops the window's changes went unnoticed in 100 seeds")
	}
}

// BenchmarkFlushUnchangedWindows measures what a node pays before each
// message with every walk window open and none changed: a compare of
// each window's page with its twin.
func BenchmarkFlushUnchangedWindows(b *testing.B) {
	c := fullWindows(b)
	out := NewOutbox()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n, err := c.engines[0].FlushWindows(out); n != 0 || err != nil {
			b.Fatalf("flush: %d upgrades, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/MaxWindows, "ns/window")
}
