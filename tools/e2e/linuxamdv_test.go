// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQEMULinuxAMDV boots Debian's kernel on AMD-V, in QEMU's TCG (-cpu
// max, two cores, 8 GiB): one vCPU and 5 GiB, more than the node has
// below 4 GiB, so that its frames come from above 4 GiB too, and more
// than fits below the guest's own MMIO hole, so that its RAM goes on
// above 4 GiB as on a PC. The guest reaches its shell, sees the memory,
// does block I/O through virtio-blk and memtest verifies 90% of it. The guest's health
// warnings (RCU stalls, soft lockups: QEMU's TSC runs on the wall clock
// while the emulated cores are shared) are counted in the log, not
// failed on, until they are understood.
func TestQEMULinuxAMDV(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	dir := buildGuestImage(t)
	n := bootQEMU(t, "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "8G",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-kernel", filepath.Join(dir, "bigiron.elf"))
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	// The node's memory above 4 GiB is the guests' too.
	if mem := run(t, n, "mem", time.Minute); !regexp.MustCompile(`free for guests: 7\.\d GiB`).MatchString(mem) {
		t.Errorf("mem on an 8 GiB node:\n%s", mem)
	}
	checkCreationUnwinds(t, n, n, nil, "vm boot linux vcpus=1 mem=96M", "fault injection", "vm stop", time.Minute)
	out := run(t, n, "vm boot linux vcpus=1 mem=5G", 3*time.Minute)
	if !strings.Contains(out, "at [0, 0xc0000000) + [0x100000000, 0x180000000): started") {
		t.Fatalf("vm boot linux on AMD-V:\n%s", out)
	}
	// Each whole GiB of the guest's RAM is a 1 GiB huge run of the
	// node's frames, mapped with one 1 GiB nested page (-cpu max has
	// Page1GB): the tables are the PML4 and one PDPT, not a PD per GiB.
	t.Logf("%s", out)
	if m := regexp.MustCompile(`page tables (\d+) KiB`).FindStringSubmatch(out); m == nil || atoi(m[1]) > 8 {
		t.Errorf("the 5 GiB guest's nested page tables: %v KiB, want 8 (1 GiB pages)", m)
	}
	start := time.Now()
	if err := n.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect(guestReady, 10*time.Minute); err != nil {
		t.Fatalf("the guest did not reach its shell: %v\n%s", err, n.con.Output())
	}
	t.Logf("guest shell after %v (QEMU TCG, AMD-V, 2 cores)", time.Since(start).Round(time.Second))
	shellPrompt, guest := guestShell(t, n, 3*time.Minute)
	shellPrompt()
	guest("cat /proc/cpuinfo | grep -c processor", "\n1\r")
	checkTickless(t, guest, 1)
	// Protection keys: offered (pku) and turned on by the kernel
	// (ospke: CR4.PKE), its tasks' PKRU switched at every exit.
	guest("grep -c ospke /proc/cpuinfo", "\n1\r")
	guest("echo hello-block > /dev/vda && sync && echo 3 > /proc/sys/vm/drop_caches && echo written", "\nwritten")
	guest("dd if=/dev/vda bs=12 count=1", "\nhello-block")
	if m := regexp.MustCompile(`Mem:\s+(\d+)`).FindStringSubmatch(guest("free -m", "Swap:")); m == nil || atoi(m[1]) < 4800 {
		t.Errorf("the guest sees %v MiB, want about 5 GiB less the kernel's", m)
	}
	t.Logf("memtest (QEMU TCG, wall clock):\n%s", guest("memtest -share 0.9", "memtest: ok"))
	checkAVX(t, n, shellPrompt, 1, "", "QEMU TCG, AMD-V")
	// Every MSR Linux reads without rdmsr_safe on an AMD processor
	// (SYSCFG among them) is emulated.
	if bad := regexp.MustCompile(`(?m)^.*unchecked MSR access error.*$`).FindAllString(n.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest touched MSRs the hyperkernel does not emulate:\n%s", strings.Join(bad, "\n"))
	}
	warnings := regexp.MustCompile(`(?m)(rcu: INFO|soft lockup|BUG:)`).FindAllString(n.con.Output(), -1)
	t.Logf("guest health warnings (known, not yet failed on): %d", len(warnings))
	checkSliceWatch(t, n, guest)
}

// checkSliceWatch takes the slice timer away from the guest's vCPU (`vm
// slice off`) and runs a loop without exits in the guest beside its
// shell: only the slice watch's NMIs then end the vCPU's turns (and let
// the hyperkernel inject the guest's timer ticks), so the shell answers
// only if they work. Without the watch the loop kept the core for good
// and the node with it (issue 18). guest is the guest's shell on n.
func checkSliceWatch(t *testing.T, n *node, guest func(line, want string) string) {
	t.Helper()
	turns := regexp.MustCompile(`(\d+) turns ended by the watch's NMI`)
	detach := func() {
		t.Helper()
		if err := detachConsole(n, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, n.con.Output())
		}
	}
	attach := func() {
		t.Helper()
		if err := n.con.Send("console"); err != nil {
			t.Fatal(err)
		}
		guest("echo attached", "\nattached")
	}
	detach()
	before := turns.FindStringSubmatch(run(t, n, "vm slice", time.Minute))
	if before == nil {
		t.Fatalf("vm slice shows no slice watch on AMD-V")
	}
	t.Logf("turns the watch ended with the slice timer on, in the whole test so far: %s", before[1])
	if out := run(t, n, "vm slice off", time.Minute); !strings.Contains(out, "slice timer OFF") {
		t.Fatalf("vm slice off:\n%s", out)
	}
	attach()
	start := time.Now()
	guest("while :; do :; done & echo spinning", "\nspinning")
	guest("echo alive-$((6*7))", "\nalive-42")
	guest("kill %1; echo killed", "\nkilled")
	t.Logf("the guest's shell answered beside a loop without exits, the slice timer off, in %v", time.Since(start).Round(time.Millisecond))
	detach()
	out := run(t, n, "vm slice on", time.Minute)
	after := turns.FindStringSubmatch(out)
	if after == nil || atoi(after[1]) <= atoi(before[1]) {
		t.Errorf("the watch ended no turn with the slice timer off:\n%s", out)
	}
	t.Logf("%s", out)
	attach()
}
