// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package guestmem is a guest's RAM on one node: which host frame backs
// each 4 KiB guest page, reads and writes by guest-physical address for
// the device models and the boot loader (devices.GuestMemory), and the
// memory map the guest's firmware tables describe.
//
// The guest-physical layout is the PC's: RAM from 0 up to MMIOBase, with
// the legacy hole 0x9FC00-0x100000 (EBDA, VGA, option and BIOS ROMs)
// reported reserved but backed like the rest; device windows
// (virtio-mmio, IOAPIC, LAPIC) in the MMIO hole [MMIOBase, 4 GiB), which
// RAM never reaches; and the RAM that does not fit below the hole from
// HighBase (4 GiB) up. A guest of 5 GiB has RAM [0, 3 GiB) and
// [4 GiB, 7 GiB). Split says where a size of RAM goes.
package guestmem

import (
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/page"
	"github.com/big-iron/big-iron/vmm/devices"
)

// PageSize is the size of a guest page.
const PageSize = page.Size

// Guest-physical layout constants.
const (
	// LowRAMEnd is where conventional memory ends: the EBDA starts here
	// on a PC.
	LowRAMEnd = 0x9FC00
	// HighRAMStart is the first address above the legacy hole.
	HighRAMStart = 0x100000
	// MMIOBase is where device windows start; RAM below 4 GiB ends
	// below it.
	MMIOBase = 0xC0000000
	// HighBase is where RAM continues above the MMIO hole: 4 GiB.
	HighBase = 1 << 32
	// MinSize and MaxSize bound a guest's RAM. MaxSize, 1 TiB, is RAM
	// up to 1 TiB + 1 GiB in guest-physical space: 41 address bits, so
	// a processor's width (CPUID 0x80000008) may refuse the largest
	// sizes (see Split.End). What the bookkeeping costs is 8 bytes per
	// 2 MiB backed by a run and 8 per 4 KiB backed frame by frame.
	MinSize = 16 << 20
	MaxSize = 1 << 40
)

// Backing gives RAM its host frames.
type Backing interface {
	// AllocFrame returns the host-physical address of a zeroed 4 KiB
	// frame.
	AllocFrame() (uint64, error)
	// FreeFrame returns a frame from AllocFrame.
	FreeFrame(hpa uint64)
	// Frame returns the bytes of the frame at hpa.
	Frame(hpa uint64) *[PageSize]byte
}

// RunBacking is a Backing that can also give 2 MiB of contiguous frames
// aligned to 2 MiB (a run), which second-level tables map with one large
// page.
type RunBacking interface {
	Backing
	// AllocRun returns the first frame of a zeroed run; an error means
	// no run is left (single frames may be).
	AllocRun() (uint64, error)
	// FreeRun returns a run from AllocRun.
	FreeRun(hpa uint64)
}

// HugeRunBacking is a RunBacking that can also give 1 GiB of contiguous
// frames aligned to 1 GiB (a huge run), which second-level tables map
// with one 1 GiB page where the processor has them. RAM frees a huge run
// as the runs it is made of.
type HugeRunBacking interface {
	RunBacking
	// AllocHugeRun returns the first frame of a zeroed huge run; an
	// error means none is left (runs may be).
	AllocHugeRun() (uint64, error)
}

// RunSize is the size of a run: a large page. A huge run is HugeRunSize.
const (
	RunSize     = 2 << 20
	HugeRunSize = 1 << 30
)

// perHuge is the number of chunks in a huge run.
const perHuge = HugeRunSize / RunSize

// perRun is the number of pages in a run, or in a chunk.
const perRun = RunSize / PageSize

// chunkFrames marks a chunk backed frame by frame: the rest of the word,
// shifted right by one, indexes RAM.frames. A chunk without it holds the
// first frame of its run (2 MiB-aligned, so bit 0 is free).
const chunkFrames = 1

// RAM is a guest's memory, backed page by page, or run by run where the
// backing has runs. Its pages, numbered as Split says, form chunks of
// perRun pages (the last may be shorter); a chunk is one run or single
// frames. Both ranges start 2 MiB-aligned (MMIOBase is), so a chunk is
// an aligned 2 MiB of guest-physical space, which a second-level table
// maps with one large page when it is a run.
type RAM struct {
	split  Split
	chunks []uint64         // per chunk: run's first frame, or frames index<<1 | chunkFrames
	frames [][perRun]uint64 // host frame of each page of the chunks backed frame by frame
	b      Backing
}

// New backs size bytes of guest RAM (a multiple of PageSize, MinSize to
// MaxSize), laid out as NewSplit(size) says, with frames from b: each
// chunk with a run where b is a RunBacking that has one, the rest frame
// by frame. On error every frame taken is returned.
func New(size uint64, b Backing) (*RAM, error) {
	if size%PageSize != 0 || size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("guestmem: %s of RAM: want a multiple of 4 KiB from %s to %s",
			memmap.FormatSize(size), memmap.FormatSize(MinSize), memmap.FormatSize(MaxSize))
	}
	s := NewSplit(size)
	n := s.Pages()
	r := &RAM{split: s, chunks: make([]uint64, (n+perRun-1)/perRun), b: b}
	rb, _ := b.(RunBacking)
	hb, _ := b.(HugeRunBacking)
	for c := uint64(0); c < uint64(len(r.chunks)); c++ {
		first := c * perRun
		// A whole, aligned GiB of pages: one huge run if there is one.
		// (Both of Split's ranges start GiB-aligned, so the pages'
		// guest-physical addresses are aligned as their indexes are.)
		if hb != nil && c%perHuge == 0 && first+perHuge*perRun <= n {
			if huge, err := hb.AllocHugeRun(); err == nil {
				for i := range uint64(perHuge) {
					r.chunks[c+i] = huge + i*RunSize
				}
				c += perHuge - 1
				continue
			}
			hb = nil // none left: runs from here on
		}
		if rb != nil && first+perRun <= n {
			if run, err := rb.AllocRun(); err == nil {
				r.chunks[c] = run
				continue
			}
			rb = nil // no run left: frames from here on
		}
		if err := r.backFrames(c, min(perRun, n-first)); err != nil {
			r.free(int(c))
			return nil, fmt.Errorf("guestmem: backing %s of RAM: %w", memmap.FormatSize(size), err)
		}
	}
	return r, nil
}

