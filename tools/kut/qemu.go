// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// DefaultCPU is the CPU model RunQEMU gives a test whose params name
// none: QEMU's fullest model, nearer big-iron's (the host's) CPUID than
// the suite's own default, qemu64.
const DefaultCPU = "max"

// DefaultMemMiB is the RAM RunQEMU gives when neither the test nor the
// caller names a size: QEMU's default, which the suite runs tests with.
const DefaultMemMiB = 128

// killDelay is how long RunQEMU waits for QEMU's output after killing it.
const killDelay = 5 * time.Second

// Plan is how RunQEMU runs one test.
type Plan struct {
	// Kernel is the test binary, srcDir/x86/File.
	Kernel string
	// CPU is the -cpu value: the test's own or DefaultCPU.
	CPU string
	// CPUs is -smp and NR_CPUS.
	CPUs int
	// MemMiB is -m and MEMSIZE: the test's -m, else the caller's size.
	MemMiB int
	// Machine is the -machine value: pc and the test's properties.
	Machine string
	// Append is the guest command line ("" for none).
	Append string
	// Timeout is the test's timeout.
	Timeout time.Duration
}

// PlanTest works out how to run t from the suite built in srcDir with
// memMiB MiB (DefaultMemMiB when <= 0, the test's own -m before both);
// $MAX_SMP is maxSMP.
func PlanTest(srcDir string, t Test, memMiB, maxSMP int) (Plan, error) {
	o, err := Options(t)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Kernel: filepath.Join(srcDir, "x86", t.File), CPU: o.CPU, Timeout: t.TimeoutOrDefault()}
	if p.CPU == "" {
		p.CPU = DefaultCPU
	}
	if p.CPUs, err = t.CPUs(maxSMP); err != nil {
		return Plan{}, err
	}
	if p.MemMiB, err = planMem(t, o, memMiB); err != nil {
		return Plan{}, err
	}
	p.Machine = strings.Join(append([]string{"pc"}, machineProps(o)...), ",")
	if p.Append, err = Args(t); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// planMem is the RAM for t: its own -m, else memMiB, else the default.
func planMem(t Test, o QEMUOpts, memMiB int) (int, error) {
	own, err := o.MemMiB()
	if err != nil {
		return 0, fmt.Errorf("kut: test %s: %w", t.Name, err)
	}
	switch {
	case own > 0:
		return own, nil
	case memMiB > 0:
		return memMiB, nil
	}
	return DefaultMemMiB, nil
}

// Env is the environment module for p: the VM's CPUs and RAM, no
// pc-testdev, and no BOOTLOADER, as QEMU's Multiboot loader puts the
// kernel's path before the command line.
func (p Plan) Env() ([]byte, error) {
	return EnvConfig{NrCPUs: p.CPUs, MemMiB: p.MemMiB}.Text()
}

// QEMUArgs are QEMU's arguments for p, the environment module in
// envFile: the machine of the suite's x86/run (pc, -nodefaults,
// -no-reboot, the serial port on stdio, isa-debug-exit at 0xf4) under
// TCG, without pc-testdev and fw_cfg's figures replaced by the module.
func (p Plan) QEMUArgs(envFile string) []string {
	args := []string{
		"-machine", p.Machine, "-accel", "tcg", "-cpu", p.CPU,
		"-smp", strconv.Itoa(p.CPUs), "-m", strconv.Itoa(p.MemMiB),
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
		"-kernel", p.Kernel, "-initrd", envFile,
	}
	if p.Append != "" {
		args = append(args, "-append", p.Append)
	}
	return args
}

// RunQEMU runs test t of the suite built in srcDir under QEMU's TCG
// (qemu is the qemu-system-x86_64 binary) as the suite's x86/run would,
// but with the environment module instead of fw_cfg's figures and no
// pc-testdev; memMiB as PlanTest takes it. It kills QEMU at the test's
// timeout. It returns the parsed result, with Elapsed set, and the
// output (serial port and QEMU's stderr); the error is for a test that
// could not be run, not for one that failed.
func RunQEMU(ctx context.Context, qemu string, srcDir string, t Test, memMiB int) (Result, []byte, error) {
	p, err := PlanTest(srcDir, t, memMiB, runtime.NumCPU())
	if err != nil {
		return Result{}, nil, err
	}
	if _, err := os.Stat(p.Kernel); err != nil {
		return Result{}, nil, fmt.Errorf("kut: test %s: %w", t.Name, err)
	}
	envFile, err := writeEnv(p)
	if err != nil {
		return Result{}, nil, fmt.Errorf("kut: test %s: %w", t.Name, err)
	}
	defer os.Remove(envFile)
	return runPlan(ctx, qemu, p, envFile)
}

// writeEnv writes p's environment module to a temporary file.
func writeEnv(p Plan) (string, error) {
	text, err := p.Env()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "kut-env-*")
	if err != nil {
		return "", fmt.Errorf("environment module: %w", err)
	}
	_, err = f.Write(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("environment module: %w", err)
	}
	return f.Name(), nil
}

// runPlan runs QEMU for p and parses what it gave.
func runPlan(ctx context.Context, qemu string, p Plan, envFile string) (Result, []byte, error) {
	tctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, qemu, p.QEMUArgs(envFile)...)
	cmd.WaitDelay = killDelay
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	status, err := exitStatus(err)
	if err != nil {
		return Result{}, out.Bytes(), fmt.Errorf("kut: running %s %s: %w", qemu, p.Kernel, err)
	}
	if ctx.Err() != nil {
		return Result{}, out.Bytes(), fmt.Errorf("kut: running %s: %w", p.Kernel, ctx.Err())
	}
	r := ParseResult(out.Bytes(), status)
	r.Elapsed = elapsed
	if tctx.Err() != nil {
		r.Reason = fmt.Sprintf("timed out after %v; %s", p.Timeout, r.Reason)
	}
	return r, out.Bytes(), nil
}

// exitStatus is the exit status of a finished command, NoExit when a
// signal ended it; the error is for one that did not run.
func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st := ee.ExitCode(); st >= 0 {
			return st, nil
		}
		return NoExit, nil
	}
	return NoExit, err
}
