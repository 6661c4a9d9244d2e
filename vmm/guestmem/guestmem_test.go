// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package guestmem

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/big-iron/big-iron/vmm/devices"
)

// fakeFrames hands out frames from a host memory modelled as a map, in a
// scrambled order so that contiguous guest pages are not contiguous host
// frames.
type fakeFrames struct {
	next   uint64
	limit  int
	frames map[uint64]*[PageSize]byte
	freed  int
}

func newFake(limit int) *fakeFrames {
	return &fakeFrames{next: 0x40000000, limit: limit, frames: map[uint64]*[PageSize]byte{}}
}

func (f *fakeFrames) AllocFrame() (uint64, error) {
	if len(f.frames) >= f.limit {
		return 0, errors.New("out of frames")
	}
	f.next += 3 * PageSize
	f.frames[f.next] = new([PageSize]byte)
	return f.next, nil
}

func (f *fakeFrames) FreeFrame(hpa uint64) {
	if _, ok := f.frames[hpa]; !ok {
		panic(fmt.Sprintf("freeing foreign frame %#x", hpa))
	}
	delete(f.frames, hpa)
	f.freed++
}

func (f *fakeFrames) Frame(hpa uint64) *[PageSize]byte { return f.frames[hpa] }

var _ devices.GuestMemory = (*RAM)(nil)

func TestReadWriteAcrossPages(t *testing.T) {
	f := newFake(1 << 20)
	r, err := New(MinSize, f)
	if err != nil {
		t.Fatal(err)
	}
	// A reference model: one flat slice.
	ref := make([]byte, MinSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		n := rng.IntN(3 * PageSize)
		gpa := rng.Uint64N(MinSize - uint64(n))
		buf := make([]byte, n)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := r.WriteAt(buf, gpa); err != nil {
			t.Fatal(err)
		}
		copy(ref[gpa:], buf)
		// read back a different window
		m := rng.IntN(3 * PageSize)
		at := rng.Uint64N(MinSize - uint64(m))
		got := make([]byte, m)
		if err := r.ReadAt(got, at); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, ref[at:at+uint64(m)]) {
			t.Fatalf("read %d bytes at %#x differ from the reference", m, at)
		}
	}
	// Frame gives the frame that holds the bytes.
	hpa, ok := r.Frame(0x12345)
	if !ok || f.Frame(hpa)[0x345] != ref[0x12345] {
		t.Errorf("Frame(0x12345) = %#x, %v: not the page holding the byte", hpa, ok)
	}
	if _, ok := r.Frame(MinSize); ok {
		t.Error("Frame past the end reported backed")
	}
	r.Free()
	if len(f.frames) != 0 {
		t.Errorf("%d frames still held after Free", len(f.frames))
	}
}

func TestOutOfRangeFailsWhole(t *testing.T) {
	r, err := New(MinSize, newFake(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteAt([]byte{1, 2, 3, 4}, MinSize-4); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		gpa uint64
		n   int
	}{{MinSize - 2, 4}, {MinSize, 1}, {^uint64(0), 2}, {^uint64(0) - 1, 4}} {
		buf := make([]byte, c.n)
		if err := r.WriteAt(buf, c.gpa); !errors.Is(err, devices.ErrBadAddress) {
			t.Errorf("write of %d at %#x: %v, want ErrBadAddress", c.n, c.gpa, err)
		}
		if err := r.ReadAt(buf, c.gpa); !errors.Is(err, devices.ErrBadAddress) {
			t.Errorf("read of %d at %#x: %v, want ErrBadAddress", c.n, c.gpa, err)
		}
	}
	// the failed partial write at the end changed nothing
	got := make([]byte, 4)
	r.ReadAt(got, MinSize-4)
	if !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Errorf("a refused write changed memory: %v", got)
	}
}

