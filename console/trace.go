// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console/shell"
)

// traceUsage is the form of `trace`.
const traceUsage = "on | off | [show] [kind=fault|invalidate|migrate-out|migrate-in|device-read] [vcpu=N] [wait=DURATION] [last=N]"

// TraceCommand returns `trace`: it starts and stops the node's event
// ring and prints its events, filtered. r is nil where the node records
// no events.
func TraceCommand(r *trace.Ring) *shell.Command {
	return &shell.Command{
		Name:  "trace",
		Usage: traceUsage,
		Help:  "record this node's VM events (faults and their waits, invalidations, migrations, device reads) and show them",
		Run: func(w io.Writer, args []string) error {
			if r == nil {
				return fmt.Errorf("this node records no events (no distributed VMs)")
			}
			if len(args) == 1 && (args[0] == "on" || args[0] == "off") {
				if args[0] == "on" {
					r.Start()
				} else {
					r.Stop()
				}
				writeTraceState(w, r)
				return nil
			}
			if len(args) > 0 && args[0] == "show" {
				args = args[1:]
			}
			return showTrace(w, r, args)
		},
	}
}

// writeTraceState says whether the ring records and what it holds.
func writeTraceState(w io.Writer, r *trace.Ring) {
	state := "off"
	if r.On() {
		state = "on"
	}
	fmt.Fprintf(w, "trace %s: %d events recorded, the latest %d kept\n", state, r.Recorded(), r.Len())
}

// showTrace prints the events the filter in args selects.
func showTrace(w io.Writer, r *trace.Ring, args []string) error {
	var f trace.Filter
	last, vcpu := 20, 0
	var a Args
	a.Func("kind", func(v string) (err error) { f.Kind, err = trace.ParseKind(v); return err })
	a.Int("vcpu", &vcpu, 0, math.MaxInt32)
	a.Func("wait", func(v string) (err error) {
		if f.MinWait, err = time.ParseDuration(v); err == nil && f.MinWait < 0 {
			err = fmt.Errorf("a negative wait")
		}
		return err
	})
	a.Int("last", &last, 1, r.Len())
	if err := a.Parse(args); err != nil {
		return err
	}
	if a.Given("vcpu") {
		v := int32(vcpu)
		f.VCPU = &v
	}
	writeTraceState(w, r)
	evs, _ := r.Events(nil, 0, f, last)
	for i := range evs {
		fmt.Fprintln(w, evs[i].String())
	}
	return nil
}
