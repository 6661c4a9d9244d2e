package ept

import (
	"fmt"
	"math/rand"
	"testing"
)

// chooser supplies the random decisions of an operation sequence, from a
// seeded generator or from fuzzer bytes.
type chooser interface {
	intn(n int) int // in [0, n)
	more() bool
}

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.Intn(n) }
func (c randChooser) more() bool     { return true }

type byteChooser struct{ b []byte }

func (c *byteChooser) more() bool { return len(c.b) > 0 }

func (c *byteChooser) intn(n int) int {
	var v, k int
	for need := n - 1; need > 0 && len(c.b) > 0; need >>= 8 {
		v |= int(c.b[0]) << k
		c.b = c.b[1:]
		k += 8
	}
	return v % n
}

// modelPage is the reference model's view of one 4-KiB guest page.
type modelPage struct {
	hpa  uint64
	perm Perm // 0: not mapped
}

// propRun drives a Table and a reference model (a slice indexed by 4-KiB
// page) through the same random operations and compares them.
type propRun struct {
	t         *testing.T
	e         *env
	c         chooser
	base      uint64 // GPA of the window
	model     []modelPage
	batch     bool
	sizes     []uint64 // page sizes that fit the window
	fullEvery int
	recent    [4][2]uint64 // GPA and size of recent operations, to touch
	nOps      int
}

func newPropRun(t *testing.T, f Format, c chooser, base, window uint64, frames, fullEvery int) *propRun {
	p := &propRun{t: t, e: newFormatEnv(t, f, formatCaps(f), false, frames), c: c, base: base,
		model: make([]modelPage, window/PageSize4K), fullEvery: fullEvery}
	for _, ps := range []uint64{PageSize4K, PageSize2M, PageSize1G} {
		if ps <= window {
			p.sizes = append(p.sizes, ps)
		}
	}
	return p
}

func (p *propRun) window() uint64 { return uint64(len(p.model)) * PageSize4K }

// perm picks rights the table's format can express: NPT has no
// execute-only.
func (p *propRun) perm() Perm {
	if p.e.tb.Format() == NPT {
		return []Perm{PermRead, PermRW, PermRX, PermRWX}[p.c.intn(4)]
	}
	return []Perm{PermRead, PermRW, PermRX, PermRWX, PermExec}[p.c.intn(5)]
}

// memType picks a memory type the table's format can express: NPT, with
// the power-on host PAT, has no write-combining or write-protected.
func (p *propRun) memType() MemType {
	if p.e.tb.Format() == NPT {
		return []MemType{WriteBack, Uncacheable, WriteThrough}[p.c.intn(3)]
	}
	return []MemType{WriteBack, Uncacheable, WriteCombining, WriteThrough, WriteProtected}[p.c.intn(5)]
}

// pageRange picks a random 4-KiB-aligned range in the window, mostly
// small, sometimes spanning large-page boundaries or the whole window.
func (p *propRun) pageRange() (gpa, size uint64) {
	n := len(p.model)
	var pages int
	switch p.c.intn(4) {
	case 0:
		pages = 1 + p.c.intn(4)
	case 1:
		pages = 1 + p.c.intn(min(n, 1100))
	case 2:
		pages = 1 + p.c.intn(n)
	default:
		pages = n
	}
	start := p.c.intn(n - pages + 1)
	return p.base + uint64(start)*PageSize4K, uint64(pages) * PageSize4K
}

// mapRange picks a range aligned to a random page size, and an HPA that
// shares that alignment most of the time.
func (p *propRun) mapRange() (gpa, hpa, size, ps uint64) {
	ps = p.sizes[p.c.intn(len(p.sizes))]
	slots := p.window() / ps
	var count uint64 = 1
	if ps == PageSize4K {
		count = 1 + uint64(p.c.intn(1100))
	} else if ps == PageSize2M {
		count = 1 + uint64(p.c.intn(4))
	}
	count = min(count, slots)
	gpa = p.base + ps*uint64(p.c.intn(int(slots-count+1)))
	size = count * ps
	hpa = guestHPA + ps*uint64(p.c.intn(64))
	if p.c.intn(4) == 0 {
		hpa += PageSize4K * uint64(p.c.intn(512))
	}
	return gpa, hpa, size, ps
}

