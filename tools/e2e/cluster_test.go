// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
)

// TestQEMUCluster boots three QEMU nodes on one multicast Ethernet
// segment: they form a cluster, ping each other over gVisor, and the two
// left declare the third failed when its QEMU is killed.
func TestQEMUCluster(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildImage(t, "pc", "elf")
	c := launch.Cluster{Nodes: 3, Segment: 42000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024}
	elf := filepath.Join(dir, "bigiron.elf")
	nodes := make([]*node, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		nodes[i] = bootQEMU(t, c.QEMU(i, elf, []string{"-cpu", "max"})...)
	}
	const timeout = 2 * time.Minute
	for i := 1; i <= c.Nodes; i++ {
		if _, err := nodes[i].con.Expect(prompt, timeout); err != nil {
			t.Fatalf("node %d: no prompt: %v\n%s", i, err, nodes[i].con.Output())
		}
		if out := nodes[i].con.Output(); !strings.Contains(out, "network: e1000 (82540EM)") || !strings.Contains(out, "eth0 "+launch.IP(i)+"/24") {
			t.Fatalf("node %d: NIC or address not up:\n%s", i, out)
		}
	}

	// Every node lists all three alive (itself as self).
	alive := regexp.MustCompile(`(?m)^\d+\s+\S+\s+\S+\s+(alive|self)\s`)
	for i := 1; i <= c.Nodes; i++ {
		var out string
		deadline := time.Now().Add(time.Minute)
		for {
			out = run(t, nodes[i], "nodes", timeout)
			if len(alive.FindAllString(out, -1)) == 3 && strings.Contains(out, "members [1 2 3]: quorum") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never saw 3 live members:\n%s", i, out)
			}
			time.Sleep(time.Second)
		}
		if i == 1 {
			t.Logf("nodes on node 1:\n%s", out)
		}
	}

	// ICMP over gVisor between nodes.
	for _, p := range [][2]int{{1, 2}, {2, 3}, {3, 1}} {
		out := run(t, nodes[p[0]], "ping "+launch.IP(p[1]), timeout)
		if !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping from node %d to node %d:\n%s", p[0], p[1], out)
		}
	}

	// Kill node 3: nodes 1 and 2 log its failure, in the same place of
	// the same history.
	nodes[3].stop()
	killed := time.Now()
	failed := regexp.MustCompile(`membership: #(\d+) node 3 failed`)
	var index [3]string
	for _, i := range []int{1, 2} {
		if _, err := nodes[i].con.Expect("node 3 failed", time.Minute); err != nil {
			t.Fatalf("node %d did not declare node 3 failed: %v\n%s", i, err, nodes[i].con.Output())
		}
		// the notice redraws the prompt below it
		if _, err := nodes[i].con.Expect(prompt, timeout); err != nil {
			t.Fatalf("node %d: no prompt after the notice: %v", i, err)
		}
		m := failed.FindStringSubmatch(nodes[i].con.Output())
		if m == nil {
			t.Fatalf("node %d: failure not logged as a membership event:\n%s", i, nodes[i].con.Output())
		}
		index[i] = m[1]
		t.Logf("node %d: node 3 declared failed as event #%s, %v after the kill (failure timeout 500 ms)", i, m[1], time.Since(killed).Round(time.Millisecond))
	}
	if index[1] != index[2] {
		t.Errorf("the failure is event #%s on node 1 but #%s on node 2", index[1], index[2])
	}
	out := run(t, nodes[1], "nodes", timeout)
	if !strings.Contains(out, "members [1 2]: quorum") {
		t.Errorf("after the failure:\n%s", out)
	}
}

// TestBochsCluster boots two Bochs nodes joined by bxhub, Bochs' virtual
// Ethernet hub: each node's emulated 82540EM reaches the other's, they
// form a cluster and ping each other over gVisor.
func TestBochsCluster(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	dir := buildImage(t, "pc", "image")
	c := launch.Cluster{Nodes: 2, Segment: 43000 + os.Getpid()%1000*4, CPUs: 1, MemMiB: 1024}
	hubLog, err := os.Create(filepath.Join(dir, "bxhub.out"))
	if err != nil {
		t.Fatal(err)
	}
	hub := exec.Command("bxhub", c.BochsHub()...)
	hub.Stdout, hub.Stderr = hubLog, hubLog
	if err := hub.Start(); err != nil {
		t.Fatalf("starting bxhub: %v", err)
	}
	t.Cleanup(func() { hub.Process.Kill(); hub.Wait() })

	nodes := make([]*node, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		nd := launch.NodeDir(dir, i)
		iso, err := c.NodeISO(i, filepath.Join(dir, "bigiron.mb"), nd)
		if err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		args := c.Bochs(i, filepath.Join(repoRoot(t), "qemu", "bochsrc.txt"), iso, filepath.Join(nd, "bochs.log"), port, freePort(t))
		nodes[i] = startBochs(t, nd, port, args...)
	}
	const timeout = 5 * time.Minute
	for i := 1; i <= c.Nodes; i++ {
		if _, err := nodes[i].con.Expect(prompt, timeout); err != nil {
			t.Fatalf("node %d: no prompt: %v\n%s", i, err, nodes[i].con.Output())
		}
		t.Logf("node %d: emulator start to prompt: %v", i, time.Since(nodes[i].started).Round(time.Millisecond))
		if out := nodes[i].con.Output(); !strings.Contains(out, "network: e1000 (82540EM)") || !strings.Contains(out, "eth0 "+launch.IP(i)+"/24") {
			t.Fatalf("node %d: NIC or address not up:\n%s", i, out)
		}
	}
	alive := regexp.MustCompile(`(?m)^\d+\s+\S+\s+\S+\s+(alive|self)\s`)
	for i := 1; i <= c.Nodes; i++ {
		var out string
		deadline := time.Now().Add(3 * time.Minute)
		for {
			out = run(t, nodes[i], "nodes", timeout)
			if len(alive.FindAllString(out, -1)) == 2 && strings.Contains(out, "members [1 2]: quorum") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never saw 2 live members:\n%s", i, out)
			}
			time.Sleep(2 * time.Second)
		}
		t.Logf("nodes on node %d:\n%s", i, out)
	}
	for _, p := range [][2]int{{1, 2}, {2, 1}} {
		out := run(t, nodes[p[0]], "ping "+launch.IP(p[1]), timeout)
		if !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping from node %d to node %d:\n%s", p[0], p[1], out)
		}
		t.Logf("ping from node %d to node %d:\n%s", p[0], p[1], out)
	}
}
