// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

// Command oncpu runs a command on one CPU of a big-iron guest (it is in
// the guest's initramfs; the initramfs's tools have no taskset): on a VM
// that spans nodes, CPU c is a vCPU that may run on another node, so
// what the command does to a device (a driver bound or unbound through
// sysfs runs in the writer's context) is done from that node.
//
// Usage:
//
//	oncpu CPU COMMAND [ARG...]
//	oncpu CPU write FILE TEXT [FILE TEXT...]
//
// The first form looks COMMAND up in PATH and executes it in place of
// oncpu, keeping its CPU affinity, as taskset(1) does. The second writes
// each TEXT to its FILE, in order, from a thread on the CPU, and stops at
// the first error: no program has to start on that CPU (on a VM spanning
// nodes, a program started on a remote vCPU pulls its pages across the
// network first).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"github.com/big-iron/big-iron/tools/guest/internal/pinned"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "oncpu:", err)
		os.Exit(1)
	}
}

// run pins the calling thread to the CPU args[0] names and runs the
// rest of args on it.
func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: oncpu CPU COMMAND [ARG...] | oncpu CPU write FILE TEXT [FILE TEXT...]")
	}
	cpu, err := strconv.Atoi(args[0])
	if online := pinned.OnlineCPUs(); err != nil || cpu < 0 || cpu >= online {
		return fmt.Errorf("CPU %q: not one of the %d online CPUs", args[0], online)
	}
	if args[1] == "write" {
		return writeOn(cpu, args[2:])
	}
	path, err := exec.LookPath(args[1])
	if err != nil {
		return err
	}
	// execve(2) replaces the thread that calls it and keeps its
	// affinity: pin that thread, and no other runs the exec.
	runtime.LockOSThread()
	if err := pinned.Pin(cpu); err != nil {
		return err
	}
	return fmt.Errorf("exec %s: %w", path, syscall.Exec(path, args[1:], os.Environ()))
}

// writeOn writes pairs[1] to pairs[0], pairs[3] to pairs[2] and so on
// from a thread pinned to cpu.
func writeOn(cpu int, pairs []string) error {
	if len(pairs) == 0 || len(pairs)%2 != 0 {
		return fmt.Errorf("write needs FILE TEXT pairs, got %d arguments", len(pairs))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := pinned.Pin(cpu); err != nil {
		return err
	}
	for i := 0; i < len(pairs); i += 2 {
		if err := writeFile(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes text to the existing file name in one write(2), as
// sysfs wants it.
func writeFile(name, text string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(text))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing %q to %s: %w", text, name, werr)
	}
	return nil
}
