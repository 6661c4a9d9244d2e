package dvm

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// walkWindows turns walk windows on.
func walkWindows(cfg *Config) { cfg.Spec.WalkWindows = true }

// walkStore sets bits in word w of the page at gpa as node n's page
// walk would, through its mapping, which must allow writes.
func (c *testCluster) walkStore(t *testing.T, n int, gpa uint64, w int, bits uint64) {
	t.Helper()
	p := c.perms[n]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.acc[gpa] != memory.AccessReadWrite || p.fr[gpa] == nil {
		t.Fatalf("node %d's walk may not write %#x (%v)", n, gpa, p.acc[gpa])
	}
	f := p.fr[gpa][w*8:]
	binary.LittleEndian.PutUint64(f, binary.LittleEndian.Uint64(f)|bits)
}

// walks has each of two nodes' vCPUs walk the same two guest page-table
// pages (both homed on node 0) rounds times, setting the accessed bit
// of its own entry the first time, each round ending in an exit that is
// not a walk's; it returns the coherence messages the nodes sent.
func walks(t *testing.T, windows bool, rounds int) uint64 {
	var mods []func(*Config)
	if windows {
		mods = append(mods, walkWindows)
	}
	c := newCluster(t, 2, 2, 4, mods...)
	pages := []uint64{0, 2 * memory.PageSize}
	errs := make(chan error, 2)
	// The nodes walk in step: each round begins once both ended the
	// last, so that their walks interleave.
	step := make([]sync.WaitGroup, rounds)
	for i := range step {
		step[i].Add(2)
	}
	for n := range 2 {
		go func() {
			h := c.rts[n].Handle(migrate.VCPUID(n))
			h.Lock()
			defer h.Unlock()
			for round := 0; round < rounds; round++ {
				for _, gpa := range pages {
					for c.access(n, gpa) != memory.AccessReadWrite {
						var err error
						if windows {
							err = h.WalkFault(gpa)
						} else {
							err = h.Fault(gpa, true)
						}
						if err != nil {
							errs <- err
							return
						}
					}
					if round == 0 {
						c.walkStore(t, n, gpa, n, 1<<5)
					}
					h.Ran()
				}
				if err := h.EndWindows(); err != nil {
					errs <- err
					return
				}
				if err := h.Serve(); err != nil {
					errs <- err
					return
				}
				h.Unlock()
				step[round].Done()
				step[round].Wait()
				h.Lock()
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var msgs uint64
	for n, rt := range c.rts {
		st := rt.Stats().Memory
		msgs += st.Messages
		t.Logf("windows %v, node %d: %d messages, windows opened %d, clean %d, changed %d", windows, n, st.Messages, st.WindowsOpened, st.WindowsClean, st.WindowsChanged)
	}
	// Every accessed bit either node's walk set is in the page.
	buf := make([]byte, 16)
	for _, gpa := range pages {
		if err := c.rts[0].Read(gpa, buf); err != nil {
			t.Fatal(err)
		}
		for n := range 2 {
			if binary.LittleEndian.Uint64(buf[n*8:])&(1<<5) == 0 {
				t.Errorf("windows %v: node %d's accessed bit in the page at %#x was lost", windows, n, gpa)
			}
		}
	}
	return msgs
}

// With walk windows, walks of page tables both nodes share cost no
// messages once each node has a copy and its accessed bits are set;
// without, every round takes both pages Modified, one node after the
// other.
func TestWalkWindowsKeepWalksLocal(t *testing.T) {
	const rounds = 100
	off, on := walks(t, false, rounds), walks(t, true, rounds)
	t.Logf("%d rounds of walks: %d messages without windows, %d with", rounds, off, on)
	if on*10 > off {
		t.Errorf("walk windows sent %d messages against %d without: walks did not stay local", on, off)
	}
}

// While a changed window's upgrade is outstanding, the node answers the
// invalidations the upgrade may wait for, but not a fetch of a page it
// owns, nor a request for a page it homes and may write: either could
// show another node a later store before the window's.
func TestDrainingNodeHoldsWhatRevealsLaterStores(t *testing.T) {
	c := newCluster(t, 2, 2, 4, walkWindows)
	// Node 1 owns page 2 (homed on node 0) and homes page 1, written.
	if err := c.rts[1].Write(2*memory.PageSize, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.rts[1].Write(1*memory.PageSize, []byte{1}); err != nil {
		t.Fatal(err)
	}
	h := c.rts[1].Handle(1)
	h.Lock()
	defer h.Unlock()
	if err := h.WalkFault(0); err != nil {
		t.Fatal(err)
	}
	if c.rts[1].eng.WindowsOpen() == 0 {
		t.Fatal("no window on page 0")
	}
	c.walkStore(t, 1, 0, 1, 1<<5)
	h.Ran()
	r := c.rts[1]
	r.closeLocked()
	if !r.eng.Draining() {
		t.Fatal("a changed window closed with no upgrade outstanding")
	}
	msg := func(k memory.Kind, gpa uint64) []byte {
		m := memory.Message{Kind: k, Src: 0, Dst: 1, Requester: 0, GPA: gpa}
		b := make([]byte, m.Size())
		n, err := m.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:n]
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"fetch of a page it owns", msg(memory.KindFetchInv, 2*memory.PageSize), true},
		{"read of a page it homes and wrote", msg(memory.KindReadReq, 1*memory.PageSize), true},
		{"invalidation", msg(memory.KindInv, 3*memory.PageSize), false},
		{"device write", []byte{DeviceMagic, 4}, true},
	} {
		if got := r.revealsLocked(tc.b); got != tc.want {
			t.Errorf("%s: held %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := h.EndWindows(); err != nil {
		t.Fatal(err)
	}
	if r.eng.Draining() || c.access(1, 0) != memory.AccessReadWrite {
		t.Fatalf("after EndWindows: draining %v, page 0 %v", r.eng.Draining(), c.access(1, 0))
	}
}

// A draining node holds a device write from another node (it could
// reveal a later store), and with it that sender's later messages, in
// order; but not the grant its own upgrade waits for. Node 1 (the
// device node) changes a window on page 0, homed on node 0; node 0's
// device write reaches node 1 before node 0's answer to the upgrade.
// Were the grant kept behind the device write, node 1 would drain for
// ever, holding both (a three-node QEMU run hung so: node 1 held 4
// messages for 4m55s with its upgrades outstanding).
func TestDrainingNodeTakesTheGrantPastAHeldDeviceWrite(t *testing.T) {
	c := newCluster(t, 2, 2, 4, walkWindows, func(cfg *Config) { cfg.DeviceNode = 1 })
	h := c.rts[1].Handle(1)
	h.Lock()
	if err := h.WalkFault(0); err != nil {
		t.Fatal(err)
	}
	c.walkStore(t, 1, 0, 1, 1<<5)
	h.Ran()
	// Node 0's vCPU writes a device register: the write waits in node
	// 1's inbox (node 1 holds its lock).
	h0 := c.rts[0].Handle(0)
	h0.Lock()
	err := h0.Forward(DeviceWrite{VCPU: 0, Addr: 0x3f8, Size: 1, Value: 'x'})
	h0.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.EndWindows() }() // the upgrade, then its grant
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		st := c.rts[1].Stats()
		t.Fatalf("node 1 still drains after 5 s, %d messages held: %+v", st.Held, st.HeldFirst)
	}
	h.Unlock()
	select {
	case d := <-c.device:
		if d.Value != 'x' {
			t.Errorf("device write %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device write was not served once the upgrade was granted")
	}
}
