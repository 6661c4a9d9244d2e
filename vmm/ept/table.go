package ept

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Errors wrapped by Table operations.
var (
	// ErrAlign: an address or size is not aligned to the page size.
	ErrAlign = errors.New("misaligned address or size")
	// ErrRange: an address range is empty, wraps, or exceeds what EPT or
	// the physical-address width can express.
	ErrRange = errors.New("address range out of bounds")
	// ErrReserved: the host-physical range overlaps memory the table was
	// told never to map (the hyperkernel's own memory).
	ErrReserved = errors.New("host-physical range is reserved")
	// ErrPerm: the access rights are empty or would misconfigure EPT.
	ErrPerm = errors.New("invalid access rights")
	// ErrMemType: the memory type is reserved.
	ErrMemType = errors.New("invalid memory type")
	// ErrPageSize: the page size is not 4 KiB, 2 MiB or 1 GiB, or the
	// processor does not support it.
	ErrPageSize = errors.New("unsupported page size")
	// ErrNoAccessDirty: accessed/dirty flags are not enabled.
	ErrNoAccessDirty = errors.New("accessed/dirty flags not enabled")
	// ErrConfig: the Config is incomplete or inconsistent.
	ErrConfig = errors.New("invalid EPT configuration")
)

// Range is a half-open host-physical address range [Start, End).
type Range struct {
	Start, End uint64
}

func (r Range) overlaps(start, end uint64) bool { return start < r.End && r.Start < end }

// Config holds what a Table needs from its environment.
type Config struct {
	// Format selects the entry format: EPT (the zero value) or NPT.
	Format Format
	// Mem reaches table frames; Alloc supplies them. Both are required.
	Mem   PhysMem
	Alloc FrameAllocator
	// Invalidator receives INVEPT requests (for NPT: requests to flush
	// the guest's ASID). Nil means no caching processor exists yet
	// (tests, or a table not yet in use).
	Invalidator Invalidator
	// Caps describes the processor.
	Caps Caps
	// AccessDirty enables accessed and dirty flags in the EPTP. It
	// requires Caps.AccessDirty. With A/D enabled the processor treats
	// its accesses to guest paging structures as writes (Intel SDM Vol.
	// 3C, 28.3, "Accessed and Dirty Flags for EPT"), so guest page-table
	// pages need write access. NPT tables always have the flags (the
	// processor sets them in nested entries as in any long-mode table,
	// AMD APM Vol. 2, 5.4.1), so for NPT the field is ignored.
	AccessDirty bool
	// Reserved lists host-physical ranges that must never be mapped into
	// a guest: the hyperkernel's image, heap, stacks, table frames.
	Reserved []Range
}

// pendingFrees is how many freed table frames a Table holds back until
// the next invalidation.
const pendingFrees = 64

// Table is one EPT or NPT hierarchy: a PML4 table and the tables below
// it.
//
// A Table is not safe for concurrent use; the caller serializes calls.
// Processors running guests with its EPTP (N_CR3) may walk it and set accessed and
// dirty flags at any time; the Table updates entries atomically so that
// such flags are never lost.
//
// After a change that removes or alters a present translation (Unmap,
// Protect that removes rights, Map over an existing mapping, splitting a
// large page, clearing dirty flags), the Table invalidates cached
// translations once per operation, or once per batch (see BeginBatch),
// before table frames it unlinked go back to the allocator. Changes that
// only add translations or rights need no invalidation
// (Intel SDM Vol. 3C, 28.4.3.1).
type Table struct {
	f         format // the entry format's bit layout
	mem       PhysMem
	alloc     FrameAllocator
	inv       Invalidator
	caps      Caps
	ad        bool
	invSingle bool // invalidate with InvalidateSingle, else InvalidateGlobal
	reserved  []Range

	root      uint64
	ptr       uint64 // EPTP or N_CR3
	rootCount int    // present entries in the PML4 table
	tables    int    // table frames linked in, the PML4 table included

	batch     int  // BeginBatch nesting depth
	needFlush bool // an invalidation is owed
	pending   [pendingFrees]uint64
	nPending  int
	flushes   uint64
}

