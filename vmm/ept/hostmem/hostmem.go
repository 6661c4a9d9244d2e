// Package hostmem provides a fake physical memory for testing EPT code
// hosted: a contiguous run of 4-KiB frames backed by a Go slice, with a
// frame allocator that detects double frees, foreign frames and leaks.
package hostmem

import (
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/page"
)

// FrameSize is the size of one frame in bytes.
const FrameSize = page.Size

const wordsPerFrame = FrameSize / 8

// Poison fills frames that are free, so that code reading a frame it
// does not own sees entries that look present and misconfigured.
const Poison uint64 = 0xDEAD_BEEF_DEAD_BEEF

// ErrNoMemory is returned by AllocFrame when every frame is in use.
var ErrNoMemory = errors.New("hostmem: out of frames")

// Memory is a fake physical memory of consecutive frames starting at a
// base host-physical address. It implements ept.FrameAllocator and
// ept.PhysMem. It is not safe for concurrent use.
type Memory struct {
	base  uint64
	words []uint64 // frame i occupies words[i*512 : (i+1)*512]
	free  []int    // stack of free frame numbers
	inUse []bool
	// failAfter, when positive, makes AllocFrame fail once that many
	// more frames have been handed out.
	failAfter int
}

// New returns a memory of frames frames starting at base, which must be
// frame-aligned.
func New(base uint64, frames int) *Memory {
	if base%FrameSize != 0 || frames <= 0 {
		panic(fmt.Sprintf("hostmem: bad geometry base %#x frames %d", base, frames))
	}
	m := &Memory{
		base:  base,
		words: make([]uint64, frames*wordsPerFrame),
		free:  make([]int, 0, frames),
		inUse: make([]bool, frames),
	}
	for i := frames - 1; i >= 0; i-- {
		m.free = append(m.free, i)
	}
	for i := range m.words {
		m.words[i] = Poison
	}
	return m
}

// Base returns the address of the first frame.
func (m *Memory) Base() uint64 { return m.base }

// End returns the address just past the last frame.
func (m *Memory) End() uint64 { return m.base + uint64(len(m.inUse))*FrameSize }

// InUse returns the number of allocated frames.
func (m *Memory) InUse() int { return len(m.inUse) - len(m.free) }

// FailAfter makes the n+1st AllocFrame from now fail (n = 0: the next
// one); a negative n disables the failure.
func (m *Memory) FailAfter(n int) { m.failAfter = n + 1 }

// AllocFrame hands out a free frame, filled with Poison.
func (m *Memory) AllocFrame() (uint64, error) {
	if m.failAfter > 0 {
		m.failAfter--
		if m.failAfter == 0 {
			return 0, fmt.Errorf("hostmem: injected failure: %w", ErrNoMemory)
		}
	}
	if len(m.free) == 0 {
		return 0, ErrNoMemory
	}
	i := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.inUse[i] = true
	return m.base + uint64(i)*FrameSize, nil
}

// FreeFrame takes a frame back and poisons it. It panics on a frame it
// did not hand out or one that is already free: both are bugs in the
// caller.
func (m *Memory) FreeFrame(hpa uint64) {
	i := m.frameIndex(hpa)
	if !m.inUse[i] {
		panic(fmt.Sprintf("hostmem: double free of frame %#x", hpa))
	}
	m.inUse[i] = false
	m.free = append(m.free, i)
	f := m.words[i*wordsPerFrame : (i+1)*wordsPerFrame]
	for j := range f {
		f[j] = Poison
	}
}

// Frame returns the 512 words of an allocated frame. It panics when hpa is
// not an allocated frame: a table that follows a stale or corrupt entry
// is caught at once.
func (m *Memory) Frame(hpa uint64) *[wordsPerFrame]uint64 {
	i := m.frameIndex(hpa)
	if !m.inUse[i] {
		panic(fmt.Sprintf("hostmem: access to free frame %#x", hpa))
	}
	return (*[wordsPerFrame]uint64)(m.words[i*wordsPerFrame : (i+1)*wordsPerFrame])
}

func (m *Memory) frameIndex(hpa uint64) int {
	if hpa%FrameSize != 0 || hpa < m.base || hpa >= m.End() {
		panic(fmt.Sprintf("hostmem: %#x is not a frame of [%#x, %#x)", hpa, m.base, m.End()))
	}
	return int((hpa - m.base) / FrameSize)
}
