// Package sim is a deterministic simulator of a big-iron cluster: N nodes
// in one process, each running the real coherence engine (package memory),
// the real migration state machine (package migrate) and a placement policy
// (package sched), joined by simulated links in virtual time.
//
// There are no goroutines: one event queue ordered by (virtual time,
// insertion sequence) drives everything, and every random choice comes
// from one generator seeded by Config.Seed, so a seed replays exactly
// (Result.TraceHash digests every processed event).
//
// Links have latency, bandwidth, loss, duplication, reordering, temporary
// partitions and cuts. The simulator provides the reliable-delivery layer
// (net.go) that the cluster transport provides on real hardware; the
// protocols above assume reliable, exactly-once, per-pair FIFO delivery
// and nothing more.
//
// Nodes crash (Faults.Crashes: at a time, mid-migration, or once a node
// holds only Shared copies), for good: the links drop every frame to or
// from a crashed node not yet received, and its pages, copies and vCPUs
// are gone. Failure detection is modelled as membership and dvm do it: a
// node declares a peer lost once the peer has been unreachable (crashed,
// or its link cut) for Config.FailureTimeoutNS without a break, stops
// retransmitting to it, and stops its own share of the VM with the
// report dvm.Runtime.NodeFailed makes, computed by the same code
// (dvm.NodeLostError.Count on the node's engine and migrator). The
// checker then verifies that the report matches the ground truth (the
// pages the lost node homed; the pages homed at the reporter whose only
// up-to-date copy, by the checker's tokens, was at the lost node or in a
// message from or to it; that every vCPU reported was at the lost node
// once, and that every vCPU at it or in flight from or to it is reported
// by a survivor), and a watchdog that no vCPU waits for a page or a
// migration longer than the failure timeout plus Config.WaitBoundNS in
// virtual time. A cut shorter than the timeout is survived: the reliable
// layer retransmits once it heals. As in dvm, a node that stops its
// share for a lost node tells the VM's other nodes but the lost one
// (dvm.OpStop with dvm.StopNodeLost, in dvm's encoding), which stop at
// once without a loss report of their own; and a stopped share drops
// the VM's messages but answers their sender with OpStop. So when two
// of three nodes lose each other, the third stops too instead of
// waiting for ever (TestPartialCutStopsThirdNode).
//
// A checker verifies per-location sequential consistency (every read
// returns the token of the latest write to that word, in the global order
// of the simulation), sequential consistency across locations from what
// the vCPUs observed alone (sc.go: program order, reads-from, coherence
// and from-reads form an acyclic graph, over the whole run up to
// MaxSCAccesses accesses), that every vCPU exists exactly once (hosted or
// in flight) and arrives with the state it left with, that every
// interrupt raised reaches its vCPU exactly once wherever it runs, and
// that every armed timer fires once, not early.
//
// # The real transport
//
// By default the protocols run over net.go, not over the cluster
// transport. With Config.RealTransport they run over the real
// netstack/cluster.Endpoint (transport.go): a port per node whose frames
// take these links, Tick events per node at a quarter of the round trip,
// timeouts scaled to the simulated link, a backlog for ErrBusy, and
// AES-GCM on every frame; seeds still replay. Crashes, cuts and
// partitions as long as the failure timeout are refused there for now:
// the loss report's ground truth reads the reliable layer's in-flight
// messages, which the Endpoint keeps to itself, and membership's
// heartbeats would replace the silence model above. net.go implements
// the same contract (per-pair sequence numbers, cumulative acks,
// retransmission, duplicate suppression) without fragmentation,
// selective acks, RTT estimation or back-off.
package sim

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim/workload"
)

// Faults configures fault injection.
type Faults struct {
	Loss    float64 // probability a frame is lost
	Dup     float64 // probability a frame is delivered twice
	Reorder float64 // probability a frame is delayed by up to ReorderNS
	// ReorderNS is the largest extra delay of a reordered or duplicated
	// frame.
	ReorderNS int64
	// Partitions is the number of temporary partitions between random node
	// pairs, each PartitionNS long, starting in the first PartitionWindowNS.
	// A partition longer than Config.FailureTimeoutNS is a cut (see Cut).
	Partitions        int
	PartitionNS       int64
	PartitionWindowNS int64
	// EvictRate is the probability per guest access that the node evicts a
	// random page it caches (writing it back if Modified).
	EvictRate float64
	// Crashes stops nodes for good (see Crash).
	Crashes []Crash
	// CrashWindowNS bounds the drawn times of crashes whose AtNS is -1; 0
	// means twice the ideal makespan.
	CrashWindowNS int64
	// Cuts are link cuts at given times, on top of the drawn partitions.
	// A cut or partition that lasts longer than Config.FailureTimeoutNS
	// makes its two nodes declare each other lost.
	Cuts []Cut
}

// DefaultCoresPerNode is how many cores run vCPUs on each simulated node
// unless Config.CoresPerNode says otherwise.
const DefaultCoresPerNode = 2