// New allocates the PML4 table and returns an empty Table.
func New(cfg Config) (*Table, error) {
	if cfg.Mem == nil || cfg.Alloc == nil {
		return nil, fmt.Errorf("ept: Mem and Alloc are required: %w", ErrConfig)
	}
	if cfg.Format != EPT && cfg.Format != NPT {
		return nil, fmt.Errorf("ept: unknown %v: %w", cfg.Format, ErrConfig)
	}
	c := cfg.Caps
	if c.MaxPhysAddr < 32 || c.MaxPhysAddr > MaxPhysAddrBits {
		return nil, fmt.Errorf("ept: MaxPhysAddr %d outside 32..%d: %w", c.MaxPhysAddr, MaxPhysAddrBits, ErrConfig)
	}
	if c.Pages1G && !c.Pages2M {
		return nil, fmt.Errorf("ept: 1-GiB pages without 2-MiB pages: %w", ErrConfig)
	}
	if cfg.Format == EPT {
		if err := checkEPTConfig(&cfg); err != nil {
			return nil, err
		}
	}
	for _, r := range cfg.Reserved {
		if r.Start >= r.End {
			return nil, fmt.Errorf("ept: reserved range [%#x, %#x) is empty: %w", r.Start, r.End, ErrConfig)
		}
	}
	npt := cfg.Format == NPT
	t := &Table{
		f:         formats[cfg.Format],
		mem:       cfg.Mem,
		alloc:     cfg.Alloc,
		inv:       cfg.Invalidator,
		caps:      c,
		ad:        cfg.AccessDirty || npt,
		invSingle: c.InvEPTSingle || npt,
		reserved:  append([]Range(nil), cfg.Reserved...),
	}
	root, err := t.allocTable()
	if err != nil {
		return nil, fmt.Errorf("ept: PML4 table: %w", err)
	}
	t.root = root
	if npt {
		t.ptr = MakeNCR3(root)
		return t, nil
	}
	mt := WriteBack
	if !c.WriteBackEPTP {
		mt = Uncacheable
	}
	t.ptr = MakeEPTP(root, mt, t.ad)
	return t, nil
}

// checkEPTConfig checks what only EPT needs of the processor.
func checkEPTConfig(cfg *Config) error {
	c := &cfg.Caps
	if !c.PageWalk4 {
		return fmt.Errorf("ept: processor lacks 4-level EPT walks: %w", ErrConfig)
	}
	if !c.WriteBackEPTP && !c.UncacheableEPTP {
		return fmt.Errorf("ept: processor supports no EPTP memory type: %w", ErrConfig)
	}
	if cfg.AccessDirty && !c.AccessDirty {
		return fmt.Errorf("ept: accessed/dirty flags requested but not supported: %w", ErrConfig)
	}
	if cfg.Invalidator != nil && !c.InvEPTSingle && !c.InvEPTAll {
		return fmt.Errorf("ept: processor supports no INVEPT type: %w", ErrConfig)
	}
	return nil
}

// Format returns the table's entry format.
func (t *Table) Format() Format { return t.f.kind }

// Pointer returns the value that makes a processor use the table: for
// EPT the VMCS EPT-pointer field (see EPTP), for NPT the VMCB N_CR3
// field (see NCR3).
func (t *Table) Pointer() uint64 { return t.ptr }

// EPTP returns the value for the VMCS EPT-pointer field: the PML4 table's
// address, write-back paging structures (uncacheable if write-back is not
// supported), a 4-level walk, and the A/D enable bit if configured. It
// is Pointer, so for an NPT table it returns the N_CR3 value.
func (t *Table) EPTP() uint64 { return t.ptr }

// NCR3 returns the value for the VMCB N_CR3 field (AMD APM Vol. 2,
// 15.25.3): the PML4 table's address with PWT and PCD clear, so the
// processor reads the tables write-back (host PAT index 0). It is
// Pointer, so for an EPT table it returns the EPTP.
func (t *Table) NCR3() uint64 { return t.ptr }

