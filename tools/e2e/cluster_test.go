// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
	// The nodes' receive loops poll for 200 µs after each frame, as on
	// hardware (an emulator's default is not to).
	c := launch.Cluster{Nodes: 3, Segment: 42000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024, PollHot: 200 * time.Microsecond}
	elf := filepath.Join(dir, "bigiron.elf")
	nodes := make([]*node, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		nodes[i] = bootQEMU(t, c.QEMU(i, elf, launch.Accel(false))...)
	}
	const timeout = 2 * time.Minute
	for i := 1; i <= c.Nodes; i++ {
		if _, err := nodes[i].con.Expect(prompt, timeout); err != nil {
			t.Fatalf("node %d: no prompt: %v\n%s", i, err, nodes[i].con.Output())
		}
		if out := nodes[i].con.Output(); !strings.Contains(out, "network: e1000 (82540EM)") || !strings.Contains(out, "eth0 "+launch.IP(i)+"/24") {
			t.Fatalf("node %d: NIC or address not up:\n%s", i, out)
		}
		if out := nodes[i].con.Output(); !strings.Contains(out, "network: the receive loop polls for 200µs after a frame, then every 100µs") {
			t.Fatalf("node %d: bigiron.pollhot=200us not in effect:\n%s", i, out)
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
		// Without bigiron.key the development key is used because QEMU
		// is an emulator, and `nodes` says so.
		if !strings.Contains(out, "cluster key: development key (emulator: ") {
			t.Errorf("node %d does not say it uses the development key as an emulator:\n%s", i, out)
		}
	}

	// ICMP over gVisor between nodes.
	for _, p := range [][2]int{{1, 2}, {2, 3}, {3, 1}} {
		out := run(t, nodes[p[0]], "ping "+launch.IP(p[1]), timeout)
		if !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping from node %d to node %d:\n%s", p[0], p[1], out)
		}
	}

	checkRebootRejoins(t, nodes, func() *node { return bootQEMU(t, c.QEMU(2, elf, launch.Accel(false))...) }, timeout)

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

// checkRebootRejoins power-cycles node 2 of three: the others remove it
// as failed, and when it has booted again (with nothing of its earlier
// life but its id and a higher incarnation) it is admitted as a new
// member and all three agree. The node catches up on a log that holds
// its earlier life's removal: it must take that for what it is, not leave
// (issue 16, finding 10; the old code passed this because the removal
// and the new admission reached it in one batch).
func checkRebootRejoins(t *testing.T, nodes []*node, boot func() *node, timeout time.Duration) {
	t.Helper()
	nodes[2].stop()
	stopped := time.Now()
	for _, i := range []int{1, 3} {
		if _, err := nodes[i].con.Expect("node 2 failed", time.Minute); err != nil {
			t.Fatalf("node %d did not declare node 2 failed: %v\n%s", i, err, nodes[i].con.Output())
		}
	}
	// A node's frame counters start at its real-time clock's second
	// (above random bits): a reboot within the same second, which no
	// real machine manages, could start below the last life's.
	time.Sleep(time.Until(stopped.Add(1100 * time.Millisecond)))
	nodes[2] = boot()
	if _, err := nodes[2].con.Expect(prompt, timeout); err != nil {
		t.Fatalf("node 2: no prompt after its reboot: %v\n%s", err, nodes[2].con.Output())
	}
	rebooted := time.Now()
	for _, i := range []int{2, 1, 3} {
		var out string
		deadline := time.Now().Add(time.Minute)
		for {
			out = run(t, nodes[i], "nodes", timeout)
			if strings.Contains(out, "members [1 2 3]: quorum") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: node 2 not back a minute after its reboot:\n%s", i, out)
			}
			time.Sleep(time.Second)
		}
	}
	out := run(t, nodes[1], "node events", timeout)
	if !regexp.MustCompile(`(?s)node 2 failed.*node 2 joined`).MatchString(out) {
		t.Errorf("node 1's history does not show node 2 failed, then joined:\n%s", out)
	}
	t.Logf("node 2 rebooted and readmitted %v after its prompt:\n%s", time.Since(rebooted).Round(time.Second), out)
}

