// Package sched decides where computation runs: on a remote page fault,
// pull the page to the vCPU or push the vCPU to the page.
//
// The idea is TidalScale's: when a vCPU keeps faulting on data that lives
// (and is being written) on another node, moving the few kilobytes of vCPU
// state there is cheaper than moving page after page here, and it
// co-locates vCPUs that share data. Moving too eagerly chases pages around
// and piles vCPUs on one node, so the [Hysteresis] policy only moves a vCPU
// when recent contended faults concentrate on one node, the estimated
// saving beats the migration cost by a margin, the vCPU has stayed put for
// a cool-down, and the destination has a free core. [AlwaysPull] and
// [AlwaysMove] are the baselines.
package sched

import "math"

// Decision is the outcome of a remote fault.
type Decision uint8

// Decisions.
const (
	Pull Decision = iota // fetch the page to the faulting vCPU's node
	Move                 // migrate the vCPU to the node holding the page
)

// String names the decision.
func (d Decision) String() string {
	if d == Move {
		return "move"
	}
	return "pull"
}

// Fault describes a guest access that needs another node.
type Fault struct {
	VCPU   int    // faulting vCPU
	Node   int    // node it runs on
	Target int    // node believed to hold the page (memory.Engine.Hint)
	Dirty  bool   // Target is believed to hold the page Modified
	Page   uint64 // guest page number
	Write  bool
	Now    int64 // virtual time, ns
}

// Cluster is what a policy may ask about the machine.
type Cluster interface {
	// Load is the number of vCPUs currently hosted by node that still run.
	Load(node int) int
	// Cores is the number of physical cores of node that run vCPUs.
	Cores(node int) int
}

// Policy decides pull versus move. Implementations keep their own
// statistics from the calls they see; one instance serves the machine.
type Policy interface {
	// Name is a short name for tables.
	Name() string
	// Decide is called on every remote fault; Move is only honoured when
	// f.Target differs from f.Node.
	Decide(f Fault, c Cluster) Decision
	// Migrated reports a completed decision to move vCPU v.
	Migrated(v, from, to int, now int64)
}

// Yields reports whether a vCPU on node self that faults on a page held
// by node target must fetch the page without asking its policy: when
// target is the higher-numbered node and runs vCPUs. Of two vCPUs on
// different nodes that pull each other (both write the same pages), only
// the one on the higher-numbered node moves, so that they do not swap
// places; and a ring of vCPUs each following the last writer of its
// pages gathers on the lowest-numbered node rather than circling the
// ring, every vCPU leaving for the node the next one is leaving.
func Yields(self, target int, c Cluster) bool { return target > self && c.Load(target) > 0 }

// AlwaysPull never moves vCPUs: the page-shipping baseline (GiantVM style).
type AlwaysPull struct{}

// Name implements Policy.
func (AlwaysPull) Name() string { return "always-pull" }

// Decide implements Policy.
func (AlwaysPull) Decide(Fault, Cluster) Decision { return Pull }

// Migrated implements Policy.
func (AlwaysPull) Migrated(int, int, int, int64) {}

// AlwaysMove moves the vCPU on every remote fault whose page is elsewhere.
type AlwaysMove struct{}

// Name implements Policy.
func (AlwaysMove) Name() string { return "always-move" }

// Decide implements Policy.
func (AlwaysMove) Decide(f Fault, _ Cluster) Decision {
	if f.Target == f.Node {
		return Pull
	}
	return Move
}

// Migrated implements Policy.
func (AlwaysMove) Migrated(int, int, int, int64) {}

// Costs are the policy's estimates of the two ways to serve a fault, in
// nanoseconds of vCPU stall.
type Costs struct {
	PullNS int64 // remote fault: request + 4 KiB reply + handling
	MoveNS int64 // migration: state transfer + save/restore
}

// HysteresisConfig tunes [Hysteresis].
type HysteresisConfig struct {
	Costs Costs
	// HalfLifeNS is the decay half-life of fault scores.
	HalfLifeNS int64
	// CooldownNS is how long a vCPU stays on a node after arriving or
	// before being moved again, and how long a node pair stays closed to
	// moves in the opposite direction (no swaps).
	CooldownNS int64
	// Margin is how many times the predicted pull cost must exceed the
	// move cost.
	Margin float64
	// Concentration is the share of the vCPU's recent contended faults that
	// must point at the destination.
	Concentration float64
	// PerCore is how many vCPUs per core a move may leave on the
	// destination; 0 means 1, a free core.
	PerCore int
}

