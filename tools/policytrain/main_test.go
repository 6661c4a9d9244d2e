package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"math"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim"
	"github.com/big-iron/big-iron/sim/workload"
)

func testOptions() options {
	return options{nodes: 4, link: sim.Link10G, length: 4000, seeds: []uint64{1}, steps: 0, testSeeds: 24}
}

// TestDefaultModel is the learned policy's acceptance, on runs the
// training never saw: per workload (geometric mean over its seeds) never
// more than 5% slower than the best of always pulling, always moving and
// hysteresis (and where hysteresis itself is more than 5% slower than
// the best, as on Handoff, no slower than hysteresis), and over the
// workloads at least 10% faster than hysteresis.
func TestDefaultModel(t *testing.T) {
	o := testOptions()
	if testing.Short() {
		o.testSeeds = 6
	}
	runs, err := testRuns(o)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := evaluate(o, sched.DefaultModel, runs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := table(&out, "runs the training never saw", runs, slow); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	ws := byWorkload(runs, slow)
	var lh, ll float64
	for i := range ws {
		w := &ws[i]
		hyst := math.Exp(w.logBase[2] / float64(w.seeds))
		bound := max(1.05*w.best(), hyst)
		if w.learned() > bound && !testing.Short() {
			t.Errorf("%s: learned %.2fx, above %.2fx (best baseline %.2fx, hysteresis %.2fx)", w.name, w.learned(), bound, w.best(), hyst)
		}
		lh += w.logBase[2] / float64(w.seeds)
		ll += math.Log(w.learned())
	}
	if g := math.Exp((ll - lh) / float64(len(ws))); g > 0.9 {
		t.Errorf("learned's geometric mean is %.3f times hysteresis's, want at most 0.9", g)
	}
}

// TestFitKeepsImproving: the search only keeps models that lower the
// loss, starting from the prior (hysteresis's vote alone), and the source
// it writes is Go.
func TestFitKeepsImproving(t *testing.T) {
	o := testOptions()
	o.length, o.steps = 600, 6
	runs, err := newRuns(o, []workload.Generator{workload.FalseSharing, workload.Migratory}, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := evaluate(o, prior(), runs)
	if err != nil {
		t.Fatal(err)
	}
	before := loss(runs, slow)
	var log bytes.Buffer
	m, after, err := fit(o, runs, &log)
	if err != nil {
		t.Fatal(err)
	}
	if after > before {
		t.Fatalf("fit ended at loss %.4f, above the prior's %.4f", after, before)
	}
	var src bytes.Buffer
	if err := source(&src, o, m, "policytrain"); err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "model.go", src.Bytes(), 0); err != nil || !strings.Contains(src.String(), "FeatureHysteresis:") {
		t.Fatalf("generated source: %v\n%s", err, src.String())
	}
}
