// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/big-iron/big-iron/hyperkernel/dvm"
	"github.com/big-iron/big-iron/hyperkernel/shell"
	"github.com/big-iron/big-iron/hyperkernel/testguest"
)

// DistStart is what `dvm start` asks for.
type DistStart struct {
	Nodes      int // nodes taking part (0..Nodes-1); 0 means every member
	VCPUs      int // 0 means one per node
	Iterations int // counter iterations per vCPU
}

// DistVCPU is one row of `dvm stat`'s vCPU table.
type DistVCPU struct {
	ID    int
	Node  int  // where this node believes the vCPU runs
	Here  bool // it runs on this node
	State string
}

// DistStatus is this node's view of the distributed VM.
type DistStatus struct {
	Spec    dvm.Spec
	Self    int           // this node's cluster id
	Index   int           // its index among the VM's nodes (0..Nodes-1)
	Elapsed time.Duration // since this node created its share
	Stats   dvm.Stats
	VCPUs   []DistVCPU
	Outcome string // empty while running
}

// DistRunner runs distributed VMs: implemented by the bare-metal Dist.
type DistRunner interface {
	// Start creates and starts a VM, writing one line per step to
	// progress.
	Start(req DistStart, progress io.Writer) (dvm.Spec, error)
	Status() (DistStatus, error)
	Peek(gpa uint64) (uint32, error)
	Migrate(vcpu, node int) error
	// Evacuate moves every vCPU off a node and has it give back the page
	// copies it does not home; it returns the vCPUs it moved.
	Evacuate(node int) (int, error)
	Stop() error
}

// DistCommands returns the shell commands of distributed VMs: `dvm`,
// `pages` and `migrate`. A nil runner makes them say why (unavailable).
func DistCommands(r DistRunner, unavailable string) []*shell.Command {
	need := func(w io.Writer) bool {
		if r == nil {
			fmt.Fprintf(w, "distributed VMs unavailable: %s\n", unavailable)
			return false
		}
		return true
	}
	return []*shell.Command{
		{
			Name:  "dvm",
			Usage: "dvm start [nodes=N] [vcpus=N] [iters=N] | stat | peek GPA | evacuate NODE | stop",
			Help:  "run the counter test guest as one VM across cluster nodes",
			Run: func(w io.Writer, args []string) error {
				if len(args) == 0 {
					return fmt.Errorf("%w: dvm needs a subcommand: start, stat, peek or stop", shell.ErrUsage)
				}
				switch args[0] {
				case "start":
					req := DistStart{Iterations: testguest.DefaultCounterIterations}
					for _, a := range args[1:] {
						k, v, ok := strings.Cut(a, "=")
						n, err := strconv.Atoi(v)
						if !ok || err != nil || n < 1 {
							return fmt.Errorf("%w: dvm start: bad argument %q (want key=positive number)", shell.ErrUsage, a)
						}
						switch k {
						case "nodes":
							req.Nodes = n
						case "vcpus":
							req.VCPUs = n
						case "iters":
							req.Iterations = n
						default:
							return fmt.Errorf("%w: dvm start: unknown argument %q", shell.ErrUsage, k)
						}
					}
					if !need(w) {
						return nil
					}
					spec, err := r.Start(req, w)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "dvm %d: counter guest, %d vCPUs on %d nodes, %d MiB, %d iterations per vCPU: started\n",
						spec.ID, spec.VCPUs, spec.Nodes, spec.Pages*4096>>20, spec.Arg)
					return nil
				case "stat":
					if len(args) != 1 {
						return fmt.Errorf("%w: dvm stat takes no arguments", shell.ErrUsage)
					}
					if !need(w) {
						return nil
					}
					st, err := r.Status()
					if err != nil {
						return err
					}
					writeDistStatus(w, &st, true)
					return nil
				case "peek":
					if len(args) != 2 {
						return fmt.Errorf("%w: dvm peek needs a guest-physical address", shell.ErrUsage)
					}
					gpa, err := strconv.ParseUint(args[1], 0, 64)
					if err != nil || gpa%4 != 0 {
						return fmt.Errorf("%w: dvm peek: bad address %q (want a 4-byte aligned number)", shell.ErrUsage, args[1])
					}
					if !need(w) {
						return nil
					}
					v, err := r.Peek(gpa)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "%#x: %d (%#x)\n", gpa, v, v)
					return nil
				case "evacuate":
					if len(args) != 2 {
						return fmt.Errorf("%w: dvm evacuate needs a node", shell.ErrUsage)
					}
					n, err := strconv.Atoi(args[1])
					if err != nil || n < 0 {
						return fmt.Errorf("%w: dvm evacuate: bad node %q", shell.ErrUsage, args[1])
					}
					if !need(w) {
						return nil
					}
					moved, err := r.Evacuate(n)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "node %d: moving %d vCPUs away; it then gives back the page copies it does not home\n", n, moved)
					return nil
				case "stop":
					if !need(w) {
						return nil
					}
					return r.Stop()
				}
				return fmt.Errorf("%w: dvm: unknown subcommand %q", shell.ErrUsage, args[0])
			},
		},
		{
			Name:  "pages",
			Usage: "pages",
			Help:  "page placement and remote-fault rates of the distributed VM on this node",
			Run: func(w io.Writer, args []string) error {
				if len(args) != 0 {
					return fmt.Errorf("%w: pages takes no arguments", shell.ErrUsage)
				}
				if !need(w) {
					return nil
				}
				st, err := r.Status()
				if err != nil {
					return err
				}
				writeDistStatus(w, &st, false)
				return nil
			},
		},
		{
			Name:  "migrate",
			Usage: "migrate VCPU NODE",
			Help:  "move a vCPU of the distributed VM to another node while it runs",
			Run: func(w io.Writer, args []string) error {
				if len(args) != 2 {
					return fmt.Errorf("%w: migrate needs a vCPU and a node", shell.ErrUsage)
				}
				v, err1 := strconv.Atoi(args[0])
				n, err2 := strconv.Atoi(args[1])
				if err1 != nil || err2 != nil || v < 0 || n < 0 {
					return fmt.Errorf("%w: migrate: bad vCPU %q or node %q", shell.ErrUsage, args[0], args[1])
				}
				if !need(w) {
					return nil
				}
				if err := r.Migrate(v, n); err != nil {
					return err
				}
				fmt.Fprintf(w, "vCPU %d: moving to node %d at its next exit\n", v, n)
				return nil
			},
		},
	}
}