// DefaultHysteresis returns the tuning used by the simulator's tables for
// the given costs.
func DefaultHysteresis(c Costs) HysteresisConfig {
	return HysteresisConfig{Costs: c, HalfLifeNS: 40 * c.PullNS, CooldownNS: 30 * c.MoveNS, Margin: 2, Concentration: 0.7}
}

type vcpuStats struct {
	score   []float64 // decayed contended faults per target node
	total   float64
	updated int64
	arrived int64 // last arrival, -inf if never moved
}

// Hysteresis is the statistics-driven policy described in the package
// comment.
type Hysteresis struct {
	cfg      HysteresisConfig
	nodes    int
	vcpus    []vcpuStats
	lastMove [][]int64 // lastMove[from][to]
}

// NewHysteresis returns a policy for a machine of nodes nodes and vcpus
// vCPUs.
func NewHysteresis(cfg HysteresisConfig, nodes, vcpus int) *Hysteresis {
	h := &Hysteresis{cfg: cfg, nodes: nodes, vcpus: make([]vcpuStats, vcpus), lastMove: make([][]int64, nodes)}
	for i := range h.vcpus {
		h.vcpus[i] = vcpuStats{score: make([]float64, nodes), arrived: math.MinInt64 / 2}
	}
	for i := range h.lastMove {
		h.lastMove[i] = make([]int64, nodes)
		for j := range h.lastMove[i] {
			h.lastMove[i][j] = math.MinInt64 / 2
		}
	}
	return h
}

// Name implements Policy.
func (h *Hysteresis) Name() string { return "hysteresis" }

// SetCosts replaces the cost estimates, with the half-life and cool-down
// that [DefaultHysteresis] derives from them: for a caller that measures
// its costs as it runs (a remote fault on an emulated network costs
// milliseconds, on 10 GbE microseconds).
func (h *Hysteresis) SetCosts(c Costs) {
	d := DefaultHysteresis(c)
	h.cfg.Costs, h.cfg.HalfLifeNS, h.cfg.CooldownNS = c, d.HalfLifeNS, d.CooldownNS
}

// Config returns the policy's tuning.
func (h *Hysteresis) Config() HysteresisConfig { return h.cfg }

// decay brings v's scores to time now.
func (h *Hysteresis) decay(v *vcpuStats, now int64) {
	if now <= v.updated {
		return
	}
	f := math.Exp2(-float64(now-v.updated) / float64(h.cfg.HalfLifeNS))
	v.total = 0
	for i := range v.score {
		v.score[i] *= f
		v.total += v.score[i]
	}
	v.updated = now
}

// Decide implements Policy.
func (h *Hysteresis) Decide(f Fault, c Cluster) Decision {
	if f.VCPU < 0 || f.VCPU >= len(h.vcpus) || f.Target < 0 || f.Target >= h.nodes || f.Target == f.Node {
		return Pull
	}
	v := &h.vcpus[f.VCPU]
	h.decay(v, f.Now)
	// Only contended faults (the page is being written elsewhere) predict
	// more faults; a clean page is fetched once and stays.
	if !f.Dirty {
		return Pull
	}
	v.score[f.Target]++
	v.total++
	if f.Now-v.arrived < h.cfg.CooldownNS || f.Now-h.lastMove[f.Target][f.Node] < h.cfg.CooldownNS {
		return Pull
	}
	if c.Load(f.Target)+1 > max(h.cfg.PerCore, 1)*c.Cores(f.Target) {
		return Pull
	}
	s := v.score[f.Target]
	if s < h.cfg.Concentration*v.total {
		return Pull
	}
	if s*float64(h.cfg.Costs.PullNS) < h.cfg.Margin*float64(h.cfg.Costs.MoveNS) {
		return Pull
	}
	return Move
}

// Migrated implements Policy.
func (h *Hysteresis) Migrated(v, from, to int, now int64) {
	if v < 0 || v >= len(h.vcpus) || from < 0 || from >= h.nodes || to < 0 || to >= h.nodes {
		return
	}
	s := &h.vcpus[v]
	s.arrived = now
	for i := range s.score {
		s.score[i] = 0
	}
	s.total = 0
	h.lastMove[from][to] = now
}
