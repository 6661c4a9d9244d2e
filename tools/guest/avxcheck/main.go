// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

// Command avxcheck runs inside a big-iron guest (it is in the guest's
// initramfs) to check that the AVX state of every thread survives
// whatever happens while it runs: timer interrupts, the kernel switching
// threads on a CPU (XSAVE and XRSTOR with the sizes CPUID gives), and the
// hyperkernel's VM exits and its moves of a vCPU between cores (XSAVE
// and XRSTOR with the guest's XCR0). Each thread loads all sixteen YMM
// registers with its own pattern, spins without touching them, and
// compares them with the pattern. Thread t is pinned to CPU t mod the
// CPUs online (on a VM spanning nodes, a vCPU may run on any node), and
// there are twice as many threads as CPUs, so that the kernel switches
// between them.
//
// Usage:
//
//	avxcheck [-rounds N] [-spins N] [-threads N]
//
// It prints what CPUID and XGETBV report, one line per thread, and ends
// with "avxcheck: ok" or "avxcheck: FAILED".
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/big-iron/big-iron/tools/guest/internal/pinned"
)

// CPUID and XCR0 bits (Intel SDM Vol. 2A, CPUID; Vol. 1, 13.3).
const (
	leaf1ECXOSXSAVE = 1 << 27
	leaf1ECXAVX     = 1 << 28
	xcr0SSEAVX      = 1<<1 | 1<<2
)

// defined in avx_amd64.s
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func xgetbv0() uint64
func ymmHold(in, out *[16][32]byte, spins uint64)

func main() {
	rounds := flag.Int("rounds", 8, "rounds per thread")
	spins := flag.Uint64("spins", 5_000_000, "loop iterations the YMM registers are held for in each round")
	cpus := pinned.OnlineCPUs()
	threads := flag.Int("threads", 2*cpus, "threads, thread t pinned to CPU t mod the CPUs online")
	flag.Parse()
	_, _, ecx, _ := cpuid(1, 0)
	if ecx&leaf1ECXAVX == 0 || ecx&leaf1ECXOSXSAVE == 0 {
		fmt.Printf("avxcheck: CPUID.1:ECX %#x: AVX %v, OSXSAVE %v\navxcheck: FAILED\n", ecx, ecx&leaf1ECXAVX != 0, ecx&leaf1ECXOSXSAVE != 0)
		os.Exit(1)
	}
	xcr0 := xgetbv0()
	_, size, _, _ := cpuid(0xD, 0)
	fmt.Printf("avxcheck: XCR0 %#x, XSAVE area %d bytes\n", xcr0, size)
	if xcr0&xcr0SSEAVX != xcr0SSEAVX {
		fmt.Println("avxcheck: the kernel did not enable AVX state in XCR0\navxcheck: FAILED")
		os.Exit(1)
	}
	var wg sync.WaitGroup
	errs := make([]error, *threads)
	for t := range *threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			if errs[t] = pinned.Pin(t % cpus); errs[t] == nil {
				errs[t] = hold(t, *rounds, *spins)
			}
		}()
	}
	wg.Wait()
	failed := false
	for t, err := range errs {
		if err != nil {
			fmt.Printf("avxcheck: thread %d: %v\n", t, err)
			failed = true
		}
	}
	if failed {
		fmt.Println("avxcheck: FAILED")
		os.Exit(1)
	}
	fmt.Printf("avxcheck: %d threads on %d CPUs, %d rounds of %d spins each: every YMM register kept\navxcheck: ok\n", *threads, cpus, *rounds, *spins)
}

// hold runs rounds of ymmHold for thread t with a pattern of its own
// each round, and reports the first register that came back changed.
func hold(t, rounds int, spins uint64) error {
	var in, out [16][32]byte
	for r := range rounds {
		fill(&in, t, r)
		ymmHold(&in, &out, spins)
		for i := range in {
			if !bytes.Equal(in[i][:], out[i][:]) {
				return fmt.Errorf("round %d: YMM%d = %x, want %x", r, i, out[i], in[i])
			}
		}
	}
	return nil
}

// fill writes the pattern of thread t in round r: every byte differs
// between registers, halves, threads and rounds.
func fill(p *[16][32]byte, t, r int) {
	for i := range p {
		for j := range p[i] {
			p[i][j] = byte(i*32+j) ^ byte(t*37) ^ byte(r*101+1)
		}
	}
}
