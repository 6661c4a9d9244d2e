// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

// Command sharedcounter runs inside a big-iron guest (it is in the
// guest's initramfs) to check the one machine a distributed VM claims to
// be: one thread pinned to each CPU increments shared counters under a
// spin lock, and the total must be exact; then each thread in turn writes
// a page that the next reads back. On a VM spanning nodes the lock, the
// counters and the page travel between the nodes' memories.
//
// Usage:
//
//	sharedcounter [-iters N] [-cpus N]
//
// It prints one line per check and ends with "sharedcounter: ok" or
// "sharedcounter: FAILED".
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/tools/guest/internal/pinned"
)

// shared is what the threads share: the lock and the counters on one
// page, the page that is written and read back on another.
type shared struct {
	lock     atomic.Int32
	counters [4]uint64 // written only under lock
	_        [4096]byte
	page     [4096]byte
	turn     atomic.Int32 // whose turn it is to write page
}

func main() {
	iters := flag.Int("iters", 1000000, "lock acquisitions per thread")
	cpus := flag.Int("cpus", pinned.OnlineCPUs(), "threads, one pinned to each CPU 0..N-1")
	flag.Parse()
	// The pinned threads should not enter the kernel while they count:
	// on a VM that spans nodes every kernel entry on a remote vCPU
	// fetches pages that other CPUs write. Go preempts long-running
	// goroutines with signals; turn that off (it is read at start, so
	// run again with it set) and the collector, which has nothing to do.
	if !strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
		env := append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
		if exe, err := os.Executable(); err == nil {
			err = syscall.Exec(exe, os.Args, env)
			fmt.Printf("sharedcounter: running again without preemption signals: %v\n", err)
		}
	}
	debug.SetGCPercent(-1)
	if err := run(*iters, *cpus); err != nil {
		fmt.Printf("sharedcounter: %v\nsharedcounter: FAILED\n", err)
		os.Exit(1)
	}
	fmt.Println("sharedcounter: ok")
}

func run(iters, cpus int) error {
	if cpus < 1 {
		return fmt.Errorf("%d CPUs", cpus)
	}
	runtime.GOMAXPROCS(cpus + 1)
	s := new(shared)
	ran := make([]int, cpus)
	fmt.Printf("sharedcounter: %d threads counting\n", cpus)
	start := time.Now()
	err := pinned.OnEachCPU(cpus, func(c int) error {
		ran[c] = getcpu()
		for i := 0; i < iters; i++ {
			for !s.lock.CompareAndSwap(0, 1) {
			}
			for k := range s.counters {
				s.counters[k]++
			}
			s.lock.Store(0)
		}
		if got := getcpu(); got != c {
			return fmt.Errorf("thread %d ended on CPU %d", c, got)
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	want := uint64(iters) * uint64(cpus)
	fmt.Printf("sharedcounter: %d threads on CPUs %v, %d lock acquisitions each, in %v\n", cpus, ran, iters, elapsed.Round(time.Millisecond))
	for k, v := range s.counters {
		fmt.Printf("sharedcounter: counter %d = %d (want %d)\n", k, v, want)
		if v != want {
			return fmt.Errorf("counter %d is %d, want %d: an update was lost", k, v, want)
		}
	}
	return pageRoundTrip(s, cpus)
}

// pageRoundTrip has the thread on each CPU in turn fill the page with a
// pattern of its own and the thread on the next CPU check it.
func pageRoundTrip(s *shared, cpus int) error {
	if cpus < 2 {
		return nil
	}
	check := func(c, from int) error {
		for i, b := range s.page {
			if b != pattern(from, i) {
				return fmt.Errorf("CPU %d read byte %d of the page CPU %d wrote as %#x, want %#x", c, i, from, b, pattern(from, i))
			}
		}
		fmt.Printf("sharedcounter: CPU %d read back the page CPU %d wrote\n", c, from)
		return nil
	}
	return pinned.OnEachCPU(cpus, func(c int) error {
		prev := (c + cpus - 1) % cpus
		var err error
		if c != 0 { // CPU 0 writes first; the others read, then write
			for s.turn.Load() != int32(c) {
			}
			err = check(c, prev)
		}
		// Pass the turn on even after a bad read, so that no thread
		// waits for ever.
		for i := range s.page {
			s.page[i] = pattern(c, i)
		}
		s.turn.Store(int32((c + 1) % cpus))
		if c != 0 {
			return err
		}
		for s.turn.Load() != 0 {
		}
		return check(0, prev)
	})
}

func pattern(cpu, i int) byte { return byte(cpu*73 + i*7 + 1) }

// getcpu returns the CPU the calling thread runs on.
func getcpu() int {
	var cpu, node uint32
	if _, _, e := syscall.RawSyscall(sysGetcpu, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return -1
	}
	return int(cpu)
}

// sysGetcpu is getcpu(2) on x86-64 (the syscall package does not name
// it).
const sysGetcpu = 309
