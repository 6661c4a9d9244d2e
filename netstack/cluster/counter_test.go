// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package cluster

import (
	"errors"
	"testing"
	"time"
)

// TestCounterBaseIncreasesAcrossBoots: a boot one second after another,
// whatever random bits each drew, starts above every counter the first
// could have used at 2^29 frames a second; the base was 32 random bits
// before, so a later boot could start below an earlier one and repeat
// its nonces (issue 16, finding 6).
func TestCounterBaseIncreasesAcrossBoots(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	first, err := CounterBase(t0, 1<<40-1) // the highest random bits
	if err != nil {
		t.Fatal(err)
	}
	second, err := CounterBase(t0.Add(time.Second), 0) // the lowest
	if err != nil {
		t.Fatal(err)
	}
	if sent := uint64(1 << 29); first+sent >= second {
		t.Errorf("boot 1 from %#x sending %d frames reaches boot 2's base %#x", first, sent, second)
	}
	later, _ := CounterBase(t0.Add(24*time.Hour), 5)
	if later <= second || later&1 == 0 {
		t.Errorf("a day later: %#x after %#x", later, second)
	}
	// Same clock reading, different random bits: different bases.
	a, _ := CounterBase(t0, 12345)
	b, _ := CounterBase(t0, 99999)
	if a == b {
		t.Error("boots with the same clock reading got the same base")
	}
	if r, err := CounterBase(time.Time{}, 7); err != nil || r == 0 || r>>32 == 0 {
		t.Errorf("no clock: %#x, %v", r, err)
	}
	if _, err := CounterBase(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 0); err == nil {
		t.Error("a clock before 1970 accepted")
	}
}

// TestCounterStopsBeforeWrap: at MaxCounter the endpoint refuses to send
// instead of wrapping to counters it used before.
func TestCounterStopsBeforeWrap(t *testing.T) {
	a := newTestNode(t, 1, testKey())
	a.ep.AddPeer(2, nodeMAC(2))
	a.ep.counter = MaxCounter - 1
	if err := a.ep.Send(2, 0, []byte("last")); err != nil {
		t.Fatalf("the last counter: %v", err)
	}
	frames := len(a.link.frames)
	if err := a.ep.Send(2, 0, []byte("one too many")); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("past MaxCounter: %v", err)
	}
	a.ep.SendHello(nil)
	if len(a.link.frames) != frames || a.ep.counter != MaxCounter {
		t.Errorf("frames sent after exhaustion: %d, counter %#x", len(a.link.frames)-frames, a.ep.counter)
	}
}
