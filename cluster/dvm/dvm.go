// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package dvm runs this node's share of a distributed virtual machine: one
// guest whose memory and vCPUs span several hyperkernel nodes. It joins
// the coherence engine (package memory), the vCPU migrator (package
// migrate) and the cluster transport, and gives the node's vCPU loops and
// shell what they need: resolve an EPT violation, read or write guest
// memory from the hyperkernel, send a vCPU away, raise an interrupt on a
// vCPU wherever it runs, and forward a device access (port or MMIO, read
// or write) to the node that hosts the VM's devices.
//
// # Who may touch the engine
//
// The engine drives the node's second-level page tables. Lowering a
// page's access (an invalidation, a fetch by another node) is safe only
// while no vCPU of this node runs in guest mode with a stale translation,
// so the rule is: whoever drives the engine holds the Runtime's lock, and
// a vCPU loop holds the lock while its vCPU is in guest mode. The loop
// lets go when its vCPU blocks (HLT, a remote fault, the end of a time
// slice); at every exit it checks [Runtime.Pending] and serves the
// messages that arrived meanwhile before re-entering the guest, whose
// next VMCS load flushes the EPT translations. Messages that arrive while
// no vCPU runs here are served by the Runtime's own goroutine ([Runtime.Run]).
//
// Outside this package the lock is reached only through a [Handle]: a
// vCPU loop gets one for its vCPU ([Runtime.Handle]), anything else that
// acts under the lock one for [NoVCPU]; a handle's methods panic unless
// it holds the lock. The lock is a sync.Mutex: a vCPU loop must take it
// while not pinned to its core and must leave its core (clear its VMCS,
// unpin) before any call that may block — [Handle.Serve],
// [Handle.Fault], [Handle.Depart], [Handle.Forward], [Handle.Interrupt],
// [Handle.ReadDevice] and [Handle.Read] send on the transport and may
// wait.
//
// Frame receive never takes the lock: [Runtime.Deliver] copies a message
// into the inbox, so the transport's own lock and this one are never held
// in the opposite order.
package dvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// StateSize is the room a vCPU's encoded architectural state has in a
// migration message: the largest vcpu.State encoding, rounded up.
const StateSize = 6144

// Transport carries a VM's messages between nodes on Channel: reliable,
// exactly once, in order per pair of nodes (the cluster transport's
// channels). Send may block while the peer's window is full; it copies msg.
type Transport interface {
	Send(to memory.NodeID, msg []byte) error
}

// Config describes this node's share of a VM.
type Config struct {
	Spec Spec
	Self memory.NodeID
	// Home maps a page number to its home node (the same function on
	// every node); nil follows Spec.Homes.
	Home func(page uint64) memory.NodeID
	// Place is the node each vCPU starts on; nil follows Spec.Place.
	Place func(v migrate.VCPUID) memory.NodeID
	// Perm drives this node's second-level tables; Frames supplies the
	// frames that hold page copies (nil: the Go heap, for tests).
	Perm   memory.Permissions
	Frames memory.FrameSource
	// CopyFrames bounds the frames this node holds for copies of pages
	// other nodes home (memory.Config.CopyFrames; the host sizes it with
	// CopyBudget): a fault beyond it, or when Frames runs short, evicts
	// a copy first. Zero means no bound.
	CopyFrames int
	// HomeRoom is how many pages this node may home beyond its share at
	// the start when Spec.FirstTouch or MoveAfter move homes
	// (memory.Config.HomeRoom; the host sizes it by its free frames).
	HomeRoom int
	// Transport sends to the other nodes.
	Transport Transport
	// Poll, if set, takes in what the network holds for this node now,
	// without waiting (the NIC's receive ring, handed to the transport
	// and on to Deliver), and reports whether it found anything. A
	// goroutine waiting for another node's answer calls it for up to
	// PollSpin before it sleeps, so that the answer is served by the
	// goroutine that needs it: waking a sleeping goroutine on another
	// core, after a receive loop that itself sleeps between polls, costs
	// more than the round trip on a fast link. It must not block for
	// long and is called without the lock.
	Poll func() bool
	// DeviceNode hosts the VM's devices: forwarded writes go there.
	DeviceNode memory.NodeID
	// OnArrive is called, with the lock held, when a vCPU arrives by
	// migration: st is valid only during the call. It must not block.
	OnArrive func(v migrate.VCPUID, st *vcpu.State)
	// OnDevice handles a device write from a vCPU on another node: with
	// the lock held, h holding it (it must not block), or with
	// DevicesUnlocked on the device goroutine, h not holding it.
	OnDevice func(h *Handle, d DeviceWrite)
	// OnDeviceRead serves a device read (on the device node), with the
	// lock held, and returns the value. It must not block.
	OnDeviceRead func(d DeviceRead) uint64
	// Hold bounds how long a page this node has just gained access to
	// stays here before a request from another node takes it away (or
	// shares it): a window for the vCPU that faulted to use it, as in
	// Mirage's time window. The window is three times this node's
	// average remote-fault wait, at most Hold: long enough for a vCPU
	// to gather the few pages a critical section needs (a lock, a
	// sequence count and its data) before the first is taken back.
	// Without it two nodes that write the same pages can hand them back
	// and forth at every exit, neither finishing. A request waits one
	// window at most: the vCPU's later faults on the page renew the
	// window for requests yet to come, not for one already held. Zero
	// serves requests at once.
	Hold time.Duration
	// Trace, if set, records this node's events while it is on (faults
	// that waited, invalidations, migrations, forwarded device reads).
	Trace *trace.Ring
	// DevicesUnlocked makes the device node serve forwarded device
	// accesses (OnDevice, OnDeviceRead) on a goroutine of their own,
	// in the order they arrived, without the lock: for devices that
	// reach guest memory through the Runtime (DMA), which takes the lock.
	// Replies to reads are sent from that goroutine.
	DevicesUnlocked bool
	// OnInterrupt, if set, is called with the lock held when an interrupt
	// from another node becomes pending on vCPU v, hosted here (to wake
	// it if it waits). It must not block.
	OnInterrupt func(v migrate.VCPUID)
	// Slots is how many of the VM's vCPUs a node runs before the move
	// policy (Spec.Move) counts it as full; 0: all of them (a node
	// time-shares its cores between vCPUs).
	Slots int
	// Cores is how many cores this node gives the VM's vCPUs (0: one).
	// The balancer (Spec.Balance) counts each node's load against the
	// cores in Spec.Cores, and against Cores for a node whose count it
	// does not know.
	Cores int
	// Clock, if set, is the time the Runtime measures by: monotonic,
	// from an arbitrary start. The move policy's fault times, the hold
	// window and the waits it counts (Stats.WaitTime, DeviceReadTime,
	// from which the policy estimates a pull's cost) read it. Nil: the
	// wall clock. (How long a waiter polls the network, PollSpin, is
	// always wall-clock time.) Tests give one they control, so that a
	// policy decides the same however fast the machine runs them.
	Clock func() time.Duration
}

// PollSpin bounds how long a goroutine waiting for another node polls
// the network (Config.Poll) before it sleeps until a receive loop
// delivers the answer: several round trips of a LAN, a small share of
// an emulator's.
const PollSpin = 200 * time.Microsecond

// Stats counts the Runtime's activity on this node.
type Stats struct {
	Memory    memory.Stats
	Migration migrate.Stats
	// Shared and Modified count the pages this node holds per state;
	// Homes the pages it homes now (Memory.HomesGained and HomesGiven
	// count those that moved here and away); Copies the copies it holds
	// of pages other nodes home.
	Shared, Modified, Homes, Copies int
	// RemoteWaits counts faults that waited for another node, and
	// WaitTime is the total time they waited.
	RemoteWaits uint64
	WaitTime    time.Duration
	// Waits counts those waits by length: Waits[i] the ones at most
	// WaitBound(i) and longer than WaitBound(i-1).
	Waits [WaitBuckets]uint64
	// Received counts messages taken from the transport; Rejected those
	// that were malformed or impossible (dropped, the VM stopped); Stale
	// those of another VM (an earlier one's, still in flight), dropped.
	Received, Rejected, Stale uint64
	// BytesIn counts the bytes of received messages; BytesOut those of
	// the coherence messages sent, as they went on the wire (pages
	// packed), where Memory.Bytes counts every page whole.
	BytesIn, BytesOut uint64
	// DeviceReads counts device reads forwarded to the device node and
	// DeviceReadTime the time they waited for their values.
	DeviceReads    uint64
	DeviceReadTime time.Duration
	// PolicyMoves counts the migrations the move policy chose (vCPUs
	// that went to a page instead of fetching it); BalanceMoves those
	// the balancer chose (Rebalance).
	PolicyMoves, BalanceMoves uint64
	// Held counts the messages held now (hold windows, and those kept
	// behind them in order), HeldFor how long the oldest has waited;
	// HeldFirst describes the first few, oldest first.
	Held      int
	HeldFor   time.Duration
	HeldFirst []HeldMessage
	// Draining says that walk-window upgrades of this node's are
	// outstanding (memory.Engine.Draining).
	Draining bool
}

