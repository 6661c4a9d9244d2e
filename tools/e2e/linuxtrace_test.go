// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/sim/workload"
)

// linuxTraceOut names the file where checkClusterLinux keeps the remote
// faults of its Linux guest, a real run for tools/policytrain/realruns;
// unset, the run is not traced.
const linuxTraceOut = "BIGIRON_E2E_LINUX_TRACE_OUT"

// traceLinuxRun turns the event ring on on each of nodes, if a Linux
// trace is asked for (else it returns nil); the returned function, run
// once the guest's console is detached, writes each node's faults (its ring's latest
// events, node by node) to the file as "VCPU OP GPA" lines, with a
// header saying what ran, and checks that the simulator reads the file
// back with faults for each of the run's vCPUs.
func traceLinuxRun(t *testing.T, what string, vcpus int, nodes ...*node) (save func()) {
	path := os.Getenv(linuxTraceOut)
	if path == "" {
		return nil
	}
	for i, n := range nodes {
		if out := run(t, n, "trace on", time.Minute); !strings.Contains(out, "trace on") {
			t.Fatalf("node %d: trace on:\n%s", i+1, out)
		}
	}
	return func() {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "# A real run: %s,\n# traced on each node (trace on) and taken from its console on %s\n# (trace kind=fault: the latest faults in its ring of %d events), node 1's then node 2's.\n",
			what, time.Now().UTC().Format("2006-01-02"), 1<<14)
		b.WriteString("# vcpu r|w gpa\n")
		for i, n := range nodes {
			out := run(t, n, fmt.Sprintf("trace kind=fault last=%d", 1<<14), 5*time.Minute)
			if err := faultLines(&b, out); err != nil {
				t.Fatalf("node %d's trace: %v", i+1, err)
			}
		}
		wl, err := workload.ParseTrace(bytes.NewReader([]byte(b.String())), "linux")
		if err != nil {
			t.Fatalf("the Linux run's trace: %v", err)
		}
		if len(wl.Streams) != vcpus {
			t.Fatalf("the Linux run's trace has faults of %d vCPUs, want %d", len(wl.Streams), vcpus)
		}
		for v, s := range wl.Streams {
			if len(s) == 0 {
				t.Fatalf("the Linux run's trace has no faults of vCPU %d", v)
			}
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("the Linux run's faults in %s: %d accesses over %d pages", path, wl.Accesses(), wl.Pages)
	}
}

// faultLine matches a fault as `trace` prints it (trace.Event.String).
var faultLine = regexp.MustCompile(`(?m)^\s*[\d.]+\s+fault\s+vcpu (\d+) gpa (0x[0-9a-f]+) (read|write),`)

// faultLines appends the faults in a node's `trace` output to b as
// "VCPU OP GPA" lines; an output without any is an error.
func faultLines(b *strings.Builder, out string) error {
	m := faultLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return fmt.Errorf("no faults in:\n%s", lastLines(out, 20))
	}
	for _, f := range m {
		fmt.Fprintf(b, "%s %c %s\n", f[1], f[3][0], f[2])
	}
	return nil
}

// TestFaultLines: the faults a node's `trace` prints (trace.Event's own
// format) become "VCPU OP GPA" lines; other events are left out, and an
// output without faults is an error. It needs no emulator.
func TestFaultLines(t *testing.T) {
	evs := []trace.Event{
		{Time: 1500 * time.Millisecond, Kind: trace.KindFault, VCPU: 1, Addr: 0x3fd4000, Write: true, Wait: time.Millisecond},
		{Time: 1600 * time.Millisecond, Kind: trace.KindInvalidate, VCPU: -1, Addr: 0x2a07000, Node: 1},
		{Time: 1234567 * time.Millisecond, Kind: trace.KindFault, VCPU: 0, Addr: 0x7623000},
	}
	var out strings.Builder
	out.WriteString("trace on: 3 events recorded, the latest 3 kept\n")
	for i := range evs {
		out.WriteString(evs[i].String() + "\n")
	}
	var b strings.Builder
	if err := faultLines(&b, out.String()); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "1 w 0x3fd4000\n0 r 0x7623000\n"; got != want {
		t.Errorf("from:\n%s\ngot:\n%s\nwant:\n%s", out.String(), got, want)
	}
	if err := faultLines(&b, "trace on: 0 events recorded, the latest 0 kept\n"); err == nil {
		t.Error("an output without faults was taken")
	}
}
