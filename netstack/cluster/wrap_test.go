// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link/memlink"
)

// TestSequenceWrap runs lossy exchanges whose sequence numbers cross
// 2^32 and 2^31, with a window and send queue that are not powers of
// two: ring slots indexed by seq mod a length that does not divide 2^32
// collide across the wrap, and delivery must stay exact, in order and
// once only.
func TestSequenceWrap(t *testing.T) {
	for _, first := range []uint32{1<<32 - 20, 1<<31 - 20} {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("first=%#x/seed=%d", first, seed), func(t *testing.T) {
				runExchange(t, seed, 2, 300, memlink.Config{
					Loss: 0.2, Duplicate: 0.05, Delay: time.Millisecond, Jitter: 2 * time.Millisecond,
				}, func(r *rand.Rand) int { return 1 + r.IntN(8<<10) }, func(c *Config) {
					c.firstSeq = first
					c.Window = 48
					c.MaxMessage = 8 << 10
				})
			})
		}
	}
}

// TestSACKBeyondSentAtHalfRange: an ack whose selective bits all lie
// beyond what was sent, while una is 2^31 or more, used to leave the
// highest selectively acknowledged sequence at 0, and the loss-recovery
// loop then ran from una round to 0, resending stale slots (110 spurious
// frames from one ack; issue 16, finding 9).
func TestSACKBeyondSentAtHalfRange(t *testing.T) {
	now := time.Duration(0)
	a := newTestNode(t, 1, testKey())
	a.ep.cfg.firstSeq = 1<<31 + 5
	a.ep.cfg.Clock = func() time.Duration { return now }
	if err := a.ep.AddPeer(2, nodeMAC(2)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.ep.Send(2, 0, []byte(fmt.Sprint("message ", i))); err != nil {
			t.Fatal(err)
		}
	}
	p := a.ep.peers[2]
	c := p.chans[0]
	now = time.Second // every frame has been out long enough to be presumed lost
	a.ep.now = now
	before := len(a.link.frames)
	a.ep.handleAck(p, 0, c, &Header{Ack: c.una, SACK: 1 << 40, Window: 48})
	if sent := len(a.link.frames) - before; sent > int(c.nxt-c.una) {
		t.Errorf("one ack with no selective bit in range resent %d frames; %d are in flight", sent, c.nxt-c.una)
	}
}
