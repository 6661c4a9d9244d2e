// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package spinlock

import (
	"runtime"
	"sync"
	"testing"
)

func TestMutualExclusion(t *testing.T) {
	var l Lock
	n := 0
	var wg sync.WaitGroup
	workers := max(2, runtime.GOMAXPROCS(0))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				l.Lock()
				n++
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if n != workers*20000 {
		t.Errorf("count %d, want %d: lost updates", n, workers*20000)
	}
}

func TestTryLock(t *testing.T) {
	var l Lock
	if !l.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	}
	// The holder may not block, so the second attempt comes from the
	// holder itself (pinning nests).
	if l.TryLock() {
		t.Error("TryLock of a held lock succeeded")
	}
	l.Unlock()
	defer func() {
		if recover() == nil {
			t.Error("unlocking an unlocked lock did not panic")
		}
	}()
	l.Unlock()
}

func BenchmarkUncontended(b *testing.B) {
	var l Lock
	for b.Loop() {
		l.Lock()
		l.Unlock()
	}
}

func TestPin(t *testing.T) {
	id := Pin()
	if id < 0 || id >= runtime.GOMAXPROCS(0) {
		t.Errorf("Pin = processor %d, want 0..%d", id, runtime.GOMAXPROCS(0)-1)
	}
	// Pins nest; a pinned goroutine stays on its processor.
	if again := Pin(); again != id {
		t.Errorf("nested Pin = processor %d, want %d", again, id)
	}
	Unpin()
	Unpin()
}