// writeDistStatus prints a status: placement and rates, and with full
// also the vCPU table.
func writeDistStatus(w io.Writer, st *DistStatus, full bool) {
	s := &st.Stats
	secs := st.Elapsed.Seconds()
	if secs <= 0 {
		secs = 1
	}
	state := st.Outcome
	if state == "" {
		state = "running"
	}
	fmt.Fprintf(w, "dvm %d on node %d (%d of %d in the VM): %s, %v\n", st.Spec.ID, st.Self, st.Index, st.Spec.Nodes, state, st.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  pages: %d in the VM, %d homed here, held here %d shared + %d modified\n",
		st.Spec.Pages, homedHere(st), s.Shared, s.Modified)
	avg := time.Duration(0)
	if s.RemoteWaits > 0 {
		avg = s.WaitTime / time.Duration(s.RemoteWaits)
	}
	fmt.Fprintf(w, "  faults: %d (%d remote, %.1f/s), waited %d times, %v on average\n",
		s.Memory.Faults, s.Memory.RemoteFaults, float64(s.Memory.RemoteFaults)/secs, s.RemoteWaits, avg.Round(time.Microsecond))
	fmt.Fprintf(w, "  coherence: %d messages out (%d with a page), %d bytes out, %d messages in, %d bytes in, %d invalidations, %d rejected\n",
		s.Memory.Messages, s.Memory.DataMessages, s.Memory.Bytes, s.Received, s.BytesIn, s.Memory.Invalidations, s.Rejected)
	fmt.Fprintf(w, "  vCPU migrations: %d out, %d in (%.2f/s), %d bytes out\n",
		s.Migration.MigrationsOut, s.Migration.MigrationsIn, float64(s.Migration.MigrationsOut+s.Migration.MigrationsIn)/secs, s.Migration.Bytes)
	if !full {
		return
	}
	fmt.Fprintf(w, "  %-5s %-5s %s\n", "VCPU", "NODE", "STATE")
	for _, v := range st.VCPUs {
		fmt.Fprintf(w, "  %-5d %-5d %s\n", v.ID, v.Node, v.State)
	}
}

// homedHere counts the pages whose home is this node under striping.
func homedHere(st *DistStatus) int {
	n := st.Spec.Nodes
	if n <= 0 {
		return 0
	}
	c := st.Spec.Pages / n
	if st.Index < st.Spec.Pages%n {
		c++
	}
	return c
}