// TestBochsCluster boots two Bochs nodes joined by bxhub, Bochs' virtual
// Ethernet hub: each node's emulated 82540EM reaches the other's, they
// form a cluster and ping each other over gVisor.
func TestBochsCluster(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	dir := buildImage(t, "pc", "image")
	nodes, hub := startBochsCluster(t, dir)
	const timeout = 5 * time.Minute
	for _, p := range [][2]int{{1, 2}, {2, 1}} {
		out := run(t, nodes[p[0]], "ping "+launch.IP(p[1]), timeout)
		if !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping from node %d to node %d:\n%s", p[0], p[1], out)
		}
		t.Logf("ping from node %d to node %d:\n%s", p[0], p[1], out)
	}
	checkDistributedVM(t, nodes[1], nodes[2], 10000000, timeout)
	checkDistributedIPIs(t, nodes[1], nodes[2], timeout)
	checkLinkDrop(t, nodes[1], nodes[2], hub, timeout)
	checkNodeLoss(t, nodes[1], nodes[2], timeout) // last: it kills node 2
}

// bochsHub is the bxhub process joining a Bochs cluster's NICs.
type bochsHub struct {
	t    *testing.T
	args []string
	log  *os.File
	cmd  *exec.Cmd
}

func (h *bochsHub) start() {
	h.t.Helper()
	h.cmd = exec.Command("bxhub", h.args...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		h.t.Fatalf("starting bxhub: %v", err)
	}
}

