package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/sim"
)

func testOptions() options {
	return options{nodes: 4, link: sim.Link10G, length: 1500, seed: 1, stateSize: migrate.DefaultStateSize}
}

// TestHysteresisBeatsBaselines is the table's claim: on the mixed workload
// set, the hysteresis policy has a lower geometric-mean slowdown than
// always pulling pages and than always moving vCPUs, on every link preset.
func TestHysteresisBeatsBaselines(t *testing.T) {
	for _, l := range sim.Links() {
		o := testOptions()
		o.link = l
		rows, err := runAll(o)
		if err != nil {
			t.Fatal(err)
		}
		_, g := geomeans(rows)
		h := g["hysteresis"]
		if h >= g["always-pull"] || h >= g["always-move"] {
			t.Errorf("%s: hysteresis %.2fx, always-pull %.2fx, always-move %.2fx", l.Name, h, g["always-pull"], g["always-move"])
		}
		t.Logf("%s: hysteresis %.2fx, always-pull %.2fx, always-move %.2fx", l.Name, h, g["always-pull"], g["always-move"])
	}
}

func TestTableAndSVG(t *testing.T) {
	o := testOptions()
	o.length = 300
	o.svgRun, o.sampleNS = "migratory/hysteresis", 5000
	rows, err := runAll(o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printTable(&out, o, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"private", "false-sharing", "always-move", "geomean", "slowdown"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	var svg bytes.Buffer
	for _, r := range rows {
		if r.workload+"/"+r.policy == o.svgRun {
			if err := writeSVG(&svg, r, o.nodes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := svg.String(); !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "vCPU 3") || strings.Count(s, "<rect") < 10 {
		t.Fatalf("bad svg (%d bytes)", svg.Len())
	}
}

// TestHomesTable: the -homes table has a row per workload and Handoff,
// and on Handoff, with a bound on copies, homes that move take at least
// half of the remote faults away (the claim of sim's
// TestMovingHomesHalveRemoteFaults, on the table's configuration).
func TestHomesTable(t *testing.T) {
	o := testOptions()
	rows, err := runHomes(o, 8)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printHomes(&out, o, 8, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"private", "handoff", "first-touch faults", "move-after-2 slowdown"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	h := rows[len(rows)-1]
	if h.workload != "handoff" {
		t.Fatalf("last row is %s, want handoff", h.workload)
	}
	for i, p := range homePlans[1:] {
		if got, fixed := h.res[i+1].RemoteFaults, h.res[0].RemoteFaults; 2*got > fixed {
			t.Errorf("handoff: %s leaves %d of %d remote faults", p.name, got, fixed)
		}
	}
	t.Logf("\n%s", out.String())
}
