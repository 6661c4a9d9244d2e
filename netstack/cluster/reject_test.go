package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

// captureLink records transmitted frames instead of sending them.
type captureLink struct {
	mac    link.MAC
	frames [][]byte
	recv   link.Receiver
}

func (l *captureLink) Transmit(f []byte) error {
	l.frames = append(l.frames, bytes.Clone(f))
	return nil
}
func (l *captureLink) SetReceiver(r link.Receiver) { l.recv = r }
func (l *captureLink) MAC() link.MAC               { return l.mac }
func (l *captureLink) MTU() int                    { return link.DefaultMTU }
func (l *captureLink) Up() bool                    { return true }

// last returns a copy of the last captured frame.
func (l *captureLink) last(t *testing.T) []byte {
	t.Helper()
	if len(l.frames) == 0 {
		t.Fatal("nothing transmitted")
	}
	return bytes.Clone(l.frames[len(l.frames)-1])
}

type testNode struct {
	ep    *Endpoint
	link  *captureLink
	msgs  []string
	hello []NodeID
}

func newTestNode(t *testing.T, id NodeID, key []byte) *testNode {
	n := &testNode{link: &captureLink{mac: nodeMAC(int(id))}}
	ep, err := NewEndpoint(Config{
		ID: id, Key: key, Link: n.link, CounterBase: 100,
		Clock:     func() time.Duration { return 0 },
		OnMessage: func(_ NodeID, _ uint8, m []byte) { n.msgs = append(n.msgs, string(m)) },
		OnHello:   func(from NodeID, _ link.MAC, _ []byte) { n.hello = append(n.hello, from) },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.ep = ep
	return n
}

// peers returns nodes 1 and 2, each the other's peer.
func peers(t *testing.T) (a, b *testNode) {
	a, b = newTestNode(t, 1, testKey()), newTestNode(t, 2, testKey())
	a.ep.AddPeer(2, b.link.mac)
	b.ep.AddPeer(1, a.link.mac)
	return a, b
}

func TestRejections(t *testing.T) {
	a := newTestNode(t, 1, testKey())
	b := newTestNode(t, 2, testKey())
	c := newTestNode(t, 3, testKey()) // holds the key, not a peer of b
	a.ep.AddPeer(2, b.link.mac)
	b.ep.AddPeer(1, a.link.mac)
	c.ep.AddPeer(2, b.link.mac)

	if err := a.ep.Send(2, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	f1 := a.link.last(t)
	b.link.recv(bytes.Clone(f1))
	if len(b.msgs) != 1 || b.msgs[0] != "one" {
		t.Fatalf("genuine frame: got %q", b.msgs)
	}

	// A replayed frame is dropped and counted, not delivered twice.
	b.link.recv(bytes.Clone(f1))
	if st := b.ep.Stats(); st.Replay != 1 || len(b.msgs) != 1 {
		t.Fatalf("replay: stats %+v, msgs %q", st.Drops, b.msgs)
	}

	// Every flipped bit of the cluster part fails (tag or header check).
	a.ep.Send(2, 0, []byte("two"))
	f2 := a.link.last(t)
	before := b.ep.Stats()
	for i := link.HeaderLen * 8; i < len(f2)*8; i++ {
		g := bytes.Clone(f2)
		g[i/8] ^= 1 << (i % 8)
		b.link.recv(g)
	}
	after := b.ep.Stats()
	if len(b.msgs) != 1 {
		t.Fatalf("corrupted frames delivered: %q", b.msgs)
	}
	if after.BadTag <= before.BadTag {
		t.Fatalf("flipped bits not counted as bad tags: %+v", after.Drops)
	}
	// The genuine frame still gets through afterwards.
	b.link.recv(bytes.Clone(f2))
	if len(b.msgs) != 2 || b.msgs[1] != "two" {
		t.Fatalf("genuine frame after forgeries: %q", b.msgs)
	}

	// A frame from a node that holds the key but is not a peer.
	c.ep.Send(2, 0, []byte("intruder"))
	b.link.recv(c.link.last(t))
	if st := b.ep.Stats(); st.UnknownPeer != after.UnknownPeer+1 || len(b.msgs) != 2 {
		t.Fatalf("non-member: stats %+v msgs %q", st.Drops, b.msgs)
	}
	// ...whose hello is passed up, so membership can admit it.
	c.ep.SendHello([]byte("let me in"))
	b.link.recv(c.link.last(t))
	if len(b.hello) != 1 || b.hello[0] != 3 {
		t.Fatalf("hello from non-member: %v", b.hello)
	}

	// A frame from a peer addressed to another node.
	a.ep.AddPeer(3, c.link.mac)
	a.ep.Send(3, 0, []byte("for c"))
	b.link.recv(a.link.last(t))
	if st := b.ep.Stats(); st.NotForUs != after.NotForUs+1 {
		t.Fatalf("misaddressed: %+v", st.Drops)
	}

	// A frame sealed under another key.
	k2 := testKey()
	k2[5] ^= 0x40
	d := newTestNode(t, 1, k2)
	d.ep.AddPeer(2, b.link.mac)
	d.ep.counter = 1 << 40 // ahead of a's counters, so not a replay
	d.ep.Send(2, 0, []byte("forged"))
	b.link.recv(d.link.last(t))
	if st := b.ep.Stats(); st.BadTag != after.BadTag+1 || len(b.msgs) != 2 {
		t.Fatalf("wrong key: %+v msgs %q", st.Drops, b.msgs)
	}

	// Malformed frames: short, wrong EtherType, bad version.
	b.link.recv(make([]byte, 5))
	g := a.link.last(t)
	g[12] = 0x08
	b.link.recv(g)
	g = a.link.last(t)
	g[link.HeaderLen] = 9
	b.link.recv(g)
	st := b.ep.Stats()
	if st.Short != after.Short+1 || st.EtherType != after.EtherType+1 || st.Version != after.Version+1 {
		t.Fatalf("malformed: %+v", st.Drops)
	}
}

func TestPeerRestart(t *testing.T) {
	a, b := peers(t)
	a.ep.SendHello(nil)
	b.link.recv(a.link.last(t))
	for _, m := range []string{"x", "y"} {
		a.ep.Send(2, 1, []byte(m))
		b.link.recv(a.link.last(t))
	}
	old := a.link.last(t)
	// a reboots with a higher counter base.
	a2 := newTestNode(t, 1, testKey())
	a2.ep.counter = 1 << 33
	a2.ep.cfg.CounterBase = 1 << 33
	a2.ep.AddPeer(2, b.link.mac)
	a2.ep.SendHello(nil)
	b.link.recv(a2.link.last(t))
	a2.ep.Send(2, 1, []byte("fresh"))
	b.link.recv(a2.link.last(t))
	if len(b.msgs) != 3 || b.msgs[2] != "fresh" {
		t.Fatalf("after restart: %q", b.msgs)
	}
	// A frame from the earlier life is stale.
	b.link.recv(old)
	if st := b.ep.Stats(); st.Stale != 1 {
		t.Fatalf("old incarnation: %+v", st.Drops)
	}
}

// TestReplayAfterReAdd: a peer removed from the cluster and added again
// keeps its replay state: a frame recorded before the removal is not
// delivered again (issue 16, finding 4: RemovePeer and AddPeer gave it a
// fresh window and incarnation 0).
func TestReplayAfterReAdd(t *testing.T) {
	a, b := peers(t)
	a.ep.SendHello(nil)
	b.link.recv(a.link.last(t))
	a.ep.Send(2, 0, []byte("recorded"))
	recorded := a.link.last(t)
	b.link.recv(bytes.Clone(recorded))
	b.ep.RemovePeer(1)
	b.ep.AddPeer(1, a.link.mac)
	before := b.ep.Stats()
	b.link.recv(bytes.Clone(recorded))
	if st := b.ep.Stats(); len(b.msgs) != 1 || st.Replay+st.Stale == before.Replay+before.Stale {
		t.Fatalf("a recorded frame after remove and re-add: msgs %q, drops %+v", b.msgs, st.Drops)
	}
	// The peer's fresh frames still get through (its channel starts
	// again, as after any re-add).
	a.ep.RemovePeer(2)
	a.ep.AddPeer(2, b.link.mac)
	a.ep.Send(2, 0, []byte("fresh"))
	b.link.recv(a.link.last(t))
	if len(b.msgs) != 2 || b.msgs[1] != "fresh" {
		t.Fatalf("fresh frame after re-add: %q", b.msgs)
	}
}

// TestHelloReplayFromNonMember: a captured hello of a node that is not a
// peer is passed up once, not every time it is replayed (issue 16,
// finding 4: one hello was delivered five times), and a node's hellos
// are authenticated at most strangerOpens times per tick.
func TestHelloReplayFromNonMember(t *testing.T) {
	b := newTestNode(t, 2, testKey())
	c := newTestNode(t, 3, testKey())
	c.ep.SendHello([]byte("let me in"))
	hello := c.link.last(t)
	for range 5 {
		b.link.recv(bytes.Clone(hello))
	}
	if len(b.hello) != 1 || b.ep.Stats().Replay != 4 {
		t.Fatalf("one hello replayed 4 times: passed up %d times, drops %+v", len(b.hello), b.ep.Stats().Drops)
	}
	c.ep.SendHello([]byte("again"))
	b.link.recv(c.link.last(t))
	if len(b.hello) != 2 {
		t.Fatalf("a newer hello was refused: %d", len(b.hello))
	}
	// A flood of fresh hellos: at most strangerOpens are opened per tick.
	b.ep.Tick()
	for range 100 {
		c.ep.SendHello(nil)
		b.link.recv(c.link.last(t))
	}
	if got := len(b.hello) - 2; got != strangerOpens || b.ep.Stats().Busy != 100-strangerOpens {
		t.Fatalf("100 hellos in one tick: %d passed up, %d refused as busy", got, b.ep.Stats().Busy)
	}
}

// TestRewrittenSourceDoesNotMovePeer: a copy of a fresh frame whose
// Ethernet source is rewritten fails authentication and leaves the
// peer's address alone (issue 16, finding 5).
func TestRewrittenSourceDoesNotMovePeer(t *testing.T) {
	a, b := peers(t)
	a.ep.Send(2, 0, []byte("x"))
	f := a.link.last(t)
	evil := link.MAC{0x02, 0x66, 0x66, 0x66, 0x66, 0x66}
	copy(f[6:12], evil[:])
	b.link.recv(f)
	if ps, _ := b.ep.PeerStats(1); ps.MAC != a.link.mac || len(b.msgs) != 0 || b.ep.Stats().BadTag != 1 {
		t.Fatalf("after a frame with a rewritten source: peer at %v, msgs %q, drops %+v", ps.MAC, b.msgs, b.ep.Stats().Drops)
	}
}

// TestReAddedPeerKeepsItsStreams: a peer removed on one side only (the
// cluster removed a node that had been silent, and the node, which never
// learned it, went on) and added again takes the messages that peer sends
// next: the channel goes on where it was. Before, it started again from
// zero and every message of the peer was out of its window, for ever.
func TestReAddedPeerKeepsItsStreams(t *testing.T) {
	a, b := peers(t)
	for _, m := range []string{"one", "two", "three"} {
		if err := a.ep.Send(2, 1, []byte(m)); err != nil {
			t.Fatal(err)
		}
		b.link.recv(a.link.last(t))
	}
	b.ep.RemovePeer(1)
	if err := b.ep.AddPeer(1, a.link.mac); err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Send(2, 1, []byte("after")); err != nil {
		t.Fatal(err)
	}
	b.link.recv(a.link.last(t))
	if len(b.msgs) != 4 || b.msgs[3] != "after" {
		t.Fatalf("after a one-sided re-add: delivered %q, drops %+v", b.msgs, b.ep.Stats().Drops)
	}
}
