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

	"github.com/big-iron/big-iron/boot/memmap"
)

// Size is the frame size.
const Size = 4096

// ErrExhausted is returned when no frame is left.
var ErrExhausted = errors.New("frames: no free frame")

// Pool allocates frames from a set of usable regions. Freed frames are
// reused first. It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	regions []memmap.Region // usable, frame-aligned, in address order
	region  int             // region being carved
	next    uint64          // next never-used frame in regions[region]
	free    []uint64        // freed frames
	inUse   int
	total   int
}

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
	return 0, ErrExhausted
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
