// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console/shell"
)

func TestTraceCommand(t *testing.T) {
	r := trace.NewRing(4)
	cmds := []*shell.Command{TraceCommand(r)}
	if out, err := run(t, cmds, "trace on"); err != nil || !strings.Contains(out, "trace on: 0 events recorded, the latest 16 kept") {
		t.Fatalf("trace on: %q, %v", out, err)
	}
	for i := 0; i < 5; i++ {
		r.Record(trace.Event{Kind: trace.KindFault, VCPU: int32(i % 2), Addr: uint64(i) << 12, Wait: time.Duration(i) * time.Millisecond})
	}
	r.Record(trace.Event{Kind: trace.KindMigrateOut, VCPU: 1, Node: 2, Bytes: 3000})
	out, err := run(t, cmds, "trace show kind=fault vcpu=1 wait=2ms")
	if err != nil || strings.Count(out, "fault") != 1 || !strings.Contains(out, "gpa 0x3000 read, waited 3ms") {
		t.Errorf("trace show kind=fault vcpu=1 wait=2ms: %q, %v", out, err)
	}
	if out, _ = run(t, cmds, "trace last=2"); strings.Count(out, "\n") != 3 || !strings.Contains(out, "migrate-out vcpu 1 to node 2, 3000 bytes") {
		t.Errorf("trace last=2: %q", out)
	}
	if out, _ = run(t, cmds, "trace off"); !strings.Contains(out, "trace off: 6 events") {
		t.Errorf("trace off: %q", out)
	}
	for _, bad := range []string{"trace kind=faults", "trace wait=-1s", "trace last=17", "trace vcpu=x", "trace sideways"} {
		if _, err := run(t, cmds, bad); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if _, err := run(t, []*shell.Command{TraceCommand(nil)}, "trace on"); err == nil {
		t.Error("trace on without a ring")
	}
}
