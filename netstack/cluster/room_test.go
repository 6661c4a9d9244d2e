package cluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link/memlink"
)

// slowReceiver is an upper layer with a bounded queue per channel that it
// works off at its own pace: Room says whether the queue has space.
type slowReceiver struct {
	bound  int
	queues [DefaultChannels][][]byte
	// most is the longest any queue got.
	most int
	// done collects the messages taken off the queues, per channel.
	done [DefaultChannels][][]byte
}

func (r *slowReceiver) room(_ NodeID, ch uint8) bool { return len(r.queues[ch]) < r.bound }

func (r *slowReceiver) message(_ NodeID, ch uint8, msg []byte) {
	r.queues[ch] = append(r.queues[ch], bytes.Clone(msg))
	r.most = max(r.most, len(r.queues[ch]))
}

// work takes one message off every queue.
func (r *slowReceiver) work() {
	for ch, q := range r.queues {
		if len(q) > 0 {
			r.done[ch] = append(r.done[ch], q[0])
			r.queues[ch] = q[1:]
		}
	}
}

// TestRoomBackPressure: a receiver whose upper layer takes messages more
// slowly than the sender sends them keeps its queues within their bound,
// the sender feels it (Send returns ErrBusy), and every message arrives
// once, in order, also when frames are lost, duplicated and reordered
// (issue 16, finding 8: a bound could only stop the VM, not slow the
// sender).
func TestRoomBackPressure(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			swcfg := memlink.Config{Seed: seed, Delay: 50 * time.Microsecond}
			if seed > 2 {
				swcfg.Loss, swcfg.Duplicate, swcfg.Jitter = 0.05, 0.05, 300*time.Microsecond
			}
			rcv := &slowReceiver{bound: 3}
			s := newNet(t, 2, swcfg, func(c *Config) {
				if c.ID == 2 {
					c.Room, c.OnMessage = rcv.room, rcv.message
				}
			})
			r := rand.New(rand.NewPCG(seed, 3))
			const n = 300
			var want [DefaultChannels][][]byte
			busy := 0
			for i := 0; i < n; {
				ch := r.IntN(2)
				m := message(1, ch, len(want[ch]), 1+r.IntN(4000))
				switch err := s.eps[0].Send(2, uint8(ch), m); err {
				case nil:
					want[ch] = append(want[ch], m)
					i++
					continue
				case ErrBusy:
					busy++
				default:
					t.Fatal(err)
				}
				s.step(200 * time.Microsecond)
				rcv.work()
			}
			for step := 0; step < 200000 && !(s.eps[0].Idle() && rcv.empty()); step++ {
				s.step(200 * time.Microsecond)
				if step%5 == 0 {
					rcv.work()
				}
			}
			for ch := range want {
				if len(rcv.done[ch]) != len(want[ch]) {
					t.Fatalf("channel %d: %d messages taken, want %d (virtual time %v)", ch, len(rcv.done[ch]), len(want[ch]), s.now)
				}
				for i := range want[ch] {
					if !bytes.Equal(rcv.done[ch][i], want[ch][i]) {
						t.Fatalf("channel %d: message %d differs", ch, i)
					}
				}
			}
			st := s.eps[1].Stats()
			t.Logf("virtual time %v, sender busy %d times, window closed %d times, longest queue %d", s.now, busy, st.Closed, rcv.most)
			if rcv.most > rcv.bound {
				t.Errorf("a queue held %d messages, bound %d", rcv.most, rcv.bound)
			}
			if busy == 0 || st.Closed == 0 {
				t.Errorf("no back-pressure: sender busy %d times, window closed %d times", busy, st.Closed)
			}
		})
	}
}

func (r *slowReceiver) empty() bool {
	for _, q := range r.queues {
		if len(q) > 0 {
			return false
		}
	}
	return true
}

// TestClosedWindowQuietsSender: while the receiver has no room at all, the
// sender's frames on that channel are the window it had and retransmissions
// backing off, not a stream; other channels still flow; once there is room,
// the messages arrive within a tick and a round trip.
func TestClosedWindowQuietsSender(t *testing.T) {
	open := false
	var got [][]byte
	var other int
	s := newNet(t, 2, memlink.Config{Delay: 50 * time.Microsecond}, func(c *Config) {
		if c.ID == 2 {
			c.Room = func(_ NodeID, ch uint8) bool { return open || ch != 0 }
			c.OnMessage = func(_ NodeID, ch uint8, msg []byte) {
				if ch == 0 {
					got = append(got, bytes.Clone(msg))
				} else {
					other++
				}
			}
		}
	})
	for i := range 20 {
		if err := s.eps[0].Send(2, 0, message(1, 0, i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.eps[0].PeerStats(2)
	for range 5000 { // one virtual second
		s.step(200 * time.Microsecond)
	}
	after, _ := s.eps[0].PeerStats(2)
	if len(got) != 0 {
		t.Fatalf("%d messages delivered through a closed window", len(got))
	}
	if sent := after.FramesOut - before.FramesOut; sent > 40 {
		t.Errorf("sender sent %d frames in a second into a closed window", sent)
	}
	if err := s.eps[0].Send(2, 1, message(1, 1, 0, 100)); err != nil {
		t.Fatal(err)
	}
	s.step(time.Millisecond)
	if other != 1 {
		t.Errorf("another channel delivered %d messages behind the closed one, want 1", other)
	}
	open = true
	for range 5 {
		s.step(200 * time.Microsecond)
	}
	if len(got) != 20 {
		t.Fatalf("%d of 20 messages delivered 1 ms after the window opened", len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m, message(1, 0, i, 100)) {
			t.Fatalf("message %d differs", i)
		}
	}
}
