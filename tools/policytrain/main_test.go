package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/sim"
	"github.com/big-iron/big-iron/sim/workload"
)

func testOptions() options {
	return options{nodes: 4, link: sim.Link10G, length: 4000, seeds: []uint64{1}, steps: 0, testSeeds: 24}
}

// TestDefaultModel is the learned policy's acceptance, issue 22's, on
// runs the training never saw: per workload (geometric mean over its
// seeds) never more than 5% slower than the best of always pulling,
// always moving and hysteresis, and over the workloads at least 10%
// faster than hysteresis. (On Handoff, where hysteresis is 45% slower
// than always pulling, the model was 5.2% slower before
// sched.FeatureMine.)
//
// Sweep is the exception: there always moving is best (7.51x), as a
// convoy. Its vCPUs gather on one node at the start, on their first
// faults on clean pages, and go as one to the node holding the next
// pages, time-sharing its cores, which the simulator's link makes
// cheaper than fetching them (a move 10.8 us, a pull 14.4 us). Learned
// never moves on a clean page (which is what keeps it off private
// work); fits without that rule reached 5.13x on Sweep but were 10%
// slower than pulling on private runs they had not seen. It has to
// stay within 1.5 times always moving's slowdown there.
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
		bound := 1.05 * w.best()
		if w.name == "sweep" {
			bound = 1.5 * w.best()
		}
		if w.learned() > bound && !testing.Short() {
			t.Errorf("%s: learned %.2fx, above %.2fx (best baseline %.2fx)", w.name, w.learned(), bound, w.best())
		}
		lh += w.logBase[2] / float64(w.seeds)
		ll += math.Log(w.learned())
	}
	// Six seeds (-short) are too few for the 10% margin: they only
	// have to show the model no worse than hysteresis.
	want := 0.90
	if testing.Short() {
		want = 1
	}
	if g := math.Exp((ll - lh) / float64(len(ws))); g > want {
		t.Errorf("learned's geometric mean is %.3f times hysteresis's, want at most %v", g, want)
	}
	// Learned may crowd a node's cores (sched.LearnedCrowdLimit), where
	// hysteresis waits for a free core: given the same room, hysteresis
	// must be beaten by as much.
	crowded, err := hysteresisCrowding(o, runs)
	if err != nil {
		t.Fatal(err)
	}
	var lc float64
	for i, w := range byWorkload(runs, crowded) {
		lc += w.logSlow/float64(w.seeds) - math.Log(ws[i].learned())
	}
	g := math.Exp(-lc / float64(len(ws)))
	if g > want {
		t.Errorf("learned's geometric mean is %.3f times that of hysteresis crowding %d vCPUs a core, want at most %v", g, sched.LearnedCrowdLimit, want)
	}
	t.Logf("learned: %.3f of hysteresis's geometric mean, %.3f of hysteresis crowding %d vCPUs a core", math.Exp((ll-lh)/float64(len(ws))), g, sched.LearnedCrowdLimit)
}

// hysteresisCrowding returns the slowdowns of hysteresis on runs when it
// may crowd a node's cores as much as the learned policy may.
func hysteresisCrowding(o options, runs []run) ([]float64, error) {
	cfg := sched.DefaultHysteresis(costs(o))
	cfg.PerCore = sched.LearnedCrowdLimit
	return evaluatePolicy(o, runs, func(r *run) sched.Policy { return sched.NewHysteresis(cfg, o.nodes, len(r.wl.Streams)) })
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

// TestTraceRuns: a real run's trace, as nodes record it (JSON lines of
// fault events), becomes a training run with its baselines, and the
// generated model says it was trained on it.
func TestTraceRuns(t *testing.T) {
	wl := workload.Migratory(workload.Params{VCPUs: 2, Length: 300, Seed: 3})
	var b []byte
	for v, st := range wl.Streams {
		for _, a := range st {
			e := trace.Event{Kind: trace.KindFault, VCPU: int32(v), Addr: a.GPA, Write: a.Write}
			b = append(e.AppendJSON(b), '\n')
		}
	}
	path := filepath.Join(t.TempDir(), "counter.jsonl")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	real, err := loadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.traces = []*workload.Set{real}
	runs, err := traceRuns(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].name != "counter.jsonl" || len(runs[0].wl.Streams) != 2 || runs[0].base[0] <= 1 || runs[0].base[2] <= 1 {
		t.Fatalf("trace runs: %+v", runs)
	}
	var src bytes.Buffer
	if err := source(&src, o, sched.DefaultModel, "policytrain"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src.String(), "and the real runs counter.jsonl.") {
		t.Errorf("the model does not name its real run:\n%s", src.String())
	}
	o.traces[0].Streams = append(o.traces[0].Streams, make([][]workload.Access, 2*o.nodes)...)
	if _, err := traceRuns(o); err == nil {
		t.Errorf("a trace of %d vCPUs ran on %d nodes of %d cores", len(o.traces[0].Streams), o.nodes, sim.DefaultCoresPerNode)
	}
}

// TestRecordedRuns: the real runs built into the command parse, each
// with the vCPUs it was recorded with, and fit the simulated nodes.
func TestRecordedRuns(t *testing.T) {
	runs, err := recordedRuns()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		t.Fatal("no recorded real runs")
	}
	for _, wl := range runs {
		if len(wl.Streams) < 2 || wl.Accesses() < 100 {
			t.Errorf("%s: %d vCPUs, %d accesses", wl.Name, len(wl.Streams), wl.Accesses())
		}
	}
	o := testOptions()
	o.traces = runs
	if _, err := traceRuns(o); err != nil {
		t.Fatal(err)
	}
}
