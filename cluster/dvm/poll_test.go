package dvm

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
)

// pollLink is node 0's network in TestWaiterPollsTheNetwork: what other
// nodes send it waits in in until Poll takes it, or until the slow
// receive loop (a NIC poll loop that sleeps between polls) does.
type pollLink struct {
	rt             *Runtime
	in             chan []byte
	byPoll, byLoop atomic.Int64
}

// Poll is Config.Poll: it delivers what has arrived, waiting a little
// for it as a NIC's ring fills while the poller spins.
func (l *pollLink) Poll() bool {
	select {
	case m := <-l.in:
		l.byPoll.Add(1)
		l.rt.Deliver(1, m)
		return true
	case <-time.After(50 * time.Millisecond):
		return false
	}
}

// loop is the receive loop that sleeps between its polls.
func (l *pollLink) loop(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		for len(l.in) > 0 {
			l.byLoop.Add(1)
			l.rt.Deliver(1, <-l.in)
		}
	}
}

type chanSender chan []byte

func (c chanSender) Send(_ memory.NodeID, msg []byte) error {
	c <- append([]byte(nil), msg...)
	return nil
}

// TestWaiterPollsTheNetwork: a remote fault on node 0, whose receive
// loop sleeps 20 ms between polls (the bare-metal NIC's loop sleeps
// 0.1-1 ms), gets its answer from the waiting goroutine's own polls
// (Config.Poll), not from the loop: the messages node 1 sends node 0
// while nothing there waits (taking the page back) come in by the loop,
// and the answers to node 0's faults by its waiters' polls.
func TestWaiterPollsTheNetwork(t *testing.T) {
	spec := Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 16}
	to0, to1 := make(chan []byte, 64), make(chan []byte, 64)
	l := &pollLink{in: to0}
	rt0, err := New(Config{Spec: spec, Self: 0, Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: chanSender(to1), Poll: l.Poll})
	if err != nil {
		t.Fatal(err)
	}
	rt1, err := New(Config{Spec: spec, Self: 1, Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: chanSender(to0)})
	if err != nil {
		t.Fatal(err)
	}
	l.rt = rt0
	stop := make(chan struct{})
	go l.loop(stop)
	go rt0.Run()
	go rt1.Run()
	go func() {
		for m := range to1 {
			rt1.Deliver(0, m)
		}
	}()
	defer func() { close(stop); close(to1); rt0.Close(); rt1.Close() }()

	// Page 1 is homed on node 1: each round node 1 writes it back, then
	// node 0 writes it, a remote write fault answered with the page.
	const rounds = 20
	start := time.Now()
	for i := range rounds {
		if err := rt1.Write(memory.PageSize, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := rt0.Write(memory.PageSize+8, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if err := rt0.Read(memory.PageSize, b[:]); err != nil || b[0] != byte(i) {
			t.Fatalf("round %d: node 0 read %d (%v), want %d", i, b[0], err, i)
		}
	}
	took := time.Since(start)
	if l.byPoll.Load() < rounds {
		t.Errorf("%d rounds in %v: %d messages to node 0 came in by its waiters' polls, %d by the sleeping receive loop; want at least one poll a round",
			rounds, took, l.byPoll.Load(), l.byLoop.Load())
	}
	if st := rt0.Stats(); st.RemoteWaits < rounds {
		t.Errorf("node 0 waited %d times for node 1, want at least %d", st.RemoteWaits, rounds)
	}
}

// TestPollForAllocatesNothing: the spin a waiter makes before it sleeps
// (pollChange, PollFor and the closure it is given) allocates nothing.
func TestPollForAllocatesNothing(t *testing.T) {
	polls := 0
	rt, err := New(Config{Spec: Spec{ID: 7, Nodes: 2, VCPUs: 2, Pages: 16}, Self: 0,
		Perm: &perms{acc: map[uint64]memory.Access{}}, Transport: chanSender(make(chan []byte, 1)),
		Poll: func() bool { polls++; return false }})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if n := testing.AllocsPerRun(100, func() { rt.pollChange(rt.genSeen.Load() + 1) }); n != 0 || polls == 0 {
		t.Errorf("pollChange: %v allocations, %d polls", n, polls)
	}
}
