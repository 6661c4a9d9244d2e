// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// TestBochsClusterLinux boots Debian's kernel as one VM across two Bochs
// nodes (VT-x) joined by bxhub (issue 7): checkClusterLinux.
func TestBochsClusterLinux(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	dir := buildGuestImage(t)
	nodes, _ := startBochsCluster(t, dir)
	checkClusterLinux(t, dir, nodes, "bochs")
}

// checkClusterLinux boots Debian's kernel as one VM across nodes 1 and 2
// with the commands `make cluster GUEST=linux` types (launch.LinuxDemo):
// the guest boots with both vCPUs on node 1 and vCPU 1 moves to node 2
// once the guest's shell runs. There the guest still sees and uses both
// vCPUs (an NMI from one reaches the other), node 2 reads guest memory
// node 1 wrote, and threads pinned to each vCPU get exact totals on
// shared counters, a page passed across.
// Then node 2 is evacuated in the middle of a run, which ends exact, and
// the same program runs with both vCPUs on node 1 for the slowdown. emu
// is the emulator, as launch.LinuxStartLine takes it.
func checkClusterLinux(t *testing.T, dir string, nodes []*node, emu string) {
	a, b := nodes[1], nodes[2]
	var bMu sync.Mutex // node 2's shell: the watcher's, or the test's
	// What the test was doing, for the failure's last line (CI shows
	// the end of the output, after the consoles' dumps), and where it
	// first failed: a check that fails with t.Errorf lets the test go
	// on to later stages (a CI run once said only that it failed
	// "during the one-node run", its last stage).
	stage, start := "the demo's commands", time.Now()
	firstFailed := ""
	setStage := func(s string) {
		if t.Failed() && firstFailed == "" {
			firstFailed = stage
		}
		stage = fmt.Sprintf("%s (began %v after the demo)", s, time.Since(start).Round(time.Second))
	}
	defer func() {
		if t.Failed() {
			defer func() {
				if firstFailed == "" {
					firstFailed = stage
				}
				t.Logf("checkClusterLinux failed during %s, %v after the demo began; its first failure during %s", stage, time.Since(start).Round(time.Second), firstFailed)
			}()
			out := a.con.Output()
			t.Logf("node 1's console, its end:\n%s", out[max(0, len(out)-4000):])
			a.con.Write([]byte{0x1D})
			a.con.Expect("detached", time.Minute)
			t.Logf("node 1 dvm stat:\n%s", run(t, a, "dvm stat", time.Minute))
			bMu.Lock()
			t.Logf("node 2 dvm stat:\n%s", run(t, b, "dvm stat", time.Minute))
			bMu.Unlock()
		}
	}()

	// The demo's steps past the shells and the membership, which
	// startBochsCluster waited for: dvm start on node 1, its console
	// attached to the guest until the guest's shell, then migrate 1 2 on
	// node 2.
	c := launch.Cluster{Nodes: 2}
	var steps []launch.Step
	// The guest's pages are homed on node 1 and move to a node that
	// writes one after two requests in a row (or writes it first).
	// The guest's page walks go on in walk windows, as dvm start
	// does for Linux by default (under QEMU, whose TCG asks write
	// access for every guest page table it walks, the page tables
	// crossed between the nodes after every exit without them: this
	// test took 770-1,243 s then, 437 s with them).
	for _, s := range c.LinuxDemo(emu, "firsttouch=on moveafter=2") {
		if s.Line != "" && s.Line != "nodes" {
			steps = append(steps, s)
		}
	}
	saveTrace := traceLinuxRun(t, fmt.Sprintf("checkClusterLinux's Linux guest on two %s nodes (boot on node 1, vCPU 1 moved\n# to node 2, the guest's checks, sharedcounter split, node 2 evacuated, sharedcounter on node 1)", emu), 2, a, b)
	var log strings.Builder
	if err := launch.Play(steps, []*serial.Console{nil, a.con, b.con}, &log); err != nil {
		t.Fatalf("the demo's commands: %v\n%s\nnode 1:\n%s", err, log.String(), a.con.Output())
	}
	t.Logf("%sguest shell and vCPU 1 sent to node 2 after %v", log.String(), time.Since(start).Round(time.Second))
	if !regexp.MustCompile(`dvm \d+: Linux, 2 vCPUs on 2 nodes, 128 MiB .*: started`).MatchString(a.con.Output()) {
		t.Fatalf("dvm start did not say what it started:\n%s", a.con.Output())
	}
	waitVCPU1(t, b, 2)

	defer watchNode2(dir, b, &bMu, start)()
	onB := func(f func()) {
		bMu.Lock()
		defer bMu.Unlock()
		f()
	}
	setStage("the guest's shell")
	// Generous: under QEMU's TCG, CPU 1 rebinding the disk driver took
	// 2m33s on a machine where the whole test took 13 minutes, and a
	// CI machine is slower.
	shellPrompt, guest := guestShell(t, a, 15*time.Minute)
	shellPrompt()

	setStage("the guest's checks across the nodes")
	checkGuestAcrossNodes(t, a, b, onB, shellPrompt, guest, emu)

	// The acceptance run proper: a thread pinned to vCPU 0 on node 1 and
	// one to vCPU 1 on node 2 on the same counters, then the page passed
	// between them crosses the network both ways.
	setStage("the split run")
	const iters = 20000
	split := counterRun(t, a, iters, 30*time.Minute)
	onB(func() {
		out := run(t, b, "dvm stat", time.Minute)
		t.Logf("node 2 dvm stat after the split run:\n%s", out)
		if homesLine.FindStringSubmatch(out) == nil {
			t.Errorf("node 2's dvm stat shows no homes line:\n%s", out)
		}
	})

	setStage("the evacuation run")
	evacuateDuringRun(t, a, b, onB)

	setStage("the one-node run")
	guest("echo still running", "\nstill running")
	// Both vCPUs on node 1: the same program for the slowdown.
	one := counterRun(t, a, iters, 30*time.Minute)
	clock := "guest time, dilated 10x (Bochs' instruction-counting clock)"
	if emu == "qemu" {
		clock = "guest time, dilated 10x (QEMU's TSC, the host's wall clock)"
	}
	t.Logf("sharedcounter, %d acquisitions per thread: %v with a vCPU on each node, %v with both on node 1: %.0fx (%s)", iters, split, one, split.Seconds()/one.Seconds(), clock)
	onB(func() { t.Logf("node 2 dvm stat at the end:\n%s", run(t, b, "dvm stat", time.Minute)) })
	setStage("the guest's log")
	// A page that both CPUs write crosses the emulated link in
	// milliseconds where an SMP machine moves a cache line, so the
	// guest's watchdogs (soft lockup, RCU stall) may fire: they are
	// counted, not failed on. A crash is a failure.
	if bad := guestCrash.FindAllString(a.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log has %d crash lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	t.Logf("guest watchdog reports: %d soft lockups, %d RCU stalls",
		strings.Count(a.con.Output(), "soft lockup"), strings.Count(a.con.Output(), "rcu_preempt self-detected stall")+strings.Count(a.con.Output(), "rcu_preempt detected stalls"))
	setStage("node 1's large pages")
	if err := detachConsole(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	checkLargePages(t, run(t, a, "dvm stat", time.Minute), "node 1, which homes every page")
	if saveTrace != nil {
		setStage("saving the Linux run's trace")
		onB(saveTrace)
	}
}

// largePagesLine is dvm stat's line on 2 MiB pages.
var largePagesLine = regexp.MustCompile(`large pages: (\d+) of 2 MiB map the guest here \([^)]*\); (\d+) promoted, (\d+) split`)

// checkLargePages checks, in a node's dvm stat out, that the node mapped
// ranges it held whole with 2 MiB pages and split them when one of their
// pages changed (the guest's first write to a page, or another node's
// request): a node that homes pages holds them whole from the start.
func checkLargePages(t *testing.T, out, who string) {
	t.Helper()
	m := largePagesLine.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("%s: dvm stat has no large pages line:\n%s", who, out)
		return
	}
	tables := regexp.MustCompile(`nested page tables [^\n]*`).FindString(out)
	t.Logf("%s: %s; %s", who, m[0], tables)
	if promoted, _ := strconv.Atoi(m[2]); promoted == 0 {
		t.Errorf("%s mapped no range with a 2 MiB page: %s", who, m[0])
	}
	if split, _ := strconv.Atoi(m[3]); split == 0 {
		t.Errorf("%s split no 2 MiB page, though the guest wrote its memory: %s", who, m[0])
	}
}

// checkGuestAcrossNodes checks the guest, its shell on a's console and
// vCPU 1 on node b, before the runs: it sees and uses both vCPUs, NMIs
// and vector state cross nodes, its disk resets from node 2, and node 2
// reads what node 1 wrote.
func checkGuestAcrossNodes(t *testing.T, a, b *node, onB func(func()), shellPrompt func(), guest func(line, want string) string, emu string) {
	t.Helper()
	// With vCPU 1 on node 2 the guest still sees and uses both vCPUs.
	guest("cat /proc/cpuinfo | grep -c processor", "\n2\r")
	checkTickless(t, guest, 2)
	if emu == "qemu" {
		// QEMU's TSC is the host's wall clock, so the guest's clock
		// can be held against the test's.
		checkDilation(t, guest, 10)
	}
	// NMIs cross nodes: sysrq-l has every CPU print its backtrace, the
	// others from their NMI handlers (Linux waits up to 10 s for them).
	// The kernel's lines can split the command's echo ("/proc/sy",
	// the backtraces, "srq-trigger"), so the test waits for one of them.
	guest("echo l > /proc/sysrq-trigger", "Show backtrace of all active CPUs")
	// Each CPU printed at least one backtrace. Not a count: a remote
	// NMI handler can take seconds, and RCU's stall detector then sends
	// vCPU 1 another NMI whose backtrace says the same.
	guest(`dmesg | grep -q "NMI backtrace for cpu 0" && dmesg | grep -q "NMI backtrace for cpu 1" && echo both CPUs backtraced`, "\nboth CPUs backtraced\r")
	// The AVX state (XCR0 and the registers) came to node 2 with vCPU 1
	// and is switched there as on node 1: half of avxcheck's threads
	// run on CPU 1.
	checkAVX(t, a, shellPrompt, 2, "-rounds 2 -spins 2000000", emu+", vCPU 1 on node 2")
	guest("echo written on node 1 > /dev/vda && dd if=/dev/vda bs=17 count=1", "\nwritten on node 1")
	resetDiskFromNode2(t, b, onB, guest)

	// Guest memory written on node 1 (the kernel image, loaded there)
	// reads the same through the coherence protocol on node 2.
	peek := regexp.MustCompile(`0x1000000: \d+ \((0x[0-9a-f]+)\)`)
	var onNode2 []string
	onB(func() { onNode2 = peek.FindStringSubmatch(run(t, b, "dvm peek 0x1000000", time.Minute)) })
	if onNode2 == nil || onNode2[1] == "0x0" {
		t.Fatalf("node 2 could not read the guest's kernel: %v", onNode2)
	}
	t.Logf("guest-physical 0x1000000 read on node 2: %s", onNode2[1])
}

// nohzHighres is a CPU's line in /proc/timer_list once its tick is
// driven by one-shot high-resolution timers (NOHZ_MODE_HIGHRES): its
// tick can stop when it idles, and nohz_full can stop it when it runs
// one task.
var nohzHighres = regexp.MustCompile(`(?m)^\s*\.nohz_mode\s*:\s*2\s*$`)

// checkTickless checks that each of the guest's cpus CPUs left periodic
// ticks for one-shot ones. A guest whose CPUID lacks ARAT never does
// (it has no broadcast timer), and then every CPU reads the
// timekeeper's pages, written by another CPU, at every tick: across
// nodes, hundreds of remote faults a second from an idle vCPU.
func checkTickless(t *testing.T, guest func(line, want string) string, cpus int) {
	t.Helper()
	out := guest("cat /proc/timer_list; echo timer-list-$((6*7))", "timer-list-42\r")
	if got := len(nohzHighres.FindAllString(out, -1)); got != cpus {
		t.Errorf("%d of the guest's %d CPUs tick in one-shot mode (nohz_mode 2), want all:\n%s", got, cpus, out)
	}
}

// checkDilation checks that the guest's clock runs dilation times
// slower than the host's (dvm start dilate=N): its uptime over 30 s of
// the test's wall clock, within a factor of two.
func checkDilation(t *testing.T, guest func(line, want string) string, dilation int) {
	t.Helper()
	uptime := regexp.MustCompile(`\nup (\d+\.\d+) `)
	read := func() (float64, time.Time) {
		out := guest("echo up $(cat /proc/uptime) u$((2+2))", "u4\r")
		m := uptime.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no uptime in the guest's answer %q", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v, time.Now()
	}
	g0, w0 := read()
	time.Sleep(30 * time.Second)
	g1, w1 := read()
	if g1 <= g0 {
		t.Errorf("the guest's uptime went from %v to %v in %v", g0, g1, w1.Sub(w0))
		return
	}
	ratio := w1.Sub(w0).Seconds() / (g1 - g0)
	t.Logf("guest clock: %.2f s of uptime in %v of the host's: %.1fx slower (dilate=%d)", g1-g0, w1.Sub(w0).Round(time.Millisecond), ratio, dilation)
	if ratio < float64(dilation)/2 || ratio > float64(dilation)*2 {
		t.Errorf("the guest's clock runs %.1fx slower than the host's, want about %d (dilate=%d)", ratio, dilation, dilation)
	}
}

// watchNode2 writes node 2's dvm stat every 30 s to dir's
// dvmstat-node2.log, with the time since start, to follow a long run; it
// takes node 2's shell under mu. The function it returns stops it.
func watchNode2(dir string, b *node, mu *sync.Mutex, start time.Time) (stop func()) {
	watch, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		f, err := os.Create(filepath.Join(dir, "dvmstat-node2.log"))
		if err != nil {
			return
		}
		defer f.Close()
		for {
			select {
			case <-watch:
				return
			case <-time.After(30 * time.Second):
			}
			mu.Lock()
			if err := b.con.Send("dvm stat"); err != nil {
				mu.Unlock()
				return
			}
			out, _ := b.con.Expect(prompt, time.Minute)
			mu.Unlock()
			fmt.Fprintf(f, "%s\n%s\n", time.Since(start).Round(time.Second), out)
		}
	}()
	return func() {
		close(watch)
		<-watched
	}
}

