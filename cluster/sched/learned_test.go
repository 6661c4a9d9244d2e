package sched

import "testing"

// moveAll is a model that moves on every fault its hard rules allow.
var moveAll = Model{Bias: 1}

func TestLearnedHardRules(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 12_000}
	free, full := fixedCluster{0, 2}, fixedCluster{LearnedCrowdLimit * 2, 2}
	l := NewLearned(moveAll, costs, 3, 2)
	for _, tc := range []struct {
		name string
		f    Fault
		c    Cluster
	}{
		{"a clean page", Fault{VCPU: 0, Node: 0, Target: 1}, free},
		{"its own node", Fault{VCPU: 0, Node: 1, Target: 1, Dirty: true}, free},
		{"a node whose cores are crowded to the limit", Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true}, full},
		{"a node beyond the machine", Fault{VCPU: 0, Node: 0, Target: 3, Dirty: true}, free},
		{"a vCPU beyond the machine", Fault{VCPU: 2, Node: 0, Target: 1, Dirty: true}, free},
	} {
		if l.Decide(tc.f, tc.c) != Pull {
			t.Errorf("moved to %s", tc.name)
		}
	}
	if l.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true}, free) != Move {
		t.Error("a model that always moves pulled a contended page")
	}
	if l.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true}, fixedCluster{LearnedCrowdLimit*2 - 1, 2}) != Move {
		t.Error("a model that always moves pulled a contended page of a node crowded below the limit")
	}
	if (&Learned{model: Model{Bias: -1}}).model.Score(&[NumFeatures]float64{}) != -1 {
		t.Error("the score of no features is not the bias")
	}
}

// TestLearnedFeatures: the features follow the vCPU's history: contended
// faults build share, mass and burst at their target, a burst fades
// within a few pulls while the share stays, and a move back right after
// a move the other way shows as a swap.
func TestLearnedFeatures(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 12_000}
	c := fixedCluster{0, 2}
	l := NewLearned(Model{Bias: -1}, costs, 3, 1)
	var x [NumFeatures]float64
	for i := range 4 {
		l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Write: true, Now: int64(i) * 100}, c, &x)
	}
	if x[FeatureDirty] != 1 || x[FeatureWrite] != 1 || x[FeatureShare] != 1 || x[FeatureBurst] < 3.9 || x[FeatureMass] < 2.3 {
		t.Fatalf("after 4 contended faults at node 1: %v", x)
	}
	l.Features(Fault{VCPU: 0, Node: 0, Target: 2, Dirty: true, Now: 40 * costs.PullNS}, c, &x)
	if x[FeatureBurst] > 1.01 || x[FeatureShare] < 0.3 || x[FeatureShare] > 0.5 {
		t.Fatalf("a fault at node 2 after 40 pulls: %v", x)
	}
	l.Migrated(0, 1, 0, 50*costs.PullNS)
	l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Now: 51 * costs.PullNS}, c, &x)
	if x[FeatureSwap] != 1 || x[FeatureSettled] > 0.1 {
		t.Fatalf("right after arriving from node 1: %v", x)
	}
	if x[FeatureCrowd] != 0 {
		t.Fatalf("a node with free cores counts as crowded: %v", x)
	}
	l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Now: 52 * costs.PullNS}, fixedCluster{3, 2}, &x)
	if x[FeatureCrowd] != 1 {
		t.Fatalf("a move to a node running 3 vCPUs on 2 cores: crowd %v, want 1", x[FeatureCrowd])
	}
}

// TestLearnedDecideAllocs: a decision allocates nothing.
func TestLearnedDecideAllocs(t *testing.T) {
	l := NewLearned(DefaultModel, Costs{PullNS: 10_000, MoveNS: 12_000}, 4, 4)
	var c Cluster = fixedCluster{0, 2}
	now := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		now += 500
		l.Decide(Fault{VCPU: int(now/500) % 4, Node: 0, Target: 1 + int(now/1000)%3, Dirty: true, Now: now}, c)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decision, want 0", allocs)
	}
}