// Config describes one simulation run.
type Config struct {
	Seed         uint64
	Nodes        int
	CoresPerNode int // default DefaultCoresPerNode
	Link         Link
	Faults       Faults
	Workload     *workload.Set
	// Policy decides pull or move on remote faults; nil means AlwaysPull.
	Policy sched.Policy
	// Place is the node each vCPU starts on; nil means migrate's
	// default, vCPU mod Nodes.
	Place func(vcpu int) int
	// Balancer, if set, is asked every BalanceNS whether to move a vCPU
	// off a node with more running vCPUs than cores; it sees every
	// remote fault. BalanceNS defaults to sched.BalancePeriod pulls (the
	// link's cost estimate).
	Balancer  sched.Balancer
	BalanceNS int64
	StateSize int   // vCPU state bytes; default migrate.DefaultStateSize
	StepNS    int64 // cost of one guest access when local; default 100
	ExitNS    int64 // VM exit plus fault handling before a request leaves; default 1000
	MigrateNS int64 // vCPU save on the source plus restore on the destination; default 2000
	// Interrupts is the number of interrupts (IPIs, device interrupts)
	// raised at random times from random nodes to random vCPUs.
	Interrupts int
	// Timers arms one one-shot timer per vCPU at a random deadline.
	Timers bool
	// Mutation breaks the coherence protocol, for checker tests only.
	Mutation memory.Mutation
	// CopyFrames bounds the frames each node holds for copies of pages
	// other nodes home (memory.Config.CopyFrames); 0 means no bound. A
	// vCPU whose fault finds no room retries after ExitNS.
	CopyFrames int
	// SampleNS, if positive, records a Timeline sample every SampleNS.
	SampleNS int64
	// MaxEvents bounds the run (livelock guard); default 50 million.
	MaxEvents int
	// Home maps a page number to its home node at start; nil means page
	// mod Nodes.
	Home func(page uint64) memory.NodeID
	// FirstTouch, MoveAfter and HomeRoom move homes to the nodes that
	// use the pages (memory.Config). Runs that move homes refuse
	// crashes and cuts: the loss report counts homes as each survivor
	// knows them, which a moving home makes stale.
	FirstTouch bool
	MoveAfter  int
	HomeRoom   int
	// FailureTimeoutNS is how long a node must stay unreachable from
	// another (crashed, or its link cut) before the other declares it
	// lost and stops its share of the VM; default 1 ms. (The real system
	// waits three membership failure timeouts, 1.5 s; only the ratio to
	// the link's retransmission timeout matters here.)
	FailureTimeoutNS int64
	// WaitBoundNS is how much longer than FailureTimeoutNS a vCPU may
	// wait for a page or for its migration before the checker reports a
	// hang; default 20 retransmission timeouts.
	WaitBoundNS int64
	// RealTransport runs the protocols over the cluster transport
	// (netstack/cluster.Endpoint, see transport.go) instead of the
	// simulator's own reliable layer (net.go). It refuses crashes, cuts
	// and partitions as long as the failure timeout.
	RealTransport bool
	// Checker tests only: break the loss report, disable failure
	// detection, or leave the cross-location checker alone to catch
	// stale reads.
	lossMutation lossMutation
	noDetect     bool
	noLatest     bool
}

// Sample is a snapshot for the timeline: where each vCPU runs (-1 in
// flight) and where each page is (owner node if Modified, -1 if only
// Shared copies exist, -2 while a transaction is in progress).
type Sample struct {
	At    int64
	VCPUs []int8
	Pages []int8
}

// Result reports a run.
type Result struct {
	Seed      uint64
	TraceHash uint64 // digest of every processed event
	Events    int
	// Performance.
	MakespanNS   int64   // virtual time when the last vCPU finished
	IdealNS      int64   // the same workload on one node with all memory local
	Slowdown     float64 // MakespanNS / IdealNS
	RemoteFaults uint64
	Migrations   uint64
	// BalanceMoves counts the migrations the Balancer decided (also in
	// Migrations).
	BalanceMoves uint64
	Messages     uint64 // protocol messages (data frames sent once)
	Frames       uint64 // frames put on links, including acks and retransmissions
	WireBytes    uint64 // bytes on the wire including Ethernet framing
	Retransmits  uint64
	Dropped      uint64
	Duplicates   uint64
	// Bounded copies (Config.CopyFrames), summed over the nodes:
	// copies evicted to make room, Modified pages written back (by
	// reclaim or EvictRate), faults that found no room and retried; and
	// the most frames any node held for copies at any time.
	Reclaims, Writebacks, NoRoom uint64
	MaxCopyFrames                int
	// Moving homes (Config.MoveAfter, FirstTouch): pages whose home
	// moved, and requests an old home passed on.
	HomesMoved, Forwards uint64
	// Checking.
	Reads, Writes   uint64
	InterruptsTaken uint64
	TimersFired     uint64
	Timeline        []Sample
	// SCAccesses is the number of accesses the cross-location checker
	// found sequentially consistent (all of them up to MaxSCAccesses).
	SCAccesses int
	// Failures.
	Crashes []CrashReport
	Stops   []Stop
	// MaxWaitNS is the longest a vCPU waited for a page or in flight
	// before being served or stopped.
	MaxWaitNS int64
}

type evKind uint8

const (
	evStep evKind = iota + 1
	evFrame
	evRetransmit
	evInterrupt
	evTimer
	evSample
	evCrash
	evSilence
	evWatchdog
	evTick
	evBalance
)

