// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package guestmem

import (
	"bytes"
	"errors"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/ept/hostmem"
)

const (
	gib = 1 << 30
	// bigGuest is the guest of the tests of RAM above 4 GiB: RAM
	// [0, 3 GiB) and [4 GiB, 6 GiB).
	bigGuest = 5 * gib
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		size, low, high, end uint64
	}{
		{MinSize, MinSize, 0, MinSize},
		{MMIOBase, MMIOBase, 0, MMIOBase},
		{MMIOBase + PageSize, MMIOBase, PageSize, HighBase + PageSize},
		{bigGuest, 3 * gib, 2 * gib, 6 * gib},
		{MaxSize, MMIOBase, MaxSize - MMIOBase, MaxSize + gib},
	} {
		s := NewSplit(c.size)
		if s.Low != c.low || s.High != c.high || s.End() != c.end || s.Size() != c.size {
			t.Errorf("NewSplit(%#x) = %+v, end %#x; want low %#x high %#x end %#x", c.size, s, s.End(), c.low, c.high, c.end)
		}
	}
	s := NewSplit(bigGuest)
	if got := s.String(); got != "[0, 0xc0000000) + [0x100000000, 0x180000000)" {
		t.Errorf("String() = %q", got)
	}
	if r := s.Ranges(); len(r) != 2 || r[0] != (Range{0, 3 * gib}) || r[1] != (Range{HighBase, 2 * gib}) {
		t.Errorf("Ranges() = %x", r)
	}
	if r := NewSplit(MinSize).Ranges(); len(r) != 1 || r[0] != (Range{0, MinSize}) {
		t.Errorf("Ranges() of %#x = %x", MinSize, r)
	}
}

// TestSplitLookups: both ends of each range are RAM, the hole and the
// addresses past the end are not, and page indexes run on across the
// hole.
func TestSplitLookups(t *testing.T) {
	s := NewSplit(bigGuest)
	low := uint64(MMIOBase / PageSize)
	for _, c := range []struct {
		gpa   uint64
		index uint64
		ok    bool
	}{
		{0, 0, true},
		{MMIOBase - 1, low - 1, true},
		{MMIOBase, 0, false},
		{0xFEE00000, 0, false}, // the LAPIC
		{HighBase - 1, 0, false},
		{HighBase, low, true},
		{HighBase + PageSize + 5, low + 1, true},
		{6*gib - 1, bigGuest/PageSize - 1, true},
		{6 * gib, 0, false},
		{^uint64(0), 0, false},
	} {
		i, ok := s.Index(c.gpa)
		if ok != c.ok || ok && i != c.index {
			t.Errorf("Index(%#x) = %d, %v; want %d, %v", c.gpa, i, ok, c.index, c.ok)
		}
		if ok && s.Addr(i) != c.gpa&^(PageSize-1) {
			t.Errorf("Addr(%d) = %#x, want the page of %#x", i, s.Addr(i), c.gpa)
		}
	}
	for _, c := range []struct {
		gpa, n uint64
		ok     bool
	}{
		{MMIOBase - 4, 4, true},
		{MMIOBase - 4, 5, false}, // across into the hole
		{HighBase - 2, 4, false}, // from the hole into RAM
		{HighBase, 2 * gib, true},
		{HighBase, 2*gib + 1, false},
		{6*gib - 1, ^uint64(0), false},
	} {
		if got := s.Contains(c.gpa, c.n); got != c.ok {
			t.Errorf("Contains(%#x, %#x) = %v, want %v", c.gpa, c.n, got, c.ok)
		}
	}
}

// TestSplitMap: the E820 map of a guest with RAM above 4 GiB lists both
// ranges and reserves the MMIO hole; a smaller guest's is as before.
func TestSplitMap(t *testing.T) {
	want := memmap.Map{
		{Start: 0, Size: LowRAMEnd, Type: memmap.Usable},
		{Start: LowRAMEnd, Size: HighRAMStart - LowRAMEnd, Type: memmap.Reserved},
		{Start: HighRAMStart, Size: MMIOBase - HighRAMStart, Type: memmap.Usable},
		{Start: MMIOBase, Size: HighBase - MMIOBase, Type: memmap.Reserved},
		{Start: HighBase, Size: 2 * gib, Type: memmap.Usable},
	}
	got := Layout(bigGuest)
	if len(got) != len(want) {
		t.Fatalf("Layout(5 GiB) = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("region %d: %v, want %v", i, got[i], want[i])
		}
	}
	if n := got.Normalize(); len(n) != len(want) {
		t.Errorf("map does not normalize to %d regions: %v", len(want), n)
	}
	if m := Layout(64 << 20); len(m) != 3 || m[2].Start+m[2].Size != 64<<20 {
		t.Errorf("Layout(64 MiB) = %v", m)
	}
}

