// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestQEMUSchedulerStress runs the shell's stress command on a 2-core
// node in QEMU's TCG, a thread per core: short stop-the-world pauses one
// after another while goroutines wake each other on both cores. Under an
// emulator whose threads the host preempts, the Go scheduler then often
// finds no idle M for a P and asks the board for a third hardware thread,
// which a 2-core node does not have. The node must take such a P back
// and go on: it answers the next command, and the command reports how
// often the runtime asked. When the board dropped the request, the P was
// lost and the node hung at its next stop-the-world, inside the first
// stress command (and, rarely, while a guest ran: TestQEMULinuxAMDV's
// stalls).
//
// The rounds go on until the runtime has asked at least once, at most
// stressRounds of them; a run where it never asked fails, since it shows
// nothing.
func TestQEMUSchedulerStress(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	n := bootQ35(t)
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	const stressRounds = 6
	line := regexp.MustCompile(`stress: (\d+) stop-the-world pauses .* in (\S+)\r?\n.*beyond the cores (\d+) times \((\d+) since boot\)`)
	asked := 0
	for round := 1; round <= stressRounds && asked == 0; round++ {
		out := run(t, n, "stress 20s", 2*time.Minute)
		m := line.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("stress round %d:\n%s", round, out)
		}
		asked, _ = strconv.Atoi(m[4])
		t.Logf("round %d: %s pauses in %s; the runtime asked for an extra thread %s times (%d since boot)", round, m[1], m[2], m[3], asked)
		if up := run(t, n, "uptime", 30*time.Second); !regexp.MustCompile(`up \d`).MatchString(up) {
			t.Fatalf("uptime after stress round %d: %q", round, up)
		}
	}
	if asked == 0 {
		t.Fatalf("in %d rounds of 20 s the Go runtime never asked for a hardware thread beyond the cores: the test exercised nothing", stressRounds)
	}
	if cpus := run(t, n, "cpus", 30*time.Second); !regexp.MustCompile(`beyond the cores \d+ times`).MatchString(cpus) {
		t.Errorf("cpus does not report the runtime's requests:\n%s", cpus)
	}
}