// BenchmarkLearnedDecide measures a decision on a contended fault.
func BenchmarkLearnedDecide(b *testing.B) {
	l := NewLearned(DefaultModel, Costs{PullNS: 10_000, MoveNS: 12_000}, 4, 4)
	var c Cluster = fixedCluster{0, 2}
	var now int64
	for i := 0; b.Loop(); i++ {
		now += 500
		l.Decide(Fault{VCPU: i % 4, Node: 0, Target: 1 + i%3, Dirty: true, Now: now}, c)
	}
}

// BenchmarkHysteresisDecide is the same decision by Hysteresis.
func BenchmarkHysteresisDecide(b *testing.B) {
	h := NewHysteresis(DefaultHysteresis(Costs{PullNS: 10_000, MoveNS: 12_000}), 4, 4)
	var c Cluster = fixedCluster{0, 2}
	var now int64
	for i := 0; b.Loop(); i++ {
		now += 500
		h.Decide(Fault{VCPU: i % 4, Node: 0, Target: 1 + i%3, Dirty: true, Now: now}, c)
	}
}

// TestLearnedReturn: a page the node pulled before shows as returning,
// fading with the long half-life; a page it never pulled, or one another
// node pulled, does not.
func TestLearnedReturn(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 12_000}
	c := fixedCluster{0, 2}
	l := NewLearned(Model{Bias: -1}, costs, 2, 2)
	var x [NumFeatures]float64
	l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Page: 7, Now: 100}, c, &x)
	if x[FeatureReturn] != 0 {
		t.Fatalf("a page never pulled returns: %v", x[FeatureReturn])
	}
	if l.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Page: 7, Now: 200}, c) != Pull {
		t.Fatal("a model that never moves moved")
	}
	l.Features(Fault{VCPU: 1, Node: 1, Target: 0, Dirty: true, Page: 7, Now: 300}, c, &x)
	if x[FeatureReturn] != 0 {
		t.Fatalf("node 0's pull shows as a return on node 1: %v", x[FeatureReturn])
	}
	l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Page: 7, Now: 200 + 40*costs.PullNS}, c, &x)
	if r := x[FeatureReturn]; r < 0.49 || r > 0.51 {
		t.Fatalf("a page back after one long half-life: return %v, want 0.5", r)
	}
	l.Features(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Page: 8, Now: 300 + 40*costs.PullNS}, c, &x)
	if x[FeatureReturn] != 0 {
		t.Fatalf("another page returns: %v", x[FeatureReturn])
	}
}

// TestLearnedMine: a page the vCPU itself pulled to the target shows as
// its own, fading with the long half-life; the same page seen by another
// vCPU, or a page another vCPU pulled there, does not.
func TestLearnedMine(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 12_000}
	c := fixedCluster{0, 2}
	l := NewLearned(Model{Bias: -1}, costs, 2, 2)
	var x [NumFeatures]float64
	if l.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Page: 7, Now: 100}, c) != Pull {
		t.Fatal("a model that never moves moved")
	}
	l.Decide(Fault{VCPU: 1, Node: 0, Target: 1, Dirty: true, Page: 9, Now: 150}, c)
	l.Migrated(0, 0, 1, 200)
	l.Features(Fault{VCPU: 0, Node: 1, Target: 0, Dirty: true, Page: 7, Now: 100 + 40*costs.PullNS}, c, &x)
	if m := x[FeatureMine]; m < 0.49 || m > 0.51 {
		t.Fatalf("its own page after one long half-life: mine %v, want 0.5", m)
	}
	l.Features(Fault{VCPU: 1, Node: 1, Target: 0, Dirty: true, Page: 7, Now: 300}, c, &x)
	if x[FeatureMine] != 0 {
		t.Fatalf("vCPU 0's page is vCPU 1's: %v", x[FeatureMine])
	}
	l.Features(Fault{VCPU: 0, Node: 1, Target: 0, Dirty: true, Page: 9, Now: 300}, c, &x)
	if x[FeatureMine] != 0 {
		t.Fatalf("vCPU 1's page is vCPU 0's: %v", x[FeatureMine])
	}
}