func (h *bochsHub) stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// checkLinkDrop cuts the link between the nodes (bxhub stops) in the
// middle of a distributed counter run for longer than the failure
// timeout: each node must stop the VM, naming the other as lost, without
// hanging; once the link is back the two see each other alive and run a
// new VM across both, exactly.
func checkLinkDrop(t *testing.T, a, b *node, hub *bochsHub, timeout time.Duration) {
	startDVM(t, a, b, "dvm start nodes=2 iters=200000000", timeout)
	time.Sleep(time.Second)
	hub.stop()
	cut := time.Now()
	for i, n := range []*node{a, b} {
		other := 2 - i
		if _, err := n.con.Expect(fmt.Sprintf("node %d lost (silent for", other), 2*time.Minute); err != nil {
			t.Fatalf("node %d did not report node %d lost after the link dropped: %v\n%s", i+1, other, err, n.con.Output())
		}
		t.Logf("node %d reported node %d lost %v after the link dropped", i+1, other, time.Since(cut).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	hub.start()
	alive := regexp.MustCompile(`(?m)^\d+\s+\S+\s+\S+\s+(alive|self)\s`)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		out := run(t, a, "nodes", timeout)
		if len(alive.FindAllString(out, -1)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not see each other again after the link came back:\n%s", out)
		}
		time.Sleep(2 * time.Second)
	}
	startDVM(t, a, b, "dvm start nodes=2 iters=1000000", timeout)
	after, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("a new VM across both nodes after the link came back:\n%s", stat)
	checkCounter(t, "after the link came back", after, 1000000)
}

// checkNodeLoss kills node 2 in the middle of a distributed counter run
// (issue 16, finding 3): node 2 first refuses to leave the cluster while
// it runs a vCPU of the VM; once it is dead, node 1 must say which node
// it lost and what went with it soon after the failure timeout (500 ms),
// with no quorum to remove it (a cluster of two), show the loss in `dvm
// stat`, and start a new VM at once.
func checkNodeLoss(t *testing.T, a, b *node, timeout time.Duration) {
	startDVM(t, a, b, "dvm start nodes=2 iters=200000000", timeout)
	time.Sleep(time.Second)
	if out := run(t, a, "dvm stat", timeout); !strings.Contains(out, ": running, ") {
		t.Fatalf("the guest is not running across both nodes:\n%s", out)
	}
	if out := run(t, b, "node leave", timeout); !strings.Contains(out, "leaving would stop the VM on every node") {
		t.Errorf("node 2 with a vCPU of the VM: node leave did not refuse:\n%s", out)
	}
	b.stop()
	killed := time.Now()
	lost, err := a.con.Expect("vCPU [1]", 2*time.Minute)
	if err != nil {
		t.Fatalf("node 1 did not report node 2 lost: %v\n%s", err, a.con.Output())
	}
	took := time.Since(killed)
	if !regexp.MustCompile(`dvm \d+: node 2 lost \(silent for [0-9.]+m?s\): the VM stops; with it went 512 pages it homed`).MatchString(lost) {
		t.Errorf("loss notice:\n%s", lost)
	}
	t.Logf("node 2 killed; node 1 reported it lost after %v of wall time: %s", took.Round(time.Millisecond), lastLine(lost))
	// A VM's nodes wait 1.5 s of silence (three membership failure
	// timeouts) before they stop it; then at most a second more.
	if limit := 2500 * time.Millisecond; took > limit {
		t.Errorf("the loss was reported %v after the kill, more than %v (the VM's loss timeout of 1.5 s and 1 s)", took, limit)
	}
	if _, err := a.con.Expect(prompt, timeout); err != nil {
		t.Fatal(err)
	}
	if out := run(t, a, "dvm stat", timeout); !strings.Contains(out, "node 2 lost") {
		t.Errorf("dvm stat does not show the loss:\n%s", out)
	}
	startDVM(t, a, b, "dvm start nodes=1 vcpus=2 iters=1000000", timeout)
	after, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("a new VM on node 1 after the loss:\n%s", stat)
	checkCounter(t, "after losing node 2", after, 1000000)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// startBochsCluster boots the image in dir on two one-core Bochs nodes
// joined by bxhub and waits until both see both as live members; it
// returns them as nodes[1] and nodes[2].
func startBochsCluster(t *testing.T, dir string) ([]*node, *bochsHub) {
	t.Helper()
	return startBochsClusterMem(t, dir, 1024)
}

// startBochsClusterMem is startBochsCluster with nodes of memMiB MiB.
func startBochsClusterMem(t *testing.T, dir string, memMiB int) ([]*node, *bochsHub) {
	t.Helper()
	c := launch.Cluster{Nodes: 2, Segment: 43000 + os.Getpid()%1000*4, CPUs: 1, MemMiB: memMiB}
	nodes, hub := bootBochsCluster(t, dir, c)
	waitTwoNodes(t, nodes, 5*time.Minute)
	return nodes, hub
}

// bootBochsCluster boots the image in dir on the Bochs nodes of c joined
// by bxhub, and returns them (nodes[i] is node i) without waiting for
// them.
func bootBochsCluster(t *testing.T, dir string, c launch.Cluster) ([]*node, *bochsHub) {
	t.Helper()
	hubLog, err := os.Create(filepath.Join(dir, "bxhub.out"))
	if err != nil {
		t.Fatal(err)
	}
	hub := &bochsHub{t: t, args: c.BochsHub(), log: hubLog}
	hub.start()
	t.Cleanup(hub.stop)

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
	return nodes, hub
}

// waitTwoNodes waits for the prompt of nodes 1 and 2, their NICs and
// addresses, and for each to list both as live members.
func waitTwoNodes(t *testing.T, nodes []*node, timeout time.Duration) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if _, err := nodes[i].con.Expect(prompt, timeout); err != nil {
			t.Fatalf("node %d: no prompt: %v\n%s", i, err, nodes[i].con.Output())
		}
		t.Logf("node %d: emulator start to prompt: %v", i, time.Since(nodes[i].started).Round(time.Millisecond))
		if out := nodes[i].con.Output(); !strings.Contains(out, "network: e1000 (82540EM)") || !strings.Contains(out, "eth0 "+launch.IP(i)+"/24") {
			t.Fatalf("node %d: NIC or address not up:\n%s", i, out)
		}
	}
	alive := regexp.MustCompile(`(?m)^\d+\s+\S+\s+\S+\s+(alive|self)\s`)
	for i := 1; i <= 2; i++ {
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
}

// dvmFinished matches the outcome line of a distributed counter VM.
var dvmFinished = regexp.MustCompile(`finished: counter (\d+) \((\d+) vCPUs x (\d+) iterations\), (\d+) TSC ticks on vCPU 0, (\S+); guest report: ([^,]*)`)

// waitDVM polls `dvm stat` on n until the VM has finished and returns the
// outcome's submatches and the last status.
func waitDVM(t *testing.T, n *node, timeout time.Duration) ([]string, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := run(t, n, "dvm stat", time.Minute)
		if m := dvmFinished.FindStringSubmatch(out); m != nil {
			return m, out
		}
		if strings.Contains(out, "stopped") || time.Now().After(deadline) {
			t.Fatalf("distributed VM did not finish:\n%s", out)
		}
		// Gone without finishing (in one make test, 2026-12-06, the
		// spread counter across two Bochs nodes, not seen alone): say
		// so at once, with what the node's console printed.
		if strings.Contains(out, "no distributed VM on this node") {
			t.Fatalf("the distributed VM is gone, not finished:\n%s\nthe node's console, its end:\n%s", out, lastLines(n.con.Output(), 60))
		}
		time.Sleep(3 * time.Second)
	}
}

