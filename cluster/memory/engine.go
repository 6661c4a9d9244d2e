package memory

import (
	"errors"
	"fmt"
	"math"
)

// ErrProtocol reports a message that is impossible in the current state.
// With a transport that keeps its promises (reliable, exactly-once, FIFO per
// pair) it means a bug; the caller should stop the node.
var ErrProtocol = errors.New("memory: protocol violation")

// Mutation deliberately breaks the protocol. It exists only so tests can
// show that the simulator's checker catches a broken protocol; production
// code leaves it at MutationNone.
type Mutation uint8

// Mutations.
const (
	MutationNone           Mutation = iota
	MutationSkipInvalidate          // grant Modified without invalidating sharers
	MutationDropWriteback           // the home ignores the data of a writeback
	MutationWindowNoMerge           // a grant's page replaces a draining window's changes
)

// Config describes one node's engine.
type Config struct {
	Self  NodeID // this node
	Nodes int    // cluster size, 1..MaxNodes
	Pages int    // guest memory is GPAs [0, Pages*PageSize)
	// Home maps a page number (gpa / PageSize) to the node that homes it
	// at start. Nil means interleaved: page % Nodes. It must be the same
	// function on all nodes. With FirstTouch or MoveAfter a home moves
	// later (see [Engine.Home]).
	Home func(page uint64) NodeID
	// FirstTouch moves the home of a page nobody has written yet to the
	// first other node that writes it, if that node has HomeRoom: the
	// page's memory and directory entry go with the write grant.
	FirstTouch bool
	// MoveAfter moves a page's home to a node whose write request ends a
	// run of MoveAfter requests for the page in a row from that node (no
	// other node's, the home's own included, in between), if that node
	// has HomeRoom; 0 never moves a page on use.
	MoveAfter int
	// HomeRoom is how many pages this node may home beyond those it
	// homed at start, net of those it handed on: its write requests
	// offer to take a page's home while that many would not be exceeded.
	HomeRoom int
	// Perm receives every permission change; required.
	Perm Permissions
	// Frames supplies page frames; nil means the Go heap.
	Frames FrameSource
	// CopyFrames bounds the frames this node holds for copies of pages
	// homed elsewhere: the copies it holds, frames promised to requests
	// outstanding, and free frames in its pool. A fault that needs a
	// frame when the node is at the bound, or when Frames fails, evicts
	// a copy first (see [Engine.Fault]). Zero means no bound. A bound
	// below the faults a node may have outstanding at once makes faults
	// wait for one another (FaultNoRoom), never deadlock.
	CopyFrames int
	// Windows turns on walk windows (see [Engine.OpenWindow]).
	Windows bool
	// Mutation is for checker tests only.
	Mutation Mutation
}

// FaultResult tells the caller what [Engine.Fault] did.
type FaultResult uint8

// Fault results.
const (
	FaultSpurious FaultResult = iota // access already allowed: just retry
	FaultLocal                       // resolved on this node, access now allowed
	FaultRemote                      // request sent; access allowed once the answer arrives
	FaultPending                     // a request for this page is already outstanding
	// FaultNoRoom: no frame for the copy, and every copy this node holds
	// has a request outstanding; retry once one of those completes.
	FaultNoRoom
)

// Stats counts engine activity. All fields only grow.
type Stats struct {
	Faults         uint64 // calls of Fault that were not spurious
	RemoteFaults   uint64 // faults that sent a message to another node
	Messages       uint64 // messages sent to other nodes
	DataMessages   uint64 // of which carried page data
	Bytes          uint64 // encoded bytes sent to other nodes
	Invalidations  uint64 // Inv messages handled by this node's cache
	Transactions   uint64 // directory transactions completed at this home
	Writebacks     uint64 // Modified pages evicted
	SilentEvicts   uint64 // Shared pages dropped
	QueuedRequests uint64 // requests that found their directory entry busy
	Reclaims       uint64 // copies evicted to make room for another (counted in Writebacks or SilentEvicts too)
	NoRoom         uint64 // faults that found no frame and no copy to evict (FaultNoRoom)
	HomesGained    uint64 // pages whose home moved to this node
	HomesGiven     uint64 // pages whose home this node handed on
	Forwards       uint64 // requests this node passed on to the page's new home
	// Walk windows: opened, closed unchanged, closed changed (each an
	// upgrade), not opened for want of a slot, and merges refused.
	WindowsOpened, WindowsClean, WindowsChanged, WindowsFull, WindowConflicts uint64
}

// Outbox collects the messages one engine call produces for other nodes.
// Messages with data borrow engine frames: encode or copy them before the
// next call on the engine and before the guest runs again.
type Outbox struct {
	Msgs []Message
}

// outboxCap bounds the messages of one call: one invalidation per node plus
// a few replies.
const outboxCap = 2*MaxNodes + 8

// NewOutbox returns an empty outbox with room for any single call.
func NewOutbox() *Outbox { return &Outbox{Msgs: make([]Message, 0, outboxCap)} }

// Reset empties the outbox.
func (o *Outbox) Reset() { o.Msgs = o.Msgs[:0] }