// evacuateDuringRun evacuates node 2 in the middle of a sharedcounter run
// on a's guest console: vCPU 1 comes back to node 1, node 2 gives back
// every page copy and hands on the homes moveafter gave it, and the run
// ends exact. onB runs a function holding node 2's console.
func evacuateDuringRun(t *testing.T, a, b *node, onB func(func())) {
	t.Helper()
	// The program notices nothing but time.
	if err := a.con.Send("sharedcounter -iters 200000"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.con.Expect("threads counting", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	mark := len(a.con.Output())
	onB(func() {
		if out := run(t, b, "node evacuate 2", time.Minute); !strings.Contains(out, "moving 1 vCPUs away") {
			t.Fatalf("node evacuate 2:\n%s", out)
		}
		// The run must still go on once the evacuation has begun. Not
		// once vCPU 1 is seen on node 1: with both threads there the
		// run ends in milliseconds, often before the first look at
		// vcpus, and a look that came too early waited 2 s for the next
		// (the check failed in CI that way).
		if strings.Contains(a.con.Output()[mark:], "lock acquisitions each") {
			t.Errorf("the run ended before node 2's evacuation began: give it more iterations")
		}
		waitVCPU1(t, b, 1)
	})
	out, err := a.con.Expect("\n$ ", 30*time.Minute)
	if err != nil || !strings.Contains(out, "sharedcounter: ok") {
		t.Fatalf("sharedcounter while node 2 was evacuated: %v\n%s", err, out)
	}
	t.Logf("sharedcounter while node 2 was evacuated:\n%s", out)
	// Node 2 hands the homes of its pages (those moveafter brought it)
	// to node 1, and holds no copy of another node's.
	onB(func() {
		// The notice follows the last home by up to a poll (20 ms), and
		// the homes go after the run ends: `pages` is read once the
		// notice is out.
		evacuated := regexp.MustCompile(`evacuated: no vCPU here, \d+ page copies given back, the homes of (\d+) pages handed on, (\d+) homed here`)
		notice := evacuated.FindStringSubmatch(b.con.Output())
		for deadline := time.Now().Add(2 * time.Minute); notice == nil && time.Now().Before(deadline); notice = evacuated.FindStringSubmatch(b.con.Output()) {
			time.Sleep(100 * time.Millisecond)
		}
		pages := run(t, b, "pages", time.Minute)
		if !strings.Contains(pages, "copies of pages homed elsewhere: 0 held,") || !strings.Contains(pages, "vCPU migrations: 1 out, 1 in") {
			t.Errorf("node 2 still holds copies of guest pages or vCPUs after its evacuation:\n%s", pages)
		}
		if notice == nil || notice[2] != "0" || !strings.Contains(pages, " 0 homed here,") {
			t.Errorf("node 2 did not hand all its homes to node 1 (notice %v):\n%s", notice, pages)
		}
		t.Logf("evacuation: %v", notice)
	})
}

// guestCrash matches the kernel messages of a crash.
var guestCrash = regexp.MustCompile(`(?m)^.*(Kernel panic|BUG: unable to handle|general protection fault|Oops:|invalid opcode:).*$`)

// deviceReadsLine is dvm stat's count of device reads forwarded to the
// device node.
var deviceReadsLine = regexp.MustCompile(`devices: (\d+) reads forwarded to the device node`)

// resetDiskFromNode2 has CPU 1, on node 2, unbind the guest's virtio disk
// from its driver and bind it again: Linux resets the device (a status
// write that node 2 forwards to the device node, node 1, then reads back
// so that the reset has settled before the driver frees the queues) and
// sets it up anew. The data node 1 wrote must read back past the page
// cache, and node 2 must have forwarded device reads meanwhile. onB
// runs a function holding node 2's console.
func resetDiskFromNode2(t *testing.T, b *node, onB func(func()), guest func(line, want string) string) {
	t.Helper()
	forwarded := func() int {
		var n int
		onB(func() {
			out := run(t, b, "dvm stat", time.Minute)
			m := deviceReadsLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("node 2's dvm stat has no device reads line:\n%s", out)
			}
			n, _ = strconv.Atoi(m[1])
		})
		return n
	}
	dev := boundVirtioDisk(t, guest)
	before := forwarded()
	drv := virtioBlkDriver
	guest(fmt.Sprintf("oncpu 1 write %s/unbind %s %s/bind %s && echo rebound", drv, dev, drv, dev), "\nrebound")
	guest("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=17 count=1", "\nwritten on node 1")
	after := forwarded()
	if after <= before {
		t.Errorf("node 2 forwarded no device read while CPU 1 reset the disk (%d before, %d after)", before, after)
	}
	t.Logf("virtio disk reset and bound again from CPU 1 on node 2: %d device reads forwarded", after-before)
}

// counterRun runs sharedcounter in the guest on a's console, waiting
// for it at most timeout, and returns the time the guest measured.
func counterRun(t *testing.T, a *node, iters int, timeout time.Duration) time.Duration {
	t.Helper()
	if err := a.con.Send(fmt.Sprintf("sharedcounter -iters %d", iters)); err != nil {
		t.Fatal(err)
	}
	out, err := a.con.Expect("\n$ ", timeout)
	if err != nil || !strings.Contains(out, "sharedcounter: ok") {
		t.Fatalf("sharedcounter: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`lock acquisitions each, in ([0-9][0-9a-zµ.]*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sharedcounter printed no time:\n%s", out)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sharedcounter:\n%s", out)
	return d
}

// waitVCPU1 waits until node n's `vcpus` shows the guest's vCPU 1 on the
// node with cluster id to.
func waitVCPU1(t *testing.T, n *node, to int) {
	t.Helper()
	waitVCPU(t, n, 1, to)
}

// waitVCPU waits until node n's `vcpus` shows the guest's vCPU v on the
// node with cluster id to.
func waitVCPU(t *testing.T, n *node, v, to int) {
	t.Helper()
	there := regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%d\s`, v, to))
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if out := run(t, n, "vcpus dvm", time.Minute); there.MatchString(out) {
			t.Logf("vCPU %d moved to node %d:\n%s", v, to, out)
			return
		}
	}
	t.Fatalf("vCPU %d did not move to node %d", v, to)
}

// TestQEMUClusterLinuxAMDV boots Debian's kernel as one VM across two
// QEMU nodes (TCG, -cpu max: AMD-V with nested paging) on one multicast
// segment: checkClusterLinux, as on VT-x in Bochs, with walk windows on.
// It also reports how many of node 2's faults were the guest's
// page-table walks (QEMU's TCG asks for write access to every guest page
// table it walks), and checks that node 2 opened walk windows for them
// and met no conflict. The three-node test stays opt-in.
func TestQEMUClusterLinuxAMDV(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildGuestImage(t)
	nodes := bootQEMUCluster(t, dir, launch.Cluster{Nodes: 2, Segment: 45000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024})
	waitTwoNodes(t, nodes, 3*time.Minute)
	checkClusterLinux(t, dir, nodes, "qemu")
	stat := run(t, nodes[2], "dvm stat", time.Minute)
	if m := regexp.MustCompile(`faults: (\d+) .*\n.*page-table walks: (\d+) \((\d+) for write\)`).FindStringSubmatch(stat); m != nil {
		t.Logf("node 2: %s faults, %s of them in the guest's page-table walks (%s for write)", m[1], m[2], m[3])
	} else {
		t.Errorf("dvm stat on node 2 shows no fault counts")
	}
	if w := regexp.MustCompile(`walk windows: (\d+) opened, .* (\d+) conflicts`).FindStringSubmatch(stat); w == nil || w[1] == "0" || w[2] != "0" {
		t.Errorf("node 2 opened no walk window, or met conflicts:\n%s", stat)
	}
}

// TestQEMUCluster3LinuxAMDV boots Debian's kernel as one VM across three
// QEMU nodes (TCG, AMD-V) with the demo's commands (`make cluster
// EMU=qemu GUEST=linux NODES=3`): the guest's shell with a vCPU on each
// node, every vCPU seen and used, sharedcounter exact with a thread
// pinned to each vCPU, then node 3 evacuated and the run repeated, with
// the two-node test's options (walk windows, first touch, moving homes).
// On failure it logs the end of every node's console.
func TestQEMUCluster3LinuxAMDV(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildGuestImage(t)
	// Three emulators on two host cores: a node's emulator waits for a
	// core for hundreds of milliseconds at times (idle nodes heard
	// nothing from each other for up to 291 ms), and with the default
	// 500 ms the two others declared node 1 failed while its guest's
	// kernel decompressed (in every run, 6 of 6). Two cores a node: with
	// one, node 1's services wait for its vCPU's exits, and while the
	// guest booted there the leader declared node 1 failed even with a
	// 2 s timeout (2026-12-06, and in 3 earlier runs of 3).
	//
	// The test hung in about one run of four after sharedcounter's
	// counters came out exact: a vCPU on one node waited minutes (4m38s,
	// 4m55s, 4m54s) for a page another node had, and the wait ended when
	// the test typed its diagnostics there. No vCPU was stuck in guest
	// mode (the slice watch, a second way back to a core, ended none of
	// those turns). Three causes in the distributed VM's runtime, each
	// mended with a host test in package dvm and each named by dvm
	// stat's "held:" line: a request sat in a hold window that its
	// node's vCPU kept renewing (TestHoldWindowDelaysARequestOnce); a
	// node draining its walk windows held a device write and behind it
	// the grant it waited for (TestDrainingNodeTakesTheGrantPastAHeld-
	// DeviceWrite); and a request held by a vCPU's drain waited for the
	// next message to wake the goroutine that serves held requests
	// (TestDrainThatHoldsWakesRun). Since then the test passed 12 runs
	// of 12 (2026-12-06, 47-62 s each) and runs in make test.
	c := launch.Cluster{Nodes: 3, Segment: 46000 + os.Getpid()%1000*2, CPUs: 2, MemMiB: 1024, FailureTimeout: 2 * time.Second}
	nodes, consoles := bootQEMUCluster3(t, dir, c, "dvm stat", "pages", "trace kind=fault last=20")
	a := nodes[1]
	start := time.Now()
	var log strings.Builder
	if err := launch.Play(c.LinuxDemo("qemu", "firsttouch=on moveafter=2"), consoles, &log); err != nil {
		// How long the other nodes heard nothing from each node.
		for i := 2; i <= c.Nodes; i++ {
			if nodes[i].con.Send("nodes") != nil {
				continue
			}
			if _, err := nodes[i].con.Expect(wrapped("nodes")+"\r\n", 30*time.Second); err != nil {
				continue
			}
			if out, err := nodes[i].con.Expect(prompt, 30*time.Second); err == nil {
				t.Logf("nodes on node %d after the failure:\n%s", i, out)
			}
		}
		t.Fatalf("the demo's commands: %v\n%s\nnode 1:\n%s", err, log.String(), a.con.Output())
	}
	t.Logf("%sguest shell and vCPUs 1, 2 sent to nodes 2, 3 after %v", log.String(), time.Since(start).Round(time.Second))
	// The nodes' traces show, on a failure, what their vCPUs waited for.
	for i := 2; i <= c.Nodes; i++ {
		run(t, nodes[i], "trace on", time.Minute)
	}
	for v := 1; v <= 2; v++ {
		there := regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%d\s`, v, v+1))
		for deadline := time.Now().Add(5 * time.Minute); !there.MatchString(run(t, nodes[v+1], "vcpus dvm", time.Minute)); time.Sleep(2 * time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("vCPU %d did not move to node %d", v, v+1)
			}
		}
	}
	shellPrompt, guest := guestShell(t, a, 10*time.Minute)
	shellPrompt()
	guest("cat /proc/cpuinfo | grep -c processor", "\n3\r")
	checkTickless(t, guest, 3)
	split := counterRun(t, a, 2000, 5*time.Minute)
	t.Logf("node 3 dvm stat after the split run:\n%s", run(t, nodes[3], "dvm stat", time.Minute))
	if out := run(t, nodes[3], "node evacuate 3", time.Minute); !strings.Contains(out, "moving 1 vCPUs away") {
		t.Fatalf("node evacuate 3:\n%s", out)
	}
	two := counterRun(t, a, 2000, 5*time.Minute)
	t.Logf("sharedcounter, 2000 acquisitions per thread, 3 threads: %v with a vCPU on each of 3 nodes, %v on 2 nodes (guest time, dilated 10x: QEMU's TSC)", split, two)
	if bad := guestCrash.FindAllString(a.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log has %d crash lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	// How often the slice watch had to end a turn the slice timer did
	// not (see hv's slicewatch.go): the second way back to a core.
	if err := detachConsole(a, time.Minute); err != nil {
		t.Fatalf("node 1: %v", err)
	}
	for i := 1; i <= c.Nodes; i++ {
		t.Logf("node %d: %s", i, run(t, nodes[i], "vm slice", time.Minute))
	}
}

// requireQEMUDistLinux skips a long test of Linux across QEMU AMD-V
// nodes with a vCPU on each unless BIGIRON_E2E_SLOW=1. Such runs were
// once slow for two reasons, both now mended: QEMU's TCG asks for write
// access to every guest page table it walks under nested paging
// (ptw_translate in target/i386/tcg/sysemu/excp_helper.c, QEMU 7.2 and
// later), so the kernel's page tables crossed between the nodes after
// every exit (walk windows keep them local, on by default for Linux);
// and the guest's CPUID lacked ARAT, so every CPU ticked periodically
// and read the timekeeper's pages at every tick. TestQEMUClusterLinuxAMDV
// and TestQEMUClusterLinuxGuestIO now take about a minute each and run
// in make test. What this still skips boots Debian from an NBD disk and
// measures its I/O from vCPU 1 across the nodes (login, write loop,
// iperf3, fio, a second start): tens of minutes.
func requireQEMUDistLinux(t *testing.T) {
	requireSlow(t, "Debian from an NBD disk across two QEMU nodes, with its I/O measured from vCPU 1, takes tens of minutes in QEMU's TCG")
}

// requireSlow skips a test that takes too long, or fails too often for
// a reason this project does not control, to run in make test, unless
// BIGIRON_E2E_SLOW=1; why says which.
func requireSlow(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("BIGIRON_E2E_SLOW") != "1" {
		t.Skipf("opt-in (BIGIRON_E2E_SLOW=1): %s", why)
	}
}

// bootQEMUCluster3 boots c, three QEMU nodes, and returns them with
// their consoles (index 0 unused). If the test fails, each node's
// console's end and what it answers to diag are logged, node 1 first
// leaving the guest's console if on it.
func bootQEMUCluster3(t *testing.T, dir string, c launch.Cluster, diag ...string) ([]*node, []*serial.Console) {
	t.Helper()
	nodes := bootQEMUCluster(t, dir, c)
	consoles := make([]*serial.Console, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		consoles[i] = nodes[i].con
	}
	t.Cleanup(func() {
		if t.Failed() {
			nodes[1].con.Write([]byte{0x1D}) // off the guest's console, if on it
			for i := 1; i <= c.Nodes; i++ {
				out := nodes[i].con.Output()
				t.Logf("node %d's console, its end:\n%s", i, out[max(0, len(out)-3000):])
				t.Logf("node %d says:\n%s", i, diagnose(nodes[i], diag...))
			}
		}
	})
	return nodes, consoles
}
