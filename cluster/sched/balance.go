package sched

import "math"

// A Balancer moves vCPUs off nodes that run more of them than they have
// cores, to nodes with a core free: the placement decision that a remote
// fault never asks for. A VM started with every vCPU on one node (to
// boot, or because its memory is there) time-shares that node's cores
// while other nodes idle; whether spreading pays depends on how much of
// its memory each vCPU would then fetch, which only its faults tell.
type Balancer interface {
	// Name is a short name for tables.
	Name() string
	// Observe records a remote fault (every one the fault policy sees).
	Observe(f Fault)
	// Balance is called every BalancePeriod on a machine of nodes nodes.
	// where[v] is vCPU v's node (-1 while in flight, done or unknown). It
	// returns a vCPU to move and its destination, or ok false. It
	// allocates nothing.
	Balance(c Cluster, nodes int, where []int, now int64) (v, to int, ok bool)
	// Migrated reports a completed move of vCPU v, whoever decided it.
	Migrated(v, from, to int, now int64)
}

// BalancePeriod is how often, in pull times (remote faults), a balancer
// is asked: a vCPU it moved must have had the time to show, by its
// faults, whether its memory followed it.
const BalancePeriod = 50

// BalanceStayMoves is how long, in move times, a vCPU stays where it
// arrived before [LearnedBalance] may move it again: short enough to
// take back a move whose vCPU turns out to share its memory with those
// it left.
const BalanceStayMoves = 3

// BalanceBackoffMax caps the back-off of a vCPU whose moves were undone:
// after its k-th undone move (back to the node it left, less than a
// cool-down after leaving it), [LearnedBalance] does not move it onto a
// free core for 2^min(k, BalanceBackoffMax) cool-downs (it may still
// gather it with its memory), so that the cost of trying a vCPU that
// shares its memory with those it left is paid a few times in a run,
// not at every look.
const BalanceBackoffMax = 6

// spreadMoves calls f for every move that spreads load on a machine of
// nodes nodes: a vCPU on a node with more vCPUs than cores, the
// destination another node with a core free.
func spreadMoves(c Cluster, nodes int, where []int, f func(v, from, to int)) {
	for v, from := range where {
		if from < 0 || from >= nodes || c.Load(from) <= c.Cores(from) {
			continue
		}
		for to := range nodes {
			if to != from && c.Load(to) < c.Cores(to) {
				f(v, from, to)
			}
		}
	}
}

// NoBalance never moves a vCPU for load: the baseline, and what a VM did
// before balancers.
type NoBalance struct{}

// Name implements Balancer.
func (NoBalance) Name() string { return "none" }

// Observe implements Balancer.
func (NoBalance) Observe(Fault) {}

// Balance implements Balancer.
func (NoBalance) Balance(Cluster, int, []int, int64) (int, int, bool) { return 0, 0, false }

// Migrated implements Balancer.
func (NoBalance) Migrated(int, int, int, int64) {}

// Spread moves vCPUs from the most loaded node to the least loaded one
// with a core free, the highest-numbered vCPU first (vCPU 0 boots the
// guest and keeps its devices' work), regardless of memory: the
// load-only baseline, as an operating system balances its run queues.
type Spread struct{}

// Name implements Balancer.
func (Spread) Name() string { return "spread" }

// Observe implements Balancer.
func (Spread) Observe(Fault) {}

// Balance implements Balancer.
func (Spread) Balance(c Cluster, nodes int, where []int, _ int64) (v, to int, ok bool) {
	best := math.MinInt
	spreadMoves(c, nodes, where, func(cv, from, cto int) {
		// Most overloaded source, emptiest destination, highest vCPU.
		s := (c.Load(from)-c.Cores(from))<<20 + (c.Cores(cto)-c.Load(cto))<<10 + cv
		if s > best {
			best, v, to, ok = s, cv, cto, true
		}
	})
	return v, to, ok
}

// Migrated implements Balancer.
func (Spread) Migrated(int, int, int, int64) {}

// BalanceFeature indexes a candidate move's features in a
// [BalanceModel].
type BalanceFeature int

