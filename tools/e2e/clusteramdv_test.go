// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
)

// TestQEMUClusterAMDV runs the distributed test guests on AMD-V: two QEMU
// nodes (TCG, -cpu max: SVM with nested paging) on one multicast segment
// run the counter guest on one node and across both, with a running vCPU
// migrated between AMD-V nodes and a node evacuated, and the IPI
// ping-pong guest, with the checks of the VT-x run in Bochs; then the
// counter started on one node with each balancer, which spreads it.
func TestQEMUClusterAMDV(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildImage(t, "pc", "elf")
	nodes := bootQEMUCluster(t, dir, launch.Cluster{Nodes: 2, Segment: 44000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024})
	const timeout = 3 * time.Minute
	waitTwoNodes(t, nodes, timeout)
	if out := run(t, nodes[2], "trace on", timeout); !strings.Contains(out, "trace on: 0 events recorded") {
		t.Errorf("trace on:\n%s", out)
	}
	// Creating a VM across both nodes fails at each frame allocation on
	// node 1, then on node 2, and unwinds on both. (On the old code node
	// 2 kept its share when node 1 failed after asking it to build one,
	// and node 1 waited for ever when node 2 could not build it.)
	const create = "dvm start nodes=2 iters=1000"
	checkCreationUnwinds(t, nodes[1], nodes[1], []*node{nodes[2]}, create, "fault injection", "dvm stop", timeout)
	checkCreationUnwinds(t, nodes[1], nodes[2], nil, create, "stopped: node 2 could not build its share", "dvm stop", timeout)
	checkDistributedVM(t, nodes[1], nodes[2], 50000000, timeout)
	checkTrace(t, nodes[2], timeout)
	checkWalkWindows(t, nodes[1], nodes[2], timeout)
	checkMovingHomes(t, nodes[1], nodes[2], timeout)
	checkDistributedIPIs(t, nodes[1], nodes[2], timeout)
	checkBalance(t, nodes[1], nodes[2], "spread", timeout)
	checkBalance(t, nodes[1], nodes[2], "learned", timeout)
}

// checkTrace reads node n's event ring after distributed runs: remote
// faults with their waits, and vCPUs that moved between the nodes (the
// trace names nodes by their index in the VM: node 1 is 0).
func checkTrace(t *testing.T, n *node, timeout time.Duration) {
	t.Helper()
	out := run(t, n, "trace off", timeout)
	m := regexp.MustCompile(`trace off: (\d+) events recorded`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Errorf("trace off:\n%s", out)
	}
	if out := run(t, n, "trace kind=fault last=5", timeout); !regexp.MustCompile(`(?m)^\s*[\d.]+ fault\s+vcpu \d+ gpa 0x[0-9a-f]+ (read|write), waited \S+\r?$`).MatchString(out) {
		t.Errorf("trace kind=fault shows no remote fault:\n%s", out)
	}
	in := run(t, n, "trace kind=migrate-in last=3", timeout)
	out = run(t, n, "trace kind=migrate-out last=3", timeout)
	if !regexp.MustCompile(`migrate-in\s+vcpu \d+ from node 0, \d+ bytes`).MatchString(in) && !regexp.MustCompile(`migrate-out vcpu \d+ to node 0, \d+ bytes`).MatchString(out) {
		t.Errorf("the trace shows no vCPU moving between the nodes:\n%s\n%s", in, out)
	}
}

// bootQEMUCluster boots c's nodes in QEMU's TCG from the image in dir,
// each on c's multicast segment; nodes[i] is node i (index 0 unused).
func bootQEMUCluster(t *testing.T, dir string, c launch.Cluster) []*node {
	t.Helper()
	elf := filepath.Join(dir, "bigiron.elf")
	nodes := make([]*node, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		nodes[i] = bootQEMU(t, c.QEMU(i, elf, launch.Accel(false))...)
	}
	return nodes
}

// checkWalkWindows runs the counter across a and b with walkwin=on:
// vCPU 1's page walks on node 2 fault for write (QEMU's TCG asks write
// access for every page table it walks) on the page tables node 1
// wrote, and go on in walk windows over read copies; the count must be
// exact and node 2 must have opened windows.
func checkWalkWindows(t *testing.T, a, b *node, timeout time.Duration) {
	t.Helper()
	// As many as checkDistributedVM's pull run, which it compares with:
	// both vCPUs count long enough to contend for the counter's page.
	const iters = 10000000
	id := startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d walkwin=on", iters), timeout)
	m, stat := waitDVM(t, a, 20*time.Minute)
	checkCounter(t, "two nodes, walkwin=on", m, iters)
	pages := pagesOf(t, b, id, timeout)
	w := regexp.MustCompile(`walk windows: (\d+) opened, (\d+) closed unchanged, (\d+) changed .* (\d+) conflicts`).FindStringSubmatch(pages)
	if w == nil || w[1] == "0" || w[4] != "0" {
		t.Errorf("walkwin=on: node 2 opened no walk window, or had conflicts:\n%s", pages)
	}
	t.Logf("two nodes, walkwin=on:\n%s\nnode 2:\n%s", stat, pages)
	run(t, a, "dvm stop", timeout)
}
