package ept

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"testing"
)

// goldenEPTSHA256 pins the contents of every table frame, in walk order,
// of the table goldenOps builds in EPT format. It was recorded before the
// entry format was factored out of the table code (issue 18) and must not
// change: EPT tables are to stay byte-identical.
const goldenEPTSHA256 = "83f577ac97ebaff51ffeb57473b3d88fdf496b06fa6befd3fa075392bf4c8c9d"

// goldenOps builds a representative table: 4-KiB, 2-MiB and 1-GiB pages
// with every right and memory type the format accepts, remaps, protects
// and unmaps that split 1-GiB and 2-MiB pages, accessed and dirty flags
// set by a simulated processor and partly harvested.
func goldenOps(t *testing.T, e *env) {
	t.Helper()
	tb := e.tb
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Mixed page sizes chosen by Map: 4K head, 2M middle, 4K tail.
	must(tb.Map(PageSize2M-4*PageSize4K, guestHPA+PageSize2M-4*PageSize4K, 3*PageSize2M+8*PageSize4K, PermRWX, WriteBack))
	// Two 1-GiB pages, one of them uncacheable and read-only.
	must(tb.MapPages(2*PageSize1G, guestHPA, PageSize1G, PageSize1G, PermRW, WriteBack))
	must(tb.MapPages(3*PageSize1G, guestHPA+PageSize1G, PageSize1G, PageSize1G, PermRead, Uncacheable))
	// A 1-GiB page that stays whole.
	must(tb.MapPages(4*PageSize1G, guestHPA+PageSize1G, PageSize1G, PageSize1G, PermRWX, WriteBack))
	// A run of 2-MiB pages, write-combining.
	must(tb.MapPages(PageSize1G, guestHPA+2*PageSize1G, 8*PageSize2M, PageSize2M, PermRX, WriteCombining))
	// 4-KiB pages high in the address space (a second PML4E).
	must(tb.MapPages(0x80_0000_0000, 0x3_0000_0000, 16*PageSize4K, PageSize4K, PermExec, WriteThrough))
	must(tb.MapPages(0x80_0001_0000, 0x3_0001_0000, 4*PageSize4K, PageSize4K, PermRWX, WriteProtected))
	// Simulated guest accesses set A/D flags on every level.
	for _, g := range []uint64{PageSize2M, PageSize2M + 0x5000, 2*PageSize1G + 0x1234, 3 * PageSize1G, 4*PageSize1G + 0x4000, PageSize1G + PageSize2M, 0x80_0001_1000} {
		hwAccess(tb, g, true)
	}
	hwAccess(tb, PageSize2M-PageSize4K, false)
	// Protect splitting a 1-GiB page (down to 4 KiB) and a 2-MiB page.
	must(tb.Protect(2*PageSize1G+PageSize2M+3*PageSize4K, 5*PageSize4K, PermRead))
	must(tb.Protect(PageSize1G+2*PageSize2M, PageSize2M, PermRWX))
	must(tb.Protect(PageSize1G+3*PageSize2M+PageSize4K, PageSize4K, PermRead))
	// Unmap splitting a 1-GiB page at 2-MiB granularity and a 2-MiB page.
	must(tb.Unmap(3*PageSize1G+4*PageSize2M, 2*PageSize2M))
	must(tb.Unmap(PageSize1G+5*PageSize2M+16*PageSize4K, 16*PageSize4K))
	// Unmap that empties and frees a page table.
	must(tb.Unmap(0x80_0001_0000, 4*PageSize4K))
	// Remap inside a large page with another memory type.
	must(tb.Map(PageSize1G+6*PageSize2M+PageSize2M/2, guestHPA+0x10_0000, PageSize4K, PermRW, Uncacheable))
	// Harvest part of the dirty flags.
	bitmap := make([]uint64, 16)
	if _, err := tb.ReadAndClearDirty(PageSize2M, 512*PageSize4K, bitmap); err != nil {
		t.Fatal(err)
	}
	checkStructure(t, e)
}

// hashTables writes every table frame reachable from the root, depth
// first in index order, to h, each as its 512 entries little-endian.
func hashTables(tb *Table, h hash.Hash) {
	var walk func(f uint64, l Level)
	var buf [8 * EntriesPerTable]byte
	walk = func(f uint64, l Level) {
		tbl := tb.mem.Frame(f)
		for i, x := range tbl {
			binary.LittleEndian.PutUint64(buf[8*i:], x)
		}
		h.Write(buf[:])
		for _, x := range tbl {
			if tb.f.isPresent(x) && !isLeaf(x, l) {
				walk(x&EntryAddr, l-1)
			}
		}
	}
	walk(tb.root, LevelPML4)
}

// TestGoldenEPT pins the EPT table contents built by goldenOps.
func TestGoldenEPT(t *testing.T) {
	e := newEnv(t, testCaps, true, 256)
	goldenOps(t, e)
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], e.tb.EPTP())
	h.Write(b[:])
	hashTables(e.tb, h)
	if got := hex.EncodeToString(h.Sum(nil)); got != goldenEPTSHA256 {
		t.Fatalf("EPT tables hash to %s, want %s (tables: %d)", got, goldenEPTSHA256, e.tb.Tables())
	}
}
