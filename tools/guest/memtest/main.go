// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

// Command memtest runs inside a big-iron guest (it is in the guest's
// initramfs) to check that the guest really has the memory it was given:
// it takes a share of the guest's RAM, has a thread pinned to each CPU
// write a pattern of its own over its part, verify it, then verify the
// next CPU's part (on a VM spanning nodes that part may have been written
// on another node), and reports the rates.
//
// Usage:
//
//	memtest [-share 0.9] [-mib N] [-cpus N]
//
// It ends with "memtest: ok" or "memtest: FAILED".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/tools/guest/internal/pinned"
)

// keepFree is what memtest leaves of MemAvailable to the kernel and
// itself (MemAvailable already keeps the kernel's reserves out).
const keepFree = 16 << 20

func main() {
	share := flag.Float64("share", 0.9, "share of the guest's RAM (MemTotal) to test")
	mib := flag.Int("mib", 0, "MiB to test instead of a share")
	cpus := flag.Int("cpus", pinned.OnlineCPUs(), "threads, one pinned to each CPU 0..N-1")
	flag.Parse()
	if err := run(*share, *mib, *cpus); err != nil {
		fmt.Printf("memtest: %v\nmemtest: FAILED\n", err)
		os.Exit(1)
	}
	fmt.Println("memtest: ok")
}

func run(share float64, mib, cpus int) error {
	total, avail, err := meminfo()
	if err != nil {
		return err
	}
	size, trimmed, err := testSize(share, mib, total, avail)
	if err != nil {
		return err
	}
	if trimmed {
		fmt.Printf("memtest: %.0f%% of MemTotal is more than MemAvailable (%d MiB) less %d MiB; testing that\n", 100*share, avail>>20, keepFree>>20)
	}
	part := (size / uint64(cpus)) &^ (1<<12 - 1)
	if cpus < 1 || part == 0 {
		return fmt.Errorf("%d CPUs for %d MiB", cpus, size>>20)
	}
	mem, err := syscall.Mmap(-1, 0, int(part)*cpus, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mapping %d MiB: %v", part*uint64(cpus)>>20, err)
	}
	defer syscall.Munmap(mem)
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), len(mem)/8)
	n := int(part / 8)
	fmt.Printf("memtest: %d MiB of %d MiB (%.0f%%) on %d CPUs, %d MiB each\n",
		len(mem)>>20, total>>20, 100*float64(len(mem))/float64(total), cpus, part>>20)
	phase := func(name string, fn func(c int) error) error {
		start := time.Now()
		if err := pinned.OnEachCPU(cpus, fn); err != nil {
			return err
		}
		d := time.Since(start)
		fmt.Printf("memtest: %s %d MiB in %v: %.0f MB/s\n", name, len(mem)>>20, d.Round(time.Millisecond), float64(len(mem))/d.Seconds()/1e6)
		return nil
	}
	if err := phase("wrote", func(c int) error {
		fill(words[c*n:(c+1)*n], c)
		return nil
	}); err != nil {
		return err
	}
	if err := phase("verified", func(c int) error { return check(words[c*n:(c+1)*n], c, c) }); err != nil {
		return err
	}
	if cpus > 1 {
		return phase("cross-checked", func(c int) error {
			o := (c + 1) % cpus
			return check(words[o*n:(o+1)*n], o, c)
		})
	}
	return nil
}

// testSize returns the bytes to test: mib MiB if mib is not zero, else
// share of MemTotal, but never more than MemAvailable less keepFree. A
// share is trimmed to fit (trimmed says so), since what the kernel keeps
// for itself varies from boot to boot; an explicit size that does not fit
// is an error.
func testSize(share float64, mib int, total, avail uint64) (size uint64, trimmed bool, err error) {
	room := uint64(0)
	if avail > keepFree {
		room = avail - keepFree
	}
	if mib != 0 {
		size = uint64(mib) << 20
		if size > room {
			return 0, false, fmt.Errorf("%d MiB asked, %d MiB available of %d MiB (MemAvailable less %d MiB)", size>>20, room>>20, total>>20, keepFree>>20)
		}
		return size, false, nil
	}
	if share <= 0 || share > 1 {
		return 0, false, fmt.Errorf("share %v: want more than 0 and at most 1", share)
	}
	size = uint64(share * float64(total))
	if size > room {
		if room < 1<<20 {
			return 0, false, fmt.Errorf("%.0f%% of %d MiB asked, but MemAvailable (%d MiB) less %d MiB leaves nothing to test", 100*share, total>>20, avail>>20, keepFree>>20)
		}
		return room, true, nil
	}
	return size, false, nil
}

// pattern is the word CPU c writes at index i of its part: different for
// every word and every CPU, so that a page mapped twice or a lost write
// shows.
func pattern(c, i int) uint64 {
	return uint64(i)*0x9E3779B97F4A7C15 ^ uint64(c+1)<<56
}

func fill(w []uint64, c int) {
	for i := range w {
		w[i] = pattern(c, i)
	}
}

// check verifies, on CPU reader, the part CPU c wrote.
func check(w []uint64, c, reader int) error {
	for i, v := range w {
		if want := pattern(c, i); v != want {
			return fmt.Errorf("CPU %d read word %d (byte %#x) of CPU %d's part as %#x, want %#x", reader, i, 8*i, c, v, want)
		}
	}
	return nil
}

// meminfo returns MemTotal and MemAvailable in bytes.
func meminfo() (total, avail uint64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			total = kb << 10
		case "MemAvailable":
			avail = kb << 10
		}
	}
	if total == 0 || avail == 0 {
		return 0, 0, fmt.Errorf("/proc/meminfo has no MemTotal or MemAvailable")
	}
	return total, avail, sc.Err()
}
