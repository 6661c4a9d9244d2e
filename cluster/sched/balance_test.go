package sched

import (
	"math"
	"testing"
)

// nodeLoads is a Cluster whose nodes run the vCPUs where says, each with
// cores cores.
type nodeLoads struct {
	where []int
	cores int
}

func (c nodeLoads) Load(n int) int {
	l := 0
	for _, w := range c.where {
		if w == n {
			l++
		}
	}
	return l
}

func (c nodeLoads) Cores(int) int { return c.cores }

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name  string
		where []int
		cores int
		v, to int
		ok    bool
	}{
		{"every vCPU on node 0", []int{0, 0, 0, 0}, 2, 3, 1, true},
		// Node 0 runs 3 on 2 cores, nodes 1 and 2 one each: the move
		// goes to the emptier, the lower on a tie.
		{"emptiest destination", []int{0, 0, 0, 1, 2}, 2, 2, 1, true},
		{"the most overloaded source", []int{0, 0, 0, 1, 1, 1, 1}, 2, 6, 2, true},
		{"no node overloaded", []int{0, 0, 1}, 2, 0, 0, false},
		{"no core free", []int{0, 0, 0, 1, 1, 2, 2}, 2, 0, 0, false},
		{"vCPUs in flight count nowhere", []int{0, 0, -1, 0}, 2, 3, 1, true},
	} {
		c := nodeLoads{where: tc.where, cores: tc.cores}
		v, to, ok := Spread{}.Balance(c, 3, tc.where, 0)
		if ok != tc.ok || ok && (v != tc.v || to != tc.to) {
			t.Errorf("%s: vCPU %d to node %d, %v; want vCPU %d to node %d, %v", tc.name, v, to, ok, tc.v, tc.to, tc.ok)
		}
	}
	if _, _, ok := (NoBalance{}).Balance(nodeLoads{where: []int{0, 0, 0}, cores: 1}, 2, []int{0, 0, 0}, 0); ok {
		t.Error("NoBalance moved a vCPU")
	}
}

// TestLearnedBalance: the learned balancer moves the candidate its model
// scores highest, only above zero, never a vCPU that just arrived, and
// its features say what the loads and the faults it observed say.
func TestLearnedBalance(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 20_000}
	var m BalanceModel
	m.Bias = -0.5
	m.Weights[BalancePull] = 1
	b := NewLearnedBalance(m, costs, 3, 3)
	where := []int{0, 0, 0}
	c := nodeLoads{where: where, cores: 1}
	// vCPU 1 faults on pages node 2 serves; vCPU 2 on node 1's.
	for i := range 8 {
		b.Observe(Fault{VCPU: 1, Node: 0, Target: 2, Dirty: true, Now: int64(i)})
		b.Observe(Fault{VCPU: 2, Node: 0, Target: 1, Now: int64(i)})
	}
	b.Observe(Fault{VCPU: 2, Node: 0, Target: 2, Now: 8})
	var x [NumBalanceFeatures]float64
	b.Features(c, 2, 0, 1, 10, &x)
	want := [NumBalanceFeatures]float64{BalanceSourceLoad: 2, BalanceDestLoad: 0, BalanceShare: 8.0 / 9, BalanceFaults: math.Log2(10),
		BalancePull: 8.0 / 9 * math.Log2(10), BalanceSettled: 1, BalanceLink: math.Log2(18)}
	for i := range x {
		if math.Abs(x[i]-want[i]) > 1e-3*max(1, want[i]) {
			t.Errorf("vCPU 2 to node 1: feature %v = %.4f, want %.4f", BalanceFeature(i), x[i], want[i])
		}
	}
	v, to, ok := b.Balance(c, 3, where, 10)
	if !ok || v != 1 || to != 2 {
		t.Errorf("moved vCPU %d to node %d (%v), want vCPU 1 to node 2, which served all its faults", v, to, ok)
	}
	b.Migrated(1, 0, 2, 10)
	where[1] = 2
	// Back to node 0 within a cool-down (30 moves) undoes the move.
	b.Features(c, 1, 2, 0, 10+100_000, &x)
	if x[BalanceBack] != 1 || x[BalanceFaults] != 0 || x[BalanceDestLoad] != 2 || x[BalanceSourceLoad] != 0 {
		t.Errorf("vCPU 1 back to node 0: %v", x)
	}
	// vCPU 1 just arrived: it stays, whatever the model says.
	m.Bias = 10
	b.model = m
	if v, to, ok := b.Balance(c, 3, where, 12); ok && v == 1 {
		t.Errorf("moved vCPU 1 to node %d right after it arrived", to)
	}
	// A model that scores every move below zero moves nothing.
	m.Bias = -10
	b.model = m
	if v, to, ok := b.Balance(c, 3, []int{0, 0, 0}, 1<<40); ok {
		t.Errorf("a model against every move moved vCPU %d to node %d", v, to)
	}
	var cl Cluster = c // the interface conversion allocates, not Balance
	if a := testing.AllocsPerRun(100, func() { b.Balance(cl, 3, where, 1<<40) }); a != 0 {
		t.Errorf("Balance allocates %v times", a)
	}
}

