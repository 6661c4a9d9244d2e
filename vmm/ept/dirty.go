package ept

import (
	"fmt"
	"iter"
	"sync/atomic"
)

// ReadAndClearDirty finds the pages in [gpa, gpa+size) whose dirty flag is
// set, clears the flags, and sets bit k of bitmap (bit k%64 of word k/64)
// for every dirty 4-KiB page gpa+k*4096; a dirty large page marks all its
// 4-KiB pages inside the range. It returns the number of bits set. Bits
// already set in bitmap are kept, so a caller can accumulate. It needs
// Config.AccessDirty (EPT; NPT always has the flags: bits 5 and 6, AMD
// APM Vol. 2, 5.4.1) and a bitmap of at least size/4096 bits. Cleared
// flags are followed by an invalidation (once per call, or per batch), so
// that the processor sets them again on the next write.
func (t *Table) ReadAndClearDirty(gpa, size uint64, bitmap []uint64) (int, error) {
	return t.harvest(gpa, size, bitmap, t.f.dirty)
}

// ReadAndClearAccessed is ReadAndClearDirty for the accessed flag of leaf
// entries: it finds the pages read, written or executed since the last
// call.
func (t *Table) ReadAndClearAccessed(gpa, size uint64, bitmap []uint64) (int, error) {
	return t.harvest(gpa, size, bitmap, t.f.accessed)
}

func (t *Table) harvest(gpa, size uint64, bitmap []uint64, bit uint64) (int, error) {
	if !t.ad {
		return 0, fmt.Errorf("ept: reading flags: %w", ErrNoAccessDirty)
	}
	if err := checkGPARange(gpa, size, PageSize4K); err != nil {
		return 0, err
	}
	if pages := size / PageSize4K; uint64(len(bitmap)) < (pages+63)/64 {
		return 0, fmt.Errorf("ept: bitmap of %d words for %d pages: %w", len(bitmap), pages, ErrRange)
	}
	n := t.harvestIn(t.root, LevelPML4, gpa, gpa+size, gpa, bitmap, bit)
	t.done()
	return n, nil
}

func (t *Table) harvestIn(f uint64, l Level, start, end, base uint64, bitmap []uint64, bit uint64) int {
	tbl := t.mem.Frame(f)
	span := l.span()
	n := 0
	for a := start; a < end; {
		i := l.index(a)
		eStart := a &^ (span - 1)
		eEnd := eStart + span
		p := &tbl[i]
		e := atomic.LoadUint64(p)
		switch {
		case !t.f.isPresent(e):
		case isLeaf(e, l):
			if e&bit == 0 {
				break
			}
			for !atomic.CompareAndSwapUint64(p, e, e&^bit) {
				e = atomic.LoadUint64(p)
			}
			t.needFlush = true
			from := (a - base) / PageSize4K
			to := (min(end, eEnd) - base) / PageSize4K
			setBits(bitmap, from, to)
			n += int(to - from)
		default:
			n += t.harvestIn(e&EntryAddr, l-1, a, min(end, eEnd), base, bitmap, bit)
		}
		if i == EntriesPerTable-1 || eEnd >= end {
			break
		}
		a = eEnd
	}
	return n
}

// setBits sets bits [from, to) of bitmap.
func setBits(bitmap []uint64, from, to uint64) {
	for from < to {
		w := from / 64
		lo := from % 64
		hi := min(to-w*64, 64)
		mask := ^uint64(0) << lo
		if hi < 64 {
			mask &= 1<<hi - 1
		}
		bitmap[w] |= mask
		from = (w + 1) * 64
	}
}

// Mapping describes one leaf entry of a Table.
type Mapping struct {
	GPA, HPA, Size  uint64
	Perm            Perm
	MemType         MemType
	Accessed, Dirty bool
}

// Mappings iterates over the table's leaf entries in guest-physical
// order. The table must not be changed during the iteration.
func (t *Table) Mappings() iter.Seq[Mapping] {
	return func(yield func(Mapping) bool) {
		t.visit(t.root, LevelPML4, 0, yield)
	}
}

func (t *Table) visit(f uint64, l Level, base uint64, yield func(Mapping) bool) bool {
	tbl := t.mem.Frame(f)
	for i := range tbl {
		e := atomic.LoadUint64(&tbl[i])
		if !t.f.isPresent(e) {
			continue
		}
		gpa := base + uint64(i)<<l.shift()
		if !isLeaf(e, l) {
			if !t.visit(e&EntryAddr, l-1, gpa, yield) {
				return false
			}
			continue
		}
		m := Mapping{
			GPA: gpa, HPA: e & EntryAddr, Size: l.span(),
			Perm: t.f.perm(e), MemType: t.f.memType(e),
			Accessed: e&t.f.accessed != 0, Dirty: e&t.f.dirty != 0,
		}
		if !yield(m) {
			return false
		}
	}
	return true
}

// Destroy unmaps everything, invalidates, and returns every table frame,
// the PML4 table included, to the allocator. The Table must not be used
// afterwards, and its EPTP must no longer be loaded in any VMCS.
func (t *Table) Destroy() {
	t.batch = 0
	t.freeSubtree(t.root, LevelPML4)
	t.rootCount = 0
	t.root = 0
	t.flush()
}