// pageState is this node's view of one page.
type pageState struct {
	frame   *Page // local copy; always set at the home
	version uint64
	state   State
	pending Kind   // outstanding request (KindReadReq, KindWriteReq) or 0
	hint    NodeID // last node known to have taken the page, NoNode if none
	hintMod bool   // hint took the page for writing
	// home is the page's home as this node knows it: itself exactly
	// while it homes the page, else the node it handed the home to, or
	// the last home it heard from, or the home at start.
	home NodeID
	// offered is set while a write request offering to take the home
	// (FlagCanHome) is outstanding.
	offered bool
	// ref gives a copy a second chance in the clock: set when the node
	// faults on a copy it holds (an upgrade), cleared as the hand passes.
	ref bool
	// window is the page's walk window state (winNone, winOpen,
	// winDraining; see window.go).
	window uint8
	// prev and next link a copy of a page homed elsewhere into the clock
	// (page indexes plus one; 0 while the node holds no copy).
	prev, next int32
}

// dirEntry is the directory entry of a page at its home.
type dirEntry struct {
	sharers uint64 // nodes with a Shared copy (maybe silently dropped)
	version uint64
	owner   NodeID // node with the Modified copy, NoNode if none
	// Transaction in progress.
	flags    dirFlags
	txKind   Kind
	txReq    NodeID
	dataFrom NodeID // old owner asked for data
	// runNode made the last run requests in a row (Config.MoveAfter).
	runNode NodeID
	run     uint8
	acks    uint64 // sharers whose KindInvAck is outstanding
	// Requests queued behind the transaction: a FIFO through
	// Engine.reqs (indexes plus one; 0 is none), and the nodes with one
	// waiting (a node has at most one request per page outstanding).
	qhead, qtail int32
	queued       uint64
}

// dirFlags are the flags of a directory entry's transaction (one byte,
// to keep the entry of every page a node homes at 48 bytes).
type dirFlags uint8

// Directory entry flags.
const (
	busy      dirFlags = 1 << iota // a transaction is in progress
	txHave                         // requester's Shared copy is current: grant without data
	txCanHome                      // requester offered to take the page's home
	waitData                       // waiting for KindFetchReply from dataFrom
	gotWB                          // a writeback from dataFrom overtook the fetch
)

// is reports whether every flag of f is set.
func (d *dirEntry) is(f dirFlags) bool { return d.flags&f == f }

// set sets the flags of f if on, else clears them.
func (d *dirEntry) set(f dirFlags, on bool) {
	if on {
		d.flags |= f
	} else {
		d.flags &^= f
	}
}

// request is a queued KindReadReq or KindWriteReq at a home.
type request struct {
	page    uint64
	version uint64
	kind    Kind
	req     NodeID
	flags   uint8
	next    int32 // the next request queued for the page, plus one
}

// Engine is one node's coherence protocol engine: the cache side for every
// page and the directory side for the pages homed here. It is a pure state
// machine and not safe for concurrent use.
type Engine struct {
	cfg      Config
	pages    []pageState
	dir      []dirEntry // the pages homed here
	dirIdx   []int32    // by page number: its index in dir, -1 if homed elsewhere
	freeDir  []int32    // indexes of dir entries unused since their page's home moved away
	free     []*Page    // frame pool
	deferred []*Page    // frames released during the current call
	released []*Page    // home frames handed on during the current call, for Frames
	local    []Message  // messages to self, processed before a call returns
	// homes counts the pages homed here, startHomes those at start;
	// offered counts the write requests outstanding that offer to take
	// a home (homes+offered never exceeds startHomes+HomeRoom).
	homes, startHomes, offered int
	// leaving is set by Leave: this node hands every page's home to the
	// next node whose write request offers to take it.
	leaving bool
	// reqs holds the requests queued behind busy directory entries, in
	// per-page FIFOs (dirEntry.qhead); freeReq lists the unused slots
	// (index plus one, chained through next). Queuing and serving a
	// request take constant time whatever the number waiting.
	reqs    []request
	freeReq int32
	// Copies of pages homed elsewhere form a circular list in the order
	// they were filled; hand is the clock's hand (a page index plus one,
	// 0 when the list is empty), copies the list's length. copyFrames
	// counts the frames held for copies: the copies', free's and
	// deferred's (frames stay in the pool once taken). waiting counts
	// the requests outstanding whose answer needs a frame from the pool;
	// the pool always holds at least that many (see reserve).
	hand       int32
	copies     int
	copyFrames int
	waiting    int
	// slots are the walk windows' twins; open and draining count the
	// windows in each state.
	slots          [MaxWindows]windowSlot
	slotHand       int // the next slot freeSlot may take from an open window
	open, draining int
	stats          Stats
}

// dirOf returns the directory entry of page p, which must be homed here.
func (e *Engine) dirOf(p uint64) *dirEntry { return &e.dir[e.dirIdx[p]] }