// HeldMessage describes a message the runtime holds, for diagnosis.
type HeldMessage struct {
	// From is the sender's index among the VM's nodes.
	From memory.NodeID
	// What is the message's kind ("ReadReq", "device write", ...) and
	// GPA the page a coherence message is about.
	What string
	GPA  uint64
	// For is how long the message has been held.
	For time.Duration
	// Why is "window" (the page's hold window), "draining" (this
	// node's walk-window upgrades are outstanding and the answer would
	// reveal a later store), or "order" (behind an earlier message of
	// its sender).
	Why string
}

// maxHeldShown bounds Stats.HeldFirst.
const maxHeldShown = 4

// WaitBuckets is the number of buckets of Stats.Waits.
const WaitBuckets = 8

// WaitBound returns the upper bound of wait bucket i: 10 µs, 100 µs, 1
// ms, ... 10 s, and no bound (a negative duration) for the last.
func WaitBound(i int) time.Duration {
	if i < 0 || i >= WaitBuckets-1 {
		return -1
	}
	d := 10 * time.Microsecond
	for ; i > 0; i-- {
		d *= 10
	}
	return d
}

// waitBucket is the bucket of a wait of d.
func waitBucket(d time.Duration) int {
	i := 0
	for b := 10 * time.Microsecond; i < WaitBuckets-1 && d > b; b *= 10 {
		i++
	}
	return i
}

// ErrStopped is returned once the VM has been stopped on this node.
var ErrStopped = errors.New("dvm: VM stopped")

// ErrFlood stops a VM on this node when another node sends more than this
// node has served (MaxInbox messages waiting, or MaxDeviceQueue device
// accesses). A sender is held back well before that: Room says no once
// it has MaxInboxPerNode messages waiting, and the transport then keeps
// its messages and closes its window, so its sends wait (and fail after
// the transport's timeout, stopping the VM there). Only a sender that
// ignores that, or more device accesses than its vCPUs can have
// outstanding, reaches ErrFlood. The queue is not allowed to grow
// instead: it lives in the Go heap every guest shares, and the receive
// path, which also carries the cluster's heartbeats, must never block.
var ErrFlood = errors.New("dvm: flooded")

// MaxInbox and MaxDeviceQueue bound the messages waiting to be served
// and the forwarded device accesses waiting for the device goroutine.
// MaxInboxPerNode is how many messages of one sender may wait in the
// inbox before Room holds that sender back; a quarter of the inbox, so a
// flooding node cannot take all of it from the others.
const (
	MaxInbox        = 8192
	MaxInboxPerNode = MaxInbox / 4
	MaxDeviceQueue  = 1024
)

// pendingRead is a vCPU's forwarded device read.
type pendingRead struct {
	seq     uint8 // of the latest read sent
	waiting bool  // a reply to seq is due
	value   uint64
}

// devOp is a forwarded device access waiting for the device goroutine.
type devOp struct {
	from memory.NodeID
	read bool
	w    DeviceWrite
	r    DeviceRead
}

// inMsg is a received message waiting in the inbox.
type inMsg struct {
	from memory.NodeID
	b    []byte
	// held says that drainLocked held the message before, first at
	// heldAt (Runtime.now): a hold window delays a request once.
	held   bool
	heldAt int64
}

// Runtime is this node's share of one distributed VM.
type Runtime struct {
	cfg Config
	// split is where the guest's RAM lies: the engine's addresses are
	// page indexes times the page size (Spec.Pages), translated at the
	// Runtime's edges.
	split guestmem.Split

	mu sync.Mutex // see the package comment
	// pullNS is the measured cost of a remote fault, 0 until measured
	// (BalanceEvery reads it without the lock).
	pullNS atomic.Int64
	// locked is the handle OnDevice gets with the lock held; devHandle
	// the one it gets on the device goroutine.
	locked, devHandle Handle
	eng               *memory.Engine
	mig               *migrate.Migrator
	out               *memory.Outbox
	mout              *migrate.Outbox
	tx                []byte
	rx                memory.Page
	state             vcpu.State
	err               error // first fatal error; the VM is stopped on this node
	// halt is the first reason the VM stopped that was set without the
	// lock (NodeFailed, Halt), so that waiters wake even while a vCPU
	// holds the lock to send; err follows.
	halt  atomic.Pointer[haltCause]
	stats Stats
	reads []pendingRead // per vCPU: its forwarded device read
	waits []uint32      // per page: faults that waited for another node
	// acquired is, per page, when a vCPU's fault here last gained
	// access to it (Runtime.now); held are the requests the hold window
	// defers, in arrival order, and heldN their number.
	acquired   []int64
	held, hold []inMsg
	heldPages  []heldPage // drainLocked's: the pages of the requests it holds
	heldN      atomic.Int32
	done       [][]byte
	// windowsTouched is set while walk windows are open and a vCPU may
	// have written them since closeLocked last compared them.
	windowsTouched bool
	// policy decides pull or move on remote faults (nil: Spec.Move is
	// MovePull); costed is it when its cost estimates (sched.Hysteresis,
	// sched.Learned) follow the measured remote-fault wait.
	policy sched.Policy
	costed interface{ SetCosts(sched.Costs) }
	// balancer moves this node's vCPUs for load (nil: Spec.Balance is
	// BalanceNone), with where as its view of the vCPUs' nodes;
	// balanceCosted is it when its estimates follow the measured wait.
	balancer      sched.Balancer
	balanceCosted interface{ SetCosts(sched.Costs) }
	where         []int

	// forwarded device accesses for the device goroutine
	// (Config.DevicesUnlocked), under dmu
	dmu     sync.Mutex
	dcond   *sync.Cond
	devq    []devOp
	dclosed bool
	// devPending counts accesses queued or being performed.
	devPending int

	// inbox, under qmu
	qmu   sync.Mutex
	cond  *sync.Cond
	queue []inMsg
	work  []inMsg
	spare [][]byte
	gen   uint64 // incremented by every drain that served a message
	// genSeen mirrors gen for waiters that poll without qmu.
	genSeen atomic.Uint64
	closed  bool
	// flooder is 1 + the first node whose message found the inbox full.
	flooder int
	// waiting counts the queued messages of each sender.
	waiting [memory.MaxNodes]int32
	// stale counts messages dropped for carrying another VM's id.
	stale   atomic.Uint64
	pending atomic.Int32
}

// New builds this node's share of the VM described by cfg.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Spec.Validate(); err != nil {
		return nil, err
	}
	if int(cfg.Self) >= cfg.Spec.Nodes || int(cfg.DeviceNode) >= cfg.Spec.Nodes {
		return nil, fmt.Errorf("dvm: node %d (devices on %d) outside a VM of %d nodes", cfg.Self, cfg.DeviceNode, cfg.Spec.Nodes)
	}
	if cfg.Transport == nil || cfg.Perm == nil {
		return nil, errors.New("dvm: Transport and Perm are required")
	}
	if cfg.Home == nil {
		cfg.Home = cfg.Spec.Home()
	}
	if cfg.Place == nil {
		n, p := cfg.Spec.Nodes, cfg.Spec.Place
		cfg.Place = func(v migrate.VCPUID) memory.NodeID { return p.Node(v, n) }
	}
	r := &Runtime{
		cfg:   cfg,
		split: cfg.Spec.Split(),
		out:   memory.NewOutbox(),
		mout:  migrate.NewOutbox(),
		tx:    make([]byte, EnvelopeSize+migrate.MessageHeaderSize+64+StateSize+memory.MaxMessageSize),
		reads: make([]pendingRead, cfg.Spec.VCPUs),
		waits: make([]uint32, cfg.Spec.Pages),
	}
	if r.cfg.Clock == nil {
		epoch := time.Now()
		r.cfg.Clock = func() time.Duration { return time.Since(epoch) }
	}
	if cfg.Hold > 0 {
		r.acquired = make([]int64, cfg.Spec.Pages)
	}
	switch cfg.Spec.Move {
	case MoveHysteresis:
		h := sched.NewHysteresis(sched.DefaultHysteresis(sched.Costs{PullNS: initialPullNS, MoveNS: 2 * initialPullNS}), cfg.Spec.Nodes, cfg.Spec.VCPUs)
		r.policy, r.costed = h, h
	case MoveLearned:
		l := sched.NewLearned(sched.DefaultModel, sched.Costs{PullNS: initialPullNS, MoveNS: 2 * initialPullNS}, cfg.Spec.Nodes, cfg.Spec.VCPUs)
		r.policy, r.costed = l, l
	case MoveAlways:
		r.policy = sched.AlwaysMove{}
	}
	switch cfg.Spec.Balance {
	case BalanceSpread:
		r.balancer = sched.Spread{}
	case BalanceLearned:
		b := sched.NewLearnedBalance(sched.DefaultBalanceModel, sched.Costs{PullNS: initialPullNS, MoveNS: 2 * initialPullNS}, cfg.Spec.Nodes, cfg.Spec.VCPUs)
		r.balancer, r.balanceCosted = b, b
	}
	if r.balancer != nil {
		r.where = make([]int, cfg.Spec.VCPUs)
	}
	r.locked = Handle{r: r, v: NoVCPU}
	r.devHandle = Handle{r: r, v: NoVCPU}
	r.cond = sync.NewCond(&r.qmu)
	r.dcond = sync.NewCond(&r.dmu)
	var err error
	r.eng, err = memory.NewEngine(memory.Config{
		Self: cfg.Self, Nodes: cfg.Spec.Nodes, Pages: cfg.Spec.Pages,
		Home: cfg.Home, Perm: guestPerm{cfg.Perm, r.split}, Frames: cfg.Frames, CopyFrames: cfg.CopyFrames,
		FirstTouch: cfg.Spec.FirstTouch, MoveAfter: int(cfg.Spec.MoveAfter), HomeRoom: cfg.HomeRoom,
		Windows: cfg.Spec.WalkWindows,
	})
	if err != nil {
		return nil, fmt.Errorf("dvm: VM %d: %w", cfg.Spec.ID, err)
	}
	r.mig, err = migrate.New(migrate.Config{
		Self: cfg.Self, Nodes: cfg.Spec.Nodes, VCPUs: cfg.Spec.VCPUs, StateSize: StateSize,
		Initial: cfg.Place,
	})
	if err != nil {
		r.eng.Close()
		return nil, fmt.Errorf("dvm: VM %d: %w", cfg.Spec.ID, err)
	}
	return r, nil
}

