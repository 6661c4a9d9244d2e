package memory

import (
	"errors"
	"fmt"
)

// Walk windows.
//
// A guest page-table walk under nested paging asks for write access to
// every paging-structure page it reads (QEMU's TCG always; AMD hardware
// treats the walk's accesses as writes too), so with copies of the
// kernel's page tables on several nodes each vCPU entry would take those
// pages Modified, one node after the other, although the walk mostly
// writes nothing. A walk window lets the walk go on locally instead: the
// node maps its Shared copy writable and keeps a twin of it. Before this
// node serves or sends any message (the caller's rule), it ends the
// windows that changed (FlushWindows): each asks its home for ownership,
// is not readable until the grant, and on a grant that carries the page
// (another node wrote it meanwhile) its changes are merged into the
// granted page,
// word by word against the twin: the bits the window changed are taken
// from it, the others from the grant. Both sides changing one word is
// allowed only where both changed nothing but accessed and dirty bits
// (walks on two nodes); otherwise it is a conflict ([ErrWindowConflict]):
// an entry rewritten on another node while a walk here set its accessed
// bit, or two software stores to it with no ordering between them.
// A window unchanged since its twin holds no store and stays open, the
// copy writable here, until an invalidation ends it or its slot is
// needed for another (CloseWindows ends them all).
//
// Until every changed window's grant has come (Draining), the changes
// stand where a processor's store buffer would: the node must not let
// another learn of a later store of its vCPUs (a page it owns Modified
// sent out, a device access), and must keep answering invalidations,
// which is all the grants wait for.

// MaxWindows bounds the walk windows open or draining at once: the
// paging-structure pages that the guest's CPUs on several nodes walk
// at once (the kernel's own tables, and the top levels of the running
// processes'). With 16, a Debian guest's walks took a slot from another
// window at most of their faults (node 1 opened 12.4 million windows in
// 25 minutes, all but 56 unchanged). An open window costs a compare
// of its page with its twin before the node sends or serves messages
// after its vCPU ran: 115 ns a window on the development machine, 7 µs
// for all 64 (BenchmarkFlushUnchangedWindows).
const MaxWindows = 64

// ErrWindowConflict reports a page-table entry that a walk window and
// another node both changed, one of them in its software bits: the
// window's changes cannot be merged.
var ErrWindowConflict = errors.New("memory: walk window conflict")

// hwBits are the bits of a paging-structure entry that page walks set
// (accessed, bit 5; dirty, bit 6): merged by OR, not taken whole (Intel
// SDM Vol. 3A, 4.8; AMD APM Vol. 2, 5.4.1).
const hwBits = 1<<5 | 1<<6

// Window states of a page (pageState.window).
const (
	winNone     uint8 = iota
	winOpen           // mapped writable, the twin holds the page as it was
	winDraining       // changed: an upgrade is outstanding, the twin kept for the merge
)

// windowSlot is a twin frame and the page it belongs to.
type windowSlot struct {
	page uint64
	twin *Page
	used bool
}

// OpenWindow opens a walk window on the page containing gpa, which a
// guest page-table walk faulted on for write: it reports false (and does
// nothing) unless walk windows are on, the page is Shared here with no
// request outstanding and, at its home, other nodes share it, and a slot
// is free or held by an unchanged window (which ends). Then the page is
// writable here until the window ends: flushed once changed, invalidated,
// its slot taken, or CloseWindows.
func (e *Engine) OpenWindow(gpa uint64) bool {
	p, ok := e.page(gpa)
	if !ok || !e.cfg.Windows {
		return false
	}
	ps := &e.pages[p]
	if ps.state != Shared || ps.pending != 0 || ps.window != winNone || ps.frame == nil {
		return false
	}
	if e.isHome(p) && e.dirOf(p).sharers&^(1<<e.cfg.Self) == 0 {
		return false // a local fault makes it Modified without a message
	}
	s := e.freeSlot()
	if s == nil {
		e.stats.WindowsFull++
		return false
	}
	if s.used {
		// An unchanged window gives its slot up: its copy is read-only
		// again.
		e.endSlot(s)
	}
	s.page, s.used = p, true
	*s.twin = *ps.frame
	ps.window = winOpen
	e.open++
	e.stats.WindowsOpened++
	e.cfg.Perm.SetAccess(p<<pageShift, ps.frame, AccessReadWrite)
	return true
}

// freeSlot returns an unused window slot, allocating its twin the first
// time, else, from the hand on, the slot of an open window unchanged since
// its twin; nil if every window changed or drains.
func (e *Engine) freeSlot() *windowSlot {
	for i := range e.slots {
		s := &e.slots[i]
		if s.used {
			continue
		}
		if s.twin == nil {
			s.twin = new(Page)
		}
		return s
	}
	for range e.slots {
		s := &e.slots[e.slotHand]
		e.slotHand = (e.slotHand + 1) % MaxWindows
		if e.pages[s.page].window == winOpen && !e.changed(s) {
			return s
		}
	}
	return nil
}

