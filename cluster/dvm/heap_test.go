// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// heapInUse returns the bytes of live Go heap objects, after a
// collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHeapSteadyUnderEviction: node 0 of two, with 64 frames for copies,
// writes and then reads every page node 1 homes (homes=fill), pass after
// pass, each fault evicting a copy (the Modified ones written back),
// while a vCPU whose state carries a full XSAVE area (a migration message
// larger than a page) goes back and forth between the nodes. The Go heap
// of the two Runtimes must not grow with the traffic: after the last
// pass it is within maxGrowth of what it was after the first.
// TestInboxPoolBounded pins the one growth found, which this traffic
// seldom triggers.
func TestHeapSteadyUnderEviction(t *testing.T) {
	const home0, home1, copies = 2048, 16384, 64
	const maxGrowth = 512 << 10
	passes, trips := 5, 200
	if testing.Short() {
		passes, trips = 3, 100
	}
	c := newCluster(t, 2, 2, home0+home1, func(cfg *Config) {
		cfg.Spec.Homes, cfg.Spec.Shares = HomesFill, [memory.MaxNodes]uint32{home0, home1}
		cfg.Hold = 5 * time.Millisecond // as the image runs operating systems
		if cfg.Self == 0 {
			cfg.CopyFrames = copies
		}
	})
	var heap []uint64
	for pass := range passes {
		bounced := make(chan error, 1)
		go func() { bounced <- bounceVCPU(c, 1, trips) }()
		if err := evictionPass(c.rts[0], home0, home0+home1, byte(pass)); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		if err := <-bounced; err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		heap = append(heap, heapInUse())
	}
	s := c.rts[0].Stats().Memory
	t.Logf("heap in use after each pass: %v (node 0: %d reclaims, %d writebacks)", heap, s.Reclaims, s.Writebacks)
	if s.Reclaims < uint64(passes*home1) || s.Writebacks < uint64(passes*(home1-copies)) {
		t.Fatalf("passes did not evict: %+v", s)
	}
	if grew := int64(heap[len(heap)-1]) - int64(heap[0]); grew > maxGrowth {
		t.Fatalf("heap grew by %d bytes over %d passes (%v): something keeps per-message state", grew, passes-1, heap)
	}
}

// evictionPass writes a mark into every page in [lo, hi) through rt,
// then reads every page back and checks the mark, from workers
// goroutines (faults outstanding at once, their answers served
// together).
func evictionPass(rt *Runtime, lo, hi int, mark byte) error {
	const workers = 4
	for _, write := range []bool{true, false} {
		errs := make(chan error, workers)
		for w := range workers {
			go func() { errs <- touchPages(rt, lo+w, hi, workers, write, mark) }()
		}
		for range workers {
			if err := <-errs; err != nil {
				return err
			}
		}
	}
	return nil
}

// touchPages writes mark into every stride-th page from lo below hi, or
// reads it back and checks it.
func touchPages(rt *Runtime, lo, hi, stride int, write bool, mark byte) error {
	b := []byte{mark}
	for p := lo; p < hi; p += stride {
		gpa := uint64(p) * memory.PageSize
		if write {
			if err := rt.Write(gpa, b); err != nil {
				return err
			}
			continue
		}
		if err := rt.Read(gpa, b); err != nil {
			return err
		}
		if b[0] != mark {
			return fmt.Errorf("page %d reads %d, want %d", p, b[0], mark)
		}
	}
	return nil
}

// bounceVCPU sends vCPU 1, which starts and ends on node 1, to node 0 and
// back trips times, with a full XSAVE area in its state.
func bounceVCPU(c *testCluster, v int, trips int) error {
	var st vcpu.State
	st.Reset(uint32(v), false)
	st.XSAVELen = vcpu.MaxXSAVE
	for i := range 2 * trips {
		from, to := c.rts[1-i%2], memory.NodeID(i%2)
		from.lock()
		err := from.departLocked(1, to, &st)
		from.unlock()
		if err != nil {
			return err
		}
		select {
		case a := <-c.arrive:
			if a.node != to {
				return fmt.Errorf("vCPU arrived on node %d, want %d", a.node, to)
			}
		case <-time.After(5 * time.Second):
			return fmt.Errorf("trip %d: vCPU did not arrive on node %d", i, to)
		}
	}
	return nil
}

// nopPerm ignores permission changes.
type nopPerm struct{}

func (nopPerm) SetAccess(uint64, *memory.Page, memory.Access) {}

// oneFrame hands out the same frame for every page: for measuring the
// Runtime's own heap, not the guest's memory (frames come from outside
// the Go heap in the image).
type oneFrame struct{ p memory.Page }

func (f *oneFrame) AllocPage() (*memory.Page, error) { return &f.p, nil }
func (f *oneFrame) FreePage(*memory.Page)            {}

// nopTransport drops what it is given.
type nopTransport struct{}

func (nopTransport) Send(memory.NodeID, []byte) error { return nil }

// TestHeapPerPage measures the Go heap a Runtime takes per guest page:
// node 0 of a 2.5 GiB guest homed half on each of two nodes (the image's
// figures), with a hold window (dvm.Config.Hold, as for an operating
// system). Every node keeps this for every page of the VM, homed or not
// (a directory entry only for those homed here),
// so it must stay small: 655360 pages share the image's 256 MiB with
// everything else, and a collection's headroom doubles what is live.
func TestHeapPerPage(t *testing.T) {
	pages := 655360
	if testing.Short() {
		pages = 65536
	}
	const maxPerPage = 80
	spec := Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: pages, Homes: HomesFill, Shares: [memory.MaxNodes]uint32{uint32(pages / 2), uint32(pages - pages/2)}}
	before := heapInUse()
	rt, err := New(Config{Spec: spec, Perm: nopPerm{}, Frames: &oneFrame{}, Transport: nopTransport{}, CopyFrames: 64, Hold: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	used := heapInUse() - before
	per := float64(used) / float64(pages)
	t.Logf("%d pages: %d bytes of Go heap, %.1f per page", pages, used, per)
	if per > maxPerPage {
		t.Errorf("%.1f bytes of Go heap per guest page, want at most %d", per, maxPerPage)
	}
	runtime.KeepAlive(rt)
}

// TestInboxPoolBounded: receive buffers go back to the inbox's pool only
// if they fit any coherence message, and no more than MaxSpare of them.
// A message larger than a page (a migration with a full XSAVE area)
// arriving, pass after pass, under a smaller one once grew the pool by
// a buffer each time, for the VM's life.
func TestInboxPoolBounded(t *testing.T) {
	rt, err := New(Config{Spec: Spec{ID: 3, Nodes: 2, VCPUs: 2, Pages: 4}, Perm: nopPerm{}, Transport: nopTransport{}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	envelope := func(n int) []byte {
		b := make([]byte, EnvelopeSize+n)
		putEnvelope(b, rt.cfg.Spec.ID)
		b[EnvelopeSize] = DeviceMagic // malformed: served as rejected
		return b
	}
	big, small := envelope(memory.MaxMessageSize+800), envelope(40)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for range 1000 {
		rt.Deliver(1, big)
		rt.Deliver(1, small)
		rt.drainLocked()
	}
	if n := len(rt.spare); n > 2 {
		t.Errorf("%d buffers pooled after 1000 rounds of two messages", n)
	}
	for range MaxSpare + 100 {
		rt.Deliver(1, small)
	}
	rt.drainLocked()
	if n := len(rt.spare); n > MaxSpare {
		t.Errorf("%d buffers pooled after a burst, want at most %d", n, MaxSpare)
	}
}
