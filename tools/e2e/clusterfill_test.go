// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// TestQEMUClusterLinuxFill runs one Linux guest larger than either of
// its two nodes (issue 23): checkClusterFill on two QEMU AMD-V nodes of
// 2 GiB with a guest of 2.5 GiB and memtest over 75% of it. Node 1 homes
// only its range and holds copies of node 2's pages in what frames it
// has left, so it evicts copies as the program goes on.
func TestQEMUClusterLinuxFill(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	requireSlow(t, "memtest over 1.85 GiB with a vCPU on each node, a part written on each and cross-checked on the other: 19m27s in QEMU's TCG on 2026-12-06")
	dir := buildGuestImage(t)
	nodes := bootQEMUCluster(t, dir, launch.Cluster{Nodes: 2, Segment: 47000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 2048})
	waitTwoNodes(t, nodes, 3*time.Minute)
	checkClusterFill(t, nodes[1], nodes[2], clusterFill{
		clock: "QEMU TCG, AMD-V, wall clock", mem: "2560M", minMiB: 2300, memtest: "-share 0.75", evicts: true,
	})
}

// TestBochsClusterLinuxFill runs one Linux guest larger than either of
// its two Bochs nodes of 2 GiB (Bochs' most; VT-x): checkClusterFill
// with a 2.5 GiB guest (issue 23's example) and memtest over 64 MiB with
// a vCPU on each node.
//
// It failed until 2026-12-06 (2.5 and 3 GiB alike): node 2 built its
// share of the VM in its transport's receive path, and in Bochs zeroing
// the frames of 1.25 GiB of homes kept that path, and with it every
// acknowledgement, silent for longer than the 15 s (three failure
// timeouts, dilate=10) after which node 1, loading the initramfs into
// node 2's homes, stopped the VM: "node 1 lost (silent for 15.043s)".
// Shares are now built off the receive path, yielding the core, and the
// creator waits for OpJoined (package dvm, TestPlaneBuildsOffTheReceivePath).
func TestBochsClusterLinuxFill(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	requireSlow(t, "a 2.5 GiB guest across two Bochs nodes: Bochs' network takes a frame per emulated millisecond")
	dir := buildGuestImage(t)
	nodes, _ := startBochsClusterMem(t, dir, 2048)
	checkClusterFill(t, nodes[1], nodes[2], clusterFill{
		clock: "Bochs, VT-x, wall clock", mem: "2560M", minMiB: 2300, memtest: "-mib 64",
	})
}

// clusterFill is a run of checkClusterFill.
type clusterFill struct {
	clock   string // emulator and clock, for the log
	mem     string // the guest's size, dvm start's mem=
	minMiB  int    // the least MemTotal the guest must see, MiB
	memtest string // memtest's size flags
	evicts  bool   // node 1 must evict copies (memtest outgrows its frames)
}