// NewEngine returns an engine for cfg. Every page homed at cfg.Self starts
// Shared (readable) at its home with a zero-filled frame, version 0, and no
// other holder.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("memory: new engine: %d nodes, want 1..%d", cfg.Nodes, MaxNodes)
	}
	if int(cfg.Self) >= cfg.Nodes {
		return nil, fmt.Errorf("memory: new engine: self %d not below %d nodes", cfg.Self, cfg.Nodes)
	}
	if cfg.Pages < 1 {
		return nil, fmt.Errorf("memory: new engine: %d pages", cfg.Pages)
	}
	if cfg.Perm == nil {
		return nil, errors.New("memory: new engine: nil Permissions")
	}
	if cfg.Home == nil {
		n := uint64(cfg.Nodes)
		cfg.Home = func(p uint64) NodeID { return NodeID(p % n) }
	}
	e := &Engine{
		cfg:    cfg,
		pages:  make([]pageState, cfg.Pages),
		dirIdx: make([]int32, cfg.Pages),
		local:  make([]Message, 0, outboxCap),
		reqs:   make([]request, 0, 4*cfg.Nodes),
	}
	homed := 0
	for p := range e.pages {
		h := cfg.Home(uint64(p))
		if int(h) >= cfg.Nodes {
			return nil, fmt.Errorf("memory: new engine: home of page %d is node %d, cluster has %d", p, h, cfg.Nodes)
		}
		e.dirIdx[p] = -1
		if h == cfg.Self {
			e.dirIdx[p] = int32(homed)
			homed++
		}
	}
	if homed > math.MaxInt32 {
		return nil, fmt.Errorf("memory: new engine: %d pages homed here, at most %d", homed, math.MaxInt32)
	}
	// Room for a first few homes gained; more grow the slice (rarely,
	// amortised), so that a large HomeRoom costs nothing up front.
	e.dir = make([]dirEntry, homed, homed+min(max(cfg.HomeRoom, 0), 1024))
	e.homes, e.startHomes = homed, homed
	for i := range e.dir {
		e.dir[i] = idleEntry()
	}
	var slab []Page
	if cfg.Frames == nil {
		slab = make([]Page, homed)
	}
	homeFrames, _ := cfg.Frames.(HomeFrameSource)
	i := 0
	for p := range e.pages {
		ps := &e.pages[p]
		ps.hint = NoNode
		ps.home = cfg.Home(uint64(p))
		if ps.home == cfg.Self {
			if slab != nil {
				ps.frame = &slab[i]
				i++
			} else {
				var f *Page
				var err error
				if homeFrames != nil {
					f, err = homeFrames.AllocHomePage(uint64(p))
				} else {
					f, err = cfg.Frames.AllocPage()
				}
				if err != nil {
					e.Close()
					return nil, fmt.Errorf("memory: new engine: frame for page %d: %w", p, err)
				}
				ps.frame = f
			}
			ps.state = Shared
			e.dirOf(uint64(p)).sharers = 1 << cfg.Self
			cfg.Perm.SetAccess(uint64(p)<<pageShift, ps.frame, AccessRead)
		}
	}
	return e, nil
}

// Close gives every frame the engine holds back to its FrameSource (a
// no-op without one). The engine must not be used afterwards.
func (e *Engine) Close() {
	if e.cfg.Frames == nil {
		return
	}
	e.begin()
	for p := range e.pages {
		if f := e.pages[p].frame; f != nil {
			e.cfg.Frames.FreePage(f)
			e.pages[p].frame = nil
		}
	}
	for _, f := range e.free {
		e.cfg.Frames.FreePage(f)
	}
	e.free = e.free[:0]
	e.homes = 0
	e.hand, e.copies, e.copyFrames, e.waiting = 0, 0, 0, 0
}

// Pages returns the number of guest pages the engine covers.
func (e *Engine) Pages() int { return len(e.pages) }

// Count returns how many pages this node holds in each state.
func (e *Engine) Count() (shared, modified int) {
	for p := range e.pages {
		switch e.pages[p].state {
		case Shared:
			shared++
		case Modified:
			modified++
		}
	}
	return shared, modified
}

// Self returns the node this engine runs on.
func (e *Engine) Self() NodeID { return e.cfg.Self }

// Home returns the home of the page containing gpa as this node knows
// it: itself exactly while it homes the page. Homes move with
// Config.FirstTouch and MoveAfter, so another node's answer may be
// older; a request sent to an old home is passed on to the new one.
func (e *Engine) Home(gpa uint64) NodeID {
	p, ok := e.page(gpa)
	if !ok {
		return NoNode
	}
	return e.pages[p].home
}

// Homes returns the number of pages this node homes.
func (e *Engine) Homes() int { return e.homes }

// isHome reports whether this node homes page p.
func (e *Engine) isHome(p uint64) bool { return e.pages[p].home == e.cfg.Self }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats }

// State returns this node's coherence state of the page containing gpa.
func (e *Engine) State(gpa uint64) State {
	p, ok := e.page(gpa)
	if !ok {
		return Invalid
	}
	return e.pages[p].state
}

// Frame returns this node's copy of the page containing gpa, or nil if it
// has none. The contents are meaningful only in states Shared and Modified;
// writes are allowed only in Modified.
func (e *Engine) Frame(gpa uint64) *Page {
	p, ok := e.page(gpa)
	if !ok || e.pages[p].state == Invalid {
		return nil
	}
	return e.pages[p].frame
}