func (p *propRun) setModel(gpa, size, hpa uint64, perm Perm) {
	first := (gpa - p.base) / PageSize4K
	for k := uint64(0); k < size/PageSize4K; k++ {
		m := &p.model[first+k]
		if perm == 0 {
			*m = modelPage{}
		} else {
			*m = modelPage{hpa + k*PageSize4K, perm}
		}
	}
}

func (p *propRun) protectModel(gpa, size uint64, perm Perm) {
	first := (gpa - p.base) / PageSize4K
	for k := uint64(0); k < size/PageSize4K; k++ {
		if m := &p.model[first+k]; m.perm != 0 {
			m.perm = perm
		}
	}
}

// step performs one random operation and returns a description of it and
// the range it touched.
func (p *propRun) step() (what string, gpa, size uint64) {
	tb := p.e.tb
	var err error
	switch op := p.c.intn(10); {
	case op < 3:
		var hpa uint64
		gpa, hpa, size, _ = p.mapRange()
		perm, mt := p.perm(), p.memType()
		what = fmt.Sprintf("Map(%#x, %#x, %#x, %v, %v)", gpa, hpa, size, perm, mt)
		err = tb.Map(gpa, hpa, size, perm, mt)
		p.setModel(gpa, size, hpa, perm)
	case op < 4:
		var hpa, ps uint64
		gpa, hpa, size, ps = p.mapRange()
		hpa &^= ps - 1
		perm := p.perm()
		what = fmt.Sprintf("MapPages(%#x, %#x, %#x, %#x, %v)", gpa, hpa, size, ps, perm)
		err = tb.MapPages(gpa, hpa, size, ps, perm, WriteBack)
		p.setModel(gpa, size, hpa, perm)
	case op < 6:
		gpa, size = p.pageRange()
		what = fmt.Sprintf("Unmap(%#x, %#x)", gpa, size)
		err = tb.Unmap(gpa, size)
		p.setModel(gpa, size, 0, 0)
	case op < 8:
		gpa, size = p.pageRange()
		perm := p.perm()
		what = fmt.Sprintf("Protect(%#x, %#x, %v)", gpa, size, perm)
		err = tb.Protect(gpa, size, perm)
		p.protectModel(gpa, size, perm)
	case op < 9:
		// The processor caches translations of pages the guest uses:
		// pages anywhere, and pages in recently changed ranges, which
		// the next operations are likely to change again.
		what = "touch"
		for i := 0; i < 16; i++ {
			p.e.tlb.touch(tb, p.base+uint64(p.c.intn(len(p.model)))*PageSize4K)
			r := p.recent[p.c.intn(len(p.recent))]
			if r[1] != 0 {
				p.e.tlb.touch(tb, r[0]+uint64(p.c.intn(int(r[1]/PageSize4K)))*PageSize4K)
			}
		}
		gpa, size = p.base, PageSize4K
	default:
		if p.batch {
			what = "EndBatch"
			tb.EndBatch()
		} else {
			what = "BeginBatch"
			tb.BeginBatch()
		}
		p.batch = !p.batch
		gpa, size = p.base, PageSize4K
	}
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	p.recent[p.nOps%len(p.recent)] = [2]uint64{gpa, size}
	p.nOps++
	return what, gpa, size
}

func (p *propRun) checkPage(what string, gpa uint64) {
	if gpa < p.base || gpa >= p.base+p.window() {
		return
	}
	want := p.model[(gpa-p.base)/PageSize4K]
	hpa, perm, _, ok := p.e.tb.Translate(gpa + 0x18)
	if want.perm == 0 {
		if ok {
			p.t.Fatalf("after %s: GPA %#x translates to %#x %v, model says unmapped", what, gpa, hpa, perm)
		}
		return
	}
	if !ok || hpa != want.hpa+0x18 || perm != want.perm {
		p.t.Fatalf("after %s: Translate(%#x) = %#x %v %v, model %#x %v", what, gpa+0x18, hpa, perm, ok, want.hpa+0x18, want.perm)
	}
}