func BenchmarkLearnedBalance(b *testing.B) {
	lb := NewLearnedBalance(DefaultBalanceModel, Costs{PullNS: 10_000, MoveNS: 20_000}, 4, 8)
	where := []int{0, 0, 0, 0, 0, 0, 1, 2}
	var c Cluster = nodeLoads{where: where, cores: 2}
	for i := range 64 {
		lb.Observe(Fault{VCPU: i % 8, Node: 0, Target: 1 + i%3, Now: int64(i)})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		lb.Balance(c, 4, where, int64(1<<30+i))
	}
}

// TestLearnedBalanceGathersDownward: two nodes' balancers, each for its
// own vCPU, both see it fetch from the other's node; the nodes run as
// many vCPUs, so only the one on the higher-numbered node gathers its
// vCPU onto the busy node, and the two never swap places.
func TestLearnedBalanceGathersDownward(t *testing.T) {
	var m BalanceModel
	m.Bias = -0.5
	m.Weights[BalancePull] = 1
	costs := Costs{PullNS: 10_000, MoveNS: 20_000}
	where := []int{0, 1}
	c := nodeLoads{where: where, cores: 1}
	for self, other := range []int{1, 0} {
		b := NewLearnedBalance(m, costs, 2, 2)
		for i := range 16 {
			b.Observe(Fault{VCPU: self, Node: self, Target: other, Dirty: true, Now: int64(i)})
		}
		mine := []int{-1, -1}
		mine[self] = self
		v, to, ok := b.Balance(c, 2, mine, 100)
		if want := self == 1; ok != want || ok && (v != 1 || to != 0) {
			t.Errorf("node %d's balancer: vCPU %d to node %d (%v), want a move %v", self, v, to, ok, want)
		}
	}
}

// TestLearnedBalanceBacksOff: a vCPU whose move is undone (it comes back
// to the node it left within a cool-down) is not spread again for two
// cool-downs after the first time, four after the second; the undone
// moves count against every spread (BalanceReturned), not against
// gathering; and a vCPU in its back-off may still be gathered.
func TestLearnedBalanceBacksOff(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 20_000}
	var m BalanceModel
	m.Bias = 1 // every allowed move scores above zero
	b := NewLearnedBalance(m, costs, 2, 2)
	cool := int64(b.cooldown())
	where := []int{0, 0}
	c := nodeLoads{where: where, cores: 1}
	b.Migrated(1, 0, 1, 0)
	b.Migrated(1, 1, 0, cool/2) // undone
	var x [NumBalanceFeatures]float64
	b.Features(c, 1, 0, 1, cool/2, &x)
	if x[BalanceReturned] != 1 {
		t.Errorf("after an undone move, returned = %v, want 1", x[BalanceReturned])
	}
	// Only vCPU 0 may spread until two cool-downs have passed.
	for _, at := range []int64{cool, 2 * cool} {
		if v, to, ok := b.Balance(c, 2, where, at); !ok || v != 0 || to != 1 {
			t.Errorf("at %d: vCPU %d to node %d (%v), want vCPU 0 to node 1", at, v, to, ok)
		}
	}
	if v, to, ok := b.Balance(c, 2, where, cool/2+2*cool); !ok || v != 1 || to != 1 {
		t.Errorf("after the back-off: vCPU %d to node %d (%v), want vCPU 1 to node 1", v, to, ok)
	}
	// A second undone move: four cool-downs.
	t0 := 3 * cool
	b.Migrated(1, 0, 1, t0)
	b.Migrated(1, 1, 0, t0+cool/4)
	if v, _, ok := b.Balance(c, 2, where, t0+cool/4+3*cool); !ok || v != 0 {
		t.Errorf("three cool-downs after the second undone move: vCPU %d moves (%v), want vCPU 0", v, ok)
	}
	if v, _, ok := b.Balance(c, 2, where, t0+cool/4+4*cool); !ok || v != 1 {
		t.Errorf("four cool-downs after the second undone move: vCPU %d moves (%v), want vCPU 1", v, ok)
	}
	// A move back after more than a cool-down is not undone.
	b2 := NewLearnedBalance(m, costs, 2, 2)
	b2.Migrated(1, 0, 1, 0)
	b2.Migrated(1, 1, 0, 2*cool)
	if v, _, ok := b2.Balance(c, 2, where, 2*cool+cool/2); !ok || v != 1 {
		t.Errorf("a move taken back after two cool-downs held vCPU 1 (vCPU %d moves, %v)", v, ok)
	}
	// In its back-off, vCPU 1 (on node 1, its memory on node 0 with
	// vCPU 0) is still gathered.
	b.Migrated(1, 0, 1, 20*cool)
	b.Migrated(1, 1, 0, 20*cool+cool/4)
	where[1] = 1
	if v, to, ok := b.Balance(c, 2, where, 20*cool+cool/2); !ok || v != 1 || to != 0 {
		t.Errorf("a vCPU in its back-off: vCPU %d to node %d (%v), want vCPU 1 gathered to node 0", v, to, ok)
	}
	b.Features(c, 1, 1, 0, 20*cool+cool/2, &x)
	if x[BalanceReturned] != 0 {
		t.Errorf("gathering: returned = %v, want 0", x[BalanceReturned])
	}
}

