// Command balancetrain fits the learned balancer's model
// (sched.BalanceModel) on the simulator's workloads started with every
// vCPU on one node, and prints it as Go source for cluster/sched, with
// the table of the balancers on the runs it trained on and on runs it
// never saw.
//
// A run is a workload, a seed and a scenario: how many vCPUs each node's
// cores take and where the pages' homes are (all on node 0, as a Linux
// VM's are by default, or striped). Faults are decided by the learned
// fault policy (sched.DefaultModel) in every run. The model's weights
// are fitted by a seeded (1+1) evolution strategy that minimises the
// geometric-mean slowdown over the runs, with a penalty for any workload
// more than 10% slower than the better of the baselines (no balancing,
// and spreading by load alone); it starts from the committed model, so
// a fit refines it, and is exactly reproducible from its flags.
//
// Where a VM's pages all live on the node its vCPUs start on, nothing
// tells a balancer before a move whether a vCPU shares its memory with
// the others: it learns that from the faults of a vCPU it moved (how
// much of its time it then spends fetching from the node it left), may
// take the move back (sched.BalanceStayMoves), and then backs off: the
// vCPU is not spread again for a while (sched.BalanceBackoffMax), and
// every undone move counts against spreading the others.
//
// Usage:
//
//	balancetrain [-length 100000] [-seeds 1,2] [-steps 20] [-test-seeds 1] [-start W,...] [-o FILE]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim"
	"github.com/big-iron/big-iron/sim/workload"
	"github.com/big-iron/big-iron/tools/internal/evolve"
)

// nodes is the simulated machine's size: four nodes, 10GbE.
const nodes = 4

// scenario is how a run's VM is laid out: vCPUs, cores per node, homes.
type scenario struct {
	name    string
	vcpus   int
	cores   int
	striped bool // homes striped over the nodes; else all on node 0
}

// scenarios are the layouts every workload runs in, each VM started with
// every vCPU on node 0.
var scenarios = []scenario{
	{"4 vCPUs, 1 core a node, homes on node 0", 4, 1, false},
	{"4 vCPUs, 1 core a node, striped homes", 4, 1, true},
	{"8 vCPUs, 2 cores a node, homes on node 0", 8, 2, false},
}

// options are the command's settings.
type options struct {
	length    int
	seeds     []uint64
	steps     int
	testSeeds int
	// start is the search's first model: the committed one unless
	// -start gives another.
	start sched.BalanceModel
}

// run is one simulation to make, with its baselines' slowdowns.
type run struct {
	name string // workload and scenario
	seed uint64
	sc   scenario
	wl   *workload.Set
	base [2]float64 // none, spread
}

// baselineNames name run.base's entries.
var baselineNames = [2]string{"none", "spread"}

// costs are the policies' cost estimates on the simulated link.
func costs() sched.Costs { return sim.Link10G.Costs(migrate.DefaultStateSize) }

// simulate returns run r's slowdown with balancer b.
func simulate(r *run, b sched.Balancer) (float64, error) {
	cfg := sim.Config{Seed: r.seed, Nodes: nodes, CoresPerNode: r.sc.cores, Link: sim.Link10G, Workload: r.wl,
		Policy: sched.NewLearned(sched.DefaultModel, costs(), nodes, len(r.wl.Streams)), Balancer: b,
		StateSize: migrate.DefaultStateSize, Place: func(int) int { return 0 }}
	if !r.sc.striped {
		cfg.Home = func(uint64) memory.NodeID { return 0 }
	}
	res, err := sim.Run(cfg)
	if err != nil {
		return 0, fmt.Errorf("balancetrain: %s seed %d %s: %w", r.name, r.seed, b.Name(), err)
	}
	return res.Slowdown, nil
}

// newRuns makes the runs of every generator, scenario and seed, with
// their baselines.
func newRuns(o options, gens []workload.Generator, seeds []uint64) ([]run, error) {
	var runs []run
	for _, seed := range seeds {
		for _, g := range gens {
			for _, sc := range scenarios {
				wl := g(workload.Params{VCPUs: sc.vcpus, Length: o.length, Seed: seed})
				runs = append(runs, run{name: wl.Name + ", " + sc.name, seed: seed, sc: sc, wl: wl})
			}
		}
	}
	for i := range runs {
		for j, b := range []sched.Balancer{sched.NoBalance{}, sched.Spread{}} {
			s, err := simulate(&runs[i], b)
			if err != nil {
				return nil, err
			}
			runs[i].base[j] = s
		}
	}
	return runs, nil
}

