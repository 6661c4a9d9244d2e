package ept

import "fmt"

// Layout numbers a guest's RAM pages: page index i lies at guest-physical
// address Addr(i), and Index is the inverse. guestmem.Split is one.
type Layout interface {
	// Index returns the index of the page holding gpa, or ok false if
	// gpa is not RAM.
	Index(gpa uint64) (i uint64, ok bool)
	// Addr returns the guest-physical address of page index i.
	Addr(i uint64) uint64
	// Pages returns the number of pages.
	Pages() uint64
}

// PagesPerLarge is how many 4 KiB pages a 2 MiB page maps
// (PageSize2M / PageSize4K).
const PagesPerLarge = 512

// PageMap maps a guest's RAM page by page over a Table, as a coherence
// protocol grants and takes back pages: each 4 KiB page to its own frame
// with its own rights. While every page of a 2 MiB-aligned
// guest-physical range is mapped with the same rights to the frames of
// one 2 MiB-aligned host run, in order, it maps the range with one large
// page instead (a PDE that maps a 2 MiB page: Intel SDM Vol. 3C,
// 28.3.2, Table 28-4; AMD APM Vol. 2, 15.25.5): one table frame less,
// one step less in every walk, one TLB entry for 512. When a page of
// that range changes, the Table splits the large page (Protect, Unmap
// and Map do) and the range goes back to 4 KiB pages until it is whole
// again.
//
// The rights a range is promoted with are read/execute (a page every
// node may read) or read/write/execute (a page held exclusively); other
// rights map 4 KiB pages only.
//
// A PageMap is not safe for concurrent use; as for its Table, the caller
// serializes calls. Set allocates nothing from the Go heap (a split
// takes a table frame from the Table's FrameAllocator).
type PageMap struct {
	tab    *Table
	layout Layout
	mt     MemType
	large  bool // the table may map 2 MiB pages
	// pages[i] is page i's frame with its rights in the low bits, 0 if
	// unmapped.
	pages  []uint64
	groups []pageGroup // PagesPerLarge pages each, by index
	stats  PageMapStats
}

// pageGroup is what a PageMap knows of one run of PagesPerLarge page
// indexes.
type pageGroup struct {
	// read and write count the group's pages mapped read/execute and
	// read/write/execute.
	read, write uint16
	// large is set while the group is mapped with one 2 MiB page.
	large bool
}

// PageMapStats counts what a PageMap did with large pages.
type PageMapStats struct {
	// Large is how many 2 MiB pages map the guest now.
	Large uint64
	// Promotions counts ranges mapped with a large page once whole.
	Promotions uint64
	// Splits counts large pages split because one of their pages
	// changed.
	Splits uint64
}

// permMask is where a PageMap keeps a page's rights in its entry: a
// frame's address has its low 12 bits clear.
const permMask = PageSize4K - 1

// NewPageMap returns a PageMap over tab for a guest laid out as l, whose
// pages are mapped with memory type mt. largePages enables 2 MiB pages
// (where the processor has them: Caps.Pages2M).
func NewPageMap(tab *Table, l Layout, mt MemType, largePages bool) *PageMap {
	n := l.Pages()
	return &PageMap{tab: tab, layout: l, mt: mt, large: largePages && tab.caps.Pages2M,
		pages: make([]uint64, n), groups: make([]pageGroup, (n+PagesPerLarge-1)/PagesPerLarge)}
}

// Stats returns what the map did with large pages.
func (m *PageMap) Stats() PageMapStats { return m.stats }

// Set maps the 4 KiB guest page at gpa to the frame at hpa with rights
// perm, or unmaps it when perm is 0 (hpa is then ignored). A large page
// over gpa is split first; the page's range is mapped with one large
// page once it is whole. On an error (a table frame could not be
// allocated) the page may keep its old mapping; the map stays well
// formed.
func (m *PageMap) Set(gpa, hpa uint64, perm Perm) error {
	i, ok := m.layout.Index(gpa)
	if !ok || i >= uint64(len(m.pages)) {
		return fmt.Errorf("ept: page %#x outside the guest's RAM: %w", gpa, ErrRange)
	}
	if hpa&permMask != 0 {
		return fmt.Errorf("ept: frame %#x of page %#x not 4 KiB-aligned: %w", hpa, gpa, ErrAlign)
	}
	gpa &^= permMask
	old := m.pages[i]
	next := uint64(0)
	if perm != 0 {
		next = hpa | uint64(perm)
	}
	if old == next {
		return nil
	}
	var err error
	switch {
	case perm == 0:
		err = m.tab.Unmap(gpa, PageSize4K)
	case old != 0 && old&^permMask == hpa:
		err = m.tab.Protect(gpa, PageSize4K, perm)
	default:
		err = m.tab.MapPages(gpa, hpa, PageSize4K, PageSize4K, perm, m.mt)
	}
	if err != nil {
		return err
	}
	g := &m.groups[i/PagesPerLarge]
	if g.large {
		g.large = false
		m.stats.Large--
		m.stats.Splits++
	}
	g.count(old, -1)
	g.count(next, +1)
	m.pages[i] = next
	return m.promote(i / PagesPerLarge)
}

// count adds d to the group's count of pages mapped as entry e says.
func (g *pageGroup) count(e uint64, d int) {
	switch Perm(e & permMask) {
	case PermRX:
		g.read = uint16(int(g.read) + d)
	case PermRWX:
		g.write = uint16(int(g.write) + d)
	}
}

// promote maps group gi with one large page if every page of it is
// mapped with the same rights to one aligned run of frames, in order.
func (m *PageMap) promote(gi uint64) error {
	g := &m.groups[gi]
	var perm Perm
	switch {
	case !m.large || g.large:
		return nil
	case g.read == PagesPerLarge:
		perm = PermRX
	case g.write == PagesPerLarge:
		perm = PermRWX
	default:
		return nil
	}
	first := gi * PagesPerLarge
	base := m.pages[first] &^ permMask
	gpa := m.layout.Addr(first)
	if base%PageSize2M != 0 || gpa%PageSize2M != 0 || m.layout.Addr(first+PagesPerLarge-1) != gpa+PageSize2M-PageSize4K {
		return nil
	}
	for k, e := range m.pages[first : first+PagesPerLarge] {
		if e != base+uint64(k)*PageSize4K|uint64(perm) {
			return nil
		}
	}
	if err := m.tab.MapPages(gpa, base, PageSize2M, PageSize2M, perm, m.mt); err != nil {
		return err
	}
	g.large = true
	m.stats.Large++
	m.stats.Promotions++
	return nil
}
