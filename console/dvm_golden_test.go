// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/vmm/ept"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/dvm.golden from what the commands print")

// homingDist is a fakeDist whose VMs keep the placement, dilation and
// home policy (node 0 by default) they were started with.
type homingDist struct{ *fakeDist }

func (h homingDist) Start(req hv.DistStart, progress io.Writer) (dvm.Spec, error) {
	spec, err := h.fakeDist.Start(req, progress)
	spec.Place, spec.Dilation, spec.Homes = req.Place, uint8(req.Dilation), dvm.HomesDeviceNode
	if req.Homes != "" {
		spec.Homes, _ = dvm.ParseHomePolicy(req.Homes)
	}
	h.status.Spec = spec
	return spec, err
}

// TestDistCommandsGolden pins, byte for byte, what the commands of
// DistCommands print and return for a session that uses every
// subcommand and every way to get one wrong, with and without a runner.
// Regenerate with go test -run DistCommandsGolden -update after a
// deliberate change, and review the diff.
func TestDistCommandsGolden(t *testing.T) {
	var b strings.Builder
	session := func(title string, r DistRunner, lines []string) {
		cmds := DistCommands(r, "VT-x is unavailable")
		fmt.Fprintf(&b, "### %s\n", title)
		for _, line := range lines {
			out, err := run(t, cmds, line)
			fmt.Fprintf(&b, "> %s\n%s", line, out)
			if err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
			}
		}
	}
	f := &fakeDist{}
	f.status = hv.DistStatus{Self: 3, Index: 1, Elapsed: 1500 * time.Millisecond, Guest: "linux",
		ClockCatchUps: 4, ClockSkipped: 1234, ClockRefused: 2, ClockUnsent: 3, IPIs: 12, IPIsIgnored: 1, DeviceIRQs: 5, Startups: 2, WalkFaults: 11, WalkWrites: 9,
		SliceWatch:   hv.SliceWatchStatus{Watched: true, Regained: 2, Limit: 20 * time.Millisecond},
		PagesPerCell: 1, PageMap: make([]memory.State, 130), Built: 1234567 * time.Microsecond, TableFrames: 3, MaxTableFrames: 5,
		LargePages: ept.PageMapStats{Large: 3, Promotions: 5, Splits: 2},
		HotPages:   []dvm.HotPage{{GPA: 0x1000, Waits: 9}, {GPA: 0x7000, Waits: 2}},
		VCPUs:      []hv.DistVCPU{{ID: 0, Node: 1, State: "running"}, {ID: 1, Node: 3, Here: true, State: "halted"}}}
	f.status.PageMap[0], f.status.PageMap[64], f.status.PageMap[129] = memory.Modified, memory.Shared, memory.Modified
	f.status.Stats.Shared, f.status.Stats.Modified, f.status.Stats.RemoteWaits, f.status.Stats.WaitTime = 7, 8, 3, 9*time.Millisecond
	f.status.Stats.Held, f.status.Stats.HeldFor = 2, 40*time.Millisecond
	f.status.Stats.HeldFirst = []dvm.HeldMessage{{From: 1, What: "WriteReq", GPA: 0x7631000, For: 40 * time.Millisecond, Why: "draining"}}
	f.status.Stats.Memory.Reclaims, f.status.Stats.Memory.Writebacks, f.status.Stats.Memory.SilentEvicts = 6, 4, 3
	f.status.Stats.Homes, f.status.Stats.Memory.HomesGained, f.status.Stats.Memory.HomesGiven, f.status.Stats.Memory.Forwards = 521, 12, 3, 5
	all := []string{
		"dvm", "dvm frobnicate", "dvm start nodes=0", "dvm start guest=doom",
		"dvm start guest=pingpong nodes=3 vcpus=4 iters=9 mem=64M place=node0 dilate=2 move=always devices=move",
		"dvm start guest=linux", "dvm start guest=linux place=node0 dilate=3 homes=node0",
		"dvm start guest=linux numa=on homes=striped",
		"dvm start guest=linux moveafter=9", "dvm start guest=linux homes=striped firsttouch=on",
		"dvm start guest=counter nodes=2 firsttouch=on moveafter=2",
		"dvm start guest=counter large=off", "dvm stat", "dvm start guest=linux large=maybe",
		"dvm start guest=linux walkwin=off", "dvm start guest=counter walkwin=on",
		"dvm stat", "dvm stat now", "dvm peek", "dvm peek 0x11", "dvm peek zero", "dvm peek 0x40",
		"dvm evacuate", "dvm evacuate x", "dvm evacuate 2",
		"pages", "pages map", "pages all", "pages map now",
		"migrate", "migrate 1", "migrate -1 2", "migrate 1 2",
		"dvm stop", "dvm stat", "pages", "dvm evacuate 1",
	}
	session("runner", homingDist{f}, all)
	session("no runner", nil, all)

	path := filepath.Join("testdata", "dvm.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test -run DistCommandsGolden -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("%s differs; got:\n%s", path, got)
	}
}
