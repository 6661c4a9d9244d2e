package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"io"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim/workload"
)

// TestSourceParses: the generated model is Go that names every feature,
// and says how to make it again.
func TestSourceParses(t *testing.T) {
	var b bytes.Buffer
	o := options{length: 20000, seeds: []uint64{1, 2}, steps: 3, testSeeds: 2}
	if err := source(&b, o, sched.DefaultBalanceModel); err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "balance_model.go", b.Bytes(), 0); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for i := range sched.NumBalanceFeatures {
		name := sched.BalanceFeature(i).String()
		if !strings.Contains(b.String(), "Balance"+strings.ToUpper(name[:1])+name[1:]+":") {
			t.Errorf("no weight for %s:\n%s", name, b.String())
		}
	}
	if !strings.Contains(b.String(), "balancetrain -length 20000 -seeds 1,2 -steps 3 -test-seeds 2 -o") {
		t.Errorf("the header does not give the command:\n%s", b.String())
	}
}

// TestFitIsReproducible: a fit never ends worse than it started, and
// the same flags give the same model.
func TestFitIsReproducible(t *testing.T) {
	o := options{length: 2000, seeds: []uint64{1}, steps: 3, start: sched.DefaultBalanceModel}
	runs, err := newRuns(o, []workload.Generator{workload.Private, workload.FalseSharing}, o.seeds)
	if err != nil {
		t.Fatal(err)
	}
	start, err := evaluate(sched.DefaultBalanceModel, runs)
	if err != nil {
		t.Fatal(err)
	}
	m1, l1, err := fit(o, runs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m2, l2, err := fit(o, runs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 || l1 != l2 {
		t.Errorf("two fits differ: %+v (loss %v) and %+v (loss %v)", m1, l1, m2, l2)
	}
	if l0 := loss(runs, start); l1 > l0 {
		t.Errorf("the fit ended at loss %v, above its start's %v", l1, l0)
	}
}

// takeBack is a balancer that spreads vCPU 3 to node 3 at its first
// look and asks for it back to node 0 at every later one, and records
// the looks at which vCPU 3 moved.
type takeBack struct {
	looks int
	moved []int
}

func (*takeBack) Name() string        { return "take-back" }
func (*takeBack) Observe(sched.Fault) {}
func (b *takeBack) Balance(_ sched.Cluster, _ int, where []int, _ int64) (int, int, bool) {
	b.looks++
	if b.looks == 1 {
		return 3, 3, true
	}
	return 3, 0, where[3] == 3
}
func (b *takeBack) Migrated(v, _, _ int, _ int64) {
	if v == 3 {
		b.moved = append(b.moved, b.looks)
	}
}

// TestAWaitingVCPUIsMoved: a vCPU that false-shares with one on another
// node waits for a page nearly all the time; a balancer's move of it
// is made when it next runs (sim), not dropped, or a trial spread could
// never be taken back.
func TestAWaitingVCPUIsMoved(t *testing.T) {
	sc := scenarios[0]
	wl := workload.FalseSharing(workload.Params{VCPUs: sc.vcpus, Length: 20000, Seed: 1})
	b := &takeBack{}
	if _, err := simulate(&run{name: wl.Name, seed: 1, sc: sc, wl: wl}, b); err != nil {
		t.Fatal(err)
	}
	if len(b.moved) < 2 || b.moved[0] != 1 || b.moved[1] != 2 {
		t.Errorf("vCPU 3 moved at looks %v, want 1 (spread) and 2 (taken back)", b.moved)
	}
}