// changed reports whether the page of slot s differs from its twin.
func (e *Engine) changed(s *windowSlot) bool {
	return *words(e.pages[s.page].frame) != *words(s.twin)
}

// changedWindow returns the page of an open window that changed, if any.
func (e *Engine) changedWindow() (uint64, bool) {
	for i := range e.slots {
		s := &e.slots[i]
		if s.used && e.pages[s.page].window == winOpen && e.changed(s) {
			return s.page, true
		}
	}
	return 0, false
}

// endSlot ends the unchanged open window of slot s: its copy is readable
// only.
func (e *Engine) endSlot(s *windowSlot) {
	ps := &e.pages[s.page]
	ps.window, s.used = winNone, false
	e.open--
	e.stats.WindowsClean++
	e.cfg.Perm.SetAccess(s.page<<pageShift, ps.frame, AccessRead)
}

// endUnchanged ends page p's open window, which must be unchanged (the
// caller flushed the windows before serving): an invalidation takes the
// copy.
func (e *Engine) endUnchanged(p uint64) error {
	s := e.slotOf(p)
	if e.changed(s) {
		return fmt.Errorf("%w: node %d: the walk window on %#x changed and was not flushed", ErrProtocol, e.cfg.Self, p<<pageShift)
	}
	e.endSlot(s)
	return nil
}

// slotOf returns page p's window slot.
func (e *Engine) slotOf(p uint64) *windowSlot {
	for i := range e.slots {
		if s := &e.slots[i]; s.used && s.page == p {
			return s
		}
	}
	panic(fmt.Sprintf("memory: page %#x has a window state but no slot", p<<pageShift))
}

// WindowsOpen returns the number of walk windows open.
func (e *Engine) WindowsOpen() int { return e.open }

// Draining reports whether a changed window's upgrade is outstanding.
func (e *Engine) Draining() bool { return e.draining > 0 }

// FlushWindows ends the open walk windows that changed: for each the node
// asks the page's home for ownership (in out), and the copy is not
// accessible until the grant. Unchanged windows stay open. It returns the
// number of upgrades.
func (e *Engine) FlushWindows(out *Outbox) (int, error) {
	return e.closeWindows(out, false)
}

// CloseWindows ends every open walk window: those that changed as
// FlushWindows does, the others with their copies readable only.
func (e *Engine) CloseWindows(out *Outbox) (int, error) {
	return e.closeWindows(out, true)
}

func (e *Engine) closeWindows(out *Outbox, all bool) (int, error) {
	if e.open == 0 {
		return 0, nil
	}
	e.begin()
	upgrades := 0
	for i := range e.slots {
		s := &e.slots[i]
		if !s.used || e.pages[s.page].window != winOpen {
			continue
		}
		if !e.changed(s) {
			if all {
				e.endSlot(s)
			}
			continue
		}
		p, ps := s.page, &e.pages[s.page]
		e.open--
		ps.window = winDraining
		e.draining++
		e.stats.WindowsChanged++
		upgrades++
		e.cfg.Perm.SetAccess(p<<pageShift, nil, AccessNone)
		m := Message{Kind: KindWriteReq, Flags: FlagHaveCopy, Src: e.cfg.Self, Dst: ps.home, Requester: e.cfg.Self, GPA: p << pageShift, Version: ps.version}
		ps.pending = KindWriteReq
		e.send(&m, out)
	}
	return upgrades, e.drain(out)
}

// mergeWindow installs data, a write grant's page, into page p's copy,
// which holds what its draining window changed against the twin.
func (e *Engine) mergeWindow(p uint64, data *Page) error {
	s := e.slotOf(p)
	g, n, o := words(data), words(e.pages[p].frame), words(s.twin)
	if e.cfg.Mutation == MutationWindowNoMerge {
		*n = *g
		return nil
	}
	for i := range g {
		changed := n[i] ^ o[i]
		if changed == 0 {
			n[i] = g[i]
			continue
		}
		theirs := g[i] ^ o[i]
		if theirs != 0 && (changed|theirs)&^hwBits != 0 {
			e.stats.WindowConflicts++
			return fmt.Errorf("%w: node %d: entry %d of the page at %#x: was %#x, this node's window made it %#x, another node %#x",
				ErrWindowConflict, e.cfg.Self, i, p<<pageShift, o[i], n[i], g[i])
		}
		n[i] = g[i]&^changed | n[i]&changed
	}
	return nil
}

// endDrain frees page p's window slot once its upgrade is granted.
func (e *Engine) endDrain(p uint64) {
	ps := &e.pages[p]
	if ps.window != winDraining {
		return
	}
	s := e.slotOf(p)
	s.used = false
	ps.window = winNone
	e.draining--
}
