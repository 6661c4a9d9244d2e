// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package guestmem is a guest's RAM on one node: which host frame backs
// each 4 KiB guest page, reads and writes by guest-physical address for
// the device models and the boot loader (devices.GuestMemory), and the
// memory map the guest's firmware tables describe.
//
// The guest-physical layout is the PC's: RAM from 0 to Size, with the
// legacy hole 0x9FC00-0x100000 (EBDA, VGA, option and BIOS ROMs) reported
// reserved but backed like the rest, and device windows (virtio-mmio,
// IOAPIC, LAPIC) at and above MMIOBase, which RAM never reaches.
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
	// MMIOBase is where device windows start; RAM ends below it.
	MMIOBase = 0xC0000000
	// MinSize and MaxSize bound a guest's RAM.
	MinSize = 16 << 20
	MaxSize = MMIOBase
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

// RunSize is the size of a run: a large page.
const RunSize = 2 << 20

// RAM is a guest's memory, backed page by page, or run by run where the
// backing has runs.
type RAM struct {
	size  uint64
	pages []uint64 // host frame of each guest page
	runs  []bool   // per 2 MiB of guest RAM: backed by one run
	b     Backing
}

// New backs size bytes of guest RAM (a multiple of PageSize, MinSize to
// MaxSize) with frames from b: each whole, aligned 2 MiB of guest RAM
// with a run where b is a RunBacking that has one, the rest frame by
// frame. On error every frame taken is returned.
func New(size uint64, b Backing) (*RAM, error) {
	if size%PageSize != 0 || size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("guestmem: %d MiB of RAM: want a multiple of 4 KiB from %d MiB to %d MiB", size>>20, MinSize>>20, MaxSize>>20)
	}
	r := &RAM{size: size, pages: make([]uint64, size/PageSize), runs: make([]bool, size/RunSize), b: b}
	rb, _ := b.(RunBacking)
	const perRun = RunSize / PageSize
	for i := 0; i < len(r.pages); {
		if rb != nil && i%perRun == 0 && i+perRun <= len(r.pages) {
			if run, err := rb.AllocRun(); err == nil {
				for j := range perRun {
					r.pages[i+j] = run + uint64(j)*PageSize
				}
				r.runs[i/perRun] = true
				i += perRun
				continue
			}
			rb = nil // no run left: frames from here on
		}
		f, err := b.AllocFrame()
		if err != nil {
			r.free(i)
			return nil, fmt.Errorf("guestmem: backing page %d of %d: %w", i, size/PageSize, err)
		}
		r.pages[i] = f
		i++
	}
	return r, nil
}

// Free returns every frame to the backing; the RAM must not be used
// afterwards.
func (r *RAM) Free() { r.free(len(r.pages)) }

// free returns the frames of the first n pages.
func (r *RAM) free(n int) {
	const perRun = RunSize / PageSize
	for i := 0; i < n; {
		if i%perRun == 0 && i/perRun < len(r.runs) && r.runs[i/perRun] {
			r.b.(RunBacking).FreeRun(r.pages[i])
			i += perRun
			continue
		}
		r.b.FreeFrame(r.pages[i])
		i++
	}
	r.pages, r.runs = nil, nil
	r.size = 0
}

// Extents calls fn for each stretch of guest RAM backed by contiguous
// host frames, in address order, until fn returns an error: what a
// second-level table maps, with large pages where the stretch allows.
func (r *RAM) Extents(fn func(gpa, hpa, size uint64) error) error {
	for i := 0; i < len(r.pages); {
		j := i + 1
		for j < len(r.pages) && r.pages[j] == r.pages[j-1]+PageSize {
			j++
		}
		if err := fn(uint64(i)*PageSize, r.pages[i], uint64(j-i)*PageSize); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// Size returns the RAM's size in bytes.
func (r *RAM) Size() uint64 { return r.size }

// Frame returns the host frame backing the guest page holding gpa, for
// mapping it into EPT.
func (r *RAM) Frame(gpa uint64) (hpa uint64, ok bool) {
	if gpa >= r.size {
		return 0, false
	}
	return r.pages[gpa/PageSize], true
}

// check validates an access of n bytes at gpa.
func (r *RAM) check(gpa uint64, n int) error {
	if gpa >= r.size || uint64(n) > r.size-gpa {
		return fmt.Errorf("guestmem: %d bytes at %#x, RAM ends at %#x: %w", n, gpa, r.size, devices.ErrBadAddress)
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
		off := gpa % PageSize
		n := copy(p, r.b.Frame(r.pages[gpa/PageSize])[off:])
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
		off := gpa % PageSize
		n := copy(r.b.Frame(r.pages[gpa/PageSize])[off:], p)
		p, gpa = p[n:], gpa+uint64(n)
	}
	return nil
}

// Map is the guest's memory map (what its E820 table says): conventional
// memory, the reserved legacy hole, RAM from 1 MiB up.
func (r *RAM) Map() memmap.Map { return Layout(r.size) }

// Layout is the memory map of a guest with size bytes of RAM (at least
// HighRAMStart): what RAM.Map says, for guest memory held elsewhere (a
// distributed VM's).
func Layout(size uint64) memmap.Map {
	return memmap.Map{
		{Start: 0, Size: LowRAMEnd, Type: memmap.Usable},
		{Start: LowRAMEnd, Size: HighRAMStart - LowRAMEnd, Type: memmap.Reserved},
		{Start: HighRAMStart, Size: size - HighRAMStart, Type: memmap.Usable},
	}
}
