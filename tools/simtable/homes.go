package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/big-iron/big-iron/sim"
	"github.com/big-iron/big-iron/sim/workload"
)

// homePlan is one way of placing homes that the -homes table compares.
type homePlan struct {
	name       string
	firstTouch bool
	moveAfter  int
}

// homePlans are the plans of the -homes table: homes fixed where they
// start (striped), moving to a page's first writer, and moving to a node
// after two requests in a row.
var homePlans = []homePlan{{name: "fixed"}, {name: "first-touch", firstTouch: true}, {name: "move-after-2", moveAfter: 2}}

// homeRow is one line of the -homes table.
type homeRow struct {
	workload string
	res      [3]sim.Result // by homePlans
}

// runHomes runs every workload of the table and Handoff under the pull
// policy with each home plan, each node holding at most copies copies of
// pages other nodes home.
func runHomes(o options, copies int) ([]homeRow, error) {
	sets := workloads(o)
	if o.trace == nil {
		sets = append(sets, workload.Handoff(workload.Params{VCPUs: o.nodes, Length: o.length, Seed: o.seed}))
	}
	var rows []homeRow
	for _, wl := range sets {
		r := homeRow{workload: wl.Name}
		for i, p := range homePlans {
			cfg := sim.Config{Seed: o.seed, Nodes: o.nodes, Link: o.link, Workload: wl, StateSize: o.stateSize, CopyFrames: copies,
				FirstTouch: p.firstTouch, MoveAfter: p.moveAfter, HomeRoom: wl.Pages}
			res, err := sim.Run(cfg)
			if err != nil {
				return nil, fmt.Errorf("simtable: %s/%s: %w", wl.Name, p.name, err)
			}
			r.res[i] = res
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// printHomes prints the -homes table: remote faults and slowdown of each
// plan, and the homes that moved.
func printHomes(w io.Writer, o options, copies int, rows []homeRow) error {
	fmt.Fprintf(w, "seed %d, %d nodes, link %s, vCPUs pull pages, at most %d copies per node (0: no bound)\n\n", o.seed, o.nodes, o.link.Name, copies)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "workload\t")
	for _, p := range homePlans {
		fmt.Fprintf(tw, "%s faults\t%s slowdown\t", p.name, p.name)
	}
	fmt.Fprintln(tw, "homes moved (first-touch, move-after-2)\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t", r.workload)
		for _, res := range r.res {
			fmt.Fprintf(tw, "%d\t%.2fx\t", res.RemoteFaults, res.Slowdown)
		}
		fmt.Fprintf(tw, "%d, %d\t\n", r.res[1].HomesMoved, r.res[2].HomesMoved)
	}
	return tw.Flush()
}