// The features of moving a vCPU from its node (the source) to another
// (the destination), as [LearnedBalance] computes them. Histories decay
// with a half-life of 40 pulls; a cool-down is four balance periods
// (BalancePeriod pulls each), so that the balancer still remembers a move
// at its next looks.
//
// A move is undone when its vCPU comes back to the node it left less
// than a cool-down after leaving it: the trial showed that its memory
// stayed behind.
const (
	// BalanceSourceLoad is how many more vCPUs than cores the source
	// runs, per core (negative when it has cores free): how much faster
	// the vCPU, and those it leaves, would run elsewhere.
	BalanceSourceLoad BalanceFeature = iota
	// BalanceDestLoad is how many more vCPUs than cores the destination
	// would run with the vCPU, per core (negative or zero when it has a
	// core for it).
	BalanceDestLoad
	// BalanceShare is the share of the vCPU's recent remote faults that
	// the destination served: memory it would find there.
	BalanceShare
	// BalanceFaults is log2(1 + the vCPU's recent remote faults): how
	// much it fetches where it is.
	BalanceFaults
	// BalancePull is BalanceShare times BalanceFaults: the evidence that
	// the vCPU's memory is at the destination.
	BalancePull
	// BalanceSettled is how long the vCPU has been on its node, in
	// cool-downs, at most 1.
	BalanceSettled
	// BalanceBack is 1 when the vCPU came from the destination less than
	// a cool-down ago: the move would undo the last.
	BalanceBack
	// BalanceLink is log2(1 + the recent remote faults between the
	// source and any other node, either way): how much of the source's
	// memory is already shared across nodes (a vCPU moved off it keeps
	// fetching from it).
	BalanceLink
	// BalanceRate is the share of the recent time (a half-life of a
	// quarter of a balance period) the vCPU spent fetching pages from
	// the destination: its faults served there, a pull time each. About
	// 1 for a vCPU that does little else, about 0 for one whose memory
	// followed it: what being away from the destination costs now. It is
	// 0 for a move onto a free core, which spreads rather than gathers
	// (there Pull says where the vCPU's memory is).
	BalanceRate
	// BalanceReturned is, for a move onto a free core, how many moves
	// of the VM's vCPUs were undone, decaying with a half-life of eight
	// cool-downs: the evidence that its vCPUs share their memory with
	// those they would leave (0 for a move onto a busy node, which
	// gathers rather than spreads).
	BalanceReturned
	// BalanceTraffic is BalanceRate's measure for every vCPU on the
	// source fetching from the destination and every one on the
	// destination fetching from the source: the time lost, now, to
	// keeping the two nodes' vCPUs apart (0, as BalanceRate, for a move
	// onto a free core).
	BalanceTraffic
	// NumBalanceFeatures counts the features.
	NumBalanceFeatures
)

// balanceFeatureNames are the features' names, for tables and generated
// code.
var balanceFeatureNames = [NumBalanceFeatures]string{"sourceLoad", "destLoad", "share", "faults", "pull", "settled", "back", "link", "rate", "returned", "traffic"}

// String names the feature.
func (f BalanceFeature) String() string {
	if f < 0 || f >= NumBalanceFeatures {
		return "feature?"
	}
	return balanceFeatureNames[f]
}

// BalanceModel is a logistic model of whether moving a vCPU pays: the
// best-scoring candidate moves when Bias + sum of Weights[i] * feature i
// is above zero.
type BalanceModel struct {
	Bias    float64
	Weights [NumBalanceFeatures]float64
}

// Score returns the model's log-odds for a move with features x.
func (m *BalanceModel) Score(x *[NumBalanceFeatures]float64) float64 {
	z := m.Bias
	for i, w := range m.Weights {
		z += w * x[i]
	}
	return z
}

