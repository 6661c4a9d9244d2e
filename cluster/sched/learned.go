package sched

import "math"

// Feature indexes a remote fault's features in a [Model].
type Feature int

// The features of a remote fault, each from the faulting vCPU's recent
// history, as [Learned] computes them.
const (
	// FeatureDirty is 1 when the target holds the page Modified.
	FeatureDirty Feature = iota
	// FeatureWrite is 1 for a write fault.
	FeatureWrite
	// FeatureShare is the share of the vCPU's recent contended faults
	// (half-life 40 pulls) that pointed at the target, this one included.
	FeatureShare
	// FeatureMass is log2(1 + those faults at the target): how much
	// evidence the share rests on.
	FeatureMass
	// FeatureBurst is the vCPU's contended faults at the target over the
	// last few pulls (half-life 4 pulls): a run of them now.
	FeatureBurst
	// FeatureSettled is how long the vCPU has been on its node, in
	// cool-downs (30 moves), at most 1.
	FeatureSettled
	// FeatureSwap is 1 while a vCPU moved from the target to this node
	// less than a cool-down ago: a move back would swap.
	FeatureSwap
	// FeatureAnchor is log2(1 + the pages the vCPU pulled to its node
	// recently, half-life 40 pulls): the working set a move would leave.
	FeatureAnchor
	// FeatureHysteresis is 1 when [Hysteresis], with its default tuning
	// for the same costs, would move: the hand-tuned rule's vote, which
	// the model may follow or overrule.
	FeatureHysteresis
	// FeatureReturn is how recently the vCPU's node pulled this page
	// before, decaying with the long half-life (40 pulls) from 1, and 0
	// if it never did as far as the policy remembers: a page that comes
	// back bounces between nodes, one seen for the first time was handed
	// over (written by one node, then used by another) and stays.
	FeatureReturn
	// FeatureMine is how recently this vCPU itself pulled the page to
	// the target node, decaying with the long half-life from 1, and 0 if
	// another vCPU did or the policy does not remember: the target holds
	// the page because the vCPU left it there. Following it would chase
	// the vCPU's own trail, back and forth between the nodes it worked
	// on (a region first written by another node, pulled page by page).
	FeatureMine
	// FeatureCrowd is how many vCPUs beyond the target's cores a move
	// would put there, per core: 0 while the target has a free core. A
	// vCPU that joins the vCPUs it shares pages with on a busy node
	// time-shares a core with them, which can beat fetching every page
	// across the wire.
	FeatureCrowd
	// FeatureVacant is 1 when no vCPU runs on the target: the page's
	// writer has left it, so a move would chase the page's trail rather
	// than join the vCPU it is shared with.
	FeatureVacant
	// NumFeatures counts the features.
	NumFeatures
)

// featureNames are the features' names, for tables and generated code.
var featureNames = [NumFeatures]string{"dirty", "write", "share", "mass", "burst", "settled", "swap", "anchor", "hysteresis", "return", "mine", "crowd", "vacant"}

// String names the feature.
func (f Feature) String() string {
	if f < 0 || f >= NumFeatures {
		return "feature?"
	}
	return featureNames[f]
}

// Model is a logistic model of whether moving the vCPU beats pulling the
// page: move when Bias + sum of Weights[i] * feature i is above zero.
// Small and readable on purpose: each weight says how much a feature
// argues for moving.
type Model struct {
	Bias    float64
	Weights [NumFeatures]float64
}

// Score returns the model's log-odds for moving given features x.
func (m *Model) Score(x *[NumFeatures]float64) float64 {
	z := m.Bias
	for i, w := range m.Weights {
		z += w * x[i]
	}
	return z
}

// learnedStats is the part of one vCPU's recent fault history that
// [Hysteresis] does not keep already (its decayed contended faults per
// target, arrival time and last moves between nodes serve as they are).
type learnedStats struct {
	burst   []float64 // contended faults per target node, short half-life
	pulled  float64   // pages pulled to the vCPU's node, long half-life
	updated int64
}