type event struct {
	at   int64
	seq  uint64
	kind evKind
	node int
	peer int
	v    int
	gen  uint64
	buf  []byte
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type vstate uint8

const (
	vRunning vstate = iota
	vBlocked
	vFlight
	vDone
	vLost    // hosted by a node that crashed
	vStopped // its node's share of the VM stopped
)

type vcpu struct {
	id      int
	stream  []workload.Access
	pc      int
	node    int
	state   vstate
	page    uint64 // page blocked on
	gen     uint64 // invalidates stale step events
	doneAt  int64
	timerAt int64 // armed deadline, 0 if none
	// Failures: the ends of the last migration, the nodes the vCPU was
	// ever at or sent to, and the current wait (start, and a count that
	// identifies it to its watchdog).
	from, to int
	visited  uint64
	waitFrom int64
	waits    uint64
}

// ept is a node's simulated second-level page table.
type ept struct {
	s    *Sim
	node int
	acc  []memory.Access
	// frames holds the last frame mapped for each page: for the pages
	// homed here, the home's frame for good.
	frames []*memory.Page
}

// SetAccess implements memory.Permissions; raising access wakes vCPUs of
// this node blocked on the page.
func (e *ept) SetAccess(gpa uint64, f *memory.Page, a memory.Access) {
	p := gpa / memory.PageSize
	old := e.acc[p]
	e.acc[p] = a
	if f != nil {
		e.frames[p] = f
	}
	if a > old {
		e.s.wake(e.node, p)
	}
}

type node struct {
	id  int
	mem *memory.Engine
	mig *migrate.Migrator
	ept *ept
	// Failures: crashed (for good, at crashAt), its share of the VM
	// stopped (naming stopLost as the lost node; toldStop if another
	// node's OpStop stopped it), the peers it declared lost, and those
	// it told that the VM stopped when they sent to it.
	crashed  bool
	crashAt  int64
	stopped  bool
	stopLost int
	toldStop bool
	gone     []bool
	told     []bool
}

type partition struct {
	a, b     int
	from, to int64
}

// Sim is one simulation run.
type Sim struct {
	cfg      Config
	rng      *rand.Rand
	now      int64
	seq      uint64
	q        eventHeap
	trace    [40]byte
	hash     interface{ Write([]byte) (int, error) }
	hsum     func() uint64
	nodes    []*node
	vcpus    []*vcpu
	chans    [][]*channel
	linkBusy [][]int64
	parts    []partition
	rto      int64
	// real is the cluster transport under the protocols, if
	// Config.RealTransport; nil means net.go's reliable layer.
	real    *realNet
	memOut  *memory.Outbox
	migOut  *migrate.Outbox
	pageBuf memory.Page
	wire    []byte
	check   checker
	hist    history
	crashes []pendingCrash
	// reported and lostVCPUs collect, per lost node, the vCPUs the
	// survivors reported and those really lost.
	reported, lostVCPUs map[int][]migrate.VCPUID
	// where is the balancer's view of the vCPUs' nodes, reused.
	where []int
	// deferred is the balancer's last move of a vCPU that was waiting
	// for a page, made when it next runs: its vCPU (-1 for none), the
	// node it was on and the destination.
	deferred struct{ v, from, to int }
	res      Result
}

// Run simulates cfg to completion. A checker violation or protocol error
// returns an error naming the seed.
func Run(cfg Config) (Result, error) {
	s, err := newSim(cfg)
	if err != nil {
		return Result{Seed: cfg.Seed}, fmt.Errorf("sim seed %d: %w", cfg.Seed, err)
	}
	if err := s.run(); err != nil {
		return s.res, fmt.Errorf("sim seed %d (t=%dns): %w", cfg.Seed, s.now, err)
	}
	return s.res, nil
}

// newSim sets a run up: cfg's defaults, one coherence engine and
// migrator per node, the channels between them, the vCPUs at their
// initial nodes, and the faults, interrupts and timers injected from the
// seeded generator (in that order, so that a seed always replays).
func newSim(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), hash: h, hsum: h.Sum64,
		memOut: memory.NewOutbox(), migOut: migrate.NewOutbox(), wire: make([]byte, memory.MaxMessageSize+migrate.MessageHeaderSize+64+cfg.StateSize)}
	s.res.Seed = cfg.Seed
	s.rto = cfg.rto()
	if err := s.addNodes(); err != nil {
		return nil, err
	}
	s.connectNodes()
	if cfg.RealTransport {
		if s.real, err = newRealNet(s); err != nil {
			return nil, err
		}
	}
	s.check = newChecker(len(cfg.Workload.Streams))
	s.hist = newHistory(len(cfg.Workload.Streams), MaxSCAccesses)
	s.res.IdealNS = s.placeVCPUs()
	horizon := 2*s.res.IdealNS + 1
	s.injectPartitions(horizon)
	s.injectInterrupts(horizon)
	if cfg.Timers {
		s.armTimers(horizon)
	}
	if cfg.SampleNS > 0 {
		s.schedule(event{at: 0, kind: evSample})
	}
	if err := s.injectFailures(horizon); err != nil {
		return nil, err
	}
	return s, nil
}

// rto is the reliable layer's retransmission timeout: a round trip of
// the largest coherence message plus a vCPU state, with slack.
func (cfg *Config) rto() int64 {
	return 2*(cfg.Link.LatencyNS+cfg.Link.serialiseNS(memory.MaxMessageSize+frameHeader)) + 4*cfg.Link.serialiseNS(cfg.StateSize) + 10_000
}

