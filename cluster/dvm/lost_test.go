// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// TestNodeFailedWakesWaiters: node 2 of three dies (it stops answering);
// a read of a page it homes and a device read on a node whose device
// node is gone wait, then end with NodeLostError as soon as the node is
// declared failed, saying what went with it. Before NodeFailed they
// waited for ever (issue 16, finding 3).
func TestNodeFailedWakesWaiters(t *testing.T) {
	c := newCluster(t, 3, 3, 30)
	c.rts[2].Close() // node 2 dies: it drops every request from now on

	const homedOn2 = 2 * memory.PageSize // pages are striped: page 2 on node 2
	errs := make(chan error, 2)
	go func() { errs <- c.rts[1].Read(homedOn2, make([]byte, 8)) }()
	select {
	case err := <-errs:
		t.Fatalf("a read of a dead node's page returned before the node was declared failed: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	lost := c.rts[1].NodeFailed(2, "silent for 500ms")
	if lost == nil {
		t.Fatal("NodeFailed returned nil for a VM node")
	}
	select {
	case err := <-errs:
		var le *NodeLostError
		if !errors.As(err, &le) || le.Node != 2 {
			t.Fatalf("the waiting read ended with %v, want NodeLostError for node 2", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting read did not wake when the node was declared failed")
	}
	if lost.HomedPages != 10 || len(lost.VCPUs) != 1 || lost.VCPUs[0] != 2 {
		t.Errorf("lost %+v, want 10 homed pages and vCPU 2", lost)
	}
	want := "node 3 lost (silent for 500ms): the VM stops; with it went 10 pages it homed, the only copy of 0 pages homed here, vCPU [2]"
	if got := lost.Describe(func(n memory.NodeID) uint32 { return uint32(n) + 1 }); got != want {
		t.Errorf("Describe:\n got %s\nwant %s", got, want)
	}
	if err := c.rts[1].Err(); !errors.Is(err, lost) {
		t.Errorf("Err after NodeFailed: %v", err)
	}
	if again := c.rts[1].NodeFailed(0, "later"); again != nil {
		t.Errorf("a second NodeFailed counted: %+v", again)
	}
	// The other survivor is told too (each node's watchdog tells its own
	// runtime); a node's own index and an index outside the VM do not count.
	if c.rts[0].NodeFailed(0, "self") != nil || c.rts[0].NodeFailed(5, "outside") != nil {
		t.Error("NodeFailed counted this node or a node outside the VM")
	}
}

// TestNodeFailedWakesDeviceRead: a forwarded device read waits for the
// device node; when that node is declared failed the read ends with the
// loss instead of waiting for a reply that will not come.
func TestNodeFailedWakesDeviceRead(t *testing.T) {
	c := newCluster(t, 2, 2, 16)
	c.rts[0].Close() // the device node dies
	errs := make(chan error, 1)
	go func() {
		c.rts[1].lock()
		_, err := c.rts[1].readDeviceLocked(migrate.VCPUID(1), false, 0x80, 1)
		c.rts[1].unlock()
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.rts[1].NodeFailed(0, "removed from the cluster")
	select {
	case err := <-errs:
		var le *NodeLostError
		if !errors.As(err, &le) || le.Node != 0 || le.HomedPages != 8 {
			t.Fatalf("device read ended with %v, want the loss of node 0 (8 homed pages)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device read did not wake")
	}
}

// TestInboxFlood: an authenticated peer that sends faster than this node
// serves (here: the lock held, nothing served) fills the inbox to
// MaxInbox and no further; the VM then stops with ErrFlood naming it,
// and Deliver never blocked (issue 16, finding 8: the inbox grew
// without bound).
func TestInboxFlood(t *testing.T) {
	c := newCluster(t, 2, 2, 4)
	rt := c.rts[0]
	eb := readRequest(t, 7)
	rt.mu.Lock() // a vCPU holds the lock: nothing is served
	done := make(chan struct{})
	go func() {
		for range MaxInbox + 5000 {
			rt.Deliver(1, eb)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver blocked")
	}
	rt.qmu.Lock()
	queued := len(rt.queue)
	rt.qmu.Unlock()
	if queued != MaxInbox {
		t.Errorf("%d messages queued, want the bound %d", queued, MaxInbox)
	}
	rt.drainLocked()
	rt.mu.Unlock()
	if err := rt.Err(); !errors.Is(err, ErrFlood) || !strings.Contains(err.Error(), "node 1 sent more than 8192") {
		t.Errorf("after the flood: %v", err)
	}
}

// TestDeviceQueueFlood: forwarded device writes that the device node has
// not performed are bounded by MaxDeviceQueue; past it the VM stops.
func TestDeviceQueueFlood(t *testing.T) {
	release := make(chan struct{})
	c := newCluster(t, 2, 2, 4, func(cfg *Config) {
		cfg.DevicesUnlocked = true
		cfg.OnDevice = func(*Handle, DeviceWrite) { <-release } // the device is stuck
	})
	defer close(release)
	var b [DeviceSize]byte
	w := DeviceWrite{VM: 7, VCPU: 1, Addr: 0x80, Size: 1}
	n := w.MarshalTo(b[:])
	for range MaxDeviceQueue + 10 {
		c.rts[0].Deliver(1, enveloped(7, b[:n]))
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.rts[0].Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := c.rts[0].Err(); !errors.Is(err, ErrFlood) || !strings.Contains(err.Error(), "device accesses") {
		t.Errorf("after %d device writes to a stuck device: %v", MaxDeviceQueue+10, err)
	}
}

// TestNodeLostErrorNotWrittenAfterWake: the error a waiter wakes with is
// never written afterwards (NodeFailed counts what went with the node
// into a copy, which Err reports from then on): before, the waiter could
// print the error while NodeFailed filled its counts, a data race (go
// test -race) and a report of zeros or of half the counts.
func TestNodeLostErrorNotWrittenAfterWake(t *testing.T) {
	c := newCluster(t, 3, 3, 30)
	c.rts[2].Close()
	const homedOn2 = 2 * memory.PageSize
	type woke struct {
		le   *NodeLostError
		seen string
	}
	got := make(chan woke, 1)
	go func() {
		err := c.rts[1].Read(homedOn2, make([]byte, 8))
		var le *NodeLostError
		errors.As(err, &le)
		got <- woke{le, fmt.Sprintf("%+v", le)} // read at once, as a printer would
	}()
	time.Sleep(50 * time.Millisecond)
	lost := c.rts[1].NodeFailed(2, "silent")
	w := <-got
	if w.le == nil {
		t.Fatal("the waiter did not get a NodeLostError")
	}
	if now := fmt.Sprintf("%+v", w.le); now != w.seen {
		t.Errorf("the waiter's error changed after it woke:\n then %s\n  now %s", w.seen, now)
	}
	if err := c.rts[1].Err(); !errors.Is(err, lost) || lost.HomedPages != 10 {
		t.Errorf("Err = %v, NodeFailed = %+v: want the counted loss (10 homed pages)", err, lost)
	}
}

// TestRoomHoldsBackOneSender: Room says no to a node once
// MaxInboxPerNode of its messages wait, and yes again once they are
// served, while other nodes keep their room: the transport holds back
// the flooding node only (issue 16, finding 8: back-pressure instead of
// stopping the VM).
func TestRoomHoldsBackOneSender(t *testing.T) {
	c := newCluster(t, 3, 3, 4)
	rt := c.rts[0]
	eb := readRequest(t, 7)
	rt.mu.Lock() // a vCPU holds the lock: nothing is served
	sent := 0
	for rt.Room(1) && sent < MaxInbox {
		rt.Deliver(1, eb)
		sent++
	}
	if sent != MaxInboxPerNode {
		t.Errorf("node 1 had room for %d messages, want %d", sent, MaxInboxPerNode)
	}
	if !rt.Room(2) {
		t.Error("node 2 has no room while only node 1 sent")
	}
	if rt.Room(memory.MaxNodes) {
		t.Error("a node index past MaxNodes has room")
	}
	rt.drainLocked()
	rt.mu.Unlock()
	if !rt.Room(1) {
		t.Error("node 1 has no room after its messages were served")
	}
	if err := rt.Err(); err != nil {
		t.Errorf("a sender held back by Room stopped the VM: %v", err)
	}
}

// readRequest is node 1's read request for page 0 of VM vm, enveloped.
func readRequest(t *testing.T, vm uint32) []byte {
	t.Helper()
	m := memory.Message{Kind: memory.KindReadReq, Src: 1, Dst: 0, Requester: 1, GPA: 0}
	b := make([]byte, m.Size())
	if _, err := m.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	return enveloped(vm, b)
}