// checkClusterFill runs one Linux guest larger than either of two
// nodes a and b (issue 23): dvm start first refuses 4 GiB with the
// cluster's figures and takes nothing; then a guest of f.mem with
// homes=fill (each node homes a contiguous range sized by the room it
// reported) boots with both vCPUs on node 1 and sees its memory, vCPU 1
// moves to node 2, and memtest writes and verifies f.memtest of it
// with a thread on each vCPU: each node writes its part, verifies it,
// then verifies the part the other node wrote. No node runs out of
// frames; with f.evicts node 1 must have evicted copies of pages it
// does not home (writing back the modified ones) to make room.
func checkClusterFill(t *testing.T, a, b *node, f clusterFill) {
	t.Helper()
	defer func() {
		if t.Failed() {
			out := a.con.Output()
			t.Logf("node 1's console, its end:\n%s", out[max(0, len(out)-4000):])
		}
	}()

	memBefore := run(t, a, "mem", time.Minute)
	out := run(t, a, "dvm start guest=linux mem=4G homes=fill place=node0 dilate=10", 3*time.Minute)
	if !strings.Contains(out, "do not fit in the cluster") || !strings.Contains(out, "in all") {
		t.Fatalf("dvm start of 4 GiB on two 2 GiB nodes:\n%s", out)
	}
	t.Logf("refused:\n%s", out)
	inUse := regexp.MustCompile(`free for guests: .*`)
	if got, want := inUse.FindString(run(t, a, "mem", time.Minute)), inUse.FindString(memBefore); got != want {
		t.Errorf("the refused VM took memory: %q, before %q", got, want)
	}

	line := "dvm start guest=linux mem=" + f.mem + " homes=fill place=node0 dilate=10"
	out = run(t, a, line, 10*time.Minute)
	if !strings.Contains(out, "started") {
		t.Fatalf("%s:\n%s", line, out)
	}
	t.Logf("%s", out)
	start := time.Now()
	if err := a.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.con.Expect(guestReady, 60*time.Minute); err != nil {
		t.Fatalf("the guest did not reach its shell: %v", err)
	}
	t.Logf("guest shell after %v (%s)", time.Since(start).Round(time.Second), f.clock)
	shellPrompt, guest := guestShell(t, a, 60*time.Minute)
	shellPrompt()
	if m := regexp.MustCompile(`Mem:\s+(\d+)`).FindStringSubmatch(guest("free -m", "Swap:")); m == nil || atoi(m[1]) < f.minMiB {
		t.Fatalf("the guest sees %v MiB, want at least %d (%s less the kernel's)", m, f.minMiB, f.mem)
	}
	// The guest boots on node 1 (place=node0: faster than booting
	// across the nodes); memtest then runs with a vCPU on each node, so
	// each node writes a part and verifies the other's.
	if out := run(t, b, "migrate 1 2", 5*time.Minute); !strings.Contains(out, "moving to node 2") {
		t.Fatalf("migrate 1 2:\n%s", out)
	}
	waitVCPU1(t, b, 2)
	onNode2 := regexp.MustCompile(`(?m)^1\s+2\s`)
	t.Logf("memtest %s, vCPU 0 on node 1 and vCPU 1 on node 2 (%s):\n%s", f.memtest, f.clock, guest("memtest "+f.memtest, "memtest: ok"))
	if vc := run(t, b, "vcpus dvm", time.Minute); !onNode2.MatchString(vc) {
		t.Errorf("vCPU 1 left node 2 during memtest, so not every part was written on another node than the one verifying it:\n%s", vc)
	}
	if err := detachConsole(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	for i, n := range []*node{a, b} {
		st := run(t, n, "dvm stat", time.Minute)
		t.Logf("node %d dvm stat:\n%s\nmem:\n%s", i+1, st, run(t, n, "mem", time.Minute))
		if m := regexp.MustCompile(`(\d+) faults found no frame`).FindStringSubmatch(st); m == nil || m[1] != "0" {
			t.Errorf("node %d: faults found no frame: %v", i+1, m)
		}
	}
	if f.evicts {
		if m := regexp.MustCompile(`copies of pages homed elsewhere: \d+ held, (\d+) evicted`).FindStringSubmatch(run(t, a, "dvm stat", time.Minute)); m == nil || m[1] == "0" {
			t.Errorf("node 1 evicted no copies (%v): the guest fitted in its frames, so the test does not show eviction", m)
		}
	}
	if bad := guestCrash.FindAllString(a.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log has %d crash lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// TestQEMUCluster3LinuxFill runs the largest Linux guest a distributed
// VM can have (4 GiB, the coherence protocol's bound, dvm.MaxPages)
// across three QEMU AMD-V nodes of 2 GiB, which two such nodes cannot
// hold (issue 23's three-node figures): homes=fill, the guest boots on
// node 1 and sees its memory, vCPUs 1 and 2 move to nodes 2 and 3, and
// memtest writes and verifies 768 MiB with a thread on each vCPU, each
// node's part verified by another node too. No node runs out of frames.
func TestQEMUCluster3LinuxFill(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	requireSlow(t, "a 4 GiB guest across three QEMU nodes and memtest over 768 MiB of it, a part on each node: 42 minutes in QEMU's TCG on 2026-12-06 (shell after 2m13s, memtest 39m35s)")
	dir := buildGuestImage(t)
	// Two cores a node and a 2 s failure timeout, as TestQEMUCluster3LinuxAMDV
	// needs for three emulators on two host cores.
	c := launch.Cluster{Nodes: 3, Segment: 45000 + os.Getpid()%1000*2, CPUs: 2, MemMiB: 2048, FailureTimeout: 2 * time.Second}
	nodes, consoles := bootQEMUCluster3(t, dir, c, "dvm stat", "mem")
	checkCluster3Fill(t, c, "qemu", nodes, consoles, "-mib 768", "QEMU TCG, AMD-V, wall clock")
}

// TestBochsCluster3LinuxFill is TestQEMUCluster3LinuxFill on three Bochs
// nodes of 2 GiB (VT-x), with memtest over 48 MiB: issue 23's largest
// guest across three Bochs nodes.
func TestBochsCluster3LinuxFill(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	requireSlow(t, "a 4 GiB guest across three Bochs nodes on two host cores")
	dir := buildGuestImage(t)
	// A 10 s failure timeout: three Bochs nodes share two host cores,
	// and each node's clock counts its own instructions, so one that
	// gets less of the host runs behind the others' clocks. With 3 s,
	// nodes 2 and 3 removed node 1 while it loaded the guest (2026-12-06,
	// after the transport fix that let them build their shares at all).
	c := launch.Cluster{Nodes: 3, Segment: 44000 + os.Getpid()%1000*4, CPUs: 1, MemMiB: 2048, FailureTimeout: 10 * time.Second}
	nodes, _ := bootBochsCluster(t, dir, c)
	consoles := make([]*serial.Console, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		consoles[i] = nodes[i].con
	}
	checkCluster3Fill(t, c, "bochs", nodes, consoles, "-mib 48", "Bochs, VT-x; memtest's rates in the guest's clock, 10x slow")
}

// checkCluster3Fill starts the largest distributed guest, 4 GiB, with
// homes=fill on the three nodes of c (emulator emu), boots it on node 1,
// moves vCPUs 1 and 2 to nodes 2 and 3, checks the guest sees its
// memory, runs memtest with memtestArgs (a thread on each vCPU, each
// node's part verified by another node too), and checks no node's fault
// found no frame.
func checkCluster3Fill(t *testing.T, c launch.Cluster, emu string, nodes []*node, consoles []*serial.Console, memtestArgs, clock string) {
	t.Helper()
	a := nodes[1]
	const startLine = "dvm start guest=linux vcpus=3 mem=4G homes=fill place=node0 dilate=10"
	steps := c.LinuxDemo(emu, "")
	for i := range steps {
		if steps[i].Line == c.LinuxStartLine(emu, "") {
			steps[i].Line = startLine
		}
	}
	start := time.Now()
	var log strings.Builder
	if err := launch.Play(steps, consoles, &log); err != nil {
		// What the other nodes said (a Bochs run once failed with
		// "node 2, 3 did not build its share", and only node 1's
		// console in the log).
		for i := 2; i <= c.Nodes; i++ {
			t.Logf("node %d's console, its end:\n%s\n%s", i, lastLines(nodes[i].con.Output(), 40), diagnose(nodes[i], "nodes", "dvm stat", "mem"))
		}
		t.Fatalf("the demo's commands with %q: %v\n%s\nnode 1:\n%s", startLine, err, log.String(), a.con.Output())
	}
	t.Logf("%s\nguest shell, vCPUs 1 and 2 sent to nodes 2 and 3, after %v (%s)", log.String(), time.Since(start).Round(time.Second), clock)
	for v := 1; v <= 2; v++ {
		waitVCPU(t, nodes[v+1], v, v+1)
	}
	shellPrompt, guest := guestShell(t, a, 60*time.Minute)
	shellPrompt()
	if m := regexp.MustCompile(`Mem:\s+(\d+)`).FindStringSubmatch(guest("free -m", "Swap:")); m == nil || atoi(m[1]) < 3800 {
		t.Fatalf("the guest sees %v MiB, want about 4 GiB less the kernel's", m)
	}
	t.Logf("memtest %s, a vCPU on each of 3 nodes (%s):\n%s", memtestArgs, clock, guest("memtest "+memtestArgs, "memtest: ok"))
	if err := detachConsole(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= c.Nodes; i++ {
		st := run(t, nodes[i], "dvm stat", time.Minute)
		t.Logf("node %d dvm stat:\n%s\nmem:\n%s", i, st, run(t, nodes[i], "mem", time.Minute))
		if m := regexp.MustCompile(`(\d+) faults found no frame`).FindStringSubmatch(st); m == nil || m[1] != "0" {
			t.Errorf("node %d: faults found no frame: %v", i, m)
		}
	}
	if bad := guestCrash.FindAllString(a.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log has %d crash lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