// Directory returns the directory entry of a page homed at this node:
// owner (NoNode if none), sharer mask and version. ok is false for pages
// homed elsewhere.
func (e *Engine) Directory(gpa uint64) (owner NodeID, sharers uint64, version uint64, ok bool) {
	p, in := e.page(gpa)
	if !in || !e.isHome(p) {
		return NoNode, 0, 0, false
	}
	d := e.dirOf(p)
	return d.owner, d.sharers, d.version, true
}

// Hint returns the node this node believes holds the page containing gpa
// most usefully, and whether that node holds it Modified: itself if it has
// a copy, the owner if this is the home, the last node it heard took the
// page away, or else the home. A placement policy uses it as the
// destination of a vCPU migration; modified tells a contended page (someone
// writes it) from a clean one that a single fetch would replicate.
func (e *Engine) Hint(gpa uint64) (node NodeID, modified bool) {
	p, ok := e.page(gpa)
	if !ok {
		return NoNode, false
	}
	ps := &e.pages[p]
	if ps.state != Invalid {
		return e.cfg.Self, ps.state == Modified
	}
	home := ps.home
	if home == e.cfg.Self {
		if o := e.dirOf(p).owner; o != NoNode {
			return o, true
		}
		return e.cfg.Self, false
	}
	if ps.hint != NoNode {
		return ps.hint, ps.hintMod
	}
	return home, false
}

// LocalSatisfiable reports whether a fault on gpa would be resolved without
// sending a message to another node.
func (e *Engine) LocalSatisfiable(gpa uint64, write bool) bool {
	p, ok := e.page(gpa)
	if !ok {
		return false
	}
	if e.pages[p].state.access().Allows(write) {
		return true
	}
	if !e.isHome(p) {
		return false
	}
	d := e.dirOf(p)
	if d.is(busy) || d.owner != NoNode {
		return false
	}
	return !write || d.sharers&^(1<<e.cfg.Self) == 0
}

func (e *Engine) page(gpa uint64) (uint64, bool) {
	p := gpa >> pageShift
	return p, p < uint64(len(e.pages))
}

// begin starts an engine call: frames released by the previous call go
// back to the pool now that its outbox has been consumed.
func (e *Engine) begin() {
	e.free = append(e.free, e.deferred...)
	e.deferred = e.deferred[:0]
	if e.cfg.Frames != nil {
		for _, f := range e.released {
			e.cfg.Frames.FreePage(f)
		}
	}
	clear(e.released)
	e.released = e.released[:0]
}

// Fault handles a guest access to gpa that the current permissions do not
// allow (an EPT violation). write tells whether the access was a write.
// A fault that will bring a copy of a page homed elsewhere first reserves
// a frame for it, evicting a copy if the node is at Config.CopyFrames or
// its FrameSource is empty (the eviction's writeback goes out before the
// request); FaultNoRoom means every copy awaits an answer, so the caller
// retries once one has arrived. It fails with ErrNoFrames when the node
// has no frame and no copy at all.
func (e *Engine) Fault(gpa uint64, write bool, out *Outbox) (FaultResult, error) {
	e.begin()
	p, ok := e.page(gpa)
	if !ok {
		return FaultSpurious, fmt.Errorf("memory: fault at %#x: beyond guest memory of %d pages", gpa, len(e.pages))
	}
	ps := &e.pages[p]
	if ps.state.access().Allows(write) || ps.window == winOpen {
		return FaultSpurious, nil
	}
	if ps.pending != 0 {
		return FaultPending, nil
	}
	if ps.frame != nil {
		ps.ref = true // an upgrade: the copy is in use
	} else if !e.isHome(p) {
		ok, err := e.reserve(out)
		if err != nil {
			return FaultNoRoom, fmt.Errorf("memory: node %d: fault at %#x: %w", e.cfg.Self, gpa, err)
		}
		if !ok {
			e.stats.NoRoom++
			return FaultNoRoom, nil
		}
	}
	e.stats.Faults++
	m := Message{Kind: KindReadReq, Src: e.cfg.Self, Dst: ps.home, Requester: e.cfg.Self, GPA: p << pageShift, Version: ps.version}
	if write {
		m.Kind = KindWriteReq
		if ps.state == Shared {
			m.Flags = FlagHaveCopy
		}
		if ps.home != e.cfg.Self && e.CanTakeHome() {
			m.Flags |= FlagCanHome
			ps.offered = true
			e.offered++
		}
	}
	ps.pending = m.Kind
	before := e.stats.Messages
	e.send(&m, out)
	if err := e.drain(out); err != nil {
		return FaultRemote, err
	}
	if e.stats.Messages != before {
		e.stats.RemoteFaults++
	}
	if ps.pending == 0 {
		return FaultLocal, nil
	}
	return FaultRemote, nil
}

// Evict drops this node's copy of the page containing gpa, writing it back
// to the home if it is Modified. It reports whether anything was dropped:
// the home never evicts (its frame is the page's memory), nor does a node
// with a request outstanding for the page.
func (e *Engine) Evict(gpa uint64, out *Outbox) (bool, error) {
	e.begin()
	p, ok := e.page(gpa)
	if !ok {
		return false, fmt.Errorf("memory: evict %#x: beyond guest memory", gpa)
	}
	ps := &e.pages[p]
	if e.isHome(p) || ps.pending != 0 || ps.state == Invalid || ps.window != winNone {
		return false, nil
	}
	if q, ok := e.changedWindow(); ok {
		return false, fmt.Errorf("%w: node %d: evicting %#x with the walk window on %#x changed", ErrProtocol, e.cfg.Self, gpa, q<<pageShift)
	}
	e.evict(p, out)
	return true, nil
}

