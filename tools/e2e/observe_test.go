// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/sim/workload"
	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// TestQEMUClusterObserve watches a distributed VM from the host, as an
// operator without serial consoles would: two AMD-V QEMU nodes keep the
// cluster on one NIC and their control planes on a second one on QEMU's
// user network (bigiron.uplink=1), whose ports to the metrics (9120) and
// the shell over SSH (22) are forwarded to the host. While the counter
// guest runs with a vCPU on each node, the host reads both nodes'
// metrics with Prometheus' parser (remote faults on each), draws the VM
// with tools/bigview from both nodes' /dvm, and runs `nodes` on each
// node over SSH with the operator's key (another key refused). Both nodes
// trace the run; the host pulls their /trace and replays the real run's
// fault streams in the simulator (tools/simtable -trace), as
// tools/policytrain -trace trains on them.
func TestQEMUClusterObserve(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildImage(t, "pc", "elf")
	key, keyWord := operatorKey(t)
	c := launch.Cluster{Nodes: 2, Segment: 49000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024}
	elf := filepath.Join(dir, "bigiron.elf")
	nodes := make([]*node, 3)
	var metricsPort, sshPort [3]int
	for i := 1; i <= 2; i++ {
		metricsPort[i], sshPort[i] = freePort(t), freePort(t)
		netdev := fmt.Sprintf("user,id=n1,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9120,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:22", metricsPort[i], sshPort[i])
		nodes[i] = bootQEMU(t, withUplink(c, i, elf, netdev, keyWord)...)
	}
	a, b := nodes[1], nodes[2]
	waitPair(t, a, b)
	const timeout = 3 * time.Minute
	for _, n := range []*node{a, b} {
		if out := run(t, n, "trace on", timeout); !strings.Contains(out, "trace on") {
			t.Fatalf("trace on:\n%s", out)
		}
	}
	startDVM(t, a, b, "dvm start nodes=2 iters=20000000", timeout)
	for i := 1; i <= 2; i++ {
		checkMetrics(t, metricsPort[i], []metricWant{
			{"bigiron_cluster_members", nil, 2, 2},
			{"bigiron_peer_frames_total", map[string]string{"dir": "in"}, 1, -1},
			{"bigiron_dvm_faults_total", map[string]string{"kind": "remote"}, 1, -1},
		})
	}
	svg := filepath.Join(t.TempDir(), "vm.svg")
	view := exec.Command("go", "run", "./tools/bigview", "-node", fmt.Sprintf("http://127.0.0.1:%d", metricsPort[1]),
		"-node", fmt.Sprintf("http://127.0.0.1:%d", metricsPort[2]), "-every", "500ms", "-for", "5s", "-o", svg)
	view.Dir = repoRoot(t)
	if out, err := view.CombinedOutput(); err != nil {
		t.Errorf("bigview: %v\n%s", err, out)
	} else if pic, err := os.ReadFile(svg); err != nil || !strings.Contains(string(pic), "<rect") || !strings.Contains(string(pic), "vCPU 1") {
		t.Errorf("bigview drew %d bytes without pages or vCPUs (%v)", len(pic), err)
	} else {
		t.Logf("bigview: %d bytes of SVG from both nodes", len(pic))
		// With BIGIRON_E2E_VIEW_OUT=FILE the picture is kept in FILE.
		if keep := os.Getenv("BIGIRON_E2E_VIEW_OUT"); keep != "" {
			if err := os.WriteFile(keep, pic, 0o644); err != nil {
				t.Errorf("keeping the picture: %v", err)
			}
		}
	}
	for i := 1; i <= 2; i++ {
		checkNodeSSH(t, nodes[i], sshPort[i], key)
	}
	waitDVM(t, a, 10*time.Minute)
	replayRealRun(t, metricsPort[1], metricsPort[2])
}

// replayRealRun pulls the trace of every node on ports (GET /trace, JSON
// lines), checks that each of the run's two vCPUs took remote faults
// in it, and replays it in the simulator with tools/simtable -trace.
// With BIGIRON_E2E_TRACE_OUT=FILE the trace is kept in FILE.
func replayRealRun(t *testing.T, ports ...int) {
	t.Helper()
	var all []byte
	c := http.Client{Timeout: time.Minute}
	for _, port := range ports {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/trace", port))
		if err != nil {
			t.Fatalf("GET /trace: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /trace on port %d: %s, %v", port, resp.Status, err)
		}
		all = append(all, b...)
	}
	path := filepath.Join(t.TempDir(), "counter.jsonl")
	if keep := os.Getenv("BIGIRON_E2E_TRACE_OUT"); keep != "" {
		path = keep // a real run for tools/policytrain/realruns
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	wl, err := workload.ParseTrace(bytes.NewReader(all), "counter")
	if err != nil {
		t.Fatalf("the nodes' traces (%d bytes): %v", len(all), err)
	}
	if len(wl.Streams) != 2 || len(wl.Streams[0]) == 0 || len(wl.Streams[1]) == 0 {
		t.Fatalf("the real run's faults per vCPU: %d streams, want two with faults", len(wl.Streams))
	}
	sim := exec.Command("go", "run", "./tools/simtable", "-trace", path)
	sim.Dir = repoRoot(t)
	out, err := sim.CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^\s*geomean\s+learned\s+\d+\.\d+x`).Match(out) {
		t.Fatalf("simtable -trace on the real run: %v\n%s", err, out)
	}
	t.Logf("the real run: %d and %d faults on vCPUs 0 and 1, replayed:\n%s", len(wl.Streams[0]), len(wl.Streams[1]), out)
}

// withUplink returns QEMU's arguments for node i of c with its control
// plane on a second NIC on QEMU's user network (netdev, id n1), by DHCP
// (bigiron.uplink=1), and words added to its command line; the cluster
// keeps the first NIC.
func withUplink(c launch.Cluster, i int, elf, netdev, words string) []string {
	args := c.QEMU(i, elf, launch.Accel(false))
	for j, a := range args {
		if a == c.CommandLine(i) {
			args[j] = strings.Replace(a, "bigiron.ip="+launch.IP(i)+"/24", "bigiron.ip=dhcp bigiron.uplink=1 "+words, 1)
		}
	}
	return append(args, "-netdev", netdev, "-device", "e1000,netdev=n1")
}

// waitPair waits for nodes a and b to show their prompts and agree on a
// cluster of the two.
func waitPair(t *testing.T, a, b *node) {
	t.Helper()
	steps := []launch.Step{
		{Node: 1, Want: prompt, Timeout: 3 * time.Minute},
		{Node: 2, Want: prompt, Timeout: 3 * time.Minute},
		{Node: 1, Line: "nodes", Want: "members [1 2]: quorum", Retry: true, Timeout: 3 * time.Minute},
	}
	var log strings.Builder
	if err := launch.Play(steps, []*serial.Console{nil, a.con, b.con}, &log); err != nil {
		t.Fatalf("the cluster: %v\n%s", err, log.String())
	}
}
