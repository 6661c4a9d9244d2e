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

	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/tools/cluster/launch"
)

// guestReady is what the initramfs's uinit script prints once the
// modules are loaded (tools/mkinitramfs).
const guestReady = launch.GuestReady

// badBootLines are kernel messages that fail a Linux boot (issue 4).
var badBootLines = regexp.MustCompile(`(?m)^.*(BUG|[Kk]ernel panic|soft lockup|clocksource.*unstable|Marking clocksource .* as unstable).*$`)

// buildGuestImage builds the GUEST=linux image (Debian's kernel and the
// u-root initramfs embedded) into its own directory. It skips, naming
// what is missing, when Debian's kernel package cannot be had.
func buildGuestImage(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	buildGuestFiles(t)
	build := filepath.Join("build", "e2e-linux")
	cmd := exec.Command("make", "-C", root, "image", "GUEST=linux", "BUILD="+build)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image GUEST=linux: %v\n%s", err, out)
	}
	dir := filepath.Join(root, build)
	if fi, err := os.Stat(filepath.Join(dir, "bigiron.iso")); err == nil {
		t.Logf("image bigiron.iso with the guest: %d bytes", fi.Size())
	}
	return dir
}

// buildGuestFiles builds the guest's kernel and initramfs (make guest)
// and returns the directory holding vmlinuz and initramfs.cpio.gz.
func buildGuestFiles(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("missing: %s (to fetch Debian's kernel package)", tool)
		}
	}
	if out, err := exec.Command("make", "-C", root, "guest").CombinedOutput(); err != nil {
		if _, serr := os.Stat(filepath.Join(root, "build/guest/root/.extracted")); serr != nil {
			t.Skipf("missing: Debian's linux-image-amd64 package (make guest: %v)\n%s", err, out)
		}
		t.Fatalf("make guest: %v\n%s", err, out)
	}
	return filepath.Join(root, "build/guest/image")
}