// evict drops this node's copy of page p, homed elsewhere and with no
// request outstanding, writing it back to its home if it is Modified.
// The writeback borrows the frame, which goes back to the pool once the
// outbox has been consumed (drop). The home takes a writeback whatever
// it is doing with the page: one that overtakes the home's fetch stands
// in for the fetch's data (homeHandle, KindWriteback and
// KindFetchReply).
func (e *Engine) evict(p uint64, out *Outbox) {
	ps := &e.pages[p]
	if ps.state == Modified {
		e.stats.Writebacks++
		m := Message{Kind: KindWriteback, Flags: FlagHasData, Src: e.cfg.Self, Dst: ps.home, Requester: e.cfg.Self, GPA: p << pageShift, Version: ps.version, Data: ps.frame}
		e.send(&m, out)
	} else {
		e.stats.SilentEvicts++
	}
	e.drop(p)
}

// HandleMessage processes one message received from another node.
func (e *Engine) HandleMessage(m *Message, out *Outbox) error {
	e.begin()
	if m.Dst != e.cfg.Self || int(m.Src) >= e.cfg.Nodes || m.Src == e.cfg.Self {
		return fmt.Errorf("%w: node %d got %v", ErrProtocol, e.cfg.Self, m.String())
	}
	if err := e.dispatch(m, out); err != nil {
		return err
	}
	return e.drain(out)
}

// send routes m to the outbox, or to the local queue if it is for this node.
func (e *Engine) send(m *Message, out *Outbox) {
	if m.Dst == e.cfg.Self {
		e.local = append(e.local, *m)
		return
	}
	e.stats.Messages++
	e.stats.Bytes += uint64(m.Size())
	if m.Flags&FlagHasData != 0 {
		e.stats.DataMessages++
	}
	out.Msgs = append(out.Msgs, *m)
}

// drain processes messages this node sent to itself.
func (e *Engine) drain(out *Outbox) error {
	for i := 0; i < len(e.local); i++ {
		m := e.local[i]
		if err := e.dispatch(&m, out); err != nil {
			e.local = e.local[:0]
			return err
		}
	}
	e.local = e.local[:0]
	return nil
}

func (e *Engine) dispatch(m *Message, out *Outbox) error {
	p, ok := e.page(m.GPA)
	if !ok || m.GPA&(PageSize-1) != 0 {
		return fmt.Errorf("%w: node %d: %v: bad gpa", ErrProtocol, e.cfg.Self, m.String())
	}
	var err error
	switch m.Kind {
	case KindReadReq, KindWriteReq:
		if int(m.Requester) >= e.cfg.Nodes || m.Requester == e.cfg.Self && m.Src != e.cfg.Self {
			return fmt.Errorf("%w: node %d: %v: bad requester", ErrProtocol, e.cfg.Self, m.String())
		}
		if !e.isHome(p) {
			return e.forward(p, m, out)
		}
		err = e.homeHandle(p, m, out)
	case KindInvAck, KindFetchReply, KindWriteback:
		if !e.isHome(p) {
			return fmt.Errorf("%w: node %d is not home of %v", ErrProtocol, e.cfg.Self, m.String())
		}
		err = e.homeHandle(p, m, out)
	case KindReadData, KindWriteGrant, KindInv, KindFetch, KindFetchInv:
		// Only a page's home sends these, and to a node that homes the
		// page only itself does.
		if e.isHome(p) && m.Src != e.cfg.Self {
			return fmt.Errorf("%w: node %d homes the page of %v", ErrProtocol, e.cfg.Self, m.String())
		}
		err = e.cacheHandle(p, m, out)
	default:
		err = fmt.Errorf("%w: node %d: unknown %v", ErrProtocol, e.cfg.Self, m.String())
	}
	return err
}

// cacheHandle handles a message from page p's home to this node's copy.
func (e *Engine) cacheHandle(p uint64, m *Message, out *Outbox) error {
	switch m.Kind {
	case KindReadData:
		return e.onReadData(p, m)
	case KindWriteGrant:
		return e.onWriteGrant(p, m)
	case KindInv:
		return e.onInv(p, m, out)
	default:
		return e.onFetch(p, m, out)
	}
}

// --- directory (home) side ---