// LearnedBalance moves vCPUs with a [BalanceModel] trained offline on
// the simulator's workloads started on one node (tools/balancetrain).
// Every (vCPU, other node) pair is a candidate: spreading load onto a
// free core, or gathering a vCPU with its memory even onto a busy node
// (the fault policy never moves a vCPU to a node without a free core),
// that one only to a node running more vCPUs than the source (joining
// the larger group), or as many and lower-numbered.
// It moves the candidate the model scores highest, if above zero (the
// highest-numbered vCPU of those that tie), never a vCPU within
// BalanceStayMoves move times of its arrival, and never a vCPU within
// its back-off after an undone move (BalanceBackoffMax) onto a free
// core. A decision allocates nothing.
type LearnedBalance struct {
	model BalanceModel
	costs Costs
	nodes int
	// score[v*nodes+n] is vCPU v's decayed remote faults that node n
	// served, total[v] their sum; link[n] the decayed remote faults
	// from or served by node n.
	score, total, link []float64
	// recent[v*nodes+n] is vCPU v's remote faults that node n served,
	// and traffic[m*nodes+n] those of node m's vCPUs, decaying with the
	// short half-life of BalanceRate; returned the undone moves, with
	// BalanceReturned's.
	recent, traffic []float64
	returned        float64
	updated         int64
	// arrived[v] is when vCPU v last moved, from[v] where from;
	// undone[v] counts its undone moves, and it stays until hold[v].
	arrived, hold []int64
	from, undone  []int
}

// NewLearnedBalance returns the balancer with model m for a machine of
// nodes nodes and vcpus vCPUs whose pulls and moves cost about c.
func NewLearnedBalance(m BalanceModel, c Costs, nodes, vcpus int) *LearnedBalance {
	b := &LearnedBalance{model: m, costs: c, nodes: nodes, score: make([]float64, vcpus*nodes), total: make([]float64, vcpus),
		link: make([]float64, nodes), recent: make([]float64, vcpus*nodes), traffic: make([]float64, nodes*nodes),
		arrived: make([]int64, vcpus), hold: make([]int64, vcpus), from: make([]int, vcpus), undone: make([]int, vcpus)}
	for i := range b.arrived {
		b.arrived[i], b.from[i] = math.MinInt64/2, -1
	}
	return b
}

// Name implements Balancer.
func (b *LearnedBalance) Name() string { return "learned" }

// Model returns the balancer's model.
func (b *LearnedBalance) Model() BalanceModel { return b.model }

// SetCosts replaces the cost estimates the features are scaled by.
func (b *LearnedBalance) SetCosts(c Costs) { b.costs = c }

// decay brings every history to time now.
func (b *LearnedBalance) decay(now int64) {
	if now <= b.updated {
		return
	}
	dt := float64(now - b.updated)
	f := math.Exp2(-dt / (learnedLongPulls * float64(max(b.costs.PullNS, 1))))
	for _, s := range [][]float64{b.score, b.total, b.link} {
		for i := range s {
			s[i] *= f
		}
	}
	f = math.Exp2(-dt / b.rateHalfLife())
	for _, s := range [][]float64{b.recent, b.traffic} {
		for i := range s {
			s[i] *= f
		}
	}
	b.returned *= math.Exp2(-dt / (balanceReturnedCooldowns * b.cooldown()))
	b.updated = now
}

// balanceReturnedCooldowns is BalanceReturned's half-life, in
// cool-downs.
const balanceReturnedCooldowns = 8

// rateHalfLife is BalanceRate's half-life: a quarter of a balance
// period.
func (b *LearnedBalance) rateHalfLife() float64 {
	return BalancePeriod / 4 * float64(max(b.costs.PullNS, 1))
}

// Observe implements Balancer.
func (b *LearnedBalance) Observe(f Fault) {
	if f.VCPU < 0 || f.VCPU >= len(b.total) || f.Node < 0 || f.Node >= b.nodes || f.Target < 0 || f.Target >= b.nodes {
		return
	}
	b.decay(f.Now)
	b.score[f.VCPU*b.nodes+f.Target]++
	b.recent[f.VCPU*b.nodes+f.Target]++
	b.traffic[f.Node*b.nodes+f.Target]++
	b.total[f.VCPU]++
	b.link[f.Node]++
	b.link[f.Target]++
}

