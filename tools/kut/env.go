// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// MaxEnvSize is the most of the environment module a test reads
// (lib/x86/setup.c copies at most 16 KiB of it).
const MaxEnvSize = 16384

// EnvConfig describes the environment module: the first Multiboot
// module, NAME=value lines, that a test reads as its environment
// (lib/argv.c setup_env). On x86 the tests take the machine's figures
// from it before QEMU's fw_cfg (lib/x86/fwcfg.c), so a VMM without
// fw_cfg must give them here.
type EnvConfig struct {
	// NrCPUs is NR_CPUS, the number of CPUs the test starts and waits
	// for (fw_cfg's NB_CPUS): it must be the VM's vCPU count.
	NrCPUs int
	// MemMiB is MEMSIZE, the RAM size in MiB (fw_cfg's RAM_SIZE), which
	// tests such as rmap_chain size their work by.
	MemMiB int
	// MemLimitMiB, when > 0, is MEMLIMIT: the test allocates no memory
	// above it (fw_cfg's MAX_RAM, a bare-metal entry).
	MemLimitMiB int
	// TestDevice is TEST_DEVICE: whether QEMU's pc-testdev is present.
	// Without it (false) tests skip what needs it and exit() prints
	// "--- DONE: code ---" should the debug-exit port not end the VM.
	TestDevice bool
	// Bootloader is BOOTLOADER: the test adds a first argument
	// "bootloader" before its command line, standing for argv[0] where
	// the Multiboot command line holds no program name. QEMU's Multiboot
	// loader puts the kernel's path first, so it runs tests without it.
	Bootloader bool
	// Extra are further NAME=value lines, e.g. "ERRATA_FORCE=y".
	Extra []string
}

// Env is the environment module for a VM of nrCPUs vCPUs and memMiB MiB
// with no pc-testdev and a loader that passes only the arguments:
// NR_CPUS, MEMSIZE, TEST_DEVICE=0 and BOOTLOADER=1.
func Env(nrCPUs int, memMiB int) []byte {
	b, _ := EnvConfig{NrCPUs: nrCPUs, MemMiB: memMiB, Bootloader: true}.Text()
	return b
}

// Text is the module's text, one NAME=value line each.
func (c EnvConfig) Text() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "NR_CPUS=%d\n", c.NrCPUs)
	fmt.Fprintf(&b, "MEMSIZE=%d\n", c.MemMiB)
	if c.MemLimitMiB > 0 {
		fmt.Fprintf(&b, "MEMLIMIT=%d\n", c.MemLimitMiB)
	}
	fmt.Fprintf(&b, "TEST_DEVICE=%d\n", b2i(c.TestDevice))
	fmt.Fprintf(&b, "BOOTLOADER=%d\n", b2i(c.Bootloader))
	extra := slices.Clone(c.Extra)
	slices.Sort(extra)
	for _, line := range extra {
		if err := checkEnvLine(line); err != nil {
			return nil, err
		}
		b.WriteString(line + "\n")
	}
	if b.Len() > MaxEnvSize {
		return nil, fmt.Errorf("kut: environment of %d bytes, more than the %d a test reads", b.Len(), MaxEnvSize)
	}
	return b.Bytes(), nil
}

// checkEnvLine checks that line is NAME=value as lib/argv.c takes it.
func checkEnvLine(line string) error {
	name, _, ok := strings.Cut(line, "=")
	if !ok || name == "" || strings.ContainsAny(line, "\n\x00") || !isEnvName(name) {
		return fmt.Errorf("kut: environment line %q is not NAME=value", line)
	}
	return nil
}

// isEnvName reports whether s is a letter or _ then letters, digits, _.
func isEnvName(s string) bool {
	for i, c := range s {
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// b2i is 1 for true, 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