// TestLearnedBalanceRate: BalanceRate is the share of the recent time a
// vCPU spent fetching from the destination (about 1 for one that does
// nothing else), BalanceTraffic the same for both nodes' vCPUs either
// way; both count only for gathering, onto a busy node.
func TestLearnedBalanceRate(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 20_000}
	b := NewLearnedBalance(BalanceModel{}, costs, 3, 3)
	where := []int{0, 0, 1}
	c := nodeLoads{where: where, cores: 1}
	// vCPU 2, on node 1, fetches from node 0 every pull time; vCPU 0,
	// on node 0, from node 1 every other.
	var now int64
	for i := range 400 {
		now = int64(i) * costs.PullNS
		b.Observe(Fault{VCPU: 2, Node: 1, Target: 0, Now: now})
		if i%2 == 0 {
			b.Observe(Fault{VCPU: 0, Node: 0, Target: 1, Now: now})
		}
	}
	var x [NumBalanceFeatures]float64
	b.Features(c, 2, 1, 0, now, &x)
	if math.Abs(x[BalanceRate]-1) > 0.1 {
		t.Errorf("a vCPU that fetches every pull time: rate %.3f, want about 1", x[BalanceRate])
	}
	if math.Abs(x[BalanceTraffic]-1.5) > 0.15 {
		t.Errorf("traffic %.3f, want about 1.5", x[BalanceTraffic])
	}
	b.Features(c, 0, 0, 1, now, &x)
	if math.Abs(x[BalanceRate]-0.5) > 0.1 {
		t.Errorf("a vCPU that fetches every other pull time: rate %.3f, want about 0.5", x[BalanceRate])
	}
	// Half a balance period later, with no faults, the rate has fallen
	// to a quarter.
	b.Features(c, 2, 1, 0, now+BalancePeriod/2*costs.PullNS, &x)
	if math.Abs(x[BalanceRate]-0.25) > 0.05 {
		t.Errorf("after two half-lives: rate %.3f, want about 0.25", x[BalanceRate])
	}
	// Onto node 2, which has a core free, nothing gathers.
	b.Observe(Fault{VCPU: 2, Node: 1, Target: 2, Now: now})
	b.Features(c, 2, 1, 2, now, &x)
	if x[BalanceRate] != 0 || x[BalanceTraffic] != 0 {
		t.Errorf("spreading: rate %v, traffic %v, want 0", x[BalanceRate], x[BalanceTraffic])
	}
}

// TestLearnedBalanceJoinsTheLargerGroup: a vCPU gathers onto a busy node
// only if it runs more vCPUs than the vCPU's own (or as many and is
// lower-numbered), so a lone vCPU joins the group it shares memory with
// and the group never follows it one by one.
func TestLearnedBalanceJoinsTheLargerGroup(t *testing.T) {
	var m BalanceModel
	m.Bias = -0.5
	m.Weights[BalancePull] = 1
	costs := Costs{PullNS: 10_000, MoveNS: 20_000}
	where := []int{1, 1, 1, 0}
	c := nodeLoads{where: where, cores: 1}
	b := NewLearnedBalance(m, costs, 2, 4)
	// vCPU 3, alone on node 0, and vCPU 2 on node 1 fetch each other's
	// pages.
	for i := range 16 {
		b.Observe(Fault{VCPU: 3, Node: 0, Target: 1, Now: int64(i)})
		b.Observe(Fault{VCPU: 2, Node: 1, Target: 0, Now: int64(i)})
	}
	if v, to, ok := b.Balance(c, 2, where, 100); !ok || v != 3 || to != 1 {
		t.Errorf("vCPU %d to node %d (%v), want vCPU 3 to node 1, which runs more vCPUs", v, to, ok)
	}
}

// TestLearnedBalanceAllocatesNothing: observing a fault and recording a
// move (an undone one included) allocate nothing.
func TestLearnedBalanceAllocatesNothing(t *testing.T) {
	b := NewLearnedBalance(DefaultBalanceModel, Costs{PullNS: 10_000, MoveNS: 20_000}, 4, 8)
	var now int64
	if a := testing.AllocsPerRun(100, func() {
		now += 1000
		b.Observe(Fault{VCPU: 3, Node: 1, Target: 0, Now: now})
		b.Migrated(3, 0, 1, now)
		b.Migrated(3, 1, 0, now+1)
	}); a != 0 {
		t.Errorf("Observe and Migrated allocate %v times", a)
	}
}
