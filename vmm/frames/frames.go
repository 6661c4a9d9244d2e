// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package frames hands out 4 KiB host-physical frames from the memory a
// node keeps for guests (guest RAM, EPT tables, VMCS and VMXON regions).
// It only does bookkeeping over addresses; zeroing and mapping are the
// caller's business.
package frames

import (
	"errors"
	"fmt"
	"sync"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/page"
)

// Size is the frame size: a page.
const Size = page.Size

// ErrExhausted is returned when no frame is left.
var ErrExhausted = errors.New("frames: no free frame")

// ErrInjected is the failure FailAfter injects.
var ErrInjected = errors.New("frames: allocation failed on purpose (fault injection)")

// Pool allocates frames from a set of usable regions. Freed frames are
// reused first. It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	regions []memmap.Region // usable, frame-aligned, in address order
	region  int             // region being carved
	next    uint64          // next never-used frame in regions[region]
	free    []uint64        // freed frames
	runs    []uint64        // freed runs of RunFrames frames, RunSize-aligned
	inUse   int
	total   int
	// failing is set while FailAfter is in force; passes counts the
	// allocations still let through before they fail.
	failing bool
	passes  int
}

// FailAfter makes every allocation after the next n fail with
// ErrInjected, as if memory had run out there, until FailAfter is called
// with a negative n. It lets tests drive every error path of a caller:
// creating a VM with its n-th allocation failing, for each n.
func (p *Pool) FailAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failing, p.passes = n >= 0, n
}

// FailPending returns how many allocations may still pass before
// injected failures start (0 once they have), or -1 if none are asked
// for.
func (p *Pool) FailPending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.failing {
		return -1
	}
	return p.passes
}

// injected reports whether this allocation is to fail. The caller holds
// the lock.
func (p *Pool) injected() bool {
	if !p.failing {
		return false
	}
	if p.passes > 0 {
		p.passes--
		return false
	}
	return true
}

// RunSize is the size of a run: a 2 MiB large page of EPT (and NPT), so
// that guest RAM backed by runs is mapped with large pages. A huge run
// is 1 GiB, a PDPT-level page where the processor has them.
const (
	RunSize       = 2 << 20
	RunFrames     = RunSize / Size
	HugeRunSize   = 1 << 30
	HugeRunFrames = HugeRunSize / Size
)

// NewPool returns a pool over the usable regions of m, trimmed to whole
// frames.
func NewPool(m memmap.Map) (*Pool, error) {
	p := &Pool{}
	for _, r := range m.Normalize() {
		if r.Type != memmap.Usable {
			continue
		}
		start := (r.Start + Size - 1) &^ (Size - 1)
		end := r.End() &^ (Size - 1)
		if end <= start {
			continue
		}
		p.regions = append(p.regions, memmap.Region{Start: start, Size: end - start, Type: memmap.Usable})
		p.total += int((end - start) / Size)
	}
	if p.total == 0 {
		return nil, errors.New("frames: no usable memory")
	}
	p.next = p.regions[0].Start
	p.free = make([]uint64, 0, 1024)
	return p, nil
}

// AllocFrame returns a free frame's host-physical address.
func (p *Pool) AllocFrame() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected() {
		return 0, ErrInjected
	}
	if n := len(p.free); n > 0 {
		f := p.free[n-1]
		p.free = p.free[:n-1]
		p.inUse++
		return f, nil
	}
	for p.region < len(p.regions) {
		r := p.regions[p.region]
		if p.next < r.End() {
			f := p.next
			p.next += Size
			p.inUse++
			return f, nil
		}
		p.region++
		if p.region < len(p.regions) {
			p.next = p.regions[p.region].Start
		}
	}
	if n := len(p.runs); n > 0 {
		// Break up a run: its other frames join the free list.
		run := p.runs[n-1]
		p.runs = p.runs[:n-1]
		for f := run + RunSize - Size; f > run; f -= Size {
			p.free = append(p.free, f)
		}
		p.inUse++
		return run, nil
	}
	return 0, ErrExhausted
}

