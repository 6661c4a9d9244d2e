// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"sync/atomic"
	"time"
)

// watchdog is the board's clockWatch, nil until setWatchdog: set by the
// hyperkernel's start-up, read by every clock read.
var watchdog atomic.Pointer[clockWatch]

// setWatchdog is board.Platform.Watchdog.
func setWatchdog(period time.Duration, fn func()) {
	watchdog.Store(newClockWatch(int64(period), fn))
}
