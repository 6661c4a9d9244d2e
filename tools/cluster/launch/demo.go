// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package launch

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// Prompt is the hyperkernel shell's prompt.
const Prompt = "bigiron> "

// GuestReady is what the guest's initramfs prints once its shell runs.
const GuestReady = "big-iron guest: initramfs ready"

// Step is one command of a scripted start, typed on node Node's console
// (nodes count from 1) and done when Want appears after it.
type Step struct {
	Node int
	// Line is typed; empty only waits for Want.
	Line string
	Want string
	// Fail lists texts that end the step, and the script, with what the
	// node printed (an error, a missing capability).
	Fail []string
	// Retry types Line again until Want appears: for a status that
	// changes (the membership as nodes join).
	Retry   bool
	Timeout time.Duration
}

// LinuxStartLine is the shell command that starts Debian's Linux (an
// image built with GUEST=linux) as one VM with one vCPU per node of the
// cluster. The vCPUs start on node 1, where the guest's memory is homed
// and its devices are, so that the kernel boots at local speed; the
// demo moves them out once the guest is up. emu is bochs, qemu (TCG) or
// kvm (QEMU with KVM). In the emulators a page crossing costs
// milliseconds (Bochs' network takes a frame per emulated millisecond;
// QEMU's TCG walks every guest page table as a write under nested
// paging, so the page tables cross after every exit), so there the
// guest is told its clock runs ten times faster than it does
// (dilate=10): its 4 ms tick is then 40 ms, longer than a crossing.
// extra (dvm start's other arguments, such as numa=on) goes at the end.
func (c Cluster) LinuxStartLine(emu, extra string) string {
	line := fmt.Sprintf("dvm start guest=linux vcpus=%d mem=128M place=node0", c.Nodes)
	if emu == "bochs" || emu == "qemu" {
		line += " dilate=10"
	}
	if extra = strings.TrimSpace(extra); extra != "" {
		line += " " + extra
	}
	return line
}

// LinuxDemo is the scripted start of `make cluster GUEST=linux`: wait for
// every node's shell and for all of them in the membership, start the
// guest on node 1 (LinuxStartLine with extra), attach node 1's console to it, wait
// for the guest's shell, then move vCPU i to node i+1 from that node's
// console, so that the VM runs with one vCPU on every node.
func (c Cluster) LinuxDemo(emu, extra string) []Step {
	var steps []Step
	for i := 1; i <= c.Nodes; i++ {
		steps = append(steps, Step{Node: i, Want: Prompt, Timeout: 10 * time.Minute})
	}
	members := make([]string, c.Nodes)
	for i := range members {
		members[i] = fmt.Sprint(i + 1)
	}
	steps = append(steps,
		Step{Node: 1, Line: "nodes", Want: "members [" + strings.Join(members, " ") + "]: quorum", Retry: true, Timeout: 5 * time.Minute},
		Step{Node: 1, Line: c.LinuxStartLine(emu, extra), Want: "started", Fail: shellFailures, Timeout: 10 * time.Minute},
		Step{Node: 1, Line: "console", Want: GuestReady, Fail: guestFailures, Timeout: 60 * time.Minute},
	)
	for i := 2; i <= c.Nodes; i++ {
		steps = append(steps, Step{Node: i, Line: fmt.Sprintf("migrate %d %d", i-1, i), Want: fmt.Sprintf("moving to node %d", i), Fail: shellFailures, Timeout: 5 * time.Minute})
	}
	return steps
}

// shellFailures are what the hyperkernel shell prints when a command
// fails or its machine cannot run VMs (QEMU without KVM has no VT-x).
var shellFailures = []string{"error: ", "unavailable: "}

// guestFailures are what a guest that will not reach its shell prints.
var guestFailures = []string{"Kernel panic", "; press a key]"}

// retryEvery is how long a Retry step waits for its text before typing
// its line again.
const retryEvery = 3 * time.Second

// Play runs steps on consoles (consoles[i] is node i's; index 0 is
// unused) and tells log what it types, each on a line of its own.
func Play(steps []Step, consoles []*serial.Console, log io.Writer) error {
	for _, s := range steps {
		if s.Node < 1 || s.Node >= len(consoles) || consoles[s.Node] == nil {
			return fmt.Errorf("launch: step %q: no console for node %d", s.Line, s.Node)
		}
		con := consoles[s.Node]
		deadline := time.Now().Add(s.Timeout)
		for {
			if s.Line != "" {
				// On a line of its own: the console's last line may
				// not have ended.
				fmt.Fprintf(log, "\ncluster: node %d: %s\n", s.Node, s.Line)
				if err := con.Send(s.Line); err != nil {
					return fmt.Errorf("launch: node %d: typing %q: %w", s.Node, s.Line, err)
				}
			}
			wait := time.Until(deadline)
			if s.Retry {
				wait = min(wait, retryEvery)
			}
			i, out, err := con.ExpectAny(append([]string{s.Want}, s.Fail...), wait)
			if err == nil && i > 0 {
				// The rest of the line says what went wrong.
				rest, _ := con.Expect("\n", 5*time.Second)
				return fmt.Errorf("launch: node %d: %q: %s", s.Node, s.Line, strings.TrimSpace(lastLine(out)+rest))
			}
			if err == nil {
				break
			}
			if !s.Retry || time.Now().After(deadline) || errors.Is(err, serial.ErrClosed) {
				return fmt.Errorf("launch: node %d: %q: %w", s.Node, s.Line, err)
			}
		}
	}
	return nil
}

// lastLine is the last line of out (which ends where the text Play
// looked for was found).
func lastLine(out string) string {
	out = strings.TrimRight(out, "\r\n")
	if i := strings.LastIndexAny(out, "\r\n"); i >= 0 {
		out = out[i+1:]
	}
	return out
}