// TestBochsLinux boots Debian's stock kernel with the u-root initramfs
// in a 2-vCPU VM of 1700 MiB on a 2-core Bochs node of 2 GiB, attaches to
// its console and checks what the guest sees (issue 4's acceptance) and
// that it has its memory (issue 23's).
func TestBochsLinux(t *testing.T) {
	requireE2E(t, "bochs", "make", "grub-mkrescue", "xorriso", "mformat")
	dir := buildGuestImage(t)
	n := bootBochsMem(t, dir, 2, 2048)
	if _, err := n.con.Expect(prompt, 5*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	// A guest larger than the node is refused with the figures and takes
	// nothing (any guest of 256 MiB or more crashed the node, issue 23);
	// one of 1700 MiB then boots: 90% of what its kernel reports
	// (MemTotal) then fits beside the ~130 MiB its initramfs and kernel
	// keep (with 1536 MiB, 90% left 0-5 MiB of MemAvailable).
	guestMemory := regexp.MustCompile(`guest memory: .*`)
	before := guestMemory.FindString(run(t, n, "vm stat", time.Minute))
	if out := run(t, n, "vm boot linux vcpus=2 mem=2G", time.Minute); !strings.Contains(out, "does not fit: this node has") || !strings.Contains(out, "of RAM fits") {
		t.Fatalf("vm boot linux mem=2G on a 2 GiB node:\n%s", out)
	}
	if after := guestMemory.FindString(run(t, n, "vm stat", time.Minute)); before == "" || after != before {
		t.Errorf("the refused VM changed the node's guest memory: %q, then %q", before, after)
	}
	out := run(t, n, "vm boot linux vcpus=2 mem=1700M", time.Minute)
	if !strings.Contains(out, "started") || !strings.Contains(out, "page tables") {
		t.Fatalf("vm boot linux:\n%s", out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	start := time.Now()
	if err := n.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect(guestReady, 25*time.Minute); err != nil {
		t.Fatalf("the guest did not reach its shell: %v\n%s", err, n.con.Output())
	}
	t.Logf("guest shell after %v (Bochs, 2 cores)", time.Since(start).Round(time.Second))
	// Each command is typed at the shell's prompt, as an operator does.
	// (Typing ahead while the guest writes to its console once left the
	// console without input: see the issue notes.)
	shellPrompt, guest := guestShell(t, n, 3*time.Minute)
	shellPrompt()
	if err := n.con.Send("cat /proc/uptime"); err != nil {
		t.Fatal(err)
	}
	n.con.Expect("/proc/uptime", time.Minute)
	n.con.Expect("\n", time.Minute) // the end of the echoed command
	up, _ := n.con.Expect("\n", time.Minute)
	shellPrompt()
	t.Logf("guest /proc/uptime at its shell: %q (Bochs' TSC counts instructions at 100 M/s per core)", strings.TrimSpace(up))
	guest("cat /proc/cpuinfo | grep -c processor", "\n2\r")
	guest("echo hello from the guest", "\nhello from the guest")
	// The guest has its 1700 MiB, less what the kernel keeps for itself,
	// and memtest writes and verifies 90% of it (less if MemAvailable is
	// short that boot) from both vCPUs.
	mem := guest("grep MemTotal /proc/meminfo", " kB")
	if m := regexp.MustCompile(`MemTotal:\s+(\d+)`).FindStringSubmatch(mem); m == nil || atoi(m[1]) < 1600000 {
		t.Errorf("guest MemTotal: want over 1600000 kB of 1700 MiB:\n%s", mem)
	}
	if err := n.con.Send("memtest -share 0.9"); err != nil {
		t.Fatal(err)
	}
	which, memtest, err := n.con.ExpectAny([]string{"memtest: ok", "memtest: FAILED"}, 20*time.Minute)
	if err != nil || which != 0 {
		t.Fatalf("memtest: %v\n%s", err, memtest)
	}
	shellPrompt()
	t.Logf("memtest (Bochs):\n%s", memtest)
	// 90% of MemTotal, trimmed to what MemAvailable allows that boot.
	if m := regexp.MustCompile(`memtest: \d+ MiB of \d+ MiB \((\d+)%\) on 2 CPUs`).FindStringSubmatch(memtest); m == nil || atoi(m[1]) < 85 || atoi(m[1]) > 90 {
		t.Errorf("memtest did not test 85-90%% of the guest's RAM on both vCPUs:\n%s", memtest)
	}
	checkAVX(t, n, shellPrompt, 2, "", "Bochs, VT-x")
	// The virtio-mmio block device was found in the DSDT, negotiated and
	// read (its capacity) at probe.
	if !strings.Contains(n.con.Output(), "virtio_blk virtio0: [vda] 16384 512-byte logical blocks (8.39 MB/8.00 MiB)") {
		t.Errorf("no virtio block device in the guest's log")
	}
	// Block I/O round trip: write, drop the page cache so that the read
	// goes to the device, read back. (Matches start at a line start: the
	// echoed command line holds the same words.)
	guest("echo hello-block > /dev/vda && sync && echo 3 > /proc/sys/vm/drop_caches && echo written", "\nwritten")
	guest("dd if=/dev/vda bs=12 count=1", "\nhello-block")

	// Detach (Ctrl-]) and look at the VM from the hyperkernel.
	if _, err := n.con.Write([]byte{0x1D}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect("[detached from vm 1]", time.Minute); err != nil {
		t.Fatalf("detach: %v\n%s", err, n.con.Output())
	}
	stat := run(t, n, "vm stat 1", time.Minute)
	t.Logf("vm stat 1:\n%s", stat)
	vcpus := run(t, n, "vcpus", time.Minute)
	t.Logf("vcpus:\n%s", vcpus)
	if strings.Count(vcpus, "running")+strings.Count(vcpus, "halted") != 2 {
		t.Errorf("want 2 started vCPUs:\n%s", vcpus)
	}
	if list := run(t, n, "vm list", time.Minute); !strings.Contains(list, "running") {
		t.Errorf("the guest is not running after detach:\n%s", list)
	}
	if bad := badBootLines.FindAllString(n.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's boot log has %d bad lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// guestShell returns helpers for a guest's shell on n's console: prompt
// waits for the shell's prompt; run types a line, waits for want in
// what follows, then for the prompt, and returns the output up to want.
// Each wait fails the test after timeout.
func guestShell(t *testing.T, n *node, timeout time.Duration) (prompt func(), run func(line, want string) string) {
	prompt = func() {
		t.Helper()
		if _, err := n.con.Expect("$ ", timeout); err != nil {
			t.Fatalf("no guest shell prompt: %v\n%s", err, n.con.Output())
		}
	}
	run = func(line, want string) string {
		t.Helper()
		if err := n.con.Send(line); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := n.con.Expect(want, timeout)
		if err != nil {
			diag := stuckGuest(n)
			t.Fatalf("guest %q: %v\n%s\n%s", line, err, n.con.Output(), diag)
		}
		prompt()
		// Slow answers are logged: where a run's time went, and how
		// near a command came to its timeout.
		if d := time.Since(start); d > timeout/10 {
			t.Logf("guest %q answered after %v (timeout %v)", line, d.Round(time.Second), timeout)
		}
		return got
	}
	return prompt, run
}

// stuckGuest detaches from a guest console that stopped answering and
// returns what the node says of its VMs and vCPUs (or why it said
// nothing), for the failure's log.
func stuckGuest(n *node) string {
	if err := detachConsole(n, 30*time.Second); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, cmd := range []string{"vm list", "vcpus", "vm stat", "disks"} {
		if err := n.con.Send(cmd); err != nil {
			return b.String() + cmd + ": " + err.Error()
		}
		out, err := n.con.Expect(prompt, 30*time.Second)
		fmt.Fprintf(&b, "%s\n%s\n", out, errString(err))
	}
	return b.String()
}

// detachConsole leaves the guest's console on n for the node's shell and
// reads up to its prompt, each step within timeout.
func detachConsole(n *node, timeout time.Duration) error {
	if _, err := n.con.Write([]byte{console.DetachKey}); err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	if _, err := n.con.Expect("detached from vm", timeout); err != nil {
		return fmt.Errorf("the node did not detach the console: %w", err)
	}
	if _, err := n.con.Expect(prompt, timeout); err != nil {
		return fmt.Errorf("no shell prompt after detaching: %w", err)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkAVX runs avxcheck in the guest at its shell on n (the prompt
// already read): the guest's CPUID offers AVX, its kernel turns AVX
// state on in XCR0, and every thread's YMM registers survive the kernel
// switching threads and the hyperkernel switching the guest's state at
// each exit (XSAVE and XRSTOR with the guest's XCR0), on each of its
// cpus CPUs. args are avxcheck's flags; what names the node for the
// log.
func checkAVX(t *testing.T, n *node, prompt func(), cpus int, args, what string) {
	t.Helper()
	if err := n.con.Send(strings.TrimSpace("avxcheck " + args)); err != nil {
		t.Fatal(err)
	}
	which, out, err := n.con.ExpectAny([]string{"avxcheck: ok", "avxcheck: FAILED"}, 20*time.Minute)
	if err != nil || which != 0 {
		t.Fatalf("avxcheck (%s): %v\n%s", what, err, out)
	}
	prompt()
	t.Logf("avxcheck (%s):\n%s", what, out)
	if !strings.Contains(out, fmt.Sprintf(" threads on %d CPUs,", cpus)) {
		t.Errorf("avxcheck did not run on the guest's %d CPUs", cpus)
	}
}

// atoi is strconv.Atoi for digits a pattern matched.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