// Tables returns the number of table frames in use, the PML4 table
// included.
func (t *Table) Tables() int { return t.tables }

// Invalidations returns how many invalidations (INVEPTs, or ASID flushes
// for NPT) the table has requested.
func (t *Table) Invalidations() uint64 { return t.flushes }

// BeginBatch defers invalidation until the matching EndBatch, so that a
// series of changes costs one INVEPT. Between them, processors may still
// use translations the batch removed. Batches nest.
func (t *Table) BeginBatch() { t.batch++ }

// EndBatch ends a batch and, at the outermost level, performs the owed
// invalidation and frees unlinked table frames.
func (t *Table) EndBatch() {
	if t.batch == 0 {
		return
	}
	t.batch--
	if t.batch == 0 {
		t.flush()
	}
}

// done ends an operation: outside a batch it flushes.
func (t *Table) done() {
	if t.batch == 0 {
		t.flush()
	}
}

// flush invalidates if needed and then frees the held-back frames.
func (t *Table) flush() {
	if t.needFlush {
		t.needFlush = false
		t.flushes++
		if t.inv != nil {
			if t.invSingle {
				t.inv.InvalidateSingle(t.ptr)
			} else {
				t.inv.InvalidateGlobal()
			}
		}
	}
	for _, f := range t.pending[:t.nPending] {
		t.alloc.FreeFrame(f)
	}
	t.nPending = 0
}

func (t *Table) allocTable() (uint64, error) {
	f, err := t.alloc.AllocFrame()
	if err != nil {
		return 0, fmt.Errorf("ept: allocating table frame: %w", err)
	}
	if f&(PageSize4K-1) != 0 || f&^t.caps.physAddrMask() != 0 {
		t.alloc.FreeFrame(f)
		return 0, fmt.Errorf("ept: allocator returned unusable frame %#x: %w", f, ErrConfig)
	}
	clear(t.mem.Frame(f)[:])
	t.tables++
	return f, nil
}

// freeTable schedules an unlinked table frame for release after the next
// invalidation: until then a processor may still walk it.
func (t *Table) freeTable(f uint64) {
	t.tables--
	t.needFlush = true
	if t.nPending == len(t.pending) {
		t.flush()
	}
	t.pending[t.nPending] = f
	t.nPending++
}

// freeSubtree releases the table at f (level l) and every table below it.
func (t *Table) freeSubtree(f uint64, l Level) {
	if l > LevelPT {
		tbl := t.mem.Frame(f)
		for i := range tbl {
			if e := tbl[i]; t.f.isPresent(e) && !isLeaf(e, l) {
				t.freeSubtree(e&EntryAddr, l-1)
			}
		}
	}
	t.freeTable(f)
}

// addCount adjusts the present-entry count kept in the non-leaf entry at
// p. The processor may set the accessed flag concurrently.
func addCount(p *uint64, d int) {
	if d == 0 {
		return
	}
	for {
		old := atomic.LoadUint64(p)
		n := entryCount(old) + d
		if atomic.CompareAndSwapUint64(p, old, old&^countMask|uint64(n)<<countShift) {
			return
		}
	}
}

// split replaces the large leaf at p (level l) by a table of 512 leaves one
// level down with the same translation, rights, memory type and A/D
// flags, and returns the new table's address.
func (t *Table) split(p *uint64, l Level) (uint64, error) {
	child, err := t.allocTable()
	if err != nil {
		return 0, err
	}
	tbl := t.mem.Frame(child)
	cl := l - 1
	large := uint64(0)
	if cl > LevelPT {
		large = EntryLarge
	}
	for {
		old := atomic.LoadUint64(p)
		base := old & EntryAddr &^ (l.span() - 1)
		// The page-size bit goes; everything else (rights, memory
		// type, A/D) is copied. NPT's large-page PAT bit 12 lies in
		// EntryAddr and would need moving to bit 7, but is never set
		// (see nptMemTypeMask).
		attrs := old &^ (EntryAddr | EntryLarge)
		for i := range tbl {
			tbl[i] = base + uint64(i)<<cl.shift() | attrs | large
		}
		if atomic.CompareAndSwapUint64(p, old, t.f.tableEntry(child, EntriesPerTable)) {
			break
		}
	}
	t.needFlush = true // the page size changed (Intel SDM Vol. 3C, 28.4.3.1)
	return child, nil
}

