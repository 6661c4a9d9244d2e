package hv

import (
	"testing"
	"unsafe"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/frames"
)

// testFrames is a distFrames over a pool of the host's own memory, as on
// bare metal: a frame's address is the address of its bytes.
type testFrames struct {
	*distFrames
	pool *frames.Pool
	mem  []byte
	at   uint64 // address of mem[0]
}

// newTestFrames returns frames for a VM of pages pages homed by home,
// over a pool of size bytes starting offset bytes past a 2 MiB boundary,
// every byte of it 0xaa.
func newTestFrames(t *testing.T, size, offset uint64, pages uint64, home func(uint64) memory.NodeID) *testFrames {
	t.Helper()
	mem := make([]byte, size+offset+frames.RunSize)
	at := uint64(uintptr(unsafe.Pointer(&mem[0])))
	start := (at+frames.RunSize-1)&^(frames.RunSize-1) + offset
	for i := range mem {
		mem[i] = 0xaa
	}
	pool, err := frames.NewPool(memmap.Map{{Start: start, Size: size, Type: memmap.Usable}})
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFrames{pool: pool, mem: mem, at: at}
	tf.distFrames = &distFrames{pool: pool, bytes: tf.bytes, building: true, home: home, self: 1, pages: pages}
	return tf
}

func (tf *testFrames) bytes(hpa uint64, n int) []byte { return tf.mem[hpa-tf.at : hpa-tf.at+uint64(n)] }

// frame is page p's frame address.
func frame(p *memory.Page) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }

// build takes the home frames of every page in order, as NewEngine does,
// and checks each comes zeroed.
func (tf *testFrames) build(t *testing.T) []*memory.Page {
	t.Helper()
	out := make([]*memory.Page, tf.pages)
	for p := range out {
		pg, err := tf.AllocHomePage(uint64(p))
		if err != nil {
			t.Fatalf("page %d: %v", p, err)
		}
		for i, b := range pg {
			if b != 0 {
				t.Fatalf("page %d's frame %#x is not zeroed at byte %d", p, frame(pg), i)
			}
		}
		out[p] = pg
	}
	tf.endRun()
	tf.building = false
	return out
}

func homedHere(uint64) memory.NodeID { return 1 }

// TestDistFramesHomeRunsInPageOrder: a 2 MiB range this node homes whole
// gets one aligned run, its pages in order; a range it does not home
// whole (striped, or cut short by the VM's end) gets frames one by one.
func TestDistFramesHomeRunsInPageOrder(t *testing.T) {
	const whole = 2 * ept.PagesPerLarge
	tf := newTestFrames(t, 4*frames.RunSize, 0, whole+100, homedHere)
	pages := tf.build(t)
	for g := 0; g < 2; g++ {
		first := frame(pages[g*ept.PagesPerLarge])
		if first%frames.RunSize != 0 {
			t.Fatalf("range %d starts at %#x, not on a 2 MiB boundary", g, first)
		}
		for i := 1; i < ept.PagesPerLarge; i++ {
			if got := frame(pages[g*ept.PagesPerLarge+i]); got != first+uint64(i)*frames.Size {
				t.Fatalf("range %d page %d at %#x, want %#x", g, i, got, first+uint64(i)*frames.Size)
			}
		}
	}
	if len(tf.whole) != 2 {
		t.Errorf("%d runs taken whole, want 2", len(tf.whole))
	}
	if inUse, _ := tf.pool.Stats(); inUse != whole+100 {
		t.Errorf("%d frames in use, want %d", inUse, whole+100)
	}

	striped := newTestFrames(t, 4*frames.RunSize, 0, whole, func(p uint64) memory.NodeID { return memory.NodeID(p % 2) })
	striped.build(t)
	if len(striped.whole) != 0 {
		t.Errorf("striped homes took %d runs", len(striped.whole))
	}
}

// TestDistFramesRunsGoBackWhole: the runs of a share that ends go back as
// runs, so the next VM has them; a build that failed part way gives back
// the frames of its run no page took.
func TestDistFramesRunsGoBackWhole(t *testing.T) {
	const n = 2 * ept.PagesPerLarge
	tf := newTestFrames(t, 2*frames.RunSize, 0, n, homedHere)
	pages := tf.build(t)
	tf.closing.Store(true)
	for _, p := range pages {
		tf.FreePage(p)
	}
	if inUse, _ := tf.pool.Stats(); inUse != 0 {
		t.Fatalf("%d frames still in use", inUse)
	}
	for i := 0; i < 2; i++ {
		if _, err := tf.pool.AllocRun(); err != nil {
			t.Fatalf("run %d after the share ended: %v", i, err)
		}
	}

	part := newTestFrames(t, 2*frames.RunSize, 0, n, homedHere)
	for p := uint64(0); p < 100; p++ {
		if _, err := part.AllocHomePage(p); err != nil {
			t.Fatal(err)
		}
	}
	part.endRun()
	if inUse, _ := part.pool.Stats(); inUse != 100 {
		t.Errorf("a build stopped after 100 pages holds %d frames", inUse)
	}
}

// TestDistFramesFreedFrameBreaksItsRun: a frame freed while the share
// runs (its page's home moved away) goes back at once, so the node can
// use it again; the rest of its run goes back frame by frame at the end,
// and nothing is lost.
func TestDistFramesFreedFrameBreaksItsRun(t *testing.T) {
	tf := newTestFrames(t, frames.RunSize, 0, ept.PagesPerLarge, homedHere)
	pages := tf.build(t)
	tf.FreePage(pages[5])
	if inUse, _ := tf.pool.Stats(); inUse != ept.PagesPerLarge-1 {
		t.Fatalf("after freeing one frame while running, %d in use", inUse)
	}
	if len(tf.whole) != 0 {
		t.Fatal("the run is still counted whole")
	}
	again, err := tf.AllocPage()
	if err != nil || frame(again) != frame(pages[5]) {
		t.Fatalf("the freed frame is not there to use again: %v", err)
	}
	pages[5] = again
	tf.closing.Store(true)
	for _, p := range pages {
		tf.FreePage(p)
	}
	if inUse, _ := tf.pool.Stats(); inUse != 0 {
		t.Errorf("%d frames lost", inUse)
	}
}

// TestDistFramesWithoutRuns: where the pool has no aligned run left, a
// range homed whole gets its frames one by one.
func TestDistFramesWithoutRuns(t *testing.T) {
	tf := newTestFrames(t, frames.RunSize, frames.Size, ept.PagesPerLarge-1, homedHere)
	tf.pages = ept.PagesPerLarge // the VM is larger than this pool
	for p := uint64(0); p < ept.PagesPerLarge-1; p++ {
		if _, err := tf.AllocHomePage(p); err != nil {
			t.Fatalf("page %d: %v", p, err)
		}
	}
	if len(tf.whole) != 0 || tf.run != 0 {
		t.Error("a run was taken from a pool without one")
	}
}