// withDefaults returns cfg with its zero fields defaulted (see Config),
// or an error if it describes no run.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Workload == nil || len(cfg.Workload.Streams) == 0 {
		return cfg, fmt.Errorf("no workload")
	}
	if cfg.Nodes < 1 || cfg.Nodes > memory.MaxNodes {
		return cfg, fmt.Errorf("%d nodes", cfg.Nodes)
	}
	if cfg.CoresPerNode == 0 {
		cfg.CoresPerNode = DefaultCoresPerNode
	}
	if cfg.Link.GbitPerS == 0 {
		cfg.Link = Link10G
	}
	if cfg.StateSize == 0 {
		cfg.StateSize = migrate.DefaultStateSize
	}
	if cfg.StateSize < 16 {
		return cfg, fmt.Errorf("state size %d below 16", cfg.StateSize)
	}
	if cfg.StepNS == 0 {
		cfg.StepNS = 100
	}
	if cfg.ExitNS == 0 {
		cfg.ExitNS = 1000
	}
	if cfg.MigrateNS == 0 {
		cfg.MigrateNS = 2000
	}
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = 50_000_000
	}
	if cfg.BalanceNS == 0 {
		cfg.BalanceNS = sched.BalancePeriod * cfg.Link.Costs(cfg.StateSize).PullNS
	}
	if cfg.Policy == nil {
		cfg.Policy = sched.AlwaysPull{}
	}
	if cfg.Faults.ReorderNS == 0 {
		cfg.Faults.ReorderNS = 4 * cfg.Link.LatencyNS
	}
	if cfg.FailureTimeoutNS == 0 {
		cfg.FailureTimeoutNS = 1_000_000
	}
	if cfg.WaitBoundNS == 0 {
		cfg.WaitBoundNS = 20 * cfg.rto()
		if cfg.RealTransport {
			// The Endpoint backs its timeout off, doubling it up to
			// realMaxRTO times the minimum (RFC 6298, 5.5), where
			// net.go keeps it fixed: a frame lost five times in a row
			// waits 63 timeouts.
			cfg.WaitBoundNS = 8 * realMaxRTO * cfg.rto()
		}
	}
	if cfg.RealTransport {
		if err := checkRealTransport(&cfg); err != nil {
			return cfg, err
		}
	}
	if (cfg.FirstTouch || cfg.MoveAfter > 0) && (len(cfg.Faults.Crashes) > 0 || len(cfg.Faults.Cuts) > 0) {
		return cfg, errors.New("homes that move with crashes or cuts: the loss report cannot be checked")
	}
	return cfg, nil
}

// addNodes creates every node: its simulated EPT, its coherence engine
// over the workload's pages and its vCPU migrator.
func (s *Sim) addNodes() error {
	cfg := &s.cfg
	pages := cfg.Workload.Pages
	for i := 0; i < cfg.Nodes; i++ {
		e := &ept{s: s, node: i, acc: make([]memory.Access, pages), frames: make([]*memory.Page, pages)}
		mem, err := memory.NewEngine(memory.Config{Self: memory.NodeID(i), Nodes: cfg.Nodes, Pages: pages, Perm: e, Home: cfg.Home, Mutation: cfg.Mutation, CopyFrames: cfg.CopyFrames,
			FirstTouch: cfg.FirstTouch, MoveAfter: cfg.MoveAfter, HomeRoom: cfg.HomeRoom})
		if err != nil {
			return err
		}
		mig, err := migrate.New(migrate.Config{Self: memory.NodeID(i), Nodes: cfg.Nodes, VCPUs: len(cfg.Workload.Streams), StateSize: cfg.StateSize, Initial: s.initial})
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, &node{id: i, mem: mem, mig: mig, ept: e, gone: make([]bool, cfg.Nodes), told: make([]bool, cfg.Nodes)})
	}
	return nil
}

// connectNodes creates a channel and an idle link from every node to
// every node.
func (s *Sim) connectNodes() {
	s.chans = make([][]*channel, s.cfg.Nodes)
	s.linkBusy = make([][]int64, s.cfg.Nodes)
	for i := range s.chans {
		s.chans[i] = make([]*channel, s.cfg.Nodes)
		s.linkBusy[i] = make([]int64, s.cfg.Nodes)
		for j := range s.chans[i] {
			s.chans[i][j] = newChannel(i, j)
		}
	}
}

// initial is the node vCPU v starts on (Config.Place), as package
// migrate takes it.
func (s *Sim) initial(v migrate.VCPUID) memory.NodeID {
	if s.cfg.Place == nil {
		return memory.NodeID(int(v) % s.cfg.Nodes)
	}
	return memory.NodeID(s.cfg.Place(int(v)))
}