// descend returns the table below the present non-leaf or large-leaf
// entry at p, splitting a large leaf. For a not-present entry it
// allocates a table if create is set, else returns 0.
func (t *Table) descend(p *uint64, l Level, create bool) (child uint64, created bool, err error) {
	e := atomic.LoadUint64(p)
	switch {
	case !t.f.isPresent(e):
		if !create {
			return 0, false, nil
		}
		child, err = t.allocTable()
		if err != nil {
			return 0, false, err
		}
		atomic.StoreUint64(p, t.f.tableEntry(child, 0))
		return child, true, nil
	case isLeaf(e, l):
		child, err = t.split(p, l)
		return child, false, err
	}
	return e & EntryAddr, false, nil
}

// prune unlinks and frees the table below p if it holds no present entry,
// and returns -1 if it did (the change in its parent's count).
func (t *Table) prune(p *uint64) int {
	e := atomic.LoadUint64(p)
	if entryCount(e) != 0 {
		return 0
	}
	atomic.StoreUint64(p, 0)
	t.freeTable(e & EntryAddr)
	return -1
}

// checkGPARange validates a guest-physical range aligned to align.
func checkGPARange(gpa, size, align uint64) error {
	if size == 0 || gpa+size < gpa || gpa+size > GPALimit {
		return fmt.Errorf("ept: GPA range [%#x, +%#x): %w", gpa, size, ErrRange)
	}
	if gpa&(align-1) != 0 || size&(align-1) != 0 {
		return fmt.Errorf("ept: GPA %#x size %#x not %#x-aligned: %w", gpa, size, align, ErrAlign)
	}
	return nil
}

// checkPerm reports whether the table's format can express rights p for
// a leaf. Both formats refuse write without read (EPT: a misconfiguration,
// Intel SDM Vol. 3C, 28.3.3.1; NPT: P is the read right). EPT expresses
// execute-only if the processor supports it; NPT never does, and
// expresses the absence of execute only through NX, which needs the
// host's EFER.NXE (Caps.NoExecute; AMD APM Vol. 2, 5.4.1, 15.25.5).
func (t *Table) checkPerm(p Perm) error {
	switch {
	case p == 0 || p&^PermRWX != 0:
		return fmt.Errorf("ept: rights %v: %w", p, ErrPerm)
	case p&PermWrite != 0 && p&PermRead == 0:
		return fmt.Errorf("ept: rights %v: write without read: %w", p, ErrPerm)
	case t.f.kind == EPT:
		if p == PermExec && !t.caps.ExecuteOnly {
			return fmt.Errorf("ept: rights %v: execute-only not supported: %w", p, ErrPerm)
		}
	case p&PermRead == 0:
		return fmt.Errorf("ept: rights %v: NPT cannot express execute-only: %w", p, ErrPerm)
	case p&PermExec == 0 && !t.caps.NoExecute:
		return fmt.Errorf("ept: rights %v: NPT no-execute needs the host's EFER.NXE: %w", p, ErrPerm)
	}
	return nil
}

// levelForSize returns the leaf level for a page size, or 0.
func (t *Table) levelForSize(ps uint64) Level {
	switch {
	case ps == PageSize4K:
		return LevelPT
	case ps == PageSize2M && t.caps.Pages2M:
		return LevelPD
	case ps == PageSize1G && t.caps.Pages1G:
		return LevelPDPT
	}
	return 0
}

