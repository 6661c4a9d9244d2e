// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSliceWatchKicksEachLongTurnOnce: a turn gets one NMI once it has
// lasted the limit, none before, none again; the next turn of the same
// core can get its own; idle cores and turns that began after the scan
// read the clock get none.
func TestSliceWatchKicksEachLongTurnOnce(t *testing.T) {
	turns := map[uint32]*coreTurn{0: {}, 2: {}, 5: {}}
	w := newSliceWatch(100, []watchedCore{{0, turns[0]}, {2, turns[2]}, {5, turns[5]}})
	var sent []uint32
	nmi := func(id uint32) { sent = append(sent, id) }
	scan := func(now uint64) { sent = sent[:0]; w.scan(now, nmi) }

	if scan(1000); len(sent) != 0 {
		t.Fatalf("no core in a guest: NMIs %v", sent)
	}
	turns[2].begin(1000)
	turns[5].begin(1050)
	if scan(1099); len(sent) != 0 {
		t.Fatalf("turns of 99 and 49 ticks: NMIs %v, want none", sent)
	}
	if scan(1100); !slices.Equal(sent, []uint32{2}) {
		t.Fatalf("at the limit: NMIs %v, want to core 2", sent)
	}
	if scan(5000); !slices.Equal(sent, []uint32{5}) {
		t.Fatalf("later: NMIs %v, want only core 5 (core 2's turn had its NMI)", sent)
	}
	turns[2].end()
	turns[2].begin(6000)
	if scan(6100); !slices.Equal(sent, []uint32{2}) {
		t.Fatalf("core 2's next turn: NMIs %v, want one", sent)
	}
	turns[2].end()
	turns[5].end()
	turns[0].begin(9000)
	if scan(8000); len(sent) != 0 {
		t.Fatalf("a turn that began after the clock was read: NMIs %v", sent)
	}
	if got := w.regained.Load(); got != 3 {
		t.Errorf("regained %d, want 3", got)
	}
}

// TestSliceWatchTwoScansAtOnceKickOnce: after the board let a second
// core take the watch over from a stalled one, two scans can run at
// once; each overdue turn still gets one NMI.
func TestSliceWatchTwoScansAtOnceKickOnce(t *testing.T) {
	const turns = 2000
	turn := &coreTurn{}
	w := newSliceWatch(10, []watchedCore{{1, turn}})
	var sent atomic.Int64
	nmi := func(uint32) { sent.Add(1) }
	for i := uint64(1); i <= turns; i++ {
		turn.begin(i * 100)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); w.scan(i*100+50, nmi) }()
		}
		wg.Wait()
		turn.end()
	}
	if n := sent.Load(); n != turns {
		t.Errorf("%d NMIs for %d overdue turns, each scanned twice at once; want one each", n, turns)
	}
}

// TestSliceWatchTurnAtTSCZero: a turn that begins at TSC 0 still counts
// as under way (0 means none).
func TestSliceWatchTurnAtTSCZero(t *testing.T) {
	turn := &coreTurn{}
	w := newSliceWatch(10, []watchedCore{{1, turn}})
	turn.begin(0)
	var n int
	w.scan(50, func(uint32) { n++ })
	if n != 1 {
		t.Fatalf("%d NMIs, want 1", n)
	}
}

// TestSliceWatchScanAllocatesNothing: the scan runs inside the
// runtime's clock reads, where it must not allocate.
func TestSliceWatchScanAllocatesNothing(t *testing.T) {
	turns := []coreTurn{{}, {}}
	w := newSliceWatch(10, []watchedCore{{0, &turns[0]}, {1, &turns[1]}})
	var n int
	nmi := func(uint32) { n++ }
	now := uint64(100)
	if a := testing.AllocsPerRun(100, func() {
		turns[1].begin(now)
		now += 20
		w.scan(now, nmi)
		turns[1].end()
	}); a != 0 {
		t.Errorf("a scan allocates %v times", a)
	}
	if n == 0 {
		t.Error("no NMI sent")
	}
}

// TestWatchLimitIsTwentySlices: the limit follows the slice the
// emulator's timer makes (QEMU's 1 GHz timer, Bochs' slower one, TSC
// deadline), never under 20 ms; a flat 20 ms limit ended turns in Bochs
// that its 10 ms slices were still timing.
func TestWatchLimitIsTwentySlices(t *testing.T) {
	const count = 1_000_000
	for _, tc := range []struct {
		name           string
		tscHz, lapicHz uint64
		deadline       bool
		want           uint64 // TSC ticks
	}{
		{"QEMU TCG: 1 GHz timer, 2.6 GHz TSC", 2_600_000_000, 1_000_000_000, false, 20 * 2_600_000},
		{"Bochs: 10 MHz timer, 100 MHz TSC", 100_000_000, 10_000_000, false, 20 * 10_000_000},
		{"TSC deadline", 3_000_000_000, 25_000_000, true, 20 * 3_000_000},
		{"timer rate unknown", 3_000_000_000, 0, false, 20 * 3_000_000},
		{"fast timer: the 20 ms floor", 1_000_000_000, 10_000_000_000, false, 1_000_000_000 / 50},
	} {
		if got := watchLimit(tc.tscHz, sliceTicks(tc.tscHz, tc.lapicHz, count, tc.deadline)); got != tc.want {
			t.Errorf("%s: limit %d TSC ticks, want %d", tc.name, got, tc.want)
		}
	}
}