// placeVCPUs creates a vCPU per workload stream on its initial node
// (Config.Place), with a recognisable state, and schedules its first
// step at time 0, and the balancer's first look if there is one. It
// returns the ideal makespan: the longest stream run locally.
func (s *Sim) placeVCPUs() (ideal int64) {
	s.deferred.v = -1
	if s.cfg.Balancer != nil {
		s.where = make([]int, len(s.cfg.Workload.Streams))
		s.schedule(event{at: s.cfg.BalanceNS, kind: evBalance})
	}
	for v, st := range s.cfg.Workload.Streams {
		n := int(s.initial(migrate.VCPUID(v)))
		vc := &vcpu{id: v, stream: st, node: n, visited: 1 << n}
		s.vcpus = append(s.vcpus, vc)
		if d := int64(len(st)) * s.cfg.StepNS; d > ideal {
			ideal = d
		}
		rec := s.nodes[n].mig.VCPU(migrate.VCPUID(v))
		binary.LittleEndian.PutUint64(rec.State[8:], uint64(v)^0x5eed)
		s.schedule(event{at: 0, kind: evStep, node: n, v: v})
	}
	return ideal
}

// injectPartitions draws Faults.Partitions partitions between random
// pairs of nodes, each starting at a random time within
// Faults.PartitionWindowNS (or the horizon) and lasting
// Faults.PartitionNS.
func (s *Sim) injectPartitions(horizon int64) {
	cfg := &s.cfg
	for i := 0; i < cfg.Faults.Partitions && cfg.Nodes > 1; i++ {
		a := s.rng.IntN(cfg.Nodes)
		b := (a + 1 + s.rng.IntN(cfg.Nodes-1)) % cfg.Nodes
		w := cfg.Faults.PartitionWindowNS
		if w <= 0 {
			w = horizon
		}
		from := s.rng.Int64N(w)
		s.parts = append(s.parts, partition{a: a, b: b, from: from, to: from + cfg.Faults.PartitionNS})
	}
}

// injectInterrupts schedules Config.Interrupts interrupts at random
// times before the horizon, from random nodes to random vCPUs, with
// random vectors from 32 to 231.
func (s *Sim) injectInterrupts(horizon int64) {
	for i := 0; i < s.cfg.Interrupts; i++ {
		s.schedule(event{at: s.rng.Int64N(horizon), kind: evInterrupt, node: s.rng.IntN(s.cfg.Nodes), v: s.rng.IntN(len(s.vcpus)), gen: uint64(32 + s.rng.IntN(200))})
	}
}

// armTimers arms every vCPU's one-shot timer at a random deadline before
// the horizon, in its migration record and in the checker.
func (s *Sim) armTimers(horizon int64) {
	for v := range s.vcpus {
		d := 1 + s.rng.Int64N(horizon)
		rec := s.nodes[s.vcpus[v].node].mig.VCPU(migrate.VCPUID(v))
		rec.TimerDeadline, rec.TimerVector = uint64(d), timerVector
		s.check.armTimer(v, d)
		s.schedule(event{at: d, kind: evTimer, node: s.vcpus[v].node, v: v})
	}
}

// timerVector is the vector of the simulated LAPIC timer.
const timerVector = 0xEC

func (s *Sim) schedule(e event) {
	e.seq = s.seq
	s.seq++
	heap.Push(&s.q, e)
}

func (s *Sim) run() error {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(event)
		s.now = e.at
		s.res.Events++
		if s.res.Events > s.cfg.MaxEvents {
			return fmt.Errorf("no completion after %d events (livelock?)", s.cfg.MaxEvents)
		}
		binary.LittleEndian.PutUint64(s.trace[0:], uint64(e.at))
		binary.LittleEndian.PutUint64(s.trace[8:], uint64(e.kind)|uint64(e.node)<<8|uint64(e.peer)<<16)
		binary.LittleEndian.PutUint64(s.trace[16:], uint64(e.v))
		binary.LittleEndian.PutUint64(s.trace[24:], e.gen)
		binary.LittleEndian.PutUint64(s.trace[32:], uint64(len(e.buf)))
		s.hash.Write(s.trace[:])
		var err error
		switch e.kind {
		case evStep:
			err = s.step(e)
		case evFrame:
			err = s.receive(e.node, e.peer, e.buf)
		case evRetransmit:
			s.retransmit(e.node, e.peer)
		case evInterrupt:
			err = s.raise(e.node, e.v, uint8(e.gen))
		case evTimer:
			s.fireTimer(e.v)
		case evSample:
			s.sample()
			if !s.allDone() {
				s.schedule(event{at: s.now + s.cfg.SampleNS, kind: evSample})
			}
		case evCrash:
			s.crashDue(e.v)
		case evSilence:
			err = s.detect(e.node, e.peer, int64(e.gen))
		case evWatchdog:
			err = s.watchdog(e.v, e.gen)
		case evTick:
			err = s.real.tick(e.node)
		case evBalance:
			err = s.balance()
		}
		if err != nil {
			return err
		}
	}
	if err := s.finish(); err != nil {
		return err
	}
	for _, nd := range s.nodes {
		st := nd.mem.Stats()
		s.res.Reclaims += st.Reclaims
		s.res.Writebacks += st.Writebacks
		s.res.NoRoom += st.NoRoom
		s.res.HomesMoved += st.HomesGained
		s.res.Forwards += st.Forwards
	}
	s.res.TraceHash = s.hsum()
	if s.res.IdealNS > 0 {
		s.res.Slowdown = float64(s.res.MakespanNS) / float64(s.res.IdealNS)
	}
	return nil
}

func (s *Sim) allDone() bool {
	for _, v := range s.vcpus {
		if v.state == vRunning || v.state == vBlocked || v.state == vFlight {
			return false
		}
	}
	return true
}