// mapOp is a mapping in progress.
type mapOp struct {
	gpa, end uint64 // guest-physical range
	hpa      uint64 // host-physical address of gpa
	bits     uint64 // rights and memory type of the leaves
	levels   uint8  // bit l set: leaves may be made at level l
}

// Map maps the guest-physical range [gpa, gpa+size) to the host-physical
// range starting at hpa with the given rights and memory type, using the
// largest pages that the alignment of gpa and hpa, the size, and the
// processor allow. Existing translations in the range are replaced. All
// three values must be multiples of 4 KiB. The host range must not overlap
// a reserved range.
//
// If allocating a table frame fails, part of the range may be mapped;
// every entry stays well formed and the other operations work as usual.
func (t *Table) Map(gpa, hpa, size uint64, perm Perm, mt MemType) error {
	levels := uint8(1 << LevelPT)
	if t.caps.Pages2M {
		levels |= 1 << LevelPD
	}
	if t.caps.Pages1G {
		levels |= 1 << LevelPDPT
	}
	return t.mapRange(gpa, hpa, size, PageSize4K, levels, perm, mt)
}

// MapPages is Map with pages of exactly pageSize (PageSize4K, PageSize2M
// or PageSize1G): gpa, hpa and size must be multiples of it.
func (t *Table) MapPages(gpa, hpa, size, pageSize uint64, perm Perm, mt MemType) error {
	l := t.levelForSize(pageSize)
	if l == 0 {
		return fmt.Errorf("ept: page size %#x: %w", pageSize, ErrPageSize)
	}
	return t.mapRange(gpa, hpa, size, pageSize, 1<<l, perm, mt)
}

func (t *Table) mapRange(gpa, hpa, size, align uint64, levels uint8, perm Perm, mt MemType) error {
	if err := checkGPARange(gpa, size, align); err != nil {
		return err
	}
	if hpa&(align-1) != 0 {
		return fmt.Errorf("ept: HPA %#x not %#x-aligned: %w", hpa, align, ErrAlign)
	}
	if hpa+size < hpa || hpa+size > 1<<t.caps.MaxPhysAddr {
		return fmt.Errorf("ept: HPA range [%#x, +%#x) beyond %d-bit physical addresses: %w",
			hpa, size, t.caps.MaxPhysAddr, ErrRange)
	}
	for _, r := range t.reserved {
		if r.overlaps(hpa, hpa+size) {
			return fmt.Errorf("ept: HPA range [%#x, %#x) overlaps reserved [%#x, %#x): %w",
				hpa, hpa+size, r.Start, r.End, ErrReserved)
		}
	}
	if err := t.checkPerm(perm); err != nil {
		return err
	}
	mtBits, ok := t.f.memTypeBits(mt)
	if !ok {
		return fmt.Errorf("ept: memory type %v in %v: %w", mt, t.f.kind, ErrMemType)
	}
	op := mapOp{gpa: gpa, end: gpa + size, hpa: hpa, bits: t.f.permBits(perm) | mtBits, levels: levels}
	d, err := t.mapIn(t.root, LevelPML4, op)
	t.rootCount += d
	t.done()
	return err
}

// mapIn maps the part of op inside the table at f (level l) and returns
// the change in the number of present entries of that table. op is passed
// by value: a pointer to a per-level copy would escape through the
// recursion and allocate.
func (t *Table) mapIn(f uint64, l Level, op mapOp) (delta int, err error) {
	tbl := t.mem.Frame(f)
	span := l.span()
	for a := op.gpa; a < op.end; {
		// Only the part of [a, op.end) inside this table is ours.
		i := l.index(a)
		eStart := a &^ (span - 1)
		eEnd := eStart + span
		p := &tbl[i]
		if a == eStart && eEnd <= op.end && op.levels&(1<<l) != 0 &&
			(op.hpa+(eStart-op.gpa))&(span-1) == 0 {
			delta += t.setLeaf(p, l, op.hpa+(eStart-op.gpa), op.bits)
		} else {
			child, created, err := t.descend(p, l, true)
			if err != nil {
				return delta, err
			}
			if created {
				delta++
			}
			sub := op
			sub.gpa, sub.end = a, min(op.end, eEnd)
			sub.hpa = op.hpa + (a - op.gpa)
			d, err := t.mapIn(child, l-1, sub)
			addCount(p, d)
			if err != nil {
				delta += t.prune(p)
				return delta, err
			}
		}
		if i == EntriesPerTable-1 || eEnd >= op.end {
			break
		}
		a = eEnd
	}
	return delta, nil
}