func (e *Engine) homeHandle(p uint64, m *Message, out *Outbox) error {
	d := e.dirOf(p)
	switch m.Kind {
	case KindReadReq, KindWriteReq:
		r := request{page: p, version: m.Version, kind: m.Kind, req: m.Requester, flags: m.Flags}
		if d.is(busy) {
			if d.queued&(1<<m.Requester) != 0 || d.txReq == m.Requester {
				return fmt.Errorf("%w: node %d: %v for %#x from node %d, which has one outstanding", ErrProtocol, e.cfg.Self, m.Kind, p<<pageShift, m.Requester)
			}
			e.stats.QueuedRequests++
			e.enqueue(d, r)
			return nil
		}
		if err := e.start(p, r, out); err != nil {
			return err
		}
	case KindInvAck:
		bit := uint64(1) << m.Src
		if !d.is(busy) || d.acks&bit == 0 {
			return fmt.Errorf("%w: node %d: unexpected %v", ErrProtocol, e.cfg.Self, m.String())
		}
		d.acks &^= bit
	case KindFetchReply:
		if !d.is(busy|waitData) || d.dataFrom != m.Src {
			return fmt.Errorf("%w: node %d: unexpected %v", ErrProtocol, e.cfg.Self, m.String())
		}
		if m.Flags&FlagHasData != 0 {
			if m.Version != d.version {
				return fmt.Errorf("%w: node %d: %v: directory version %d", ErrProtocol, e.cfg.Self, m.String(), d.version)
			}
			e.install(p, m.Data)
		} else if !d.is(gotWB) {
			return fmt.Errorf("%w: node %d: %v: owner has no data and sent no writeback (lost write)", ErrProtocol, e.cfg.Self, m.String())
		}
		d.set(waitData|gotWB, false)
		d.dataFrom = NoNode
		d.owner = NoNode
		if d.txKind == KindReadReq && m.Flags&FlagKeptShared != 0 {
			d.sharers |= 1 << m.Src
		}
	case KindWriteback:
		if d.owner != m.Src || m.Flags&FlagHasData == 0 || m.Version != d.version {
			return fmt.Errorf("%w: node %d: unexpected %v (owner %d, version %d)", ErrProtocol, e.cfg.Self, m.String(), d.owner, d.version)
		}
		if e.cfg.Mutation != MutationDropWriteback {
			e.install(p, m.Data)
		}
		d.owner = NoNode
		if d.is(busy|waitData) && d.dataFrom == m.Src {
			d.set(gotWB, true)
		}
	}
	e.complete(p, out)
	// Serve requests that queued behind the finished transaction; a
	// grant that hands the home on leaves none queued.
	for e.isHome(p) && !d.is(busy) {
		r, ok := e.dequeue(p)
		if !ok {
			break
		}
		if err := e.start(p, r, out); err != nil {
			return err
		}
		e.complete(p, out)
	}
	return nil
}

// install copies page data into the home frame.
func (e *Engine) install(p uint64, data *Page) {
	if f := e.pages[p].frame; data != f {
		*f = *data
	}
}

// enqueue queues r at the tail of its page's FIFO.
func (e *Engine) enqueue(d *dirEntry, r request) {
	r.next = 0
	var i int32
	if e.freeReq != 0 {
		i = e.freeReq
		e.freeReq = e.reqs[i-1].next
		e.reqs[i-1] = r
	} else {
		e.reqs = append(e.reqs, r)
		i = int32(len(e.reqs))
	}
	if d.qtail != 0 {
		e.reqs[d.qtail-1].next = i
	} else {
		d.qhead = i
	}
	d.qtail = i
	d.queued |= 1 << r.req
}

// dequeue removes the request at the head of page p's FIFO.
func (e *Engine) dequeue(p uint64) (request, bool) {
	d := e.dirOf(p)
	i := d.qhead
	if i == 0 {
		return request{}, false
	}
	r := e.reqs[i-1]
	d.qhead = r.next
	if d.qhead == 0 {
		d.qtail = 0
	}
	d.queued &^= 1 << r.req
	e.reqs[i-1] = request{next: e.freeReq}
	e.freeReq = i
	return r, true
}

// start begins serving request r on an idle directory entry.
func (e *Engine) start(p uint64, r request, out *Outbox) error {
	d := e.dirOf(p)
	gpa := p << pageShift
	if d.owner == r.req {
		return fmt.Errorf("%w: node %d: %v request for %#x from its owner", ErrProtocol, e.cfg.Self, r.kind, gpa)
	}
	d.set(busy, true)
	d.set(txCanHome, r.kind == KindWriteReq && r.flags&FlagCanHome != 0)
	d.txKind, d.txReq = r.kind, r.req
	if d.runNode == r.req {
		d.run = min(d.run, math.MaxUint8-1) + 1
	} else {
		d.runNode, d.run = r.req, 1
	}
	if d.owner != NoNode {
		d.set(waitData, true)
		d.set(gotWB, false)
		d.dataFrom = d.owner
		k := KindFetch
		if r.kind == KindWriteReq {
			k = KindFetchInv
		}
		e.send(&Message{Kind: k, Src: e.cfg.Self, Dst: d.owner, Requester: r.req, GPA: gpa, Version: d.version}, out)
	}
	if r.kind == KindWriteReq {
		bit := uint64(1) << r.req
		d.set(txHave, d.owner == NoNode && r.flags&FlagHaveCopy != 0 && d.sharers&bit != 0 && r.version == d.version)
		others := d.sharers &^ bit
		if e.cfg.Mutation == MutationSkipInvalidate {
			others = 0
		}
		d.acks = others
		for n := NodeID(0); others != 0; n++ {
			if others&1 != 0 {
				e.send(&Message{Kind: KindInv, Src: e.cfg.Self, Dst: n, Requester: r.req, GPA: gpa, Version: d.version}, out)
			}
			others >>= 1
		}
	}
	return nil
}