// Spec returns the VM's description.
func (r *Runtime) Spec() Spec { return r.cfg.Spec }

// Self returns this node.
func (r *Runtime) Self() memory.NodeID { return r.cfg.Self }

// Deliver takes a message that arrived on Channel from node from (a
// memory, migrate or device message; control messages belong to the
// caller). It copies msg and never blocks on the Runtime's lock.
func (r *Runtime) Deliver(from memory.NodeID, msg []byte) {
	body, ok := openEnvelope(msg, r.cfg.Spec.ID)
	if !ok {
		// Another VM's (an earlier one's, still in flight), or no
		// envelope at all: never this VM's business.
		r.stale.Add(1)
		return
	}
	msg = body
	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return
	}
	var b []byte
	if n := len(r.spare); n > 0 && cap(r.spare[n-1]) >= len(msg) {
		b = r.spare[n-1][:len(msg)]
		r.spare = r.spare[:n-1]
	} else {
		b = make([]byte, len(msg), max(len(msg), memory.MaxMessageSize))
	}
	if len(r.queue) >= MaxInbox {
		// Dropped: the VM stops at the next drain (flooded).
		if r.flooder == 0 {
			r.flooder = int(from) + 1
		}
		r.recycle(b)
		r.pending.Add(1)
		r.cond.Broadcast()
		r.qmu.Unlock()
		return
	}
	copy(b, msg)
	r.queue = append(r.queue, inMsg{from: from, b: b})
	if int(from) < len(r.waiting) {
		r.waiting[from]++
	}
	r.pending.Add(1)
	r.cond.Broadcast()
	r.qmu.Unlock()
}

// Room reports whether node from may send another message now: fewer
// than MaxInboxPerNode of its messages wait in the inbox. The transport
// asks it before taking a message in (see ErrFlood).
func (r *Runtime) Room(from memory.NodeID) bool {
	if int(from) >= len(r.waiting) {
		return false
	}
	r.qmu.Lock()
	ok := r.waiting[from] < MaxInboxPerNode
	r.qmu.Unlock()
	return ok
}

// Pending reports whether messages wait in the inbox. It is cheap enough
// to call at every VM exit.
func (r *Runtime) Pending() bool { return r.pending.Load() != 0 || r.heldN.Load() != 0 }

// Lock takes the Runtime's lock and serves the inbox.
func (r *Runtime) lock() {
	r.mu.Lock()
	r.drainLocked()
}

// Unlock lets go of the Runtime's lock.
func (r *Runtime) unlock() { r.mu.Unlock() }

// serveLocked serves the inbox; the caller holds the lock and is not
// pinned (serving sends replies).
func (r *Runtime) serveLocked() { r.drainLocked() }

// Err returns the error that stopped the VM on this node, if any.
func (r *Runtime) Err() error {
	if c := r.halt.Load(); c != nil {
		return c.err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// errLocked is Err for a caller holding the lock.
func (r *Runtime) errLocked() error { return r.stoppedLocked() }

// send sends the message in b[EnvelopeSize:] to node to, enveloped for
// this VM in b[:EnvelopeSize].
func (r *Runtime) send(to memory.NodeID, b []byte) error {
	putEnvelope(b, r.cfg.Spec.ID)
	return r.cfg.Transport.Send(to, b)
}

func (r *Runtime) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Runtime) drainLocked() {
	if r.pending.Load() == 0 && r.heldN.Load() == 0 {
		return
	}
	r.closeLocked()
	r.qmu.Lock()
	r.work, r.queue = r.queue, r.work[:0]
	r.waiting = [memory.MaxNodes]int32{}
	r.pending.Store(0)
	flooder := r.flooder
	r.qmu.Unlock()
	if flooder != 0 {
		r.fail(fmt.Errorf("%w: node %d sent more than %d messages this node had not served", ErrFlood, flooder-1, MaxInbox))
	}
	// Held requests first, then the new messages, in arrival order. A
	// request still held keeps its sender's later coherence messages
	// about the same page behind it, and its later messages of other
	// kinds (migrations, devices, interrupts), so that what the engine
	// and the vCPUs see of each sender is in order (a reply to this
	// node's own request goes ahead of a held message of another kind:
	// see isReply); its coherence
	// messages about other pages go ahead, as the coherence protocol
	// allows (its races are per page). Were they held too, a node that
	// keeps one page while its vCPU waits for a second would not get the
	// second until its window on the first ended, and would then give
	// the first up as it got the second: two nodes whose vCPUs need both
	// at once (an instruction whose page walk writes both, on AMD-V)
	// would trade them for ever.
	var blocked uint64 // senders with a message other than a request held in this pass
	var now int64
	if r.acquired != nil {
		now = r.now() // for the hold window
	}
	r.hold = r.hold[:0]
	r.heldPages = r.heldPages[:0]
	r.done = r.done[:0]
	served := 0
	for _, list := range [2][]inMsg{r.held, r.work} {
		for _, m := range list {
			if r.mustHoldLocked(m, blocked, now) {
				if !m.held {
					m.held, m.heldAt = true, r.now()
				}
				if p, ok := coherencePage(m.b); ok {
					r.heldPages = append(r.heldPages, heldPage{m.from, p})
				} else {
					blocked |= 1 << m.from
				}
				r.hold = append(r.hold, m)
				continue
			}
			r.stats.Received++
			r.stats.BytesIn += uint64(len(m.b))
			if err := r.handle(m.from, m.b); err != nil {
				r.stats.Rejected++
				r.fail(err)
			}
			r.done = append(r.done, m.b)
			served++
		}
	}
	r.held, r.hold = r.hold, r.held
	r.heldN.Store(int32(len(r.held)))
	r.qmu.Lock()
	r.recycle(r.done...)
	clear(r.done)
	clear(r.work)
	if served > 0 {
		r.gen++
		r.genSeen.Store(r.gen)
	}
	if served > 0 || len(r.held) > 0 {
		// Run serves held requests once their windows end, and it
		// waits on cond only while none are held. A drain of another
		// goroutine's (a vCPU that polled the network while it waited
		// for a page) may have taken the queue after Run last looked
		// and held what it found: Run must look again, or the held
		// request waits until the next message arrives, which may be
		// never (a three-node run hung 4m54s on an invalidation so).
		r.cond.Broadcast()
	}
	r.qmu.Unlock()
}

// MaxSpare bounds the receive buffers the inbox keeps for reuse: many
// more than the messages that arrive while one drain serves the last
// ones (a few per vCPU), few enough that a burst, once served, does
// not keep its buffers in the Go heap for the rest of the VM's life.
const MaxSpare = 256

// recycle gives the buffers of served (or dropped) messages back to the
// inbox's pool, the caller holding qmu. Only buffers with room for any
// coherence message (cap memory.MaxMessageSize, as Deliver makes them)
// go back, and no more than MaxSpare: the others are left to the garbage
// collector. A larger buffer (a vCPU's migration, whose state with a
// large XSAVE area exceeds a page) kept in the pool would not be reused
// for the next large message whenever a smaller one sat on top, and the
// pool would grow by one buffer per migration for the VM's life.
func (r *Runtime) recycle(bufs ...[]byte) {
	for _, b := range bufs {
		if len(r.spare) >= MaxSpare {
			return
		}
		if cap(b) == memory.MaxMessageSize {
			r.spare = append(r.spare, b)
		}
	}
}

// heldPage is a sender and a page of a coherence message held.
type heldPage struct {
	from memory.NodeID
	page uint64
}

// mustHoldLocked reports whether drainLocked holds message m: it is a
// request in its page's hold window, or comes after a message of its
// sender held in this pass that it must not overtake (see drainLocked).
// blocked are the senders with a message other than a coherence message
// held.
func (r *Runtime) mustHoldLocked(m inMsg, blocked uint64, now int64) bool {
	if blocked&(1<<m.from) != 0 && !isReply(m.b) || r.eng.Draining() && r.revealsLocked(m.b) {
		return true
	}
	p, coherence := coherencePage(m.b)
	for _, h := range r.heldPages {
		if h.from == m.from && (!coherence || h.page == p) {
			return true
		}
	}
	return r.holdsLocked(m, now)
}

// isReply reports whether b is a coherence message that answers one of
// this node's (a grant or data for its request, an acknowledgement of
// its invalidation or fetch). A reply may go ahead of a message of its
// sender's held before it (a device access, a migration): it shows this
// node nothing of the sender's that the held message would have to come
// first for (a vCPU here reaches a device only after this node's held
// messages are served), and it may be what this node waits for to stop
// holding. Held behind a device write that a node drains (revealsLocked)
// until its walk windows' upgrades are granted, the grant of such an
// upgrade would leave the node draining for ever.
func isReply(b []byte) bool {
	if len(b) < memory.MessageHeaderSize || b[0] != memory.MessageMagic {
		return false
	}
	switch memory.Kind(b[1]) {
	case memory.KindReadData, memory.KindWriteGrant, memory.KindInvAck, memory.KindFetchReply:
		return true
	}
	return false
}

// coherencePage returns the page a coherence message is about.
func coherencePage(b []byte) (uint64, bool) {
	if len(b) < memory.MessageHeaderSize || b[0] != memory.MessageMagic {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]) / memory.PageSize, true
}