// load counts vCPUs on node n that compete for its cores, as node self
// sees them: with those on their way to n that self sent (a node counts
// a vCPU it sent at its destination, migrate.Migrator.Location, and
// learns of others' moves only later), or all of them if self is
// negative (the balancer, which stands for the nodes' balancers of
// vCPUs that all start on one node).
func (s *Sim) load(n, self int) int {
	c := 0
	for _, v := range s.vcpus {
		switch {
		case v.node == n && (v.state == vRunning || v.state == vBlocked):
			c++
		case v.state == vFlight && v.to == n && (self < 0 || v.from == self):
			c++
		}
	}
	return c
}

// cluster adapts the simulator to sched.Cluster, as node self sees it
// (see load).
type cluster struct {
	s    *Sim
	self int
}

func (c cluster) Load(n int) int { return c.s.load(n, c.self) }
func (c cluster) Cores(int) int  { return c.s.cfg.CoresPerNode }

// stepCost is the time of one local access on node n: vCPUs beyond the
// node's cores time-share them.
func (s *Sim) stepCost(n int) int64 {
	running := 0
	for _, v := range s.vcpus {
		if v.node == n && v.state == vRunning {
			running++
		}
	}
	if running <= s.cfg.CoresPerNode {
		return s.cfg.StepNS
	}
	return s.cfg.StepNS * int64(running) / int64(s.cfg.CoresPerNode)
}

func (s *Sim) resume(v *vcpu, delay int64) {
	v.state = vRunning
	v.gen++
	s.schedule(event{at: s.now + delay, kind: evStep, node: v.node, v: v.id, gen: v.gen})
}

// wake resumes vCPUs of node n blocked on page p.
func (s *Sim) wake(n int, p uint64) {
	for _, v := range s.vcpus {
		if v.node == n && v.state == vBlocked && v.page == p {
			s.endWait(v)
			s.resume(v, 0)
		}
	}
}

// balance asks the balancer for a move and makes it if the vCPU is
// between accesses (one waiting for a page moves when it next runs, if
// no later look decided otherwise), then schedules the next look while
// any vCPU runs.
func (s *Sim) balance() error {
	s.deferred.v = -1
	for i, v := range s.vcpus {
		s.where[i] = -1
		if v.state == vRunning || v.state == vBlocked {
			s.where[i] = v.node
		}
	}
	if v, to, ok := s.cfg.Balancer.Balance(cluster{s, -1}, s.cfg.Nodes, s.where, s.now); ok && v >= 0 && v < len(s.vcpus) &&
		to >= 0 && to < s.cfg.Nodes && s.vcpus[v].state == vRunning && s.vcpus[v].node != to && !s.nodes[to].crashed {
		s.res.BalanceMoves++
		if err := s.migrate(s.vcpus[v], to); err != nil {
			return err
		}
	} else if ok && v >= 0 && v < len(s.vcpus) && to >= 0 && to < s.cfg.Nodes && s.vcpus[v].state == vBlocked && s.vcpus[v].node != to {
		s.deferred.v, s.deferred.from, s.deferred.to = v, s.vcpus[v].node, to
	}
	if !s.allDone() {
		s.schedule(event{at: s.now + s.cfg.BalanceNS, kind: evBalance})
	}
	return nil
}

// step runs one guest access of a vCPU, or handles its fault.
func (s *Sim) step(e event) error {
	v := s.vcpus[e.v]
	if v.state != vRunning || v.node != e.node || v.gen != e.gen {
		return nil // stale
	}
	nd := s.nodes[v.node]
	rec := nd.mig.VCPU(migrate.VCPUID(v.id))
	if rec == nil {
		return fmt.Errorf("vCPU %d runs on node %d, which does not host it", v.id, v.node)
	}
	for {
		vec, ok := rec.TakePending()
		if !ok {
			break
		}
		if err := s.check.takeInterrupt(v.id, vec); err != nil {
			return err
		}
		s.res.InterruptsTaken++
	}
	if v.pc == len(v.stream) {
		v.state = vDone
		v.doneAt = s.now
		if s.now > s.res.MakespanNS {
			s.res.MakespanNS = s.now
		}
		return nil
	}
	if d := s.deferred; d.v == v.id {
		s.deferred.v = -1
		if v.node == d.from && !s.nodes[d.to].crashed {
			s.res.BalanceMoves++
			return s.migrate(v, d.to)
		}
	}
	a := v.stream[v.pc]
	page := a.GPA / memory.PageSize
	if nd.ept.acc[page].Allows(a.Write) {
		if err := s.perform(nd, v, a); err != nil {
			return err
		}
		v.pc++
		binary.LittleEndian.PutUint64(rec.State[0:], uint64(v.pc))
		if s.cfg.Faults.EvictRate > 0 && s.rng.Float64() < s.cfg.Faults.EvictRate {
			victim := uint64(s.rng.IntN(len(nd.ept.acc))) * memory.PageSize
			if _, err := nd.mem.Evict(victim, s.memOut); err != nil {
				return err
			}
			s.flushMem(nd.id)
		}
		s.resume(v, s.stepCost(v.node))
		return nil
	}
	// EPT violation.
	if !nd.mem.LocalSatisfiable(a.GPA, a.Write) {
		target, dirty := nd.mem.Hint(a.GPA)
		f := sched.Fault{VCPU: v.id, Node: v.node, Target: int(target), Dirty: dirty, Page: page, Write: a.Write, Now: s.now}
		if s.cfg.Balancer != nil && int(target) != v.node && int(target) < s.cfg.Nodes {
			s.cfg.Balancer.Observe(f)
		}
		if int(target) != v.node && int(target) < s.cfg.Nodes && !sched.Yields(v.node, int(target), cluster{s, v.node}) && s.cfg.Policy.Decide(f, cluster{s, v.node}) == sched.Move {
			return s.migrate(v, int(target))
		}
	}
	res, err := nd.mem.Fault(a.GPA, a.Write, s.memOut)
	if err != nil {
		return err
	}
	if res == memory.FaultRemote {
		s.res.RemoteFaults++
	}
	s.flushMem(nd.id)
	s.res.MaxCopyFrames = max(s.res.MaxCopyFrames, nd.mem.CopyFrames())
	if res == memory.FaultNoRoom {
		s.resume(v, s.cfg.ExitNS) // every copy awaits an answer: retry
		return nil
	}
	if nd.ept.acc[page].Allows(a.Write) || res == memory.FaultSpurious {
		s.resume(v, s.cfg.ExitNS/4)
		return nil
	}
	v.state, v.page = vBlocked, page
	v.gen++
	s.startWait(v)
	return nil
}