// verifyAll compares every leaf of the table with the model, page by
// page, and requires every page the model maps to be covered.
func (p *propRun) verifyAll(what string) {
	next := 0 // first model page not yet compared
	for m := range p.e.tb.Mappings() {
		if m.GPA < p.base || m.GPA+m.Size > p.base+p.window() {
			p.t.Fatalf("after %s: mapping %+v outside the window", what, m)
		}
		first := int((m.GPA - p.base) / PageSize4K)
		for ; next < first; next++ {
			if p.model[next].perm != 0 {
				p.t.Fatalf("after %s: GPA %#x not mapped, model has %+v", what, p.base+uint64(next)*PageSize4K, p.model[next])
			}
		}
		for k := uint64(0); k < m.Size/PageSize4K; k++ {
			want := p.model[next]
			if want.perm != m.Perm || want.hpa != m.HPA+k*PageSize4K {
				p.t.Fatalf("after %s: GPA %#x maps %#x %v (in %+v), model %#x %v",
					what, m.GPA+k*PageSize4K, m.HPA+k*PageSize4K, m.Perm, m, want.hpa, want.perm)
			}
			next++
		}
	}
	for ; next < len(p.model); next++ {
		if p.model[next].perm != 0 {
			p.t.Fatalf("after %s: GPA %#x not mapped, model has %+v", what, p.base+uint64(next)*PageSize4K, p.model[next])
		}
	}
}

func (p *propRun) run(ops int) {
	for i := 0; i < ops && p.c.more(); i++ {
		what, gpa, size := p.step()
		what = fmt.Sprintf("op %d %s", i, what)
		for _, a := range []uint64{gpa - PageSize4K, gpa, gpa + size - PageSize4K, gpa + size} {
			p.checkPage(what, a)
		}
		for j := 0; j < 16; j++ {
			p.checkPage(what, p.base+uint64(p.c.intn(len(p.model)))*PageSize4K)
		}
		if !p.batch {
			p.e.tlb.check(p.t, p.e.tb, what)
		}
		if p.fullEvery > 0 && i%p.fullEvery == 0 {
			p.verifyAll(what)
			checkStructure(p.t, p.e)
		}
	}
	if p.batch {
		p.e.tb.EndBatch()
		p.batch = false
	}
	p.verifyAll("last op")
	checkStructure(p.t, p.e)
	p.e.tlb.check(p.t, p.e.tb, "last op")

	// Unmapping the whole window returns every table but the root.
	if err := p.e.tb.Unmap(p.base, p.window()); err != nil {
		p.t.Fatal(err)
	}
	clear(p.model)
	p.verifyAll("final unmap")
	if p.e.tb.Tables() != 1 || p.e.mem.InUse() != 1 {
		p.t.Fatalf("after unmapping everything: %d tables, %d frames out; want 1, 1 (leak)",
			p.e.tb.Tables(), p.e.mem.InUse())
	}
}

// TestPropertyAgainstModel runs random map/unmap/protect sequences over a
// 2-GiB window that straddles a PML4 entry boundary (511-513 GiB), so that
// 4-KiB, 2-MiB and 1-GiB pages all occur, and checks the table against the
// model after every operation, in both formats.
func TestPropertyAgainstModel(t *testing.T) {
	seeds, ops := 4, 300
	if testing.Short() {
		seeds, ops = 2, 150
	}
	for _, f := range allFormats {
		for seed := 1; seed <= seeds; seed++ {
			t.Run(fmt.Sprint(f, "/seed", seed), func(t *testing.T) {
				p := newPropRun(t, f, randChooser{rand.New(rand.NewSource(int64(seed)))},
					511*PageSize1G, 2*PageSize1G, 4096, 1)
				p.run(ops)
			})
		}
	}
}

// TestPropertySmallWindow concentrates the operations on 16 MiB, where
// splits, merges and table frees happen far more often.
func TestPropertySmallWindow(t *testing.T) {
	for _, f := range allFormats {
		for seed := 1; seed <= 4; seed++ {
			t.Run(fmt.Sprint(f, "/seed", seed), func(t *testing.T) {
				p := newPropRun(t, f, randChooser{rand.New(rand.NewSource(int64(seed)))},
					0x7F_FF00_0000, 16<<20, 256, 1)
				p.run(1500)
			})
		}
	}
}

// FuzzOperations lets the fuzzer choose the operation sequence, which
// runs in both formats.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("\x00\x01\x00\x05\x10\x02\x40\x05\x00\x03\x07\x01\x06\x00\x02\x09\x00\x05"))
	r := rand.New(rand.NewSource(5))
	b := make([]byte, 300)
	r.Read(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fm := range allFormats {
			p := newPropRun(t, fm, &byteChooser{b}, 0x7F_FF00_0000, 16<<20, 256, 1)
			p.run(64)
		}
	})
}