// complete grants the transaction in progress if nothing is outstanding.
func (e *Engine) complete(p uint64, out *Outbox) {
	d := e.dirOf(p)
	if !d.is(busy) || d.acks != 0 || d.is(waitData) {
		return
	}
	m := Message{Src: e.cfg.Self, Dst: d.txReq, Requester: d.txReq, GPA: p << pageShift}
	if d.txKind == KindReadReq {
		d.sharers |= 1 << d.txReq
		m.Kind, m.Flags, m.Data = KindReadData, FlagHasData, e.pages[p].frame
	} else {
		move := e.movesHome(d)
		d.version++
		d.owner, d.sharers = d.txReq, 0
		m.Kind = KindWriteGrant
		if !d.is(txHave) {
			m.Flags, m.Data = FlagHasData, e.pages[p].frame
		}
		if move {
			m.Flags |= FlagHome
		}
	}
	m.Version = d.version
	d.set(busy|txHave|txCanHome, false)
	e.stats.Transactions++
	e.send(&m, out)
	if m.Flags&FlagHome != 0 {
		e.handOver(p, m.Dst)
	}
}

// --- cache side ---

func (e *Engine) onReadData(p uint64, m *Message) error {
	ps := &e.pages[p]
	if ps.pending != KindReadReq || m.Flags&FlagHasData == 0 {
		return fmt.Errorf("%w: node %d: unexpected %v (pending %v)", ErrProtocol, e.cfg.Self, m.String(), ps.pending)
	}
	if err := e.fill(p, m.Data); err != nil {
		return err
	}
	ps.state, ps.version, ps.pending, ps.hint, ps.hintMod = Shared, m.Version, 0, e.cfg.Self, false
	ps.home = m.Src
	e.cfg.Perm.SetAccess(m.GPA, ps.frame, AccessRead)
	return nil
}

func (e *Engine) onWriteGrant(p uint64, m *Message) error {
	ps := &e.pages[p]
	if ps.pending != KindWriteReq || m.Flags&FlagHome != 0 && !ps.offered {
		return fmt.Errorf("%w: node %d: unexpected %v (pending %v)", ErrProtocol, e.cfg.Self, m.String(), ps.pending)
	}
	if ps.offered {
		ps.offered = false
		e.offered--
	}
	if m.Flags&FlagHasData != 0 && ps.window == winDraining && m.Data != ps.frame {
		if err := e.mergeWindow(p, m.Data); err != nil {
			return err
		}
	} else if m.Flags&FlagHasData != 0 {
		if err := e.fill(p, m.Data); err != nil {
			return err
		}
	} else if ps.state != Shared || ps.version != m.Version-1 {
		return fmt.Errorf("%w: node %d: %v without data but local copy is %v version %d", ErrProtocol, e.cfg.Self, m.String(), ps.state, ps.version)
	}
	ps.state, ps.version, ps.pending, ps.hint, ps.hintMod = Modified, m.Version, 0, e.cfg.Self, true
	ps.home = m.Src
	e.endDrain(p)
	if m.Flags&FlagHome != 0 {
		e.takeHome(p, m.Version)
	}
	e.cfg.Perm.SetAccess(m.GPA, ps.frame, AccessReadWrite)
	return nil
}

func (e *Engine) onInv(p uint64, m *Message, out *Outbox) error {
	ps := &e.pages[p]
	if ps.state == Modified {
		return fmt.Errorf("%w: node %d: %v while Modified", ErrProtocol, e.cfg.Self, m.String())
	}
	if ps.window == winOpen {
		if err := e.endUnchanged(p); err != nil {
			return fmt.Errorf("%w: %v", err, m.String())
		}
	}
	e.stats.Invalidations++
	if ps.state == Shared {
		e.drop(p)
	}
	ps.home = m.Src
	ps.hint, ps.hintMod = m.Requester, true
	e.send(&Message{Kind: KindInvAck, Src: e.cfg.Self, Dst: m.Src, Requester: m.Requester, GPA: m.GPA, Version: m.Version}, out)
	return nil
}

func (e *Engine) onFetch(p uint64, m *Message, out *Outbox) error {
	ps := &e.pages[p]
	r := Message{Kind: KindFetchReply, Src: e.cfg.Self, Dst: m.Src, Requester: m.Requester, GPA: m.GPA, Version: m.Version}
	switch ps.state {
	case Modified:
		r.Flags, r.Data, r.Version = FlagHasData, ps.frame, ps.version
		if m.Kind == KindFetch {
			r.Flags |= FlagKeptShared
			ps.state = Shared
			e.cfg.Perm.SetAccess(m.GPA, ps.frame, AccessRead)
		} else {
			e.drop(p)
		}
	case Shared:
		return fmt.Errorf("%w: node %d: %v while Shared", ErrProtocol, e.cfg.Self, m.String())
	}
	// Invalid: the page was written back; the writeback overtook this fetch.
	ps.hint, ps.hintMod = m.Requester, m.Kind == KindFetchInv
	ps.home = m.Src
	e.send(&r, out)
	return nil
}