// setLeaf stores a leaf mapping hpa with bits at p (level l) and returns
// the change in present entries (1 if p was empty).
func (t *Table) setLeaf(p *uint64, l Level, hpa, bits uint64) int {
	e := hpa | bits
	if l > LevelPT {
		e |= EntryLarge
	}
	for {
		old := atomic.LoadUint64(p)
		if !t.f.isPresent(old) {
			atomic.StoreUint64(p, e)
			return 1
		}
		if !isLeaf(old, l) {
			atomic.StoreUint64(p, e)
			t.freeSubtree(old&EntryAddr, l-1)
			t.needFlush = true
			return 0
		}
		// Remapping a leaf: unless only rights are added to the same
		// translation, cached translations must go. A/D flags are kept
		// for the same translation and dropped otherwise.
		ad := t.f.accessed | t.f.dirty
		same := old&^(t.f.rights|ad) == e&^t.f.rights
		n := e
		if same {
			n |= old & ad
		}
		if atomic.CompareAndSwapUint64(p, old, n) {
			if !same || t.f.perm(old)&^t.f.perm(e) != 0 {
				t.needFlush = true
			}
			return 0
		}
	}
}

// Unmap removes every translation in [gpa, gpa+size), splitting large
// pages that straddle the range boundary, and frees tables left empty.
// Parts of the range that are not mapped are skipped. gpa and size must
// be multiples of 4 KiB. An error is possible only when a split cannot
// allocate a table; the range may then be partly unmapped.
func (t *Table) Unmap(gpa, size uint64) error {
	if err := checkGPARange(gpa, size, PageSize4K); err != nil {
		return err
	}
	d, err := t.unmapIn(t.root, LevelPML4, gpa, gpa+size)
	t.rootCount += d
	t.done()
	return err
}

func (t *Table) unmapIn(f uint64, l Level, start, end uint64) (delta int, err error) {
	tbl := t.mem.Frame(f)
	span := l.span()
	for a := start; a < end; {
		i := l.index(a)
		eStart := a &^ (span - 1)
		eEnd := eStart + span
		p := &tbl[i]
		e := atomic.LoadUint64(p)
		switch {
		case !t.f.isPresent(e):
		case a == eStart && eEnd <= end:
			atomic.StoreUint64(p, 0)
			if !isLeaf(e, l) {
				t.freeSubtree(e&EntryAddr, l-1)
			}
			t.needFlush = true
			delta--
		default:
			child, _, err := t.descend(p, l, false)
			if err != nil {
				return delta, err
			}
			d, err := t.unmapIn(child, l-1, a, min(end, eEnd))
			addCount(p, d)
			delta += t.prune(p)
			if err != nil {
				return delta, err
			}
		}
		if i == EntriesPerTable-1 || eEnd >= end {
			break
		}
		a = eEnd
	}
	return delta, nil
}

// Protect sets the rights of every translation in [gpa, gpa+size) to
// perm, splitting large pages that straddle the range boundary. Parts of
// the range that are not mapped are skipped. gpa and size must be
// multiples of 4 KiB; perm must not be empty (use Unmap). An error is
// possible only when a split cannot allocate a table; the range may then
// be partly changed.
func (t *Table) Protect(gpa, size uint64, perm Perm) error {
	if err := checkGPARange(gpa, size, PageSize4K); err != nil {
		return err
	}
	if err := t.checkPerm(perm); err != nil {
		return err
	}
	err := t.protectIn(t.root, LevelPML4, gpa, gpa+size, perm)
	t.done()
	return err
}