// holdsLocked reports whether message m is a request for a page this
// node gained access to less than Config.Hold ago (see Config.Hold),
// and has not yet been held for that long: a vCPU that keeps faulting
// on the page renews its window, and were the window to delay a request
// again each time, the other node's vCPU would wait as long as this one
// kept touching the page (minutes, in a three-node run).
func (r *Runtime) holdsLocked(m inMsg, now int64) bool {
	b := m.b
	if r.acquired == nil || len(b) < memory.MessageHeaderSize || b[0] != memory.MessageMagic {
		return false
	}
	if m.held && now-m.heldAt >= int64(r.holdLocked()) {
		return false
	}
	switch memory.Kind(b[1]) {
	case memory.KindReadReq, memory.KindWriteReq, memory.KindInv, memory.KindFetch, memory.KindFetchInv:
	default:
		return false
	}
	p := binary.LittleEndian.Uint64(b[8:]) / memory.PageSize
	return p < uint64(len(r.acquired)) && now-r.acquired[p] < int64(r.holdLocked())
}

// holdLocked is the hold window now (see Config.Hold).
func (r *Runtime) holdLocked() time.Duration {
	if r.stats.RemoteWaits == 0 {
		return r.cfg.Hold
	}
	return min(3*r.stats.WaitTime/time.Duration(r.stats.RemoteWaits), r.cfg.Hold)
}

// handle serves one message; an error means a peer broke the protocol.
// The first byte says which family it belongs to: coherence, vCPU
// migration, or a forwarded device write or read.
func (r *Runtime) handle(from memory.NodeID, b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty message from node %d", ErrBadMessage, from)
	}
	if r.stoppedLocked() != nil {
		return nil // stopped: drop quietly, the error is already reported
	}
	switch b[0] {
	case memory.MessageMagic:
		return r.handleCoherence(from, b)
	case migrate.MessageMagic:
		return r.handleMigration(from, b)
	case DeviceMagic:
		return r.handleDeviceWrite(from, b)
	case DeviceReadMagic:
		return r.handleDeviceRead(from, b)
	}
	return fmt.Errorf("%w: magic %#x from node %d", ErrBadMessage, b[0], from)
}

// handleCoherence hands a memory coherence message from node from to the
// coherence engine and sends what the engine answers.
func (r *Runtime) handleCoherence(from memory.NodeID, b []byte) error {
	var m memory.Message
	if err := m.Unmarshal(b, &r.rx); err != nil {
		return fmt.Errorf("dvm: from node %d: %w", from, err)
	}
	if m.Src != from {
		return fmt.Errorf("%w: node %d sent a coherence message as node %d", ErrBadMessage, from, m.Src)
	}
	if err := r.eng.HandleMessage(&m, r.out); err != nil {
		r.out.Reset()
		return err
	}
	if tr := r.cfg.Trace; tr.On() && (m.Kind == memory.KindInv || m.Kind == memory.KindFetchInv) {
		tr.Record(trace.Event{Time: tr.Since(), Kind: trace.KindInvalidate, VCPU: -1, Node: uint16(from), Addr: m.GPA})
	}
	return r.flushMemory()
}

// handleMigration hands a vCPU migration message from node from to the
// migrator, sends what it answers, and acts on what happened: an
// interrupt delivered to a vCPU here, or a vCPU arrived.
func (r *Runtime) handleMigration(from memory.NodeID, b []byte) error {
	var m migrate.Message
	if err := m.Unmarshal(b); err != nil {
		return fmt.Errorf("dvm: from node %d: %w", from, err)
	}
	if m.Src != from {
		return fmt.Errorf("%w: node %d sent a migration message as node %d", ErrBadMessage, from, m.Src)
	}
	ev, err := r.mig.HandleMessage(&m, r.mout)
	if err != nil {
		r.mout.Reset()
		return err
	}
	if err := r.flushMigration(); err != nil {
		return err
	}
	if ev.Kind == migrate.EventDelivered && r.cfg.OnInterrupt != nil {
		r.cfg.OnInterrupt(ev.VCPU)
	}
	if ev.Kind == migrate.EventArrived {
		return r.vcpuArrived(from, ev.VCPU)
	}
	return nil
}

// vcpuArrived decodes the state of vCPU v, just migrated here from node
// from, tells the placement policy and hands the state to
// Config.OnArrive.
func (r *Runtime) vcpuArrived(from memory.NodeID, v migrate.VCPUID) error {
	rec := r.mig.VCPU(v)
	n, err := vcpu.EncodedLen(rec.State)
	if err != nil || n > len(rec.State) {
		return fmt.Errorf("dvm: vCPU %d from node %d: bad state: %v", v, from, err)
	}
	if tr := r.cfg.Trace; tr.On() {
		tr.Record(trace.Event{Time: tr.Since(), Kind: trace.KindMigrateIn, VCPU: int32(v), Node: uint16(from), Bytes: uint32(n)})
	}
	if err := r.state.UnmarshalBinary(rec.State[:n]); err != nil {
		return fmt.Errorf("dvm: vCPU %d from node %d: %w", v, from, err)
	}
	if r.policy != nil {
		r.policy.Migrated(int(v), int(from), int(r.cfg.Self), r.now())
	}
	if r.balancer != nil {
		r.balancer.Migrated(int(v), int(from), int(r.cfg.Self), r.now())
	}
	if r.cfg.OnArrive != nil {
		r.cfg.OnArrive(v, &r.state)
	}
	return nil
}

// handleDeviceWrite performs (or, with Config.DevicesUnlocked, queues) a
// device write node from forwarded to this node, the device node.
func (r *Runtime) handleDeviceWrite(from memory.NodeID, b []byte) error {
	var d DeviceWrite
	if err := d.Unmarshal(b); err != nil {
		return fmt.Errorf("dvm: from node %d: %w", from, err)
	}
	if d.VM != r.cfg.Spec.ID || r.cfg.Self != r.cfg.DeviceNode {
		return fmt.Errorf("%w: device write for VM %d from node %d, not served here", ErrBadMessage, d.VM, from)
	}
	if r.cfg.DevicesUnlocked {
		return r.queueDevice(devOp{from: from, w: d})
	}
	r.deviceLocked(d)
	return nil
}

// handleDeviceRead serves a forwarded device read: on the device node a
// request, elsewhere the device node's reply to a read a vCPU here waits
// for.
func (r *Runtime) handleDeviceRead(from memory.NodeID, b []byte) error {
	var d DeviceRead
	if err := d.Unmarshal(b); err != nil {
		return fmt.Errorf("dvm: from node %d: %w", from, err)
	}
	if d.VM != r.cfg.Spec.ID || int(d.VCPU) >= len(r.reads) {
		return fmt.Errorf("%w: device read for VM %d vCPU %d from node %d", ErrBadMessage, d.VM, d.VCPU, from)
	}
	if !d.Reply {
		return r.serveDeviceReadRequest(from, d)
	}
	p := &r.reads[d.VCPU]
	if from != r.cfg.DeviceNode || !p.waiting || d.Seq != p.seq {
		return fmt.Errorf("%w: node %d answered a device read of vCPU %d (seq %d) nobody waits for", ErrBadMessage, from, d.VCPU, d.Seq)
	}
	p.waiting, p.value = false, d.Value
	return nil
}

