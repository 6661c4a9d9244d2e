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
// own vCPU, both see it fetch from the other's node; only the one on the
// higher-numbered node gathers its vCPU onto the busy node, so the two
// never swap places.
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
