package node

import (
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// TestSilentNodeRejoinsAndTalks: a node that falls silent for longer
// than the failure timeout without restarting (a long pause: a Bochs
// node zeroing a gigabyte of frames) is removed by the others and joins
// again; afterwards messages on an application channel flow both ways
// between it and the others. (Before, the others started their channels
// with it from zero when they removed it while it went on where it was:
// every message it sent was out of their window, for ever.)
func TestSilentNodeRejoinsAndTalks(t *testing.T) {
	c := startCluster(t, 3)
	c.waitAgreement(t, 3)
	got := map[cluster.NodeID]chan byte{}
	for id, a := range c.agents {
		ch := make(chan byte, 64)
		got[id] = ch
		if err := a.Handle(2, func(from cluster.NodeID, msg []byte) { ch <- msg[0] }); err != nil {
			t.Fatal(err)
		}
	}
	// Traffic before the pause, so that the channels' sequence numbers
	// are past their start.
	for i := range 20 {
		if err := c.agents[1].Send(2, 2, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		<-got[2]
	}
	// Node 1 hears nothing either: it does not learn it was removed
	// (a node that does leaves until it restarts, by design).
	c.ports[1].up.Store(false)
	waitFor(t, 10*time.Second, "node 1 removed", func() bool {
		ev := c.agents[2].Events()
		return len(ev) > 0 && ev[len(ev)-1].Kind == membership.Failed && ev[len(ev)-1].ID == 1
	})
	c.ports[1].up.Store(true)
	waitFor(t, 20*time.Second, "node 1 back", func() bool {
		ev := c.agents[2].Events()
		return len(ev) > 0 && ev[len(ev)-1].Kind == membership.Joined && ev[len(ev)-1].ID == 1 && c.agents[1].Status().Quorum
	})
	for _, tc := range []struct{ from, to cluster.NodeID }{{1, 2}, {2, 1}, {1, 3}} {
		if err := c.agents[tc.from].Send(tc.to, 2, []byte{0xAB}); err != nil {
			t.Errorf("node %d to node %d: %v", tc.from, tc.to, err)
			continue
		}
		select {
		case b := <-got[tc.to]:
			if b != 0xAB {
				t.Errorf("node %d to node %d: got %#x", tc.from, tc.to, b)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("node %d to node %d: the message never arrived after the rejoin", tc.from, tc.to)
		}
	}
}