// perform executes an allowed access against the node's frame and checks
// it.
func (s *Sim) perform(nd *node, v *vcpu, a workload.Access) error {
	f := nd.mem.Frame(a.GPA)
	if f == nil {
		return fmt.Errorf("node %d: EPT allows %#x but the engine has no copy", nd.id, a.GPA)
	}
	off := a.GPA % memory.PageSize
	w := f[off : off+8]
	if a.Write {
		tok := s.check.write(a.GPA)
		binary.LittleEndian.PutUint64(w, tok)
		s.hist.add(v.id, a.GPA, tok, true)
		s.res.Writes++
		return nil
	}
	s.res.Reads++
	got := binary.LittleEndian.Uint64(w)
	s.hist.add(v.id, a.GPA, got, false)
	if s.cfg.noLatest {
		return nil
	}
	return s.check.read(a.GPA, got, nd.id, v.id)
}

func (s *Sim) migrate(v *vcpu, dst int) error {
	src := s.nodes[v.node]
	if err := src.mig.Send(migrate.VCPUID(v.id), memory.NodeID(dst), s.migOut); err != nil {
		return err
	}
	if err := s.check.depart(v.id); err != nil {
		return err
	}
	s.cfg.Policy.Migrated(v.id, v.node, dst, s.now)
	if s.cfg.Balancer != nil {
		s.cfg.Balancer.Migrated(v.id, v.node, dst, s.now)
	}
	v.state = vFlight
	v.gen++
	from := v.node
	v.node, v.from, v.to = -1, from, dst
	v.visited |= 1 << dst
	s.res.Migrations++
	s.startWait(v)
	if err := s.flushMig(from); err != nil {
		return err
	}
	s.crashOnMigration(from, dst)
	return nil
}

func (s *Sim) flushMem(src int) {
	for i := range s.memOut.Msgs {
		m := &s.memOut.Msgs[i]
		n, err := m.MarshalTo(s.wire)
		if err != nil {
			panic(fmt.Sprintf("sim: marshal of engine output failed: %v", err)) // engine bug
		}
		s.send(src, int(m.Dst), s.wire[:n])
	}
	s.memOut.Reset()
}

func (s *Sim) flushMig(src int) error {
	for i := range s.migOut.Msgs {
		m := &s.migOut.Msgs[i]
		n, err := m.MarshalTo(s.wire)
		if err != nil {
			return err
		}
		s.send(src, int(m.Dst), s.wire[:n])
	}
	s.migOut.Reset()
	return nil
}

// deliver hands a reliably delivered payload to node dst's protocols.
func (s *Sim) deliver(dst, src int, p []byte) error {
	nd := s.nodes[dst]
	if len(p) == 0 {
		return fmt.Errorf("empty payload %d->%d", src, dst)
	}
	if p[0] == dvm.ControlMagic {
		return s.control(dst, src, p)
	}
	if nd.stopped {
		// The VM stopped here: its messages are dropped, and their
		// sender is told (dvm.Plane answers with OpStop).
		s.answerStopped(dst, src)
		return nil
	}
	switch p[0] {
	case memory.MessageMagic:
		var m memory.Message
		if err := m.Unmarshal(p, &s.pageBuf); err != nil {
			return err
		}
		if err := nd.mem.HandleMessage(&m, s.memOut); err != nil {
			return err
		}
		s.flushMem(dst)
		return nil
	case migrate.MessageMagic:
		var m migrate.Message
		if err := m.Unmarshal(p); err != nil {
			return err
		}
		ev, err := nd.mig.HandleMessage(&m, s.migOut)
		if err != nil {
			return err
		}
		if err := s.flushMig(dst); err != nil {
			return err
		}
		switch ev.Kind {
		case migrate.EventArrived:
			return s.arrive(dst, int(ev.VCPU))
		case migrate.EventDelivered:
			return s.check.interruptPending(int(ev.VCPU), ev.Vector)
		}
		return nil
	}
	return fmt.Errorf("payload with unknown magic %#x %d->%d", p[0], src, dst)
}