// serveDeviceReadRequest performs (or, with Config.DevicesUnlocked,
// queues) a device read node from forwarded to this node, which must be
// the device node, and sends the reply.
func (r *Runtime) serveDeviceReadRequest(from memory.NodeID, d DeviceRead) error {
	if r.cfg.Self != r.cfg.DeviceNode {
		return fmt.Errorf("%w: device read from node %d, not served here", ErrBadMessage, from)
	}
	if r.cfg.DevicesUnlocked {
		return r.queueDevice(devOp{from: from, read: true, r: d})
	}
	d.Reply, d.Value = true, r.readDevice(d)
	var rb [EnvelopeSize + DeviceReadSize]byte
	n := d.MarshalTo(rb[EnvelopeSize:])
	return r.send(from, rb[:EnvelopeSize+n])
}

// queueDevice hands a forwarded access to the device goroutine; more
// than MaxDeviceQueue waiting is a flood.
func (r *Runtime) queueDevice(op devOp) error {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if r.devPending >= MaxDeviceQueue {
		return fmt.Errorf("%w: node %d forwarded more than %d device accesses the device node had not performed", ErrFlood, op.from, MaxDeviceQueue)
	}
	r.devPending++
	r.devq = append(r.devq, op)
	r.dcond.Signal()
	return nil
}

// serveDevices is the device goroutine (Config.DevicesUnlocked): it
// performs forwarded accesses in arrival order, without the lock, and
// answers reads, until Close.
func (r *Runtime) serveDevices() {
	var batch []devOp
	var rb [EnvelopeSize + DeviceReadSize]byte
	for {
		r.dmu.Lock()
		for len(r.devq) == 0 && !r.dclosed {
			r.dcond.Wait()
		}
		if r.dclosed {
			r.dmu.Unlock()
			return
		}
		batch, r.devq = r.devq, batch[:0]
		r.dmu.Unlock()
		for i := range batch {
			op := &batch[i]
			r.serveDevice(op, rb[:])
			r.dmu.Lock()
			r.devPending--
			r.dmu.Unlock()
		}
	}
}

// deviceLocked passes a device write to OnDevice with a handle that
// holds the lock, as its caller does.
func (r *Runtime) deviceLocked(d DeviceWrite) {
	if r.cfg.OnDevice == nil {
		return
	}
	held := r.locked.held
	r.locked.held = true
	r.cfg.OnDevice(&r.locked, d)
	r.locked.held = held
}

// serveDevice performs one forwarded access on the device goroutine,
// answering a read with rb as its buffer.
func (r *Runtime) serveDevice(op *devOp, rb []byte) {
	if !op.read {
		if r.cfg.OnDevice != nil {
			r.cfg.OnDevice(&r.devHandle, op.w)
		}
		return
	}
	d := op.r
	d.Reply, d.Value = true, r.readDevice(d)
	n := d.MarshalTo(rb[EnvelopeSize:])
	if err := r.send(op.from, rb[:EnvelopeSize+n]); err != nil {
		r.mu.Lock()
		r.fail(fmt.Errorf("dvm: answering a device read of node %d: %w", op.from, err))
		r.mu.Unlock()
	}
}

// readDevice serves a device read on the device node: all ones where
// nothing answers, as on an ISA bus.
func (r *Runtime) readDevice(d DeviceRead) uint64 {
	if r.cfg.OnDeviceRead == nil {
		return ^uint64(0)
	}
	return r.cfg.OnDeviceRead(d)
}

// readDeviceLocked reads a device register for vCPU v: port addr, or
// with mmio the guest-physical address addr; on this node if it hosts
// the VM's devices, otherwise by a round trip to that node, waiting
// (without the lock) for the value. The caller holds the lock and is not
// pinned.
func (r *Runtime) readDeviceLocked(v migrate.VCPUID, mmio bool, addr uint64, size uint8) (uint64, error) {
	if int(v) >= len(r.reads) {
		return 0, fmt.Errorf("dvm: device read for vCPU %d of %d", v, len(r.reads))
	}
	if _, err := checkAccess(space(mmio), addr, size); err != nil {
		return 0, err
	}
	d := DeviceRead{VM: r.cfg.Spec.ID, VCPU: v, MMIO: mmio, Addr: addr, Size: size}
	r.quiesceLocked()
	if r.cfg.DeviceNode == r.cfg.Self {
		return r.readDevice(d), nil
	}
	p := &r.reads[v]
	if p.waiting {
		return 0, fmt.Errorf("dvm: vCPU %d has a device read outstanding", v)
	}
	p.seq++
	p.waiting = true
	d.Seq = p.seq
	var b [EnvelopeSize + DeviceReadSize]byte
	n := d.MarshalTo(b[EnvelopeSize:])
	if err := r.send(r.cfg.DeviceNode, b[:EnvelopeSize+n]); err != nil {
		r.fail(err)
		return 0, err
	}
	start := r.now()
	for p.waiting {
		if err := r.stoppedLocked(); err != nil {
			p.waiting = false
			return 0, err
		}
		r.awaitLocked(r.generation())
	}
	wait := time.Duration(r.now() - start)
	r.stats.DeviceReads++
	r.stats.DeviceReadTime += wait
	if tr := r.cfg.Trace; tr.On() {
		tr.Record(trace.Event{Time: tr.Since(), Kind: trace.KindDeviceRead, VCPU: int32(v), Node: uint16(r.cfg.DeviceNode), Addr: addr, Wait: wait})
	}
	return p.value, nil
}

// flushEngine sends what an engine call that returned err queued in
// r.out, or, if the call failed, drops it and returns err.
func (r *Runtime) flushEngine(err error) error {
	if err != nil {
		r.out.Reset()
		return err
	}
	return r.flushMemory()
}

func (r *Runtime) flushMemory() error {
	defer r.out.Reset()
	for i := range r.out.Msgs {
		m := &r.out.Msgs[i]
		n, err := m.MarshalTo(r.tx[EnvelopeSize:])
		if err != nil {
			return err
		}
		if err := r.send(m.Dst, r.tx[:EnvelopeSize+n]); err != nil {
			return fmt.Errorf("dvm: sending %v: %w", m.Kind, err)
		}
		r.stats.BytesOut += uint64(n)
	}
	return nil
}

func (r *Runtime) flushMigration() error {
	defer r.mout.Reset()
	for i := range r.mout.Msgs {
		m := &r.mout.Msgs[i]
		n, err := m.MarshalTo(r.tx[EnvelopeSize:])
		if err != nil {
			return err
		}
		if err := r.send(m.Dst, r.tx[:EnvelopeSize+n]); err != nil {
			return fmt.Errorf("dvm: sending %v: %w", m.Kind, err)
		}
	}
	return nil
}

// waitChange blocks until a message arrives or another goroutine served
// one since gen was read. With Config.Poll it polls the network for up to
// PollSpin first.
func (r *Runtime) waitChange(gen uint64) {
	if r.pollChange(gen) {
		return
	}
	r.qmu.Lock()
	for len(r.queue) == 0 && r.gen == gen && !r.closed && r.halt.Load() == nil {
		r.cond.Wait()
	}
	r.qmu.Unlock()
}

// pollChange polls the network (Config.Poll) until a message arrives,
// another goroutine serves one since gen, the VM stops, or PollSpin
// passes; it reports whether the wait is over.
func (r *Runtime) pollChange(gen uint64) bool {
	return r.cfg.Poll != nil && PollFor(r.cfg.Poll, func() bool {
		return r.pending.Load() != 0 || r.genSeen.Load() != gen || r.halt.Load() != nil
	})
}

// PollFor calls poll until done reports true, which it returns, or until
// PollSpin has passed, when it returns false: how a goroutine waiting for
// another node spins before it sleeps (Config.Poll). Between polls that
// find nothing it yields the core to the goroutines that may deliver or
// serve the answer.
func PollFor(poll, done func() bool) bool {
	start := time.Now()
	for {
		found := poll()
		if done() {
			return true
		}
		if time.Since(start) >= PollSpin {
			return false
		}
		if !found {
			runtime.Gosched()
		}
	}
}

func (r *Runtime) generation() uint64 {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.gen
}

// faultLocked resolves a guest access to gpa by vCPU v (NoVCPU: not a
// vCPU's) that this node's tables do not allow (an EPT violation): it
// returns once the access is allowed. The
// caller holds the lock and is not pinned; the lock is released while
// waiting for other nodes and held again on return. A fault that finds
// no frame for its copy (memory.FaultNoRoom: every copy here awaits an
// answer) waits like a remote one: the next answer served frees a copy
// to evict.
func (r *Runtime) faultLocked(v migrate.VCPUID, gpa uint64, write bool) error {
	a, err := r.addr(gpa)
	if err != nil {
		return err
	}
	p := a / memory.PageSize
	start := int64(-1) // when the fault began to wait for another node
	r.closeLocked()
	for {
		if err := r.stoppedLocked(); err != nil {
			return err
		}
		gen := r.generation()
		res, err := r.eng.Fault(a, write, r.out)
		if err = r.flushEngine(err); err != nil {
			r.fail(err)
			return err
		}
		if res == memory.FaultSpurious || res == memory.FaultLocal {
			// A vCPU's access opens the page's hold window (see
			// Config.Hold); the hyperkernel's own (a device's DMA,
			// an instruction's decoding) is over once it has copied
			// what it needs, and holding the page from the vCPU that
			// wrote it, the ring's driver on another node, would only
			// stall that vCPU.
			if r.acquired != nil && v != NoVCPU {
				r.acquired[p] = r.now()
			}
			if start >= 0 {
				wait := time.Duration(r.now() - start)
				r.stats.RemoteWaits++
				r.stats.WaitTime += wait
				r.stats.Waits[waitBucket(wait)]++
				if tr := r.cfg.Trace; tr.On() {
					tr.Record(trace.Event{Time: tr.Since(), Kind: trace.KindFault, VCPU: traceVCPU(v), Addr: gpa, Write: write, Wait: wait})
				}
				r.waits[p]++
			}
			return nil
		}
		if start < 0 {
			start = r.now()
		}
		r.awaitLocked(gen)
	}
}

