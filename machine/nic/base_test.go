// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nic

import (
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

func TestBase(t *testing.T) {
	var b Base
	if b.MAC() != (link.MAC{}) || b.MTU() != link.DefaultMTU {
		t.Fatalf("zero Base: MAC %v, MTU %d", b.MAC(), b.MTU())
	}
	mac := link.MAC{2, 0, 0, 0, 0, 1}
	b.SetMAC(mac)
	if b.MAC() != mac {
		t.Errorf("MAC = %v, want %v", b.MAC(), mac)
	}

	b.Count(func(s *Stats) { s.RxFrames++; s.RxBytes += 60 })
	b.Count(func(s *Stats) { s.TxDropped++ })
	if got := b.Stats(); got != (Stats{RxFrames: 1, RxBytes: 60, TxDropped: 1}) {
		t.Errorf("Stats = %+v", got)
	}

	if r := b.LockReceiver(); r != nil {
		t.Error("zero Base has a receiver")
	}
	b.UnlockReceiver()
	got := 0
	b.SetReceiver(func([]byte) { got++ })
	r := b.LockReceiver()
	r(nil)
	// SetReceiver waits while a Poll holds the receiver.
	done := make(chan struct{})
	go func() {
		b.SetReceiver(nil)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("SetReceiver returned while the receiver was held")
	case <-time.After(20 * time.Millisecond):
	}
	b.UnlockReceiver()
	<-done
	if r := b.LockReceiver(); r != nil || got != 1 {
		t.Errorf("after SetReceiver(nil): receiver %v, %d frames", r != nil, got)
	}
	b.UnlockReceiver()
}
