// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// checkBalance runs the counter with both vCPUs started on node a, whose
// one core they time-share, and balance=policy: the balancer on a moves
// vCPU 1 to node b, whose core is free, by itself, and the count is
// exact. The run is long enough (about a second on one node in QEMU's
// TCG) for the balancer, which looks every 100 ms, to act.
func checkBalance(t *testing.T, a, b *node, policy string, timeout time.Duration) {
	t.Helper()
	const iters = 50000000
	startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 vcpus=2 place=node0 balance=%s iters=%d", policy, iters), timeout)
	m, stat := waitDVM(t, a, 10*time.Minute)
	t.Logf("both vCPUs started on node 1, balance=%s:\n%s", policy, stat)
	checkCounter(t, "balance="+policy, m, iters)
	if !regexp.MustCompile(`vCPU migrations: [1-9]\d* out, .* balance=` + policy + ` chose [1-9]`).MatchString(stat) {
		t.Errorf("balance=%s: node 1 moved no vCPU for load:\n%s", policy, stat)
	}
	run(t, a, "dvm stop", timeout)
}
