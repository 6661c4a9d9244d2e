// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package cluster

import (
	"errors"
	"time"
)

// counterShift places a boot's wall-clock second in its counter base:
// each second of wall-clock time between two boots leaves room for 2^30
// frames, more than a 100 GbE link carries (under 150 million a second),
// so a node's counters stay below the next boot's base and AEAD nonces
// never repeat under one key.
const counterShift = 30

// MaxCounter is the last frame counter an endpoint uses; it stops sending
// rather than wrap (a wrapped counter would repeat nonces).
const MaxCounter = 1<<64 - 1<<20

// ErrCounterExhausted is returned by Send once the counter reached
// MaxCounter.
var ErrCounterExhausted = errors.New("cluster: frame counter exhausted: restart the node with a new counter base")

// CounterBase returns the first frame counter (Config.CounterBase) of a
// boot that began at wall-clock time boot, read from the machine's
// real-time clock: the boot's second shifted left by 30 bits, plus
// random low bits (below 2^29) that keep apart boots whose clock reads
// the same second (an emulator's fixed clock, a reset battery) unless
// both send many frames. A zero boot time (no clock) gives a base from
// random bits alone, as unique across boots as 32 random bits are.
func CounterBase(boot time.Time, random uint64) (uint64, error) {
	if boot.IsZero() {
		return (random&(1<<31-1) | 1) << 32, nil
	}
	secs := boot.Unix()
	if secs <= 0 || uint64(secs) >= (MaxCounter>>counterShift)/2 {
		return 0, errors.New("cluster: the real-time clock reads before 1970 or past the year 10000: fix it or leave it out")
	}
	return uint64(secs)<<counterShift | random&(1<<(counterShift-1)-1) | 1, nil
}