// traceVCPU is vCPU v as a trace event names it: -1 for NoVCPU.
func traceVCPU(v migrate.VCPUID) int32 {
	if v == NoVCPU {
		return -1
	}
	return int32(v)
}

// initialPullNS is the move policy's estimate of a remote fault until
// this node has measured its own: a page fetch over a LAN (the
// simulator's figure). A migration is estimated at two (placeLocked).
const initialPullNS = 15_000

// minCostSamples is how many remote waits the measured average needs
// before it replaces initialPullNS.
const minCostSamples = 16

// now is the time the move policy sees, in nanoseconds (Config.Clock;
// each node's policy only compares its own readings).
func (r *Runtime) now() int64 { return int64(r.cfg.Clock()) }

// placeLocked asks the VM's move policy (Spec.Move) whether vCPU v, which
// faulted on gpa on this node, should move to the node that holds the
// page rather than fetch it. It returns that node and true to move; the
// caller then migrates the vCPU with the access not done, to run it
// there. The caller holds the lock.
//
// A migration is estimated to cost two remote faults (its state is one
// message the size of a page, and the vCPU's first accesses on the new
// node fetch its stack). A vCPU that faults on a page of a
// higher-numbered node that runs vCPUs fetches it (sched.Yields).
//
// The balancer (Spec.Balance), if any, sees the fault too.
func (r *Runtime) placeLocked(v migrate.VCPUID, gpa uint64, write bool) (memory.NodeID, bool) {
	if r.policy == nil && r.balancer == nil {
		return 0, false
	}
	a, err := r.addr(gpa)
	if err != nil || r.eng.LocalSatisfiable(a, write) {
		return 0, false
	}
	target, dirty := r.eng.Hint(a)
	if target == r.cfg.Self || int(target) >= r.cfg.Spec.Nodes {
		return 0, false
	}
	if r.stats.RemoteWaits >= minCostSamples {
		pull := int64(r.stats.WaitTime) / int64(r.stats.RemoteWaits)
		r.pullNS.Store(pull)
		for _, c := range [...]interface{ SetCosts(sched.Costs) }{r.costed, r.balanceCosted} {
			if c != nil {
				c.SetCosts(sched.Costs{PullNS: pull, MoveNS: 2 * pull})
			}
		}
	}
	f := sched.Fault{VCPU: int(v), Node: int(r.cfg.Self), Target: int(target), Dirty: dirty, Page: a / memory.PageSize, Write: write, Now: r.now()}
	if r.balancer != nil {
		r.balancer.Observe(f)
	}
	if r.policy == nil || sched.Yields(int(r.cfg.Self), int(target), (*runtimeCluster)(r)) {
		return 0, false
	}
	if r.policy.Decide(f, (*runtimeCluster)(r)) != sched.Move {
		return 0, false
	}
	r.stats.PolicyMoves++
	return target, true
}

// deviceMoveLocked asks the VM's device policy (Spec.Devices) whether a
// vCPU here that touches a device should move to the device node rather
// than forward the access: it returns that node and true to move. The
// caller then migrates the vCPU with the access not done. The caller
// holds the lock.
func (r *Runtime) deviceMoveLocked() (memory.NodeID, bool) {
	if r.cfg.Spec.Devices != DevicesMove || r.cfg.Self == r.cfg.DeviceNode {
		return 0, false
	}
	r.stats.PolicyMoves++
	return r.cfg.DeviceNode, true
}

// Bounds on BalanceEvery.
const (
	MinBalanceEvery = 2 * time.Millisecond
	MaxBalanceEvery = 500 * time.Millisecond
)

// BalanceEvery returns how often to ask Rebalance: sched.BalancePeriod
// remote faults' time as this node measures them (initialPullNS until
// it has), within MinBalanceEvery and MaxBalanceEvery. That is the
// cadence the balancer's model was fitted at in the simulator, so that
// its cool-downs and back-offs, counted in remote faults' time, span the
// looks they spanned there: asked every 100 ms where a fault took 0.6
// ms, the learned balancer took most of its trial moves back after more
// than a cool-down, never backed off, and moved the counter's vCPU 17
// times in 1.7 s (TestQEMUClusterAMDV). It takes no lock.
func (r *Runtime) BalanceEvery() time.Duration {
	pull := r.pullNS.Load()
	if pull <= 0 {
		pull = initialPullNS
	}
	return min(max(time.Duration(sched.BalancePeriod*pull), MinBalanceEvery), MaxBalanceEvery)
}

// Rebalance asks the VM's balancer (Spec.Balance) whether to move one of
// the vCPUs this node hosts, and movable allows, for load: it returns the
// vCPU and its destination, and the caller moves it (as Migrate does). A
// node decides for its own vCPUs only, from the loads as it knows them
// and the faults it saw; Config.Cores says what a node's cores are. It
// takes the lock; movable must not.
func (r *Runtime) Rebalance(movable func(migrate.VCPUID) bool) (migrate.VCPUID, memory.NodeID, bool) {
	if r.balancer == nil {
		return 0, 0, false
	}
	r.lock()
	defer r.unlock()
	for v := range r.where {
		r.where[v] = -1
		if r.mig.Hosts(migrate.VCPUID(v)) && movable(migrate.VCPUID(v)) {
			r.where[v] = int(r.cfg.Self)
		}
	}
	v, to, ok := r.balancer.Balance((*balanceCluster)(r), r.cfg.Spec.Nodes, r.where, r.now())
	if !ok || v < 0 || v >= len(r.where) || r.where[v] < 0 || to < 0 || to >= r.cfg.Spec.Nodes || to == int(r.cfg.Self) {
		return 0, 0, false
	}
	r.stats.BalanceMoves++
	return migrate.VCPUID(v), memory.NodeID(to), true
}

// balanceCluster is the Runtime as the balancer's view of the VM: loads
// as the move policy sees them, each node with the cores it told the
// creator (Spec.Cores), or this node's Config.Cores where unknown.
type balanceCluster Runtime

// Load implements sched.Cluster.
func (c *balanceCluster) Load(node int) int { return (*runtimeCluster)(c).Load(node) }

// Cores implements sched.Cluster.
func (c *balanceCluster) Cores(node int) int {
	if node >= 0 && node < len(c.cfg.Spec.Cores) && c.cfg.Spec.Cores[node] > 0 {
		return int(c.cfg.Spec.Cores[node])
	}
	return max(c.cfg.Cores, 1)
}

// runtimeCluster is the Runtime as the move policy's view of the VM.
type runtimeCluster Runtime

// Load implements sched.Cluster: the VM's vCPUs this node believes run
// on node.
func (c *runtimeCluster) Load(node int) int {
	n := 0
	for v := range c.cfg.Spec.VCPUs {
		if at, _ := c.mig.Location(migrate.VCPUID(v)); int(at) == node {
			n++
		}
	}
	return n
}

// Cores implements sched.Cluster: Config.Slots, or every vCPU.
func (c *runtimeCluster) Cores(int) int {
	if c.cfg.Slots > 0 {
		return c.cfg.Slots
	}
	return c.cfg.Spec.VCPUs
}

// awaitLocked lets go of the lock until a message arrives or another
// goroutine has served one since generation gen, then takes the lock
// again and serves what came. The caller holds the lock and is not
// pinned.
func (r *Runtime) awaitLocked(gen uint64) {
	r.mu.Unlock()
	r.waitChange(gen)
	r.mu.Lock()
	r.drainLocked()
}

// Access runs fn on this node's copy of the page holding gpa once this
// node may read it (write false) or write it (write true): the
// hyperkernel's own guest-memory accesses (loading an image, the shell's
// peek and poke). It takes the lock itself.
func (r *Runtime) Access(gpa uint64, write bool, fn func(page *memory.Page)) error {
	if _, err := r.addr(gpa); err != nil {
		return err
	}
	r.lock()
	defer r.unlock()
	return r.accessLocked(gpa, write, fn)
}

// accessLocked is Access for a caller that holds the lock.
func (r *Runtime) accessLocked(gpa uint64, write bool, fn func(page *memory.Page)) error {
	a, err := r.addr(gpa)
	if err != nil {
		return err
	}
	if err := r.faultLocked(NoVCPU, gpa, write); err != nil {
		return err
	}
	fn(r.eng.Frame(a))
	return nil
}

