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
