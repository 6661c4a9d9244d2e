// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package launch

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// fakeNode answers the demo's commands as node id of a cluster of n
// nodes would; the membership is complete from the third `nodes` on.
// It records what it was typed.
func fakeNode(t *testing.T, id, n int, typed chan<- string) *serial.Console {
	nodeOut, toConsole := io.Pipe()
	fromConsole, nodeIn := io.Pipe()
	go func() {
		defer toConsole.Close()
		fmt.Fprint(toConsole, Prompt)
		in := bufio.NewReader(fromConsole)
		asked := 0
		for {
			line, err := in.ReadString('\r')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\r")
			typed <- fmt.Sprintf("%d: %s", id, line)
			switch {
			case line == "nodes":
				asked++
				members := "[1]"
				if asked >= 3 {
					members = "[1 2 3]"
				}
				fmt.Fprintf(toConsole, "node %d member, members %s: quorum\r\n%s", id, members, Prompt)
			case strings.HasPrefix(line, "dvm start") && !strings.Contains(line, "color="):
				fmt.Fprintf(toConsole, "dvm 9: Linux, %d vCPUs on %d nodes: started\r\n%s", n, n, Prompt)
			case line == "console":
				fmt.Fprintf(toConsole, "[    0.0] Linux version 6.1\r\n%s\r\n# ", GuestReady)
			case strings.HasPrefix(line, "migrate "):
				var v, to int
				fmt.Sscanf(line, "migrate %d %d", &v, &to)
				fmt.Fprintf(toConsole, "vCPU %d: moving to node %d at its next exit\r\n%s", v, to, Prompt)
			default:
				fmt.Fprintf(toConsole, "error: unknown command\r\n%s", Prompt)
			}
		}
	}()
	t.Cleanup(func() { nodeIn.Close() })
	return serial.NewConsole(nodeOut, nodeIn)
}

func TestLinuxDemo(t *testing.T) {
	c := Cluster{Nodes: 3}
	if got, want := c.LinuxStartLine("bochs", ""), "dvm start guest=linux vcpus=3 mem=128M place=node0 dilate=10"; got != want {
		t.Errorf("LinuxStartLine(bochs) = %q, want %q", got, want)
	}
	if got, want := c.LinuxStartLine("bochs", " numa=on "), "dvm start guest=linux vcpus=3 mem=128M place=node0 dilate=10 numa=on"; got != want {
		t.Errorf("LinuxStartLine(bochs, numa=on) = %q, want %q", got, want)
	}
	if got := c.LinuxStartLine("qemu", ""); !strings.Contains(got, "dilate=10") {
		t.Errorf("LinuxStartLine(qemu) = %q: QEMU's TCG dilates too", got)
	}
	if got := c.LinuxStartLine("kvm", ""); strings.Contains(got, "dilate") {
		t.Errorf("LinuxStartLine(kvm) = %q: no dilation on hardware", got)
	}
	typed := make(chan string, 100)
	consoles := []*serial.Console{nil, fakeNode(t, 1, 3, typed), fakeNode(t, 2, 3, typed), fakeNode(t, 3, 3, typed)}
	var log strings.Builder
	if err := Play(c.LinuxDemo("bochs", ""), consoles, &log); err != nil {
		t.Fatalf("Play: %v\n%s", err, log.String())
	}
	close(typed)
	var got []string
	for s := range typed {
		got = append(got, s)
	}
	want := []string{"1: nodes", "1: nodes", "1: nodes", "1: " + c.LinuxStartLine("bochs", ""), "1: console", "2: migrate 1 2", "3: migrate 2 3"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("typed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(log.String(), "cluster: node 3: migrate 2 3\n") {
		t.Errorf("log does not show what was typed:\n%s", log.String())
	}
}

func TestPlayFails(t *testing.T) {
	typed := make(chan string, 100)
	consoles := []*serial.Console{nil, fakeNode(t, 1, 1, typed)}
	err := Play([]Step{{Node: 1, Line: "dvm stat", Want: "running", Timeout: 50 * time.Millisecond}}, consoles, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"dvm stat"`) {
		t.Errorf("a step whose text never comes: %v", err)
	}
	if err := Play([]Step{{Node: 2, Line: "nodes", Want: Prompt, Timeout: time.Second}}, consoles, io.Discard); err == nil {
		t.Error("a step on a node without a console ran")
	}
}

func TestPlayStopsOnAFailure(t *testing.T) {
	typed := make(chan string, 100)
	c := Cluster{Nodes: 1}
	var steps []Step
	for _, s := range c.LinuxDemo("qemu", "") {
		if strings.HasPrefix(s.Line, "dvm start") {
			s.Line += " color=red" // the fake node answers unknown commands with an error
			s.Timeout = time.Minute
			steps = append(steps, s)
		}
	}
	consoles := []*serial.Console{nil, fakeNode(t, 1, 1, typed)}
	start := time.Now()
	err := Play(steps, consoles, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "error: unknown command") {
		t.Fatalf("Play of a failing dvm start: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("Play waited %v for a step that had already failed", time.Since(start))
	}
}