// addr returns the engine's address of guest-physical address gpa (see
// Spec.Pages), or an error if gpa is not the VM's RAM. It does not
// allocate when gpa is RAM.
func (r *Runtime) addr(gpa uint64) (uint64, error) {
	i, ok := r.split.Index(gpa)
	if !ok {
		return 0, fmt.Errorf("dvm: address %#x is not the VM's RAM %v", gpa, r.split)
	}
	return i*memory.PageSize + gpa%memory.PageSize, nil
}

// guestPerm is the engine's Permissions over the host's: it translates
// the engine's addresses (page indexes) to guest-physical ones.
type guestPerm struct {
	perm  memory.Permissions
	split guestmem.Split
}

// SetAccess implements memory.Permissions.
func (g guestPerm) SetAccess(a uint64, f *memory.Page, acc memory.Access) {
	g.perm.SetAccess(g.split.Addr(a/memory.PageSize)+a%memory.PageSize, f, acc)
}

// Write copies b into guest memory at gpa once this node may write each
// page (a device's DMA, the loader), asking other nodes for up to
// PrefetchPages pages at once (see copyLocked).
func (r *Runtime) Write(gpa uint64, b []byte) error {
	r.lock()
	defer r.unlock()
	return r.copyLocked(gpa, b, true)
}

// Read copies guest memory at gpa into b once this node may read each
// page, asking other nodes for up to PrefetchPages pages at once (see
// copyLocked).
func (r *Runtime) Read(gpa uint64, b []byte) error {
	r.lock()
	defer r.unlock()
	return r.readLocked(gpa, b)
}

// Prefetch asks for the pages of the n bytes at gpa that this node may
// not yet access (for writing, if write), at most PrefetchPages of them,
// without waiting for the answers (devices.Prefetcher): a device about
// to copy a request's scattered buffers, one Read or Write each, then
// waits about one round trip for all of them. It takes the lock itself.
func (r *Runtime) Prefetch(gpa, n uint64, write bool) {
	r.lock()
	defer r.unlock()
	r.prefetchLocked(gpa, min(n, PrefetchPages*memory.PageSize-gpa%memory.PageSize), write)
}

// readLocked is Read for a caller that holds the lock and is not pinned.
func (r *Runtime) readLocked(gpa uint64, b []byte) error {
	return r.copyLocked(gpa, b, false)
}

// PrefetchPages bounds how many pages of one access to guest memory
// (Runtime.Read, Write) are asked for before the first answer is
// waited for: a 256 KiB buffer, larger than most requests of a disk
// or a network card, and a small share of the frames a node keeps for
// copies (MinCopyFrames), so that pages just fetched are not evicted
// to make room for the rest of the same access.
const PrefetchPages = 64

// copyLocked copies b into guest memory at gpa (write) or guest memory
// at gpa into b, PrefetchPages pages at a time: it first asks for every
// page of a batch this node may not yet access (prefetchLocked), then
// waits for each in turn, so a buffer homed or held elsewhere (a disk
// request's data) costs about one round trip per batch rather than one
// per page. The caller holds the lock and is not pinned.
func (r *Runtime) copyLocked(gpa uint64, b []byte, write bool) error {
	const batch = PrefetchPages * memory.PageSize
	for len(b) > 0 {
		n := min(uint64(len(b)), batch-gpa%memory.PageSize)
		if gpa/memory.PageSize != (gpa+n-1)/memory.PageSize {
			r.prefetchLocked(gpa, n, write) // else the fault below asks
		}
		for chunk := b[:n]; len(chunk) > 0; {
			a, err := r.addr(gpa)
			if err != nil {
				return err
			}
			if err := r.faultLocked(NoVCPU, gpa, write); err != nil {
				return err
			}
			off := gpa % memory.PageSize
			m := min(uint64(len(chunk)), memory.PageSize-off)
			if p := r.eng.Frame(a); write {
				copy(p[off:off+m], chunk)
			} else {
				copy(chunk[:m], p[off:off+m])
			}
			gpa, chunk = gpa+m, chunk[m:]
		}
		b = b[n:]
	}
	return nil
}

// prefetchLocked asks for every page of the n bytes at gpa that this
// node may not yet access (for writing, if write) without waiting for
// the answers. It stops at the first page it cannot ask for now (not
// RAM, or no frame for another copy): the access that follows faults
// on those pages one by one and reports what is wrong. The caller
// holds the lock and is not pinned; it does not wait.
func (r *Runtime) prefetchLocked(gpa, n uint64, write bool) {
	if n == 0 {
		return
	}
	r.closeLocked()
	for pg := gpa &^ (memory.PageSize - 1); pg < gpa+n; pg += memory.PageSize {
		a, err := r.addr(pg)
		if err != nil || r.stoppedLocked() != nil {
			return
		}
		res, err := r.eng.Fault(a, write, r.out)
		if err = r.flushEngine(err); err != nil {
			r.fail(err)
			return
		}
		if res == memory.FaultNoRoom {
			return
		}
	}
}

// Hosts reports whether vCPU v runs on this node.
func (r *Runtime) Hosts(v migrate.VCPUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mig.Hosts(v)
}

// hostsLocked is Hosts for a caller that holds the lock.
func (r *Runtime) hostsLocked(v migrate.VCPUID) bool { return r.mig.Hosts(v) }

// Location returns the node this node believes hosts vCPU v.
func (r *Runtime) Location(v migrate.VCPUID) memory.NodeID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.locationLocked(v)
}

// locationLocked is Location for a caller that holds the lock.
func (r *Runtime) locationLocked(v migrate.VCPUID) memory.NodeID {
	n, _ := r.mig.Location(v)
	return n
}

// departLocked ships vCPU v, frozen at an exit with state st, to node dst.
// The caller holds the lock and is not pinned; from now on v is not its
// to run.
func (r *Runtime) departLocked(v migrate.VCPUID, dst memory.NodeID, st *vcpu.State) error {
	rec := r.mig.VCPU(v)
	if rec == nil {
		return fmt.Errorf("dvm: vCPU %d is not on node %d", v, r.cfg.Self)
	}
	n := st.Size()
	if n > len(rec.State) {
		return fmt.Errorf("dvm: vCPU %d state of %d bytes exceeds %d", v, n, len(rec.State))
	}
	r.quiesceLocked()
	st.MarshalAppend(rec.State[:0])
	rec.SetStateLen(n) // only the encoded state travels
	if err := r.mig.Send(v, dst, r.mout); err != nil {
		return err
	}
	if err := r.flushMigration(); err != nil {
		r.fail(err)
		return err
	}
	if tr := r.cfg.Trace; tr.On() {
		tr.Record(trace.Event{Time: tr.Since(), Kind: trace.KindMigrateOut, VCPU: int32(v), Node: uint16(dst), Bytes: uint32(n)})
	}
	if r.policy != nil {
		r.policy.Migrated(int(v), int(r.cfg.Self), int(dst), r.now())
	}
	if r.balancer != nil {
		r.balancer.Migrated(int(v), int(r.cfg.Self), int(dst), r.now())
	}
	return nil
}

// MinVector is the lowest vector an interrupt may carry: 0-31 are the
// processor's exceptions, and a LAPIC refuses to send or accept vectors
// 0-15 (Intel SDM Vol. 3A, 11.5.3 "Error Handling").
const MinVector = 16

// interruptLocked raises vector on vCPU v wherever it runs: at once if it
// runs here, otherwise by a message to its node, which follows it if it
// moved. The caller holds the lock and is not pinned.
func (r *Runtime) interruptLocked(v migrate.VCPUID, vector uint8) error {
	if vector < MinVector {
		return fmt.Errorf("dvm: interrupt vector %d for vCPU %d is illegal", vector, v)
	}
	r.quiesceLocked()
	_, err := r.mig.Interrupt(v, vector, r.mout)
	return r.sendRouted(err)
}

// sendRouted sends the messages the migrator queued to route an
// interrupt or NMI, unless routing it failed with err. The caller holds
// the lock and is not pinned.
func (r *Runtime) sendRouted(err error) error {
	if err != nil {
		r.mout.Reset()
		return err
	}
	if err := r.flushMigration(); err != nil {
		r.fail(err)
		return err
	}
	return nil
}

// nmiLocked sends vCPU v an NMI wherever it runs, as interruptLocked
// does an interrupt. The caller holds the lock and is not pinned.
func (r *Runtime) nmiLocked(v migrate.VCPUID) error {
	r.quiesceLocked()
	_, err := r.mig.NMI(v, r.mout)
	return r.sendRouted(err)
}

// takeNMIsLocked removes and returns the NMIs pending for vCPU v, hosted
// here: those other nodes sent it, and those that travelled with it.
// The caller holds the lock.
func (r *Runtime) takeNMIsLocked(v migrate.VCPUID) int {
	rec := r.mig.VCPU(v)
	if rec == nil {
		return 0
	}
	return rec.TakeNMIs()
}

// takeInterruptLocked removes and returns the highest pending interrupt
// of vCPU v, hosted here, for injection; ok is false if none is pending.
// The caller holds the lock.
func (r *Runtime) takeInterruptLocked(v migrate.VCPUID) (vector uint8, ok bool) {
	rec := r.mig.VCPU(v)
	if rec == nil {
		return 0, false
	}
	return rec.TakePending()
}

