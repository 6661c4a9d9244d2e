package hv

import (
	"errors"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/frames"
)

// runPool is where distFrames takes host frames, one by one or in 2 MiB
// runs: frames.Pool.
type runPool interface {
	AllocFrame() (uint64, error)
	AllocRun() (uint64, error)
	FreeFrame(hpa uint64)
	FreeRun(hpa uint64)
}

// distFrames gives the coherence engine host frames outside the Go heap.
// When the pool has none, AllocPage fails and the engine evicts a copy
// instead (memory.Config.CopyFrames).
// While building is set (the share is being built: the engine takes
// and zeroes a frame for every page its node homes, gigabytes), it
// yields the core every buildYieldFrames frames: a node with one core
// (Bochs) otherwise kept its transport's goroutines, and with them every
// acknowledgement, off the core for the whole build, longer than a VM
// lets a node stay silent. It is cleared before the share runs; faults
// never yield.
//
// The frames of the pages this node homes come in 2 MiB runs, a run for
// each 2 MiB range of pages it homes whole (AllocHomePage), so that the
// EPT can map the range with one large page while the node holds it;
// elsewhere (striped homes), or where no run is left, frame by frame. A
// run goes back to the pool as a run when the share ends (closing), so
// that the next VM has runs too; a frame of it freed while the share
// runs (its page's home moved to another node) breaks it, and its frames
// go back one by one, so that the node can use that frame again.
type distFrames struct {
	pool runPool
	// bytes returns the host's bytes at hpa (physBytes on bare metal,
	// where memory is identity-mapped: a page's address is its frame's).
	bytes    func(hpa uint64, n int) []byte
	building bool
	taken    int
	// home is the VM's home function, pages its size: a range gets a
	// run when every page of it is homed on self.
	home  func(uint64) memory.NodeID
	self  memory.NodeID
	pages uint64
	// run is the run of frames for the range of home pages group (0:
	// none, the group's frames come one by one); runTaken counts its
	// frames handed out, which are its first (NewEngine asks in page
	// order, and a group gets a run only if every page of it is homed
	// here).
	run, group uint64
	haveGroup  bool
	runTaken   int
	// whole[r] counts the frames still out of run r, one that home
	// pages took whole. closing is set before the share's runtime
	// closes.
	whole   map[uint64]int
	closing atomic.Bool
}

// buildYieldFrames is how many frames a build zeroes between yields (1
// MiB: about 10 ms in Bochs).
const buildYieldFrames = 256

// AllocPage implements memory.FrameSource: a zeroed frame.
func (f *distFrames) AllocPage() (*memory.Page, error) {
	f.yield()
	hpa, err := f.pool.AllocFrame()
	if err != nil {
		return nil, err
	}
	return f.page(hpa), nil
}

// page clears the frame at hpa and returns it as a guest page.
func (f *distFrames) page(hpa uint64) *memory.Page {
	b := f.bytes(hpa, frames.Size)
	clear(b)
	return (*memory.Page)(unsafe.Pointer(&b[0]))
}

// yield gives the core away every buildYieldFrames frames of a build.
func (f *distFrames) yield() {
	if f.building {
		if f.taken++; f.taken%buildYieldFrames == 0 {
			runtime.Gosched()
		}
	}
}

// AllocHomePage implements memory.HomeFrameSource: page p's frame is
// its place in its range's run.
func (f *distFrames) AllocHomePage(p uint64) (*memory.Page, error) {
	if g := p / ept.PagesPerLarge; !f.haveGroup || g != f.group {
		f.endRun()
		f.group, f.haveGroup = g, true
		if err := f.startRun(g); err != nil {
			return nil, err
		}
	}
	if f.run == 0 {
		return f.AllocPage()
	}
	f.yield()
	hpa := f.run + p%ept.PagesPerLarge*frames.Size
	if f.runTaken++; f.runTaken == ept.PagesPerLarge {
		// Taken whole: it goes back as a run (FreePage).
		if f.whole == nil {
			f.whole = make(map[uint64]int)
		}
		f.whole[f.run] = ept.PagesPerLarge
		f.run = 0
	}
	return f.page(hpa), nil
}

// startRun takes a run for group g's pages if this node homes every one
// of them and the pool has a run.
func (f *distFrames) startRun(g uint64) error {
	first := g * ept.PagesPerLarge
	if f.home == nil || first+ept.PagesPerLarge > f.pages {
		return nil
	}
	for p := first; p < first+ept.PagesPerLarge; p++ {
		if f.home(p) != f.self {
			return nil
		}
	}
	run, err := f.pool.AllocRun()
	switch {
	case err == nil:
		f.run = run
	case !errors.Is(err, frames.ErrExhausted):
		return err
	}
	// Without a run (the pool is fragmented), the range's frames come
	// one by one.
	return nil
}

// endRun gives back the frames of the current run that no home page
// took (a build that failed part way). The share calls it once built:
// only the build places homes.
func (f *distFrames) endRun() {
	if f.run != 0 {
		for k := uint64(f.runTaken); k < ept.PagesPerLarge; k++ {
			f.pool.FreeFrame(f.run + k*frames.Size)
		}
	}
	f.run, f.haveGroup, f.runTaken = 0, false, 0
}

// FreePage implements memory.FrameSource.
func (f *distFrames) FreePage(p *memory.Page) {
	hpa := uint64(uintptr(unsafe.Pointer(p)))
	run := hpa &^ (frames.RunSize - 1)
	if n, ok := f.whole[run]; ok {
		if !f.building && !f.closing.Load() {
			delete(f.whole, run) // broken: see distFrames
			f.pool.FreeFrame(hpa)
			return
		}
		if n > 1 {
			f.whole[run] = n - 1
			return
		}
		delete(f.whole, run)
		f.pool.FreeRun(run)
		return
	}
	f.pool.FreeFrame(hpa)
}