// FuzzSplit checks, for any size and address, that Index and Addr are
// inverse, that an address is RAM exactly when it is in one of Ranges,
// and that Contains agrees.
func FuzzSplit(f *testing.F) {
	for _, size := range []uint64{MinSize, MMIOBase, MMIOBase + PageSize, bigGuest, MaxSize} {
		for _, gpa := range []uint64{0, MMIOBase - 1, MMIOBase, HighBase - 1, HighBase, 6*gib - 1, 6 * gib} {
			f.Add(size, gpa, uint64(8))
		}
	}
	f.Fuzz(func(t *testing.T, size, gpa, n uint64) {
		size = (size%MaxSize)&^(PageSize-1) + PageSize
		s := NewSplit(size)
		inRange := false
		var end uint64
		for _, r := range s.Ranges() {
			if gpa >= r.Start && gpa-r.Start < r.Size {
				inRange, end = true, r.Start+r.Size
			}
		}
		i, ok := s.Index(gpa)
		if ok != inRange {
			t.Fatalf("%v: Index(%#x) says RAM %v, Ranges %v", s, gpa, ok, inRange)
		}
		if ok && (i >= s.Pages() || s.Addr(i) != gpa&^(PageSize-1)) {
			t.Fatalf("%v: Index(%#x) = %d, Addr gives %#x", s, gpa, i, s.Addr(i))
		}
		if got, want := s.Contains(gpa, n), inRange && n <= end-gpa; got != want {
			t.Fatalf("%v: Contains(%#x, %#x) = %v, want %v", s, gpa, n, got, want)
		}
	})
}

// lazyRuns is a RunBacking for guests of gigabytes: runs contiguous from
// runBase while it has them, then frames from frameBase, three pages
// apart; a frame's bytes exist once they are asked for.
type lazyRuns struct {
	runs, taken, freedRuns int
	next                   uint64
	frames, freedFrames    int
	data                   map[uint64]*[PageSize]byte
}

const (
	runBase   = 0x40_0000_0000 // 256 GiB
	frameBase = 0x80_0000_0000 // 512 GiB
)

func newLazy(runs int) *lazyRuns {
	return &lazyRuns{runs: runs, next: frameBase, data: map[uint64]*[PageSize]byte{}}
}

func (l *lazyRuns) AllocRun() (uint64, error) {
	if l.taken == l.runs {
		return 0, errors.New("no run left")
	}
	l.taken++
	return runBase + uint64(l.taken-1)*RunSize, nil
}

func (l *lazyRuns) FreeRun(uint64) { l.freedRuns++ }

func (l *lazyRuns) AllocFrame() (uint64, error) {
	l.next += 3 * PageSize
	l.frames++
	return l.next, nil
}

func (l *lazyRuns) FreeFrame(uint64) { l.freedFrames++ }

func (l *lazyRuns) Frame(hpa uint64) *[PageSize]byte {
	if l.data[hpa] == nil {
		l.data[hpa] = new([PageSize]byte)
	}
	return l.data[hpa]
}

// newBig backs bigGuest with runs but for its last three chunks (6 MiB
// of frames at the top of the high range).
func newBig(t *testing.T) (*RAM, *lazyRuns) {
	t.Helper()
	l := newLazy(bigGuest/RunSize - 3)
	r, err := New(bigGuest, l)
	if err != nil {
		t.Fatal(err)
	}
	return r, l
}