func (t *Table) protectIn(f uint64, l Level, start, end uint64, perm Perm) error {
	tbl := t.mem.Frame(f)
	span := l.span()
	for a := start; a < end; {
		i := l.index(a)
		eStart := a &^ (span - 1)
		eEnd := eStart + span
		p := &tbl[i]
		e := atomic.LoadUint64(p)
		switch {
		case !t.f.isPresent(e):
		case isLeaf(e, l) && t.f.perm(e) == perm:
			// Nothing to change; in particular no need to split.
		case isLeaf(e, l) && a == eStart && eEnd <= end:
			for {
				n := e&^t.f.rights | t.f.permBits(perm)
				if atomic.CompareAndSwapUint64(p, e, n) {
					break
				}
				e = atomic.LoadUint64(p)
			}
			if t.f.perm(e)&^perm != 0 {
				t.needFlush = true
			}
		default:
			child, _, err := t.descend(p, l, false)
			if err != nil {
				return err
			}
			if err := t.protectIn(child, l-1, a, min(end, eEnd), perm); err != nil {
				return err
			}
		}
		if i == EntriesPerTable-1 || eEnd >= end {
			break
		}
		a = eEnd
	}
	return nil
}

// Translate returns the host-physical address that gpa maps to, the
// rights and the size of the page that maps it. ok is false when gpa is
// not mapped (an access would cause an EPT violation or, for NPT, a
// nested page fault).
func (t *Table) Translate(gpa uint64) (hpa uint64, perm Perm, pageSize uint64, ok bool) {
	if gpa >= GPALimit {
		return 0, 0, 0, false
	}
	f := t.root
	for l := LevelPML4; l >= LevelPT; l-- {
		e := atomic.LoadUint64(&t.mem.Frame(f)[l.index(gpa)])
		if !t.f.isPresent(e) {
			return 0, 0, 0, false
		}
		if isLeaf(e, l) {
			span := l.span()
			return e&EntryAddr&^(span-1) | gpa&(span-1), t.f.perm(e), span, true
		}
		f = e & EntryAddr
	}
	return 0, 0, 0, false // not reached: level-1 entries are leaves
}

// Walk is the path of a guest-physical address through the tables.
type Walk struct {
	// Entries holds the entries read, PML4E first; Depth of them are
	// valid.
	Entries [4]uint64
	Depth   int
}

// Leaf returns the last entry read and its level.
func (w Walk) Leaf() (entry uint64, l Level) {
	if w.Depth == 0 {
		return 0, 0
	}
	return w.Entries[w.Depth-1], Level(5 - w.Depth)
}

// Walk returns the entries that translate gpa, stopping at a leaf, a
// not-present entry, or a malformed entry (which it does not follow; see
// Format.CheckEntry).
func (t *Table) Walk(gpa uint64) Walk {
	var w Walk
	if gpa >= GPALimit {
		return w
	}
	f := t.root
	for l := LevelPML4; l >= LevelPT; l-- {
		e := atomic.LoadUint64(&t.mem.Frame(f)[l.index(gpa)])
		w.Entries[w.Depth] = e
		w.Depth++
		if !t.f.isPresent(e) || isLeaf(e, l) || checkEntry(&t.f, e, l, &t.caps) != nil {
			break
		}
		f = e & EntryAddr
	}
	return w
}

// Diagnose explains an EPT-misconfiguration exit for gpa or, for NPT, a
// nested page fault with RSV=1 (AMD APM Vol. 2, 15.25.6): it checks each
// entry on the path and returns the first *MisconfigError, or nil if the
// path is well formed.
func (t *Table) Diagnose(gpa uint64) error {
	w := t.Walk(gpa)
	for i := 0; i < w.Depth; i++ {
		if err := checkEntry(&t.f, w.Entries[i], Level(4-i), &t.caps); err != nil {
			return fmt.Errorf("ept: GPA %#x: %w", gpa, err)
		}
	}
	return nil
}
