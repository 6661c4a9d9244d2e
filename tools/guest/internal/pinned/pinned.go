// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

// Package pinned runs work on threads pinned one to each CPU of a Linux
// guest, for big-iron's guest programs: on a VM spanning nodes, CPU c is
// a vCPU that may run on any node.
package pinned

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// OnEachCPU runs fn(c) on a thread pinned to CPU c for each CPU
// 0..cpus-1, all at once, and returns the first error.
func OnEachCPU(cpus int, fn func(c int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, cpus)
	for c := 0; c < cpus; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			if errs[c] = Pin(c); errs[c] == nil {
				errs[c] = fn(c)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// OnlineCPUs counts the CPUs online (/sys/devices/system/cpu/online, a
// list of ranges such as "0-1"): runtime.NumCPU counts only those the
// process may run on, and isolcpus keeps isolated CPUs out of that.
func OnlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if found {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return runtime.NumCPU()
		}
		n += z - a + 1
	}
	return n
}

// Pin binds the calling thread to CPU c.
func Pin(c int) error {
	var mask [16]uint64
	mask[c/64] = 1 << (c % 64)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, uintptr(len(mask)*8), uintptr(unsafe.Pointer(&mask[0]))); e != 0 {
		return fmt.Errorf("pinning a thread to CPU %d: %v", c, e)
	}
	return nil
}