// AllocRun returns the first frame of RunFrames contiguous frames aligned
// to RunSize: a freed run, or one carved from memory never handed out
// (frames skipped to reach the alignment join the free list). It returns
// ErrExhausted when there is no such run, though single frames may be
// left.
func (p *Pool) AllocRun() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected() {
		return 0, ErrInjected
	}
	if n := len(p.runs); n > 0 {
		run := p.runs[n-1]
		p.runs = p.runs[:n-1]
		p.inUse += RunFrames
		return run, nil
	}
	for p.region < len(p.regions) {
		r := p.regions[p.region]
		start := (p.next + RunSize - 1) &^ (RunSize - 1)
		if start+RunSize <= r.End() {
			for f := p.next; f < start; f += Size {
				p.free = append(p.free, f)
			}
			p.next = start + RunSize
			p.inUse += RunFrames
			return start, nil
		}
		// Too little left in this region for a run: what is left is
		// carved frame by frame later, from the free list.
		for f := p.next; f < r.End(); f += Size {
			p.free = append(p.free, f)
		}
		p.region++
		if p.region < len(p.regions) {
			p.next = p.regions[p.region].Start
		} else {
			p.next = r.End()
		}
	}
	return 0, ErrExhausted
}

// AllocHugeRun returns the first frame of HugeRunFrames contiguous
// frames aligned to HugeRunSize, carved from memory never handed out:
// what lies before the alignment joins the pool as runs (and single
// frames where a run does not fit), so nothing is lost to it. A region
// too small for one is left to AllocRun and AllocFrame. It returns
// ErrExhausted when no region has one. The caller frees it run by run
// (FreeRun at each RunSize step).
func (p *Pool) AllocHugeRun() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected() {
		return 0, ErrInjected
	}
	for r := p.region; r < len(p.regions); r++ {
		next := p.next
		if r != p.region {
			next = p.regions[r].Start
		}
		start := (next + HugeRunSize - 1) &^ (HugeRunSize - 1)
		if start+HugeRunSize > p.regions[r].End() {
			continue
		}
		// Regions skipped on the way keep their memory for runs and
		// frames: carve them into the free lists first.
		for ; p.region < r; p.region++ {
			p.release(p.next, p.regions[p.region].End())
			p.next = p.regions[p.region+1].Start
		}
		p.release(p.next, start)
		p.next = start + HugeRunSize
		p.inUse += HugeRunFrames
		return start, nil
	}
	return 0, ErrExhausted
}

// release puts the never-used frames [from, to) on the free lists: 2
// MiB-aligned runs as runs, the rest as single frames. The caller holds
// the lock.
func (p *Pool) release(from, to uint64) {
	for f := from; f < to; {
		if f%RunSize == 0 && f+RunSize <= to {
			p.runs = append(p.runs, f)
			f += RunSize
			continue
		}
		p.free = append(p.free, f)
		f += Size
	}
}

// FreeRun returns a run from AllocRun.
func (p *Pool) FreeRun(hpa uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hpa%RunSize != 0 || !p.handedOut(hpa) || !p.handedOut(hpa+RunSize-Size) {
		panic(fmt.Sprintf("frames: freeing run %#x, which this pool did not hand out", hpa))
	}
	p.runs = append(p.runs, hpa)
	p.inUse -= RunFrames
}

// FreeFrame returns a frame to the pool. Freeing an address the pool never
// handed out panics: it is a hyperkernel bug that would corrupt memory.
func (p *Pool) FreeFrame(hpa uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hpa%Size != 0 || !p.handedOut(hpa) {
		panic(fmt.Sprintf("frames: freeing %#x, which this pool did not hand out", hpa))
	}
	p.free = append(p.free, hpa)
	p.inUse--
}

// handedOut reports whether hpa lies in the part of the regions already
// carved.
func (p *Pool) handedOut(hpa uint64) bool {
	for i, r := range p.regions {
		if hpa < r.Start || hpa >= r.End() {
			continue
		}
		return i < p.region || i == p.region && hpa < p.next
	}
	return false
}

// Stats returns the frames in use and the pool's total.
func (p *Pool) Stats() (inUse, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.total
}