// Learned decides pull or move with a [Model] trained offline on the
// simulator's workloads (tools/policytrain). Like [Hysteresis] it never
// moves a vCPU to the node it runs on, nor on a clean page (fetched
// once, a clean page stays: only contended faults predict more), nor
// within LearnedStayMoves move times of its arrival (a move must have
// the time to pay for itself). Unlike Hysteresis, it may move a vCPU to
// a node without a free core, up to LearnedCrowdLimit vCPUs per core
// (FeatureCrowd): vCPUs that share their pages may be faster
// time-sharing one node's cores than spread over several, fetching
// every page they share. A decision costs a few dozen floating-point
// operations and allocates nothing.
type Learned struct {
	model Model
	costs Costs
	// hyst votes (FeatureHysteresis) and keeps the history the two
	// share: its half-life and cool-down are the features' long scales.
	hyst  *Hysteresis
	nodes int
	vcpus []learnedStats
	// pulls remembers recent pulls, a direct-mapped table indexed by
	// page and node (FeatureReturn): fixed at creation, so a decision
	// allocates nothing.
	pulls []pullRecord
}

// pullRecord is a page a node pulled, when, and for which vCPU.
type pullRecord struct {
	page uint64
	node int32
	vcpu int32
	at   int64
}

// Learned's table of recent pulls has learnedPullSlots slots: a few
// times the pages a node pulls within the long half-life.
const (
	learnedPullBits  = 12
	learnedPullSlots = 1 << learnedPullBits
)

// pullSlot returns the table slot of page on node.
func (l *Learned) pullSlot(page uint64, node int) *pullRecord {
	h := (page*uint64(l.nodes) + uint64(node)) * 0x9E3779B97F4A7C15
	return &l.pulls[h>>(64-learnedPullBits)]
}

// pulled records that vCPU v's fault pulls page to its node at now.
func (l *Learned) pulled(f Fault) {
	*l.pullSlot(f.Page, f.Node) = pullRecord{page: f.Page, node: int32(f.Node), vcpu: int32(f.VCPU), at: f.Now}
}

// pullAge returns how recently node pulled page, decaying with the long
// half-life from 1 (0 if the table does not remember it), and for which
// vCPU.
func (l *Learned) pullAge(page uint64, node int, now int64) (age float64, vcpu int) {
	r := l.pullSlot(page, node)
	if r.page != page || int(r.node) != node || now < r.at {
		return 0, -1
	}
	return math.Exp2(-float64(now-r.at) / (learnedLongPulls * float64(max(l.costs.PullNS, 1)))), int(r.vcpu)
}

// NewLearned returns the policy with model m for a machine of nodes
// nodes and vcpus vCPUs whose pulls and moves cost about c.
func NewLearned(m Model, c Costs, nodes, vcpus int) *Learned {
	l := &Learned{model: m, costs: c, hyst: NewHysteresis(DefaultHysteresis(c), nodes, vcpus), nodes: nodes, vcpus: make([]learnedStats, vcpus), pulls: make([]pullRecord, learnedPullSlots)}
	for i := range l.pulls {
		l.pulls[i].node = -1
	}
	for i := range l.vcpus {
		l.vcpus[i].burst = make([]float64, nodes)
	}
	return l
}

// Name implements Policy.
func (l *Learned) Name() string { return "learned" }

// SetCosts replaces the cost estimates the features are scaled by (see
// [Hysteresis.SetCosts]).
func (l *Learned) SetCosts(c Costs) {
	l.costs = c
	l.hyst.SetCosts(c)
}

// Model returns the policy's model.
func (l *Learned) Model() Model { return l.model }

// LearnedCrowdLimit bounds the vCPUs [Learned] lets share a node's cores:
// it moves no vCPU to a node that would then run more than this many per
// core.
const LearnedCrowdLimit = 2

// LearnedStayMoves is how long, in move times, a vCPU stays where it
// arrived before [Learned] may move it again.
const LearnedStayMoves = 10

