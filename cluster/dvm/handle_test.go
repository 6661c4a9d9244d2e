// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
)

// mustPanic runs f and reports the panic it must raise.
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", what)
			return
		}
		if s, _ := r.(string); !strings.HasPrefix(s, "dvm: ") {
			t.Errorf("%s: panic %v, want dvm's", what, r)
		}
	}()
	f()
}

func TestHandleRefusesUseWithoutTheLock(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	h := c.rts[1].Handle(1)
	mustPanic(t, "Fault without Lock", func() { h.Fault(0, true) })
	mustPanic(t, "TakeInterrupt without Lock", func() { h.TakeInterrupt() })
	mustPanic(t, "Unlock without Lock", func() { h.Unlock() })
	h.Lock()
	mustPanic(t, "Lock twice", func() { h.Lock() })
	if !h.Held() {
		t.Fatal("a locked handle says it is not held")
	}
	h.Unlock()
	mustPanic(t, "Place after Unlock", func() { h.Place(0, false) })
}

func TestHandleServesTheVCPU(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	// vCPU 1 starts on node 1 (Spec.Place default: round robin)
	h := c.rts[1].Handle(1)
	h.Lock()
	defer h.Unlock()
	if h.VCPU() != 1 || !h.Hosts(1) || h.Location(1) != 1 {
		t.Fatalf("handle of vCPU %d: hosts %v, location %d", h.VCPU(), h.Hosts(1), h.Location(1))
	}
	if err := h.Interrupt(1, 0x40); err != nil {
		t.Fatal(err)
	}
	if !h.InterruptPending() {
		t.Fatal("the interrupt raised through the handle is not pending for its vCPU")
	}
	if v, ok := h.TakeInterrupt(); !ok || v != 0x40 {
		t.Fatalf("TakeInterrupt: %#x, %v", v, ok)
	}
	if err := h.Fault(0, true); err != nil { // homed on node 0: a remote fault
		t.Fatal(err)
	}
	var b [1]byte
	if err := h.Read(0, b[:]); err != nil {
		t.Fatal(err)
	}
	if err := h.Serve(); err != nil {
		t.Fatal(err)
	}
}

// OnDevice runs with the lock held and gets a handle that holds it, so
// that a device can raise an interrupt (as the test guest's doorbell
// does); on the device goroutine (DevicesUnlocked) its handle does not.
func TestOnDeviceHandle(t *testing.T) {
	for _, unlocked := range []bool{false, true} {
		held := make(chan bool, 1)
		c := newCluster(t, 2, 2, 4, func(cfg *Config) {
			cfg.DevicesUnlocked = unlocked
			cfg.OnDevice = func(h *Handle, d DeviceWrite) {
				held <- h.Held()
				if h.Held() {
					if err := h.Interrupt(1, 0x41); err != nil {
						t.Error(err)
					}
				}
			}
		})
		h := c.rts[1].Handle(1)
		h.Lock()
		if err := h.Forward(DeviceWrite{Addr: 0x80, Size: 1, Value: 1}); err != nil {
			t.Fatal(err)
		}
		h.Unlock()
		if got := <-held; got == unlocked {
			t.Errorf("DevicesUnlocked=%v: OnDevice's handle held=%v", unlocked, got)
		}
		if !unlocked {
			// the interrupt reaches vCPU 1 on node 1
			if a := <-c.irq; a.node != memory.NodeID(1) || a.v != 1 {
				t.Errorf("device interrupt reached node %d vCPU %d", a.node, a.v)
			}
		}
	}
}