// fill installs page data into this node's copy of page p, taking the
// frame its request reserved if it has none.
func (e *Engine) fill(p uint64, data *Page) error {
	ps := &e.pages[p]
	if ps.frame == nil {
		n := len(e.free)
		if n == 0 || e.waiting == 0 {
			return fmt.Errorf("%w: node %d: no frame reserved for a copy of %#x (%d free, %d waiting)", ErrProtocol, e.cfg.Self, p<<pageShift, n, e.waiting)
		}
		ps.frame = e.free[n-1]
		e.free = e.free[:n-1]
		e.waiting--
		e.link(p)
	}
	if data != ps.frame {
		*ps.frame = *data
	}
	return nil
}

// drop invalidates this node's copy; a non-home node gives its frame back
// to the pool once the current call's outbox has been consumed.
func (e *Engine) drop(p uint64) {
	ps := &e.pages[p]
	ps.state = Invalid
	e.cfg.Perm.SetAccess(p<<pageShift, nil, AccessNone)
	if ps.window == winDraining {
		// The copy holds what the window changed: it stays for the
		// merge with the page the grant brings.
		return
	}
	if !e.isHome(p) && ps.frame != nil {
		e.deferred = append(e.deferred, ps.frame)
		ps.frame = nil
		e.unlink(p)
		if ps.pending != 0 {
			// An upgrade lost its Shared copy: the grant brings the
			// data, into the frame just released.
			e.waiting++
		}
	}
}

// --- moving homes ---

// Leave makes this node hand the home of every page it homes to the
// next node whose write request offers to take it (FlagCanHome: it has
// HomeRoom), whatever Config.FirstTouch and MoveAfter say, and stop
// offering to take homes itself: the node is to leave the machine. The
// other nodes take the homes by writing the pages (a node that holds a
// page Modified evicts it first, so that its write asks the home); the
// messages are those of any home that moves with a write grant.
func (e *Engine) Leave() { e.leaving = true }

// Leaving reports whether Leave was called.
func (e *Engine) Leaving() bool { return e.leaving }

// CanTakeHome reports whether this node's next write request would offer
// to take a page's home: it is not leaving and has HomeRoom left, net of
// the offers outstanding.
func (e *Engine) CanTakeHome() bool {
	return !e.leaving && e.homes+e.offered < e.startHomes+e.cfg.HomeRoom
}

// idleEntry returns the directory entry of a page nobody holds but its
// home.
func idleEntry() dirEntry {
	return dirEntry{owner: NoNode, dataFrom: NoNode, runNode: NoNode}
}

// forward passes request m for page p, homed elsewhere now, on to the
// node this one handed the home to (or last heard from). Every node a
// request reaches homes the page or once did, so it knows a later home,
// and per-pair FIFO order keeps a passed-on request behind the grant
// that moved the home.
func (e *Engine) forward(p uint64, m *Message, out *Outbox) error {
	to := e.pages[p].home
	if to == m.Requester {
		return fmt.Errorf("%w: node %d: %v: home of %#x is node %d", ErrProtocol, e.cfg.Self, m.String(), p<<pageShift, to)
	}
	f := *m
	f.Src, f.Dst = e.cfg.Self, to
	e.stats.Forwards++
	e.send(&f, out)
	return nil
}

// movesHome reports whether the write grant completing on d hands the
// page's home to the requester: it offered to take it, nothing is
// queued behind it, and this node is leaving (Leave), Config.FirstTouch
// (nobody wrote the page yet) or Config.MoveAfter (its run of requests)
// says so.
func (e *Engine) movesHome(d *dirEntry) bool {
	if !d.is(txCanHome) || d.txReq == e.cfg.Self || d.qhead != 0 {
		return false
	}
	if e.leaving || e.cfg.FirstTouch && d.version == 0 {
		return true
	}
	return e.cfg.MoveAfter > 0 && d.runNode == d.txReq && int(d.run) >= e.cfg.MoveAfter
}

// handOver ends this node's homing of page p, whose write grant to
// node to (sent, with FlagHome) carries the directory entry there: to
// owns the page, nobody else holds it, and this node's frame goes back
// to Frames once the grant, which may borrow it, has been consumed.
func (e *Engine) handOver(p uint64, to NodeID) {
	ps := &e.pages[p]
	i := e.dirIdx[p]
	e.dir[i] = idleEntry()
	e.freeDir = append(e.freeDir, i)
	e.dirIdx[p] = -1
	ps.home, ps.hint, ps.hintMod = to, to, true
	if ps.frame != nil {
		e.released = append(e.released, ps.frame)
		ps.frame = nil
	}
	e.homes--
	e.stats.HomesGiven++
}

// takeHome makes this node the home of page p, just granted Modified at
// version with FlagHome: its copy's frame becomes the page's memory, out
// of the copies' clock and count, and the directory entry names it
// owner.
func (e *Engine) takeHome(p uint64, version uint64) {
	ps := &e.pages[p]
	e.unlink(p)
	e.copyFrames--
	var i int32
	if n := len(e.freeDir); n > 0 {
		i = e.freeDir[n-1]
		e.freeDir = e.freeDir[:n-1]
	} else {
		e.dir = append(e.dir, dirEntry{})
		i = int32(len(e.dir) - 1)
	}
	d := idleEntry()
	d.owner, d.version = e.cfg.Self, version
	e.dir[i] = d
	e.dirIdx[p] = i
	ps.home = e.cfg.Self
	e.homes++
	e.stats.HomesGained++
}