// Scales of the features, in pulls (see the Feature docs; the long
// half-life and the cool-down are Hysteresis's).
const (
	learnedLongPulls  = 40
	learnedBurstPulls = 4
)

// decay brings v's own histories to time now.
func (l *Learned) decay(v *learnedStats, now int64) {
	if now <= v.updated {
		return
	}
	dt := float64(now - v.updated)
	pull := float64(max(l.costs.PullNS, 1))
	v.pulled *= math.Exp2(-dt / (learnedLongPulls * pull))
	fb := math.Exp2(-dt / (learnedBurstPulls * pull))
	for i := range v.burst {
		v.burst[i] *= fb
	}
	v.updated = now
}

// Features computes fault f's features into x and records f in the
// vCPU's history: Hysteresis's, by asking its vote with c, and its own.
// It reports false for a fault no policy may move on.
func (l *Learned) Features(f Fault, c Cluster, x *[NumFeatures]float64) bool {
	vote := l.hyst.Decide(f, c) // decays h's scores and counts f if contended
	if f.VCPU < 0 || f.VCPU >= len(l.vcpus) || f.Target < 0 || f.Target >= l.nodes || f.Node < 0 || f.Node >= l.nodes || f.Target == f.Node {
		return false
	}
	h, v := &l.hyst.vcpus[f.VCPU], &l.vcpus[f.VCPU]
	l.decay(v, f.Now)
	if f.Dirty {
		v.burst[f.Target]++
	}
	cool := float64(l.hyst.cfg.CooldownNS)
	*x = [NumFeatures]float64{}
	if f.Dirty {
		x[FeatureDirty] = 1
	}
	if f.Write {
		x[FeatureWrite] = 1
	}
	if h.total > 0 {
		x[FeatureShare] = h.score[f.Target] / h.total
	}
	x[FeatureMass] = math.Log2(1 + h.score[f.Target])
	x[FeatureBurst] = v.burst[f.Target]
	x[FeatureSettled] = min(float64(f.Now-h.arrived)/cool, 1)
	if float64(f.Now-l.hyst.lastMove[f.Target][f.Node]) < cool {
		x[FeatureSwap] = 1
	}
	x[FeatureAnchor] = math.Log2(1 + v.pulled)
	if vote == Move {
		x[FeatureHysteresis] = 1
	}
	x[FeatureReturn], _ = l.pullAge(f.Page, f.Node, f.Now)
	if age, by := l.pullAge(f.Page, f.Target, f.Now); by == f.VCPU {
		x[FeatureMine] = age
	}
	switch load, cores := c.Load(f.Target), max(c.Cores(f.Target), 1); {
	case load == 0:
		x[FeatureVacant] = 1
	case load+1 > cores:
		x[FeatureCrowd] = float64(load+1-cores) / float64(cores)
	}
	return true
}

// Decide implements Policy.
func (l *Learned) Decide(f Fault, c Cluster) Decision {
	var x [NumFeatures]float64
	if !l.Features(f, c, &x) {
		return Pull
	}
	if !f.Dirty || c.Load(f.Target)+1 > LearnedCrowdLimit*c.Cores(f.Target) {
		l.pulled(f)
		return Pull
	}
	if f.Now-l.hyst.vcpus[f.VCPU].arrived >= LearnedStayMoves*max(l.costs.MoveNS, 1) && l.model.Score(&x) > 0 {
		return Move
	}
	l.vcpus[f.VCPU].pulled++
	l.pulled(f)
	return Pull
}

// Migrated implements Policy.
func (l *Learned) Migrated(v, from, to int, now int64) {
	if v < 0 || v >= len(l.vcpus) || from < 0 || from >= l.nodes || to < 0 || to >= l.nodes {
		return
	}
	l.hyst.Migrated(v, from, to, now)
	s := &l.vcpus[v]
	clear(s.burst)
	s.pulled = 0
}