// cooldown is the balancer's cool-down: four balance periods.
func (b *LearnedBalance) cooldown() float64 {
	return 4 * BalancePeriod * float64(max(b.costs.PullNS, 1))
}

// Features computes the features of moving vCPU v from node from to node
// to at now into x.
func (b *LearnedBalance) Features(c Cluster, v, from, to int, now int64, x *[NumBalanceFeatures]float64) {
	b.decay(now)
	*x = [NumBalanceFeatures]float64{}
	x[BalanceSourceLoad] = float64(c.Load(from)-c.Cores(from)) / float64(max(c.Cores(from), 1))
	x[BalanceDestLoad] = float64(c.Load(to)+1-c.Cores(to)) / float64(max(c.Cores(to), 1))
	if t := b.total[v]; t > 0 {
		x[BalanceShare] = b.score[v*b.nodes+to] / t
	}
	x[BalanceFaults] = math.Log2(1 + b.total[v])
	x[BalancePull] = x[BalanceShare] * x[BalanceFaults]
	since := float64(now - b.arrived[v])
	x[BalanceSettled] = min(since/b.cooldown(), 1)
	if b.from[v] == to && since < b.cooldown() {
		x[BalanceBack] = 1
	}
	x[BalanceLink] = math.Log2(1 + b.link[from])
	if c.Load(to) < c.Cores(to) {
		// Spreading: the trials that failed.
		x[BalanceReturned] = b.returned
		return
	}
	// Gathering: what being apart costs now. A decayed count of events
	// one pull apart settles at the half-life over ln 2 pulls.
	rate := float64(max(b.costs.PullNS, 1)) * math.Ln2 / b.rateHalfLife()
	x[BalanceRate] = b.recent[v*b.nodes+to] * rate
	x[BalanceTraffic] = (b.traffic[from*b.nodes+to] + b.traffic[to*b.nodes+from]) * rate
}

// Balance implements Balancer.
func (b *LearnedBalance) Balance(c Cluster, nodes int, where []int, now int64) (v, to int, ok bool) {
	best := 0.0
	nodes = min(nodes, b.nodes)
	stay := BalanceStayMoves * max(b.costs.MoveNS, 1)
	var x [NumBalanceFeatures]float64
	for cv, from := range where[:min(len(where), len(b.total))] {
		if from < 0 || from >= nodes || now-b.arrived[cv] < stay {
			continue
		}
		for cto := range nodes {
			// Onto a node without a core free (gathering a vCPU with
			// its memory), moves go only to a node that runs more
			// vCPUs than the source, or as many and lower-numbered: a
			// vCPU joins the larger group, and two that share pages
			// never swap places (each node decides for its own vCPUs).
			// Onto a free core (spreading load), only once the vCPU's
			// back-off is over.
			free := c.Load(cto) < c.Cores(cto)
			if cto == from || !free && (c.Load(cto) < c.Load(from) || c.Load(cto) == c.Load(from) && cto > from) || free && now < b.hold[cv] {
				continue
			}
			b.Features(c, cv, from, cto, now, &x)
			// On a tie the higher vCPU moves, as with Spread.
			if s := b.model.Score(&x); s > best || ok && s == best {
				best, v, to, ok = s, cv, cto, true
			}
		}
	}
	return v, to, ok
}

// Migrated implements Balancer.
func (b *LearnedBalance) Migrated(v, from, to int, now int64) {
	if v < 0 || v >= len(b.total) {
		return
	}
	if to == b.from[v] && float64(now-b.arrived[v]) < b.cooldown() {
		// Undone: the trial failed. Back off, and remember it.
		b.undone[v]++
		b.hold[v] = now + int64(float64(int64(1)<<min(b.undone[v], BalanceBackoffMax))*b.cooldown())
		b.decay(now)
		b.returned++
	}
	b.arrived[v], b.from[v] = now, from
	clear(b.score[v*b.nodes : (v+1)*b.nodes])
	clear(b.recent[v*b.nodes : (v+1)*b.nodes])
	b.total[v] = 0
}
