// Command simtable runs the deterministic simulator (sim) for
// every workload under every placement policy (always pull, always move,
// hysteresis, and the learned model of tools/policytrain) and prints, per run, remote
// faults, vCPU migrations, bytes on the wire and the modelled slowdown
// against the same workload on one node with all memory local. The last
// rows give each policy's geometric-mean slowdown over the workload set.
//
// Usage:
//
//	simtable [-nodes 4] [-link 10GbE] [-length 4000] [-seed 1] [-trace FILE]
//	         [-svg FILE -svg-workload mixed -svg-policy hysteresis]
//	         [-homes [-copies 8]]
//
// With -svg it also draws, for one workload and policy, the node each vCPU
// and each page is on over virtual time. With -homes it prints instead,
// for every workload and Handoff, remote faults and slowdown with homes
// fixed where they start, moving to a page's first writer, and moving
// after two requests in a row, each node holding at most -copies copies.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"

	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim"
	"github.com/big-iron/big-iron/sim/workload"
)

// options are the command's settings.
type options struct {
	nodes     int
	link      sim.Link
	length    int
	seed      uint64
	stateSize int
	trace     *workload.Set
	svgRun    string // "workload/policy" to record, or ""
	sampleNS  int64
}

// row is one table line.
type row struct {
	workload, policy string
	res              sim.Result
}

// policies returns fresh policy instances for a run of n nodes and v vCPUs.
func policies(o options, v int) []sched.Policy {
	return []sched.Policy{sched.AlwaysPull{}, sched.AlwaysMove{}, sched.NewHysteresis(sched.DefaultHysteresis(costs(o)), o.nodes, v),
		sched.NewLearned(sched.DefaultModel, costs(o), o.nodes, v)}
}

// costs estimates the stall of a pull and of a move on the configured
// link (sim.Link.Costs).
func costs(o options) sched.Costs { return o.link.Costs(o.stateSize) }

// workloads returns the workload set of the table.
func workloads(o options) []*workload.Set {
	if o.trace != nil {
		return []*workload.Set{o.trace}
	}
	var ws []*workload.Set
	for _, g := range workload.All() {
		ws = append(ws, g(workload.Params{VCPUs: o.nodes, Length: o.length, Seed: o.seed}))
	}
	return ws
}

// runAll runs every workload under every policy.
func runAll(o options) ([]row, error) {
	var rows []row
	for _, wl := range workloads(o) {
		for _, pol := range policies(o, len(wl.Streams)) {
			cfg := sim.Config{Seed: o.seed, Nodes: o.nodes, Link: o.link, Workload: wl, Policy: pol, StateSize: o.stateSize}
			if o.svgRun == wl.Name+"/"+pol.Name() {
				cfg.SampleNS = o.sampleNS
			}
			res, err := sim.Run(cfg)
			if err != nil {
				return nil, fmt.Errorf("simtable: %s/%s: %w", wl.Name, pol.Name(), err)
			}
			rows = append(rows, row{workload: wl.Name, policy: pol.Name(), res: res})
		}
	}
	return rows, nil
}

// geomeans returns each policy's geometric-mean slowdown, in first-seen
// policy order.
func geomeans(rows []row) (names []string, g map[string]float64) {
	sum, n := map[string]float64{}, map[string]int{}
	for _, r := range rows {
		if _, ok := n[r.policy]; !ok {
			names = append(names, r.policy)
		}
		sum[r.policy] += math.Log(r.res.Slowdown)
		n[r.policy]++
	}
	g = map[string]float64{}
	for _, p := range names {
		g[p] = math.Exp(sum[p] / float64(n[p]))
	}
	return names, g
}

func printTable(w io.Writer, o options, rows []row) error {
	vcpus := o.nodes
	if o.trace != nil {
		vcpus = len(o.trace.Streams)
	}
	fmt.Fprintf(w, "seed %d, %d nodes x 2 cores, %d vCPUs, link %s (%.0f Gb/s, %.1f us/frame), vCPU state %d B\n\n",
		o.seed, o.nodes, vcpus, o.link.Name, o.link.GbitPerS, float64(o.link.LatencyNS)/1000, o.stateSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpolicy\tremote faults\tmigrations\twire MB\tslowdown\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%.2fx\t\n", r.workload, r.policy, r.res.RemoteFaults, r.res.Migrations, float64(r.res.WireBytes)/1e6, r.res.Slowdown)
	}
	names, g := geomeans(rows)
	fmt.Fprintln(tw, "\t\t\t\t\t\t")
	for _, p := range names {
		fmt.Fprintf(tw, "geomean\t%s\t\t\t\t%.2fx\t\n", p, g[p])
	}
	return tw.Flush()
}

func main() {
	var o options
	link := flag.String("link", "10GbE", "link preset: 10GbE, 25GbE or 100GbE")
	flag.IntVar(&o.nodes, "nodes", 4, "nodes (one vCPU per node to start, 2 cores each)")
	flag.IntVar(&o.length, "length", 4000, "accesses per vCPU")
	seed := flag.Uint64("seed", 1, "simulation and workload seed")
	flag.IntVar(&o.stateSize, "state", migrate.DefaultStateSize, "vCPU state bytes")
	trace := flag.String("trace", "", "replay this access trace instead of the synthetic workloads")
	svg := flag.String("svg", "", "write an SVG timeline of one run to this file")
	svgWl := flag.String("svg-workload", "mixed", "workload drawn by -svg")
	svgPol := flag.String("svg-policy", "hysteresis", "policy drawn by -svg")
	homes := flag.Bool("homes", false, "compare fixed and moving homes instead")
	copies := flag.Int("copies", 8, "with -homes: copies of other nodes' pages each node may hold (0: no bound)")
	flag.Parse()
	o.seed = *seed
	l, err := sim.LinkByName(*link)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.link = l
	if *trace != "" {
		f, err := os.Open(*trace)
		if err != nil {
			fmt.Fprintln(os.Stderr, "simtable:", err)
			os.Exit(1)
		}
		o.trace, err = workload.ParseTrace(f, *trace)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*svgWl = *trace
	}
	if *homes {
		rows, err := runHomes(o, *copies)
		if err == nil {
			err = printHomes(os.Stdout, o, *copies, rows)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *svg != "" {
		o.svgRun = *svgWl + "/" + *svgPol
		o.sampleNS = 5000
	}
	rows, err := runAll(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := printTable(os.Stdout, o, rows); err != nil {
		fmt.Fprintln(os.Stderr, "simtable:", err)
		os.Exit(1)
	}
	if *svg != "" {
		for _, r := range rows {
			if r.workload+"/"+r.policy == o.svgRun {
				f, err := os.Create(*svg)
				if err == nil {
					err = writeSVG(f, r, o.nodes)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "simtable: svg:", err)
					os.Exit(1)
				}
				return
			}
		}
		fmt.Fprintf(os.Stderr, "simtable: no run %s for -svg\n", o.svgRun)
		os.Exit(1)
	}
}