// backFrames backs the first k pages of chunk c with single frames; on
// error it returns those it took.
func (r *RAM) backFrames(c, k uint64) error {
	r.frames = append(r.frames, [perRun]uint64{})
	fs := &r.frames[len(r.frames)-1]
	for i := range k {
		f, err := r.b.AllocFrame()
		if err != nil {
			for _, f := range fs[:i] {
				r.b.FreeFrame(f)
			}
			r.frames = r.frames[:len(r.frames)-1]
			return fmt.Errorf("page %d of %d: %w", c*perRun+i, r.split.Pages(), err)
		}
		fs[i] = f
	}
	r.chunks[c] = uint64(len(r.frames)-1)<<1 | chunkFrames
	return nil
}

// Free returns every frame to the backing; the RAM must not be used
// afterwards.
func (r *RAM) Free() { r.free(len(r.chunks)) }

// free returns the frames of the first n chunks.
func (r *RAM) free(n int) {
	pages := r.split.Pages()
	for c, v := range r.chunks[:n] {
		if v&chunkFrames == 0 {
			r.b.(RunBacking).FreeRun(v)
			continue
		}
		k := min(perRun, pages-uint64(c)*perRun)
		for _, f := range r.frames[v>>1][:k] {
			r.b.FreeFrame(f)
		}
	}
	r.chunks, r.frames = nil, nil
	r.split = Split{}
}

// frame returns the host frame of page index i. It does not allocate.
func (r *RAM) frame(i uint64) uint64 {
	v := r.chunks[i/perRun]
	if v&chunkFrames == 0 {
		return v + i%perRun*PageSize
	}
	return r.frames[v>>1][i%perRun]
}

// stride returns the page index after the stretch of contiguous frames
// that page index i starts in its chunk: the chunk's end for a run.
func (r *RAM) stride(i uint64) uint64 {
	if r.chunks[i/perRun]&chunkFrames == 0 {
		return min((i/perRun+1)*perRun, r.split.Pages())
	}
	return i + 1
}

// Extents calls fn for each stretch of guest RAM backed by contiguous
// host frames, in address order, until fn returns an error: what a
// second-level table maps, with large pages where the stretch allows. No
// stretch crosses the MMIO hole.
func (r *RAM) Extents(fn func(gpa, hpa, size uint64) error) error {
	n, low := r.split.Pages(), r.split.Low/PageSize
	for i := uint64(0); i < n; {
		start, hpa := i, r.frame(i)
		i = r.stride(i)
		for i < n && i != low && r.frame(i) == hpa+(i-start)*PageSize {
			i = r.stride(i)
		}
		if err := fn(r.split.Addr(start), hpa, (i-start)*PageSize); err != nil {
			return err
		}
	}
	return nil
}

// Size returns the RAM's size in bytes.
func (r *RAM) Size() uint64 { return r.split.Size() }

// Split returns where the RAM lies in guest-physical space.
func (r *RAM) Split() Split { return r.split }

// Frame returns the host frame backing the guest page holding gpa, for
// mapping it into EPT; false if gpa is not RAM. It does not allocate.
func (r *RAM) Frame(gpa uint64) (hpa uint64, ok bool) {
	i, ok := r.split.Index(gpa)
	if !ok {
		return 0, false
	}
	return r.frame(i), true
}

// check validates an access of n bytes at gpa.
func (r *RAM) check(gpa uint64, n int) error {
	if !r.split.Contains(gpa, uint64(n)) {
		return fmt.Errorf("guestmem: %d bytes at %#x, RAM is %s: %w", n, gpa, r.split, devices.ErrBadAddress)
	}
	return nil
}

// ReadAt copies guest memory at gpa into p. It implements
// devices.GuestMemory; it does not allocate.
func (r *RAM) ReadAt(p []byte, gpa uint64) error {
	if err := r.check(gpa, len(p)); err != nil {
		return err
	}
	for len(p) > 0 {
		i, _ := r.split.Index(gpa)
		n := copy(p, r.b.Frame(r.frame(i))[gpa%PageSize:])
		p, gpa = p[n:], gpa+uint64(n)
	}
	return nil
}

// WriteAt copies p into guest memory at gpa. It implements
// devices.GuestMemory; it does not allocate.
func (r *RAM) WriteAt(p []byte, gpa uint64) error {
	if err := r.check(gpa, len(p)); err != nil {
		return err
	}
	for len(p) > 0 {
		i, _ := r.split.Index(gpa)
		n := copy(r.b.Frame(r.frame(i))[gpa%PageSize:], p)
		p, gpa = p[n:], gpa+uint64(n)
	}
	return nil
}

// Map is the guest's memory map (what its E820 table says): see
// Split.Map.
func (r *RAM) Map() memmap.Map { return r.split.Map() }

// Layout is the memory map of a guest with size bytes of RAM (at least
// HighRAMStart): what RAM.Map says, for guest memory held elsewhere (a
// distributed VM's).
func Layout(size uint64) memmap.Map { return NewSplit(size).Map() }