// startDVM types a `dvm start` line on a and waits for it to start; on
// failure it shows what node b thinks.
func startDVM(t *testing.T, a, b *node, line string, timeout time.Duration) (id string) {
	t.Helper()
	if err := a.con.Send(line); err != nil {
		t.Fatal(err)
	}
	out, err := a.con.Expect("started", 2*time.Minute)
	if err != nil {
		t.Fatalf("%s: %v\nnode 1:\n%s\nnode 2, dvm stat:\n%s", line, err, a.con.Output(), run(t, b, "dvm stat", timeout))
	}
	m := regexp.MustCompile(`dvm (\d+): \w+ guest`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: no VM id in:\n%s", line, out)
	}
	if _, err := a.con.Expect(prompt, timeout); err != nil {
		t.Fatal(err)
	}
	return m[1]
}

// runFor runs a command until its output contains want: a notice that
// arrives as the command is typed can take the place of its output.
func runFor(t *testing.T, n *node, line, want string, timeout time.Duration) string {
	t.Helper()
	var all []string
	// Bochs nodes run at their own pace on a loaded host: node 2 may
	// show a VM seconds after node 1 has finished it.
	for deadline := time.Now().Add(time.Minute); len(all) < 5 || time.Now().Before(deadline); {
		out := run(t, n, line, timeout)
		if strings.Contains(out, want) {
			return out
		}
		all = append(all, out)
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%q never printed %q; it printed:\n%s", line, want, strings.Join(all, "\n---\n"))
	return all[len(all)-1]
}

// pagesOf runs `pages` on node n (node 2) until it shows VM id.
func pagesOf(t *testing.T, n *node, id string, timeout time.Duration) string {
	t.Helper()
	return runFor(t, n, "pages", "dvm "+id+" on node 2", timeout)
}

// checkMovePolicy runs the counter across a and b with move=policy:
// the count must be exact and the policy must have moved vCPU 1 off
// node 2. oneTSC and twoTSC are vCPU 0's TSC ticks on one node and
// across two without the policy, for the log.
func checkMovePolicy(t *testing.T, a, b *node, policy string, iters int, oneTSC, twoTSC float64, timeout time.Duration) {
	t.Helper()
	id := startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d move=%s", iters, policy), timeout)
	m, stat := waitDVM(t, a, 20*time.Minute)
	t.Logf("two nodes, move=%s:\n%s", policy, stat)
	checkCounter(t, "two nodes, move="+policy, m, iters)
	pages := pagesOf(t, b, id, timeout)
	if !regexp.MustCompile(`vCPU migrations: [1-9]\d* out, .* policy move=` + policy + ` devices=forward chose [1-9]`).MatchString(pages) {
		t.Errorf("move=%s did not move vCPU 1 off node 2:\n%s", policy, pages)
	}
	tsc, _ := strconv.ParseFloat(m[4], 64)
	if twoTSC > 0 && oneTSC > 0 {
		t.Logf("move=%s: %.2fx the pull run's TSC ticks, %.2fx the one-node run's (%s ticks; wall %s)", policy, tsc/twoTSC, tsc/oneTSC, m[4], m[5])
	}
	run(t, a, "dvm stop", timeout)
}

// checkCounter checks a finished counter VM's outcome.
func checkCounter(t *testing.T, what string, m []string, iters int) {
	t.Helper()
	if m[6] != "ok" || m[1] != fmt.Sprint(2*iters) {
		t.Fatalf("%s: %s", what, m[0])
	}
}

// checkDistributedVM runs the counter guest as one VM with two vCPUs on
// node a alone (the baseline), across a and b with one vCPU each, and
// across both again moving vCPU 1 from b to a while it counts. Every
// increment must count, and memory written on one node must read back on
// the other. The migration run counts migrateIters per vCPU: once both
// vCPUs are on a, the counter runs at one node's speed, and it must still
// be running when the test looks right after the move (QEMU's TCG counts
// about ten times as fast as Bochs).
func checkDistributedVM(t *testing.T, a, b *node, migrateIters int, timeout time.Duration) {
	const iters = 10000000
	startDVM(t, a, b, fmt.Sprintf("dvm start nodes=1 vcpus=2 iters=%d", iters), timeout)
	one, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("one node, 2 vCPUs:\n%s", stat)
	checkCounter(t, "one node", one, iters)
	run(t, a, "dvm stop", timeout)

	framesBefore := run(t, a, "nodes", timeout)
	spreadID := startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d", iters), timeout)
	// Both nodes show where each vCPU runs.
	for i, n := range []*node{a, b} {
		out := runFor(t, n, "vcpus dvm", "across 2 nodes", timeout)
		if !regexp.MustCompile(`(?m)^0\s+1\s+`).MatchString(out) || !regexp.MustCompile(`(?m)^1\s+2\s+`).MatchString(out) {
			t.Errorf("vcpus on node %d does not show vCPU 0 on node 1 and vCPU 1 on node 2:\n%s", i+1, out)
		}
	}
	spread, stat := waitDVM(t, a, 20*time.Minute)
	t.Logf("two nodes, one vCPU each:\n%s", stat)
	// Frames on the wire for the run (the transport's counters on node
	// 1, before and after).
	t.Logf("transport on node 1 before the run:\n%s\nafter:\n%s", framesBefore, run(t, a, "nodes", timeout))
	checkCounter(t, "two nodes", spread, iters)
	// vCPU 1 waited on node 2 for the startup IPI vCPU 0 sent it.
	if !strings.Contains(stat, "; 1 startup IPIs sent") {
		t.Errorf("node 1 did not send vCPU 1 its startup IPI:\n%s", stat)
	}
	// vCPU 1 read the device's ID port and MMIO ID register on node 1
	// from node 2 (and wrote its MMIO scratch register, which vCPU 0 read
	// back: the guest report checks the values).
	if p := pagesOf(t, b, spreadID, timeout); !strings.Contains(p, "devices: 2 reads forwarded to the device node") {
		t.Errorf("vCPU 1's device reads were not forwarded from node 2:\n%s", p)
	}
	pages := pagesOf(t, b, spreadID, timeout)
	t.Logf("pages on node 2:\n%s", pages)
	// The page map: 1024 pages, one per character, 64 to a line; node 2
	// holds the pages it homes (every other one) and some of node 1's.
	pmap := runFor(t, b, "pages map", "page map", timeout)
	rows := regexp.MustCompile(`(?m)^\s+0x[0-9a-f]{8} [.sM]{64}\r?$`).FindAllString(pmap, -1)
	if len(rows) != 16 || !strings.Contains(pmap, "s.s.s.s.") {
		t.Errorf("pages map on node 2 (want 16 rows of 64, node 2's homes held):\n%s", pmap)
	}
	if !regexp.MustCompile(`faults: \d+ \([1-9]\d* remote`).MatchString(pages) {
		t.Errorf("node 2 reports no remote faults:\n%s", pages)
	}
	// vCPU 1's first walks on node 2 reach page tables node 1 wrote.
	if !regexp.MustCompile(`page-table walks: [1-9]\d* \(`).MatchString(pages) {
		t.Errorf("node 2 counts no faults in the guest's page-table walks:\n%s", pages)
	}
	// The counter page was last written on node 1; node 2 reads it
	// through the coherence protocol.
	peek := runFor(t, b, fmt.Sprintf("dvm peek %#x", 0x200004), "0x200004: ", timeout)
	if !strings.Contains(peek, fmt.Sprintf(": %d ", 2*iters)) {
		t.Errorf("node 2 reads the counter as:\n%s", peek)
	}
	oneTSC, _ := strconv.ParseFloat(one[4], 64)
	twoTSC, _ := strconv.ParseFloat(spread[4], 64)
	if oneTSC > 0 {
		t.Logf("slowdown, two nodes against one (vCPU 0's TSC ticks, Bochs counts instructions): %.2fx (%s vs %s ticks; wall %s vs %s)",
			twoTSC/oneTSC, spread[4], one[4], spread[5], one[5])
	}
	run(t, a, "dvm stop", timeout)

	// The same run with each move policy: vCPU 1 keeps faulting on the
	// lock and counter pages node 1 writes, so the policy sends it
	// there (and it stays: the pages are then local to both vCPUs).
	for _, policy := range []string{"hysteresis", "learned"} {
		checkMovePolicy(t, a, b, policy, iters, oneTSC, twoTSC, timeout)
	}

	startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d", migrateIters), timeout)
	time.Sleep(time.Second)
	out := run(t, a, "migrate 1 1", timeout)
	if !strings.Contains(out, "moving to node 1") {
		t.Fatalf("migrate:\n%s", out)
	}
	// The guest must still be running after the move, or the test
	// proves nothing about migrating a running vCPU.
	out = run(t, a, "dvm stat", timeout)
	if !strings.Contains(out, ": running, ") {
		t.Fatalf("the guest was no longer running when vCPU 1 moved; make it count longer:\n%s", out)
	}
	t.Logf("right after migrate:\n%s", out)
	moved, stat := waitDVM(t, a, 20*time.Minute)
	t.Logf("two nodes, vCPU 1 moved from node 2 to node 1 while running:\n%s", stat)
	checkCounter(t, "two nodes with a migration", moved, migrateIters)
	if !regexp.MustCompile(`(?m)^\s+1\s+1\s+`).MatchString(stat) {
		t.Errorf("vCPU 1 is not on node 1 after migrate:\n%s", stat)
	}
	if !regexp.MustCompile(`vCPU migrations: \d+ out, [1-9]\d* in`).MatchString(stat) {
		t.Errorf("node 1 counted no incoming migration:\n%s", stat)
	}
	run(t, a, "dvm stop", timeout)

	// Evacuate node 2 while the guest runs: its vCPU moves to node 1, it
	// gives back every page copy it does not home and node 1 takes the
	// homes of its share (512 pages of 1024, striped).
	evacID := startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d", iters), timeout)
	time.Sleep(time.Second)
	out = run(t, a, "node evacuate 2", timeout)
	if !strings.Contains(out, "moving 1 vCPUs away") {
		t.Fatalf("node evacuate 2:\n%s", out)
	}
	evac, stat := waitDVM(t, a, 20*time.Minute)
	checkCounter(t, "two nodes, node 2 evacuated", evac, iters)
	// Left: nothing, neither homes nor copies (node 1 may still be
	// taking the last homes: a page takes a few frames, a frame a
	// millisecond in Bochs).
	const empty = "0 homed here, held here 0 shared + 0 modified"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
		pages = runFor(t, b, "pages", "dvm "+evacID+" on node 2", timeout)
		if strings.Contains(pages, empty) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("node 2 after evacuation:\n%s\n%s", stat, pages)
	if !strings.Contains(pages, empty) || !strings.Contains(pages, "vCPU migrations: 1 out") {
		t.Errorf("node 2 still homes or holds pages, or hosts vCPUs, after evacuation:\n%s", pages)
	}
	if !regexp.MustCompile(`evacuated: no vCPU here, \d+ page copies given back, the homes of 512 pages handed on, 0 homed here`).MatchString(b.con.Output()) {
		t.Errorf("no evacuation notice handing node 2's 512 homes on")
	}
	// Node 1 says so once its last write is answered, just after node 2
	// gave the last home. It counts the homes its own writes took: one
	// its vCPUs' write took first (node 2 gives a home to any write that
	// offers to take it once it leaves) is not among them.
	took := regexp.MustCompile(`took the homes of \d+ pages from node 2, which leaves\r?\n`)
	for deadline := time.Now().Add(30 * time.Second); !took.MatchString(a.con.Output()); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			out := a.con.Output()
			t.Errorf("node 1 did not say it took node 2's homes; its console's end:\n%s", out[max(0, len(out)-3000):])
			break
		}
	}
	run(t, a, "dvm stop", timeout)
}

