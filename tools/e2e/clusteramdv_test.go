// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
)

// TestQEMUClusterAMDV runs the distributed test guests on AMD-V: two QEMU
// nodes (TCG, -cpu max: SVM with nested paging) on one multicast segment
// run the counter guest on one node and across both, with a running vCPU
// migrated between AMD-V nodes and a node evacuated, and the IPI
// ping-pong guest, with the checks of the VT-x run in Bochs.
func TestQEMUClusterAMDV(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildImage(t, "pc", "elf")
	nodes := bootQEMUCluster(t, dir, launch.Cluster{Nodes: 2, Segment: 44000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024})
	const timeout = 3 * time.Minute
	waitTwoNodes(t, nodes, timeout)
	checkDistributedVM(t, nodes[1], nodes[2], 50000000, timeout)
	checkDistributedIPIs(t, nodes[1], nodes[2], timeout)
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