func (s *Sim) arrive(n, id int) error {
	v := s.vcpus[id]
	rec := s.nodes[n].mig.VCPU(migrate.VCPUID(id))
	if err := s.check.arrive(id, v.pc, rec.State); err != nil {
		return err
	}
	if v.state != vFlight {
		return fmt.Errorf("vCPU %d arrived at node %d but was not in flight (state %d on node %d)", id, n, v.state, v.node)
	}
	v.node = n
	s.endWait(v)
	if rec.TimerDeadline != 0 {
		at := int64(rec.TimerDeadline)
		if at < s.now {
			at = s.now
		}
		s.schedule(event{at: at, kind: evTimer, node: n, v: id})
	}
	s.resume(v, s.cfg.MigrateNS)
	s.crashOnArrival(v.from)
	return nil
}

// raise makes node n raise vector on vCPU v.
func (s *Sim) raise(n, v int, vector uint8) error {
	if s.nodes[n].crashed || s.nodes[n].stopped {
		return nil
	}
	s.check.raised(v)
	local, err := s.nodes[n].mig.Interrupt(migrate.VCPUID(v), vector, s.migOut)
	if err != nil {
		return err
	}
	if local {
		if err := s.check.interruptPending(v, vector); err != nil {
			return err
		}
	}
	return s.flushMig(n)
}

func (s *Sim) fireTimer(id int) {
	v := s.vcpus[id]
	if v.node < 0 || v.state == vLost || v.state == vStopped {
		return // in flight (the destination re-arms on arrival), or gone
	}
	rec := s.nodes[v.node].mig.VCPU(migrate.VCPUID(id))
	if rec == nil || rec.TimerDeadline == 0 || int64(rec.TimerDeadline) > s.now {
		return
	}
	rec.TimerDeadline = 0
	rec.SetPending(rec.TimerVector)
	s.check.timerFired(id, s.now)
	s.check.pendingNoCount(id, rec.TimerVector)
	s.res.TimersFired++
}

func (s *Sim) sample() {
	smp := Sample{At: s.now, VCPUs: make([]int8, len(s.vcpus))}
	for i, v := range s.vcpus {
		smp.VCPUs[i] = int8(v.node)
	}
	np := s.cfg.Workload.Pages
	if np > 256 {
		np = 256
	}
	smp.Pages = make([]int8, np)
	for p := 0; p < np; p++ {
		gpa := uint64(p) * memory.PageSize
		owner := memory.NoNode
		for _, nd := range s.nodes {
			if o, _, _, ok := nd.mem.Directory(gpa); ok {
				owner = o
			}
		}
		if owner == memory.NoNode {
			smp.Pages[p] = -1
		} else {
			smp.Pages[p] = int8(owner)
		}
	}
	s.res.Timeline = append(s.res.Timeline, smp)
}

// finish runs the end-of-run checks once the event queue is empty.
func (s *Sim) finish() error {
	for _, v := range s.vcpus {
		if err := s.finishVCPU(v); err != nil {
			return err
		}
	}
	n, err := s.hist.check()
	if err != nil {
		return err
	}
	s.res.SCAccesses = n
	if s.failed() {
		// Interrupts and timers of stopped or lost vCPUs need not arrive,
		// and channels to lost nodes stay full; a timer that fired early
		// or twice is still wrong.
		if err := s.check.timersNotEarly(); err != nil {
			return err
		}
		return s.finishFailures()
	}
	if s.real != nil {
		s.real.stats(&s.res)
		if !s.real.quiet() {
			return fmt.Errorf("the cluster transport has messages not delivered")
		}
	}
	for i, row := range s.chans {
		for j, c := range row {
			if len(c.unacked) != 0 || len(c.early) != 0 {
				return fmt.Errorf("channel %d->%d not drained: %d unacked, %d early", i, j, len(c.unacked), len(c.early))
			}
		}
	}
	return s.check.final()
}

// finishVCPU checks how vCPU v ended: finished, with exactly the
// interrupts the checker expects still pending; or, after a failure,
// lost with its node, stopped with its node's share, or in flight to or
// from a lost or stopped node. Anything else is a hang or a lost vCPU.
func (s *Sim) finishVCPU(v *vcpu) error {
	switch v.state {
	case vLost, vStopped:
		return nil
	case vFlight:
		if s.nodes[v.from].crashed || s.nodes[v.to].crashed || s.nodes[v.to].stopped {
			return nil
		}
	case vDone:
		if v.pc != len(v.stream) {
			break
		}
		// Interrupts raised after the vCPU's last access stay pending in its
		// IRR: they must be exactly the ones the checker expects.
		rec := s.nodes[v.node].mig.VCPU(migrate.VCPUID(v.id))
		if rec == nil {
			return fmt.Errorf("vCPU %d finished on node %d, which does not host it", v.id, v.node)
		}
		for {
			vec, ok := rec.TakePending()
			if !ok {
				return nil
			}
			if err := s.check.takeInterrupt(v.id, vec); err != nil {
				return err
			}
			s.res.InterruptsTaken++
		}
	}
	return fmt.Errorf("vCPU %d did not finish: state %d, %d of %d accesses, node %d (deadlock?)", v.id, v.state, v.pc, len(v.stream), v.node)
}