// checkDistributedIPIs runs the IPI ping-pong guest on one node (the
// baseline), then with its two vCPUs on two nodes, then moving vCPU 1
// while it plays: every IPI must arrive, wherever its target runs.
func checkDistributedIPIs(t *testing.T, a, b *node, timeout time.Duration) {
	const rounds = 300
	ipis := regexp.MustCompile(`interrupts: (\d+) IPIs sent from here`)
	startDVM(t, a, b, fmt.Sprintf("dvm start guest=pingpong nodes=1 vcpus=2 iters=%d", rounds), timeout)
	one, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("ping-pong, one node:\n%s", stat)
	checkCounter(t, "ping-pong on one node", one, rounds)
	run(t, a, "dvm stop", timeout)

	id := startDVM(t, a, b, fmt.Sprintf("dvm start guest=pingpong nodes=2 iters=%d", rounds), timeout)
	two, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("ping-pong, one vCPU on each node:\n%s", stat)
	checkCounter(t, "ping-pong across nodes", two, rounds)
	if m := ipis.FindStringSubmatch(stat); m == nil || m[1] != fmt.Sprint(rounds) {
		t.Errorf("node 1 did not send %d IPIs:\n%s", rounds, stat)
	}
	pages := runFor(t, b, "pages", "dvm "+id+" on node 2", timeout)
	// Node 2 also took the debug device's interrupt (raised on node 1
	// by vCPU 1's doorbell write): rounds + 1 made pending there.
	if !strings.Contains(stat, "; 1 interrupts raised by devices here") {
		t.Errorf("the device on node 1 raised no interrupt:\n%s", stat)
	}
	if !strings.Contains(pages, fmt.Sprintf("interrupts: %d IPIs sent from here", rounds)) || !strings.Contains(pages, fmt.Sprintf(", %d made pending here", rounds+1)) {
		t.Errorf("node 2 did not send and receive %d IPIs:\n%s", rounds, pages)
	}
	oneTSC, _ := strconv.ParseFloat(one[4], 64)
	twoTSC, _ := strconv.ParseFloat(two[4], 64)
	if oneTSC > 0 {
		t.Logf("ping-pong: %.0f TSC ticks per round trip on one node, %.0f across two (%.1fx); wall %s vs %s",
			oneTSC/rounds, twoTSC/rounds, twoTSC/oneTSC, two[5], one[5])
	}
	run(t, a, "dvm stop", timeout)

	// devices=move: vCPU 1 goes to node 1 when it rings the device's
	// doorbell, instead of forwarding the write, and plays from there.
	devID := startDVM(t, a, b, fmt.Sprintf("dvm start guest=pingpong nodes=2 iters=%d devices=move", rounds), timeout)
	dev, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("ping-pong, devices=move:\n%s", stat)
	checkCounter(t, "ping-pong, devices=move", dev, rounds)
	pages = runFor(t, b, "pages", "dvm "+devID+" on node 2", timeout)
	if !strings.Contains(pages, "vCPU migrations: 1 out, 0 in") || !strings.Contains(pages, "devices=move chose 1") {
		t.Errorf("vCPU 1 did not move to the device node:\n%s", pages)
	}
	if !strings.Contains(stat, "vCPU migrations: 0 out, 1 in") {
		t.Errorf("node 1 did not take vCPU 1:\n%s", stat)
	}
	run(t, a, "dvm stop", timeout)

	// Enough rounds (about 2 ms each across nodes) to still be playing
	// when the migration comes.
	const moveRounds = 10 * rounds
	startDVM(t, a, b, fmt.Sprintf("dvm start guest=pingpong nodes=2 iters=%d", moveRounds), timeout)
	time.Sleep(500 * time.Millisecond)
	if out := run(t, a, "migrate 1 1", timeout); !strings.Contains(out, "moving to node 1") {
		t.Fatalf("migrate:\n%s", out)
	}
	if out := run(t, a, "dvm stat", timeout); !strings.Contains(out, ": running, ") {
		t.Fatalf("the ping-pong guest was no longer running when vCPU 1 moved; play more rounds:\n%s", out)
	}
	moved, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("ping-pong, vCPU 1 moved to node 1 while playing:\n%s", stat)
	checkCounter(t, "ping-pong with a migration", moved, moveRounds)
	run(t, a, "dvm stop", timeout)
}
