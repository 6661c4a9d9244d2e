package memory

import (
	"errors"
	"testing"
)

// step helpers for hand-scheduled races; the home of page 0 is node 0.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) queued(s, d int) int { return len(c.queues[s][d]) }

// TestOwnerEvictsDuringFetch: node 1 owns the page Modified and writes it;
// node 2's write makes the home send FetchInv to node 1, but node 1 evicts
// first. Its writeback overtakes the FetchInv; the FetchReply carries no
// data, and node 2 must still get node 1's write.
func TestOwnerEvictsDuringFetch(t *testing.T) {
	c := newCluster(t, 3, 1, 1, MutationNone)
	must(t, c.access(1, 0, 0, true)) // WriteReq 1->0
	must(t, c.deliver(1, 0))         // home invalidates itself locally, grants
	must(t, c.deliver(0, 1))
	must(t, c.access(1, 0, 0, true)) // the write
	must(t, c.access(2, 0, 0, true)) // WriteReq 2->0
	must(t, c.deliver(2, 0))         // FetchInv 0->1 queued
	if c.queued(0, 1) != 1 {
		t.Fatalf("home sent %d messages to the owner, want a FetchInv", c.queued(0, 1))
	}
	ok, err := c.engines[1].Evict(0, c.out)
	must(t, err)
	must(t, c.flush())
	if !ok {
		t.Fatal("owner did not evict")
	}
	must(t, c.deliver(0, 1)) // FetchInv finds node 1 Invalid: reply without data
	must(t, c.deliver(1, 0)) // writeback
	must(t, c.deliver(1, 0)) // empty fetch reply completes the grant
	must(t, c.deliver(0, 2))
	if got := c.engines[2].State(0); got != Modified {
		t.Fatalf("node 2 is %v, want M", got)
	}
	must(t, c.access(2, 0, 0, false)) // checks the latest token
	must(t, c.invariants())
}

// TestConcurrentUpgrades: nodes 1 and 2 share the page and both upgrade.
// The home serialises: node 1 wins, node 2 is invalidated while its own
// upgrade waits in the queue, and then gets the page with node 1's data,
// not a grant without data for a copy it no longer has.
func TestConcurrentUpgrades(t *testing.T) {
	c := newCluster(t, 3, 1, 2, MutationNone)
	for _, n := range []int{1, 2} {
		must(t, c.access(n, 0, 0, false))
		must(t, c.deliver(n, 0))
		must(t, c.deliver(0, n))
	}
	must(t, c.access(1, 0, 0, true)) // WriteReq(have copy) 1->0
	must(t, c.access(2, 0, 0, true)) // WriteReq(have copy) 2->0
	must(t, c.deliver(1, 0))         // Inv 0->2 (home invalidated locally)
	must(t, c.deliver(2, 0))         // node 2's upgrade queues: entry busy
	must(t, c.deliver(0, 2))         // node 2 drops its copy, acks
	must(t, c.deliver(2, 0))         // grant to 1 (no data), FetchInv to 1
	must(t, c.deliver(0, 1))         // grant
	if c.engines[1].State(0) != Modified || c.engines[2].State(0) != Invalid {
		t.Fatalf("after grant: node 1 %v, node 2 %v", c.engines[1].State(0), c.engines[2].State(0))
	}
	must(t, c.access(1, 0, 0, true)) // node 1 writes before losing the page
	must(t, c.deliver(0, 1))         // FetchInv
	must(t, c.deliver(1, 0))         // data to home, grant with data to 2
	must(t, c.deliver(0, 2))
	must(t, c.access(2, 0, 0, false))
	must(t, c.invariants())
	if c.engines[2].State(0) != Modified {
		t.Fatalf("node 2 is %v, want M", c.engines[2].State(0))
	}
}

// TestQueuedRequestsServedInOrder: requests that find the home busy wait
// in the page's FIFO and are served in arrival order; a second request
// from a node whose first still waits breaks the protocol (a node has one
// request per page outstanding) and is refused instead of queued, which
// bounds the queue of a page by the number of nodes.
func TestQueuedRequestsServedInOrder(t *testing.T) {
	c := newCluster(t, 4, 1, 1, MutationNone)
	must(t, c.access(1, 0, 0, true)) // node 1 takes the page Modified
	must(t, c.deliver(1, 0))
	must(t, c.deliver(0, 1))
	must(t, c.access(1, 0, 0, true))
	must(t, c.access(2, 0, 0, true))  // WriteReq 2->0: the home fetches from node 1
	must(t, c.access(3, 0, 0, false)) // ReadReq 3->0
	must(t, c.deliver(2, 0))
	must(t, c.deliver(3, 0)) // queued behind node 2's
	if c.engines[0].Stats().QueuedRequests != 1 {
		t.Fatalf("%d requests queued, want node 3's", c.engines[0].Stats().QueuedRequests)
	}
	dup := &Message{Kind: KindReadReq, Src: 3, Dst: 0, Requester: 3, GPA: 0}
	if err := c.engines[0].HandleMessage(dup, c.out); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a second request from node 3 while its first waits: %v, want ErrProtocol", err)
	}
	must(t, c.flush())
	must(t, c.deliver(0, 1)) // FetchInv: node 1 gives the page up
	must(t, c.deliver(1, 0)) // data to the home: grant to node 2, then node 3's read
	must(t, c.deliver(0, 2)) // node 2 gets it Modified
	if got := c.engines[2].State(0); got != Modified {
		t.Fatalf("node 2 is %v, want M (first in the queue)", got)
	}
	for c.queued(0, 2) > 0 || c.queued(2, 0) > 0 || c.queued(0, 3) > 0 {
		for _, p := range [][2]int{{0, 2}, {2, 0}, {0, 3}} {
			if c.queued(p[0], p[1]) > 0 {
				must(t, c.deliver(p[0], p[1]))
			}
		}
	}
	if got := c.engines[3].State(0); got != Shared {
		t.Fatalf("node 3 is %v, want S (served after node 2)", got)
	}
	must(t, c.invariants())
}
