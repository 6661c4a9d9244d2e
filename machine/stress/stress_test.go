// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package stress

import (
	"runtime"
	"testing"
	"time"
)

func TestScheduler(t *testing.T) {
	before := runtime.NumGoroutine()
	r := Scheduler(200 * time.Millisecond)
	if r.Stops == 0 || r.Handoffs == 0 {
		t.Errorf("Scheduler did nothing: %+v", r)
	}
	if r.Elapsed < 200*time.Millisecond {
		t.Errorf("Scheduler returned after %v, before its 200ms", r.Elapsed)
	}
	if r.PerStop() <= 0 || r.PerStop() > r.Elapsed {
		t.Errorf("PerStop %v of %+v", r.PerStop(), r)
	}
	// Every goroutine of the ring has ended.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 100 {
			t.Fatalf("%d goroutines left running, want %d", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
	if (SchedulerResult{}).PerStop() != 0 {
		t.Error("PerStop of an empty run is not 0")
	}
}