// interruptPendingLocked reports whether vCPU v, hosted here, has an
// interrupt pending. The caller holds the lock.
func (r *Runtime) interruptPendingLocked(v migrate.VCPUID) bool {
	rec := r.mig.VCPU(v)
	return rec != nil && rec.IRR != [4]uint64{}
}

// forwardLocked sends a device write to the node hosting the VM's
// devices, or serves it here if that is this node. The caller holds the
// lock and is not pinned.
func (r *Runtime) forwardLocked(d DeviceWrite) error {
	d.VM = r.cfg.Spec.ID
	r.quiesceLocked()
	if r.cfg.DeviceNode == r.cfg.Self {
		r.deviceLocked(d)
		return nil
	}
	var b [EnvelopeSize + DeviceSize]byte
	n := d.MarshalTo(b[EnvelopeSize:])
	if err := r.send(r.cfg.DeviceNode, b[:EnvelopeSize+n]); err != nil {
		r.fail(err)
		return err
	}
	return nil
}

// EvictAll gives back every copy of a page this node holds but does not
// home: Modified copies are written back to their homes. It returns how
// many copies it dropped. Pages homed here stay: a home does not move.
func (r *Runtime) EvictAll() (int, error) {
	r.lock()
	defer r.unlock()
	_, err := r.eng.CloseWindows(r.out)
	if err = r.flushEngine(err); err != nil {
		r.fail(err)
		return 0, err
	}
	r.quiesceLocked()
	n := 0
	for p := 0; p < r.cfg.Spec.Pages; p++ {
		gpa := uint64(p) * memory.PageSize
		dropped, err := r.eng.Evict(gpa, r.out)
		if err == nil {
			err = r.flushMemory()
		}
		if err != nil {
			r.fail(err)
			return n, err
		}
		if dropped {
			n++
		}
	}
	return n, nil
}

// Leave makes this node hand the home of every page it homes to the
// next node that writes it with room to take it (memory.Engine.Leave):
// the node is being evacuated. TakeHomes on another node then takes
// them all.
func (r *Runtime) Leave() {
	r.lock()
	defer r.unlock()
	r.eng.Leave()
}

// TakeHomes takes from node from, which is leaving (Leave), the home of
// every page it homes as far as this node knows: it writes each such page
// (evicting its own Modified copy first, so that the write asks the
// home), which hands the home here while this node has HomeRoom
// (Config.HomeRoom). It returns how many homes it took and how many it
// found at from and could not take (no room left). The caller must not
// hold the lock; it takes it page by page, so that vCPUs go on between.
func (r *Runtime) TakeHomes(from memory.NodeID) (taken, left int, err error) {
	for p := 0; p < r.cfg.Spec.Pages; p++ {
		was, home, err := r.takeHome(uint64(p)*memory.PageSize, from)
		switch {
		case err != nil:
			return taken, left, err
		case was != from:
		case home == r.cfg.Self:
			taken++
		case home == from:
			left++
		} // elsewhere: another node took it first
	}
	return taken, left, nil
}

// takeHome is TakeHomes for the page at engine address a: it returns
// the page's home as this node knows it before and after.
func (r *Runtime) takeHome(a uint64, from memory.NodeID) (was, home memory.NodeID, err error) {
	r.lock()
	defer r.unlock()
	if was = r.eng.Home(a); was != from || !r.eng.CanTakeHome() {
		return was, was, nil
	}
	r.quiesceLocked()
	if r.eng.LocalSatisfiable(a, true) {
		_, err := r.eng.Evict(a, r.out)
		if err == nil {
			err = r.flushMemory()
		}
		if err != nil {
			r.fail(err)
			return was, memory.NoNode, err
		}
	}
	if err := r.faultLocked(NoVCPU, r.split.Addr(a/memory.PageSize), true); err != nil {
		return was, memory.NoNode, err
	}
	return was, r.eng.Home(a), nil
}

// HostedVCPUs counts the vCPUs running on this node.
func (r *Runtime) HostedVCPUs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for v := 0; v < r.cfg.Spec.VCPUs; v++ {
		if r.mig.Hosts(migrate.VCPUID(v)) {
			n++
		}
	}
	return n
}

// Stats returns this node's counters.
func (r *Runtime) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Memory = r.eng.Stats()
	s.Migration = r.mig.Stats()
	s.Shared, s.Modified = r.eng.Count()
	s.Homes, s.Copies = r.eng.Homes(), r.eng.Copies()
	s.Stale = r.stale.Load()
	s.Draining = r.eng.Draining()
	s.Held = len(r.held)
	if s.Held > 0 {
		now := r.now()
		for i, m := range r.held {
			s.HeldFor = max(s.HeldFor, time.Duration(now-m.heldAt))
			if i < maxHeldShown {
				s.HeldFirst = append(s.HeldFirst, r.describeHeldLocked(m, now))
			}
		}
	}
	return s
}

// describeHeldLocked says what held message m is and why it is held.
func (r *Runtime) describeHeldLocked(m inMsg, now int64) HeldMessage {
	h := HeldMessage{From: m.from, For: time.Duration(now - m.heldAt), What: "empty"}
	if len(m.b) == 0 {
		return h
	}
	h.What = fmt.Sprintf("magic %#x", m.b[0])
	switch m.b[0] {
	case memory.MessageMagic:
		if len(m.b) >= memory.MessageHeaderSize {
			h.What, h.GPA = memory.Kind(m.b[1]).String(), binary.LittleEndian.Uint64(m.b[8:])
		}
	case migrate.MessageMagic:
		h.What = "migration"
	case DeviceMagic:
		h.What = "device write"
	case DeviceReadMagic:
		h.What = "device read"
	}
	switch {
	case r.eng.Draining() && r.revealsLocked(m.b):
		h.Why = "draining"
	case r.holdsLocked(m, now):
		h.Why = "window"
	default:
		h.Why = "order"
	}
	return h
}

// PageMap fills cells with this node's view of page placement: cell i
// covers pages [i*per, (i+1)*per) and holds the strongest state this node
// has among them (Modified over Shared over Invalid), per being the
// fewest pages per cell that lets len(cells) cells cover the VM. It
// returns per and how many cells it filled.
func (r *Runtime) PageMap(cells []memory.State) (per, n int) {
	pages := r.cfg.Spec.Pages
	if len(cells) == 0 {
		return 0, 0
	}
	per = (pages + len(cells) - 1) / len(cells)
	n = (pages + per - 1) / per
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < n; i++ {
		best := memory.Invalid
		for p := i * per; p < min((i+1)*per, pages); p++ {
			best = max(best, r.eng.State(uint64(p)*memory.PageSize))
		}
		cells[i] = best
	}
	return per, n
}

// HotPage is a page and the number of faults on it that waited for
// another node.
type HotPage struct {
	GPA   uint64
	Waits uint32
}

// HotPages fills hot with the pages whose faults waited for other nodes
// most often on this node, most first, and returns how many it filled.
func (r *Runtime) HotPages(hot []HotPage) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, w := range r.waits {
		if w == 0 {
			continue
		}
		i := n
		if n < len(hot) {
			n++
		} else if w <= hot[n-1].Waits {
			continue
		} else {
			i = n - 1
		}
		for ; i > 0 && hot[i-1].Waits < w; i-- {
			hot[i] = hot[i-1]
		}
		hot[i] = HotPage{GPA: r.split.Addr(uint64(p)), Waits: w}
	}
	return n
}

// Home returns the home node of the page holding gpa, memory.NoNode if
// gpa is not the VM's RAM.
func (r *Runtime) Home(gpa uint64) memory.NodeID {
	a, err := r.addr(gpa)
	if err != nil {
		return memory.NoNode
	}
	return r.eng.Home(a)
}

// Run serves messages that arrive while no vCPU loop holds the lock,
// until Close.
func (r *Runtime) Run() {
	if r.cfg.DevicesUnlocked {
		go r.serveDevices()
	}
	for {
		r.qmu.Lock()
		for len(r.queue) == 0 && !r.closed && r.heldN.Load() == 0 {
			r.cond.Wait()
		}
		closed, idle := r.closed, len(r.queue) == 0
		r.qmu.Unlock()
		if closed {
			return
		}
		if idle {
			// Only held requests: serve them when their window ends.
			r.mu.Lock()
			d := r.holdLocked() / 4
			r.mu.Unlock()
			time.Sleep(max(d, 50*time.Microsecond))
		}
		r.lock()
		r.unlock()
	}
}

// Close stops the Runtime: Run returns, waiters wake with ErrStopped (or
// the reason the VM stopped, if it stopped first: NodeFailed, Halt), and
// the engine's frames go back to their source. vCPU loops must have
// stopped first.
func (r *Runtime) Close() {
	r.qmu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.qmu.Unlock()
	r.dmu.Lock()
	r.dclosed = true
	r.dcond.Broadcast()
	r.dmu.Unlock()
	r.mu.Lock()
	if err := r.halted(); err != nil {
		r.fail(err) // a waiter still to wake says why, not just "stopped"
	}
	r.fail(ErrStopped)
	r.eng.Close()
	r.mu.Unlock()
}
