package membership

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/big-iron/big-iron/netstack/cluster"
)

// TestRestartedMemberCannotUndoCommit: Raft's state lives in memory, so a
// member that reboots forgets what it acknowledged. A change committed by
// a leader and that member (the removal of a third, cut-off node) must
// not be undone when the leader dies and the rebooted member meets the
// removed node: on the old code the rebooted member, back with an empty
// log under its old id, voted the removed node leader of the old member
// list (issue 16, finding 10: Raft state is memory-only).
func TestRestartedMemberCannotUndoCommit(t *testing.T) { forSeeds(t, restartedMemberCannotUndoCommit) }

func restartedMemberCannotUndoCommit(t *testing.T, seed uint64) {
	s, all := agreedCluster(t, seed, 3)
	a := s.nodes[1].Status().Leader
	var b, c cluster.NodeID
	for _, id := range all {
		switch {
		case id == a:
		case b == 0:
			b = id
		default:
			c = id
		}
	}
	// c is cut off until a and b remove it.
	s.partition([]cluster.NodeID{c})
	s.runUntil(3*time.Second, "c removed", func() bool {
		return !slices.Contains(s.nodes[a].Status().Members, c) && !slices.Contains(s.nodes[b].Status().Members, c)
	})
	committed := s.nodes[a].Events()
	// a dies, b reboots, c's link comes back.
	s.kill(a)
	s.restart(b, bootstrapList(3))
	s.sw.Heal()
	undone := func(id cluster.NodeID) bool {
		st := s.nodes[id].Status()
		ev := s.nodes[id].Events()
		return st.Leader == id && st.State == StateMember && (len(ev) < len(committed) || !slices.Equal(ev[:len(committed)], committed))
	}
	for end := s.now + 3*time.Second; s.now < end; {
		s.step()
		for _, id := range []cluster.NodeID{b, c} {
			if undone(id) {
				t.Fatalf("node %d leads without the committed removal of node %d (events %v, committed %v):\n%s",
					id, c, s.nodes[id].Events(), committed, s.dump())
			}
		}
	}
	// a comes back: with b (rebooted) it has a quorum again. c, removed
	// while it was alive, learns so and stays out until it reboots; then
	// it is admitted as a new member, and everyone's history starts with
	// what was committed.
	s.dead[a] = false
	s.ports[a].SetUp(true)
	ab := []cluster.NodeID{min(a, b), max(a, b)}
	s.runUntil(5*time.Second, "a and b agree", func() bool {
		return s.agree(ab, ab) && s.nodes[c].Status().State == StateLeft
	})
	s.restart(c, bootstrapList(3))
	s.runUntil(5*time.Second, "all three members again", func() bool { return s.agree(all, all) })
	for _, id := range all {
		if ev := s.nodes[id].Events(); !slices.Equal(ev[:len(committed)], committed) {
			t.Errorf("node %d's history %v does not start with the committed %v", id, ev, committed)
		}
	}
}

// TestRestartedMemberReadmitted: in a cluster of three, a member that
// reboots within the failure timeout is removed as restarted and admitted
// again as a new member; every node records the same history.
func TestRestartedMemberReadmitted(t *testing.T) { forSeeds(t, restartedMemberReadmitted) }

func restartedMemberReadmitted(t *testing.T, seed uint64) {
	s, all := agreedCluster(t, seed, 3)
	victim := cluster.NodeID(1)
	if s.nodes[1].Status().Leader == 1 {
		victim = 2
	}
	s.restart(victim, bootstrapList(3))
	s.runUntil(5*time.Second, "readmitted", func() bool {
		ev := s.nodes[victim].Events()
		return s.agree(all, all) && len(ev) >= 5 && ev[len(ev)-2].Kind == Restarted && ev[len(ev)-1].Kind == Joined
	})
	ev := s.nodes[victim].Events()
	if ev[len(ev)-2].ID != victim || ev[len(ev)-1].ID != victim {
		t.Errorf("history %v", ev)
	}
	if ev[len(ev)-1].Incarnation <= ev[len(ev)-2].Incarnation {
		t.Errorf("readmitted as incarnation %#x, removed as %#x", ev[len(ev)-1].Incarnation, ev[len(ev)-2].Incarnation)
	}
}

// TestRestartInPair: in a cluster of two, a rebooted member takes its old
// place (no quorum could remove it), and the pair agrees again.
func TestRestartInPair(t *testing.T) { forSeeds(t, restartInPair) }

func restartInPair(t *testing.T, seed uint64) {
	s, all := agreedCluster(t, seed, 2)
	before := s.nodes[1].Events()
	s.restart(2, bootstrapList(2))
	s.runUntil(5*time.Second, "agreement after the reboot", func() bool {
		return s.agree(all, all) && slices.Equal(s.nodes[2].Events(), before)
	})
}

// TestRebootAfterRemovalRejoins: a member down for longer than the failure
// timeout is removed; when it boots again and reads that removal in the
// log, it is about its earlier life: it joins as a new member instead of
// leaving. (The old code passed this too, by luck: the removal and the
// new admission reached the node in one batch, and the second undid the
// first.)
func TestRebootAfterRemovalRejoins(t *testing.T) { forSeeds(t, rebootAfterRemovalRejoins) }

func rebootAfterRemovalRejoins(t *testing.T, seed uint64) {
	s, all := agreedCluster(t, seed, 3)
	s.kill(3)
	s.runUntil(3*time.Second, "node 3 removed", func() bool { return s.agree(ids(1, 2), ids(1, 2)) })
	s.restart(3, bootstrapList(3))
	s.runUntil(5*time.Second, "node 3 back", func() bool { return s.agree(all, all) })
}

// agreedCluster bootstraps nodes 1..n and runs until they agree.
func agreedCluster(t *testing.T, seed uint64, n int) (*sim, []cluster.NodeID) {
	t.Helper()
	s := newSim(t, seed)
	for i := 1; i <= n; i++ {
		s.add(cluster.NodeID(i), bootstrapList(n))
	}
	all := rangeIDs(1, n)
	s.runUntil(2*time.Second, "agreement", func() bool { return s.agree(all, all) })
	return s, all
}

// forSeeds runs a scenario under several seeds of the switch's jitter
// (BIGIRON_SEEDS sets how many; 8 by default).
func forSeeds(t *testing.T, scenario func(*testing.T, uint64)) {
	n := 8
	if v, err := strconv.Atoi(os.Getenv("BIGIRON_SEEDS")); err == nil {
		n = v
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { scenario(t, seed) })
	}
}