// TestHighRAM: a 5 GiB guest reads and writes at both ends of both
// ranges, the two ranges are different memory, and accesses into or
// across the hole fail whole without allocating.
func TestHighRAM(t *testing.T) {
	r, l := newBig(t)
	if r.Size() != bigGuest || r.Split() != NewSplit(bigGuest) {
		t.Fatalf("Size %#x, Split %v", r.Size(), r.Split())
	}
	for i, gpa := range []uint64{0, MMIOBase - 8, HighBase, HighBase + RunSize - 4, 6*gib - 8} {
		want := []byte{byte(i), 1, 2, 3}
		if err := r.WriteAt(want, gpa); err != nil {
			t.Fatalf("write at %#x: %v", gpa, err)
		}
		got := make([]byte, 4)
		if err := r.ReadAt(got, gpa); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read at %#x: %v %v", gpa, got, err)
		}
	}
	got := make([]byte, 4)
	r.ReadAt(got, 0)
	if got[0] != 0 {
		t.Errorf("the write at 4 GiB changed address 0: %v", got)
	}
	if hpa, ok := r.Frame(HighBase); !ok || hpa != runBase+MMIOBase/RunSize*RunSize {
		t.Errorf("Frame(4 GiB) = %#x, %v: want the run after the low range's", hpa, ok)
	}
	if hpa, ok := r.Frame(6*gib - 1); !ok || hpa < frameBase {
		t.Errorf("Frame(6 GiB - 1) = %#x, %v: want a single frame", hpa, ok)
	}
	for _, c := range []struct {
		gpa uint64
		n   int
	}{{MMIOBase - 2, 4}, {MMIOBase, 1}, {0xFEC00000, 4}, {HighBase - 2, 4}, {6*gib - 2, 4}, {6 * gib, 1}} {
		buf := []byte{9, 9, 9, 9}[:c.n]
		if err := r.WriteAt(buf, c.gpa); !errors.Is(err, devices.ErrBadAddress) {
			t.Errorf("write of %d at %#x: %v, want ErrBadAddress", c.n, c.gpa, err)
		}
		if err := r.ReadAt(buf, c.gpa); !errors.Is(err, devices.ErrBadAddress) {
			t.Errorf("read of %d at %#x: %v, want ErrBadAddress", c.n, c.gpa, err)
		}
		if _, ok := r.Frame(c.gpa); ok && c.gpa >= MMIOBase && c.gpa < HighBase {
			t.Errorf("Frame(%#x) in the hole reported backed", c.gpa)
		}
	}
	r.ReadAt(got, MMIOBase-8)
	if !bytes.Equal(got, []byte{1, 1, 2, 3}) {
		t.Errorf("a refused write across the hole changed memory: %v", got)
	}
	buf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		r.WriteAt(buf, HighBase+4090)
		r.ReadAt(buf, 6*gib-64)
		r.Frame(MMIOBase)
		r.Frame(HighBase + RunSize)
	}); n != 0 {
		t.Errorf("%v allocations per access above 4 GiB", n)
	}
	r.Free()
	if l.freedRuns != l.taken || l.freedFrames != l.frames || l.frames != 3*perRun {
		t.Errorf("after Free: %d of %d runs and %d of %d frames freed", l.freedRuns, l.taken, l.freedFrames, l.frames)
	}
}

// TestHighExtents: Extents reports the low range and the high range
// apart, although their runs are contiguous in host memory, and covers
// every byte.
func TestHighExtents(t *testing.T) {
	r, _ := newBig(t)
	var ext [][3]uint64
	var total uint64
	r.Extents(func(gpa, hpa, size uint64) error {
		ext = append(ext, [3]uint64{gpa, hpa, size})
		total += size
		if gpa < MMIOBase && gpa+size > MMIOBase || gpa >= MMIOBase && gpa < HighBase {
			t.Errorf("extent [%#x, +%#x) reaches into the hole", gpa, size)
		}
		return nil
	})
	if total != bigGuest {
		t.Errorf("extents cover %#x bytes", total)
	}
	if ext[0] != [3]uint64{0, runBase, MMIOBase} || ext[1] != [3]uint64{HighBase, runBase + MMIOBase, 2*gib - 3*RunSize} {
		t.Errorf("first extents %x: want the low range's runs, then the high range's", ext[:2])
	}
}

// TestHighEPT maps a 5 GiB guest into a second-level table as the
// hypervisor does: both ranges are mapped, with 2 MiB pages where runs
// back them and 4 KiB pages where frames do, and the hole is not.
func TestHighEPT(t *testing.T) {
	r, _ := newBig(t)
	mem := hostmem.New(0x10_0000_0000, 64)
	caps := ept.Caps{MaxPhysAddr: 46, PageWalk4: true, WriteBackEPTP: true, Pages2M: true, InvEPTSingle: true, InvEPTAll: true}
	tab, err := ept.New(ept.Config{Mem: mem, Alloc: mem, Invalidator: nopInvalidator{}, Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Extents(func(gpa, hpa, size uint64) error {
		return tab.Map(gpa, hpa, size, ept.PermRWX, ept.WriteBack)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		gpa, page uint64 // page 0: not mapped
	}{
		{0, RunSize},
		{MMIOBase - 1, RunSize},
		{MMIOBase, 0},
		{0xD0000000, 0}, // virtio-mmio
		{0xFEC00000, 0}, // the IOAPIC
		{0xFEE00000, 0}, // the LAPIC
		{HighBase - 1, 0},
		{HighBase, RunSize},
		{6*gib - 3*RunSize - 1, RunSize},
		{6*gib - 3*RunSize, PageSize},
		{6*gib - 1, PageSize},
		{6 * gib, 0},
	} {
		hpa, _, size, ok := tab.Translate(c.gpa)
		want, backed := r.Frame(c.gpa)
		if ok != (c.page != 0) || ok && (size != c.page || hpa&^(PageSize-1) != want || !backed) {
			t.Errorf("GPA %#x: translates %v to %#x with %#x pages; want %v, %#x pages of %#x", c.gpa, ok, hpa, size, c.page != 0, c.page, want)
		}
	}
}

type nopInvalidator struct{}

func (nopInvalidator) InvalidateSingle(uint64) {}
func (nopInvalidator) InvalidateGlobal()       {}