// evaluate returns the learned balancer's slowdown with model m on every
// run, two at a time.
func evaluate(m sched.BalanceModel, runs []run) ([]float64, error) {
	out := make([]float64, len(runs))
	err := evolve.Each(len(runs), func(i int) (err error) {
		r := &runs[i]
		out[i], err = simulate(r, sched.NewLearnedBalance(m, costs(), nodes, len(r.wl.Streams)))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// perWorkload is a workload's (in one scenario) geometric means over its
// seeds, as logs: the baselines and the learned balancer.
type perWorkload struct {
	name    string
	seeds   int
	logBase [2]float64
	logSlow float64
}

func (w *perWorkload) best() float64 {
	return math.Exp(min(w.logBase[0], w.logBase[1]) / float64(w.seeds))
}

func (w *perWorkload) learned() float64 { return math.Exp(w.logSlow / float64(w.seeds)) }

// byWorkload groups runs and the learned slowdowns by workload and
// scenario, in first-seen order.
func byWorkload(runs []run, slow []float64) []perWorkload {
	var out []perWorkload
	idx := map[string]int{}
	for i, r := range runs {
		j, ok := idx[r.name]
		if !ok {
			j = len(out)
			idx[r.name] = j
			out = append(out, perWorkload{name: r.name})
		}
		w := &out[j]
		w.seeds++
		for k := range w.logBase {
			w.logBase[k] += math.Log(r.base[k])
		}
		w.logSlow += math.Log(slow[i])
	}
	return out
}

// loss is the mean log geometric-mean slowdown over the workloads, plus
// a penalty for each more than 10% slower than its better baseline (a
// balancer pays for what it learns by moving: a probe of a vCPU that
// shares its memory costs a few percent).
func loss(runs []run, slow []float64) float64 {
	ws := byWorkload(runs, slow)
	var l float64
	for i := range ws {
		w := &ws[i]
		l += math.Log(w.learned())
		if over := math.Log(w.learned()/w.best()) - math.Log(1.10); over > 0 {
			l += 5 * over
		}
	}
	return l / float64(len(ws))
}

// params views a model as a vector, bias first; fromParams inverts it.
func params(m sched.BalanceModel) []float64 { return append([]float64{m.Bias}, m.Weights[:]...) }

func fromParams(p []float64) sched.BalanceModel {
	var m sched.BalanceModel
	m.Bias = p[0]
	copy(m.Weights[:], p[1:])
	return m
}

// fit searches for the model of least loss on runs from the committed
// one: a (1+1) evolution strategy with the one-fifth success rule,
// seeded by the first training seed.
func fit(o options, runs []run, log io.Writer) (sched.BalanceModel, float64, error) {
	p, l, err := evolve.Fit(evolve.Config{Seed: o.seeds[0], Stream: 0xba1a, Steps: o.steps, Sigma: 0.5, MinSigma: 0.1, MaxSigma: 2, Log: log,
		Loss: func(p []float64) (float64, error) {
			slow, err := evaluate(fromParams(p), runs)
			if err != nil {
				return 0, err
			}
			return loss(runs, slow), nil
		}}, params(o.start))
	if err != nil {
		return sched.BalanceModel{}, 0, err
	}
	return fromParams(p), l, nil
}

// table prints, per workload and scenario, the baselines, the learned
// balancer and its ratio to the better baseline, then the geometric
// means.
func table(w io.Writer, title string, runs []run, slow []float64) error {
	fmt.Fprintf(w, "%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload, layout\tseeds\t%s\t%s\tlearned\tvs best\t\n", baselineNames[0], baselineNames[1])
	ws := byWorkload(runs, slow)
	var lg [3]float64
	worst := 0.0
	for i := range ws {
		p := &ws[i]
		n := float64(p.seeds)
		worst = max(worst, p.learned()/p.best())
		fmt.Fprintf(tw, "%s\t%d\t%.2fx\t%.2fx\t%.2fx\t%.3f\t\n", p.name, p.seeds, math.Exp(p.logBase[0]/n), math.Exp(p.logBase[1]/n), p.learned(), p.learned()/p.best())
		lg[0] += p.logBase[0] / n
		lg[1] += p.logBase[1] / n
		lg[2] += math.Log(p.learned())
	}
	n := float64(len(ws))
	fmt.Fprintf(tw, "geomean\t\t%.2fx\t%.2fx\t%.2fx\tworst %.3f\t\n", math.Exp(lg[0]/n), math.Exp(lg[1]/n), math.Exp(lg[2]/n), worst)
	return tw.Flush()
}

// source writes model m as the Go source of cluster/sched's
// DefaultBalanceModel, formatted as gofmt does.
func source(w io.Writer, o options, m sched.BalanceModel) error {
	var b bytes.Buffer
	seeds := strings.Trim(strings.ReplaceAll(fmt.Sprint(o.seeds), " ", ","), "[]")
	fmt.Fprintf(&b, "// Code generated by go run ./tools/balancetrain -length %d -seeds %s -steps %d -test-seeds %d -o cluster/sched/balance_model.go; DO NOT EDIT.\n\npackage sched\n\n",
		o.length, seeds, o.steps, o.testSeeds)
	fmt.Fprintf(&b, "// DefaultBalanceModel is the learned balancer's model, fitted by\n// tools/balancetrain on the simulator's workloads started with every vCPU\n// on node 0 of %d (10GbE, %d accesses per vCPU, seeds %v), from the\n// model committed before.\n", nodes, o.length, o.seeds)
	fmt.Fprintf(&b, "var DefaultBalanceModel = BalanceModel{\n\tBias: %.4f,\n\tWeights: [NumBalanceFeatures]float64{\n", m.Bias)
	for i, x := range m.Weights {
		name := sched.BalanceFeature(i).String()
		fmt.Fprintf(&b, "\t\tBalance%s: %.4f,\n", strings.ToUpper(name[:1])+name[1:], x)
	}
	fmt.Fprintf(&b, "\t},\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return fmt.Errorf("balancetrain: formatting the model: %w", err)
	}
	_, err = w.Write(src)
	return err
}

// trainingSet are the generators the model trains on; heldOut those it
// never sees.
func trainingSet() []workload.Generator { return workload.All() }

func heldOut() []workload.Generator {
	return append([]workload.Generator{workload.Handoff, workload.Sweep}, workload.Litmus()...)
}

// testRuns are the training workloads with seeds from 101 on and the
// held-out ones from 1 on, o.testSeeds each.
func testRuns(o options) ([]run, error) {
	seeds := func(first uint64) []uint64 {
		out := make([]uint64, o.testSeeds)
		for i := range out {
			out[i] = first + uint64(i)
		}
		return out
	}
	test, err := newRuns(o, trainingSet(), seeds(101))
	if err != nil {
		return nil, err
	}
	unseen, err := newRuns(o, heldOut(), seeds(1))
	if err != nil {
		return nil, err
	}
	return append(test, unseen...), nil
}

// parseFloats parses comma-separated numbers.
func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func main() {
	var o options
	flag.IntVar(&o.length, "length", 100000, "accesses per vCPU")
	seeds := flag.String("seeds", "1,2", "training seeds")
	flag.IntVar(&o.steps, "steps", 20, "evolution steps")
	flag.IntVar(&o.testSeeds, "test-seeds", 1, "seeds per workload of the test runs")
	out := flag.String("o", "", "write the model's Go source here (default: stdout)")
	o.start = sched.DefaultBalanceModel
	flag.Func("start", "the search's first model as bias and weights, comma-separated (default: the committed model)", func(s string) error {
		p, err := parseFloats(s)
		if err != nil || len(p) != 1+int(sched.NumBalanceFeatures) {
			return fmt.Errorf("want %d numbers: %v", 1+sched.NumBalanceFeatures, err)
		}
		o.start = fromParams(p)
		return nil
	})
	flag.Parse()
	if err := mainErr(o, *seeds, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func mainErr(o options, seeds, out string) error {
	var err error
	if o.seeds, err = evolve.ParseSeeds(seeds); err != nil {
		return err
	}
	train, err := newRuns(o, trainingSet(), o.seeds)
	if err != nil {
		return err
	}
	m, l, err := fit(o, train, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fitted: loss %.4f\n", l)
	slow, err := evaluate(m, train)
	if err != nil {
		return err
	}
	if err := table(os.Stderr, "training runs", train, slow); err != nil {
		return err
	}
	test, err := testRuns(o)
	if err != nil {
		return err
	}
	if slow, err = evaluate(m, test); err != nil {
		return err
	}
	if err := table(os.Stderr, "\nruns the training never saw (new seeds; new workloads)", test, slow); err != nil {
		return err
	}
	w := io.Writer(os.Stdout)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return source(w, o, m)
}