func TestNewRefusesAndReturnsFrames(t *testing.T) {
	for _, size := range []uint64{0, MinSize - PageSize, MinSize + 1, MaxSize + PageSize} {
		if _, err := New(size, newFake(1<<20)); err == nil {
			t.Errorf("New(%#x) accepted", size)
		}
	}
	f := newFake(100)
	if _, err := New(MinSize, f); err == nil {
		t.Fatal("New with too few frames succeeded")
	}
	if len(f.frames) != 0 || f.freed != 100 {
		t.Errorf("after a failed New: %d frames held, %d freed; want 0 and 100", len(f.frames), f.freed)
	}
}

func TestMap(t *testing.T) {
	r, err := New(64<<20, newFake(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Map()
	var usable uint64
	for _, reg := range m {
		if reg.Type == 1 {
			usable += reg.Size
		}
	}
	if want := uint64(64<<20) - (HighRAMStart - LowRAMEnd); usable != want {
		t.Errorf("usable %#x, want %#x", usable, want)
	}
	if n := m.Normalize(); len(n) != 3 {
		t.Errorf("map does not normalize to 3 regions: %v", n)
	}
}

func TestNoAllocations(t *testing.T) {
	r, err := New(MinSize, newFake(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		r.WriteAt(buf, 4090)
		r.ReadAt(buf, 4090)
	}); n != 0 {
		t.Errorf("%v allocations per read+write", n)
	}
}

func BenchmarkRead4K(b *testing.B) {
	r, err := New(MinSize, newFake(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, PageSize)
	b.SetBytes(PageSize)
	for i := 0; b.Loop(); i++ {
		r.ReadAt(buf, uint64(i%1000)*PageSize+100)
	}
}

// fakeRuns is fakeFrames that also has a few runs, contiguous from
// 0x80000000.
type fakeRuns struct {
	*fakeFrames
	runs, taken int
	freedRuns   []uint64
}

func (f *fakeRuns) AllocRun() (uint64, error) {
	if f.taken == f.runs {
		return 0, errors.New("no run left")
	}
	hpa := uint64(0x80000000) + uint64(f.taken)*RunSize
	for p := hpa; p < hpa+RunSize; p += PageSize {
		f.frames[p] = new([PageSize]byte)
	}
	f.taken++
	return hpa, nil
}

func (f *fakeRuns) FreeRun(hpa uint64) {
	for p := hpa; p < hpa+RunSize; p += PageSize {
		if _, ok := f.frames[p]; !ok {
			panic(fmt.Sprintf("freeing foreign run %#x", hpa))
		}
		delete(f.frames, p)
	}
	f.freedRuns = append(f.freedRuns, hpa)
}

// TestRuns: guest RAM takes runs for whole 2 MiB stretches while the
// backing has them, then frames; Extents reports the runs as one
// contiguous stretch (one large page each for the tables), and Free and a
// failed New give runs back as runs.
func TestRuns(t *testing.T) {
	f := &fakeRuns{fakeFrames: newFake(1 << 20), runs: 3}
	r, err := New(MinSize+PageSize, f) // 16 MiB and a page: 3 runs, then frames
	if err != nil {
		t.Fatal(err)
	}
	ext := extents(r)
	if len(ext) < 2 || ext[0] != [3]uint64{0, 0x80000000, 3 * RunSize} {
		t.Fatalf("extents %x: want the three runs as one stretch first", ext[:min(len(ext), 3)])
	}
	var total uint64
	for _, e := range ext {
		total += e[2]
	}
	if total != MinSize+PageSize {
		t.Errorf("extents cover %#x bytes", total)
	}
	// Memory reads back across a run's end into frames.
	want := []byte("across the last run into frames")
	if err := r.WriteAt(want, 3*RunSize-10); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	r.ReadAt(got, 3*RunSize-10)
	if !bytes.Equal(got, want) {
		t.Errorf("read back %q", got)
	}
	r.Free()
	if len(f.frames) != 0 || len(f.freedRuns) != 3 {
		t.Errorf("after Free: %d frames held, %d runs freed", len(f.frames), len(f.freedRuns))
	}
	// A New that runs out returns runs and frames alike.
	f2 := &fakeRuns{fakeFrames: newFake(2*RunSize/PageSize + 10), runs: 2}
	if _, err := New(MinSize, f2); err == nil {
		t.Fatal("New with too little memory succeeded")
	}
	if len(f2.frames) != 0 || len(f2.freedRuns) != 2 || f2.freed != 10 {
		t.Errorf("after a failed New: %d held, %d runs and %d frames freed", len(f2.frames), len(f2.freedRuns), f2.freed)
	}
}

// fakeHuge is fakeRuns with huge runs too, contiguous from 256 GiB, whose
// frames exist only once touched.
type fakeHuge struct {
	*fakeRuns
	huge, hugeTaken int
	lazy            map[uint64]*[PageSize]byte
}

const hugeBase = 256 << 30

func (f *fakeHuge) AllocHugeRun() (uint64, error) {
	if f.hugeTaken == f.huge {
		return 0, errors.New("no huge run left")
	}
	f.hugeTaken++
	return hugeBase + uint64(f.hugeTaken-1)*HugeRunSize, nil
}

func (f *fakeHuge) inHuge(hpa uint64) bool {
	return hpa >= hugeBase && hpa < hugeBase+uint64(f.hugeTaken)*HugeRunSize
}

func (f *fakeHuge) Frame(hpa uint64) *[PageSize]byte {
	if !f.inHuge(hpa) {
		return f.fakeRuns.Frame(hpa)
	}
	p := f.lazy[hpa]
	if p == nil {
		p = new([PageSize]byte)
		f.lazy[hpa] = p
	}
	return p
}

func (f *fakeHuge) FreeRun(hpa uint64) {
	if !f.inHuge(hpa) {
		f.fakeRuns.FreeRun(hpa)
		return
	}
	if hpa%RunSize != 0 {
		panic(fmt.Sprintf("freeing %#x, not a run of a huge run", hpa))
	}
	f.freedRuns = append(f.freedRuns, hpa)
}

// TestHugeRuns: each whole, aligned GiB of guest RAM takes a huge run
// while the backing has them, then runs; above the MMIO hole too; Extents
// reports contiguous huge runs as one stretch, which a second-level table
// maps with 1 GiB pages; Free gives a huge run back as its runs.
func TestHugeRuns(t *testing.T) {
	f := &fakeHuge{fakeRuns: &fakeRuns{fakeFrames: newFake(1 << 20), runs: 8}, huge: 4, lazy: map[uint64]*[PageSize]byte{}}
	r, err := New(4<<30+4<<20, f) // 3 GiB below the hole, 1 GiB and 4 MiB above
	if err != nil {
		t.Fatal(err)
	}
	ext := extents(r)
	want := [][3]uint64{{0, hugeBase, 3 << 30}, {HighBase, hugeBase + 3<<30, 1 << 30}, {HighBase + 1<<30, 0x80000000, 2 * RunSize}}
	if !slices.Equal(ext, want) {
		t.Fatalf("extents %#x, want %#x", ext, want)
	}
	msg := []byte("across a huge run's end")
	if err := r.WriteAt(msg, HighBase+1<<30-8); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	r.ReadAt(got, HighBase+1<<30-8)
	if !bytes.Equal(got, msg) {
		t.Errorf("read back %q", got)
	}
	r.Free()
	if n := len(f.freedRuns); n != 4*perHuge+2 {
		t.Errorf("after Free: %d runs freed, want %d", n, 4*perHuge+2)
	}
	// Less than a GiB takes no huge run.
	f2 := &fakeHuge{fakeRuns: &fakeRuns{fakeFrames: newFake(1 << 20), runs: 600}, huge: 4, lazy: map[uint64]*[PageSize]byte{}}
	if _, err := New(1<<30-RunSize, f2); err != nil || f2.hugeTaken != 0 {
		t.Errorf("a guest under 1 GiB: %d huge runs taken, %v", f2.hugeTaken, err)
	}
}

// extents returns r's stretches as Extents reports them: gpa, hpa, size.
func extents(r *RAM) [][3]uint64 {
	var ext [][3]uint64
	r.Extents(func(gpa, hpa, size uint64) error {
		ext = append(ext, [3]uint64{gpa, hpa, size})
		return nil
	})
	return ext
}
