// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// guestMemoryInUse is the node's guest memory in use as `vm stat` says.
func guestMemoryInUse(t *testing.T, n *node) string {
	t.Helper()
	out := run(t, n, "vm stat", time.Minute)
	m := regexp.MustCompile(`guest memory: (\S+ \S+) in use`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("vm stat shows no guest memory:\n%s", out)
	}
	return m[1]
}

// checkCreationUnwinds makes the frame allocations on node inject fail
// from the k-th on while node start runs create, for k = 0, 1, 2, ...
// until creating needs fewer. Every attempt must be refused saying
// refusal (the injected failure, or a node that could not build its
// share) and leave every node's guest memory as it was; the VM created
// last is stopped with stop (issue 23: every error path of VM
// creation releases exactly what it took and leaves the node able to
// start the next VM).
func checkCreationUnwinds(t *testing.T, start, inject *node, others []*node, create, refusal, stop string, timeout time.Duration) {
	t.Helper()
	nodes := append([]*node{start, inject}, others...)
	before := make([]string, len(nodes))
	for i, n := range nodes {
		before[i] = guestMemoryInUse(t, n)
	}
	same := func(when, out string) {
		t.Helper()
		for i, n := range nodes {
			if got := guestMemoryInUse(t, n); got != before[i] {
				time.Sleep(3 * time.Second)
				later := guestMemoryInUse(t, n)
				t.Fatalf("%s: guest memory in use on node %d of %v (start, inject, others...) is %s (3 s later %s), was %s; the command printed:\n%s",
					when, i, len(nodes), got, later, before[i], out)
			}
		}
	}
	// created tries with allocations failing from the k-th on and says
	// whether the VM was created (and stopped again).
	refused := 0
	created := func(k int) bool {
		t.Helper()
		run(t, inject, fmt.Sprintf("vm fail %d", k), time.Minute)
		out := run(t, start, create, timeout)
		if !strings.Contains(out, "error:") {
			run(t, inject, "vm fail off", time.Minute)
			run(t, start, stop, timeout)
			same(fmt.Sprintf("after the VM created with %d allocations was stopped", k), out)
			return true
		}
		if !strings.Contains(out, refusal) {
			t.Fatalf("allocations failing from the %d-th: refused, but not saying %q:\n%s", k, refusal, out)
		}
		same(fmt.Sprintf("after allocations failed from the %d-th", k), out)
		refused++
		return false
	}
	// Every k from 0 to firstAll, then every stride-th until one
	// succeeds, then every k since the last that failed: the paths at
	// the start and at the end each, the long middle (one frame per
	// page, say) sampled.
	const firstAll, stride, limit = 20, 37, 5000
	last := -1
	for k := 0; k < limit; {
		if created(k) {
			for j := last + 1; j < k; j++ {
				if created(j) {
					k = j
					break
				}
			}
			t.Logf("%q: creating takes %d frame allocations on the injected node; failing from each of %d of them, every attempt was refused and unwound", create, k, refused)
			if k == 0 {
				t.Fatal("creating allocated no frame on the injected node")
			}
			return
		}
		last = k
		if k < firstAll {
			k++
		} else {
			k += stride
		}
	}
	t.Fatalf("%q still failed with %d allocations", create, limit)
}
