// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPlanTest checks the QEMU command line for tests of the cfg's kinds.
func TestPlanTest(t *testing.T) {
	tests, err := ParseConfig(strings.NewReader(smallCfg))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Test{}
	for _, x := range tests {
		byName[x.Name] = x
	}
	p, err := PlanTest("/src", byName["x2apic"], 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Kernel: "/src/x86/apic.flat", CPU: "qemu64,+x2apic,+tsc-deadline", CPUs: 2, MemMiB: DefaultMemMiB, Machine: "pc", Timeout: 30 * time.Second}
	if p != want {
		t.Errorf("x2apic plan %+v, want %+v", p, want)
	}
	args := strings.Join(p.QEMUArgs("/tmp/env"), " ")
	for _, part := range []string{"-machine pc -accel tcg -cpu qemu64,+x2apic,+tsc-deadline -smp 2 -m 128",
		"-device isa-debug-exit,iobase=0xf4,iosize=0x4", "-kernel /src/x86/apic.flat -initrd /tmp/env"} {
		if !strings.Contains(args, part) {
			t.Errorf("x2apic args %q lack %q", args, part)
		}
	}
	if strings.Contains(args, "-append") {
		t.Errorf("x2apic takes no arguments, args %q", args)
	}

	p, err = PlanTest("/src", byName["vmexit_ipi"], 256, 8)
	if err != nil {
		t.Fatal(err)
	}
	if p.CPU != DefaultCPU || p.Machine != "pc,pit=off" || p.Append != "ipi" || p.MemMiB != 256 || p.Timeout != DefaultTimeout {
		t.Errorf("vmexit_ipi plan %+v", p)
	}
	env, err := p.Env()
	if err != nil || string(env) != "NR_CPUS=2\nMEMSIZE=256\nTEST_DEVICE=0\nBOOTLOADER=0\n" {
		t.Errorf("vmexit_ipi env %q, %v", env, err)
	}

	p, err = PlanTest("/src", byName["big"], 256, 8)
	if err != nil {
		t.Fatal(err)
	}
	if p.MemMiB != 4096 || p.CPUs != 8 {
		t.Errorf("big: the test's -m 4g and $MAX_SMP should win: %+v", p)
	}
}

// TestRunQEMUReference builds the suite and runs smptest, msr and apic
// (xapic) directly under QEMU's TCG. smptest must end with a SUMMARY and
// pass. msr and xapic must give a verdict: under QEMU 7.2's TCG, as
// with the suite's own run_tests.sh, msr ends in a triple fault after
// its FS_BASE check fails (ERROR, no SUMMARY) and apic aborts on an
// assertion in its start (FAIL, code 63); where they print a SUMMARY it
// must agree with their checks. Opt-in: BIGIRON_E2E=1.
func TestRunQEMUReference(t *testing.T) {
	qemu, archive := e2eQEMU(t, "BIGIRON_E2E")
	src, tests := buildSuite(t, archive)
	for _, c := range []struct {
		name     string
		mustPass bool
	}{{"smptest", true}, {"msr", false}, {"xapic", false}} {
		tst, ok := findTest(tests, c.name)
		if !ok {
			t.Fatalf("no test %s in unittests.cfg", c.name)
		}
		r, out, err := RunQEMU(context.Background(), qemu, src, tst, 0)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		t.Logf("%s: %s", c.name, describe(r))
		checkReference(t, c.name, c.mustPass, r, out)
	}
}

// checkReference checks one reference run.
func checkReference(t *testing.T, name string, mustPass bool, r Result, out []byte) {
	t.Helper()
	if mustPass && (r.Summary == nil || r.Verdict != VerdictPass) {
		t.Errorf("%s: %s (%s), want a SUMMARY and PASS:\n%s", name, r.Verdict, r.Reason, out)
	}
	if !slices.Contains([]string{VerdictPass, VerdictFail, VerdictSkip, VerdictError}, r.Verdict) || r.Reason == "" {
		t.Errorf("%s: verdict %q (%q)", name, r.Verdict, r.Reason)
	}
	if len(r.Checks) == 0 && r.Code < 0 {
		t.Errorf("%s: neither a check line nor an exit code:\n%s", name, out)
	}
	if s := r.Summary; s != nil && (s.Failures != r.Count(Fail)+r.Count(XPass) || s.Skipped != r.Count(Skip)) {
		t.Errorf("%s: SUMMARY %+v disagrees with its %d FAIL, %d XPASS, %d SKIP lines", name, *s, r.Count(Fail), r.Count(XPass), r.Count(Skip))
	}
}

// TestReferenceTable runs every applicable x86_64 test of the suite, one
// at a time, under QEMU's TCG and logs the reference table: test,
// applicable or why not, PASS/FAIL/SKIP counts, verdict, wall time.
// Opt-in: BIGIRON_KUT_TABLE=1; BIGIRON_KUT_ONLY=a,b limits it to those
// tests. The raw outputs go to BIGIRON_KUT_LOGS when set. It takes about
// 8 minutes on two cores (four tests run into their timeouts): give go
// test -timeout 60m.
func TestReferenceTable(t *testing.T) {
	qemu, archive := e2eQEMU(t, "BIGIRON_KUT_TABLE")
	src, tests := buildSuite(t, archive)
	only := strings.Split(os.Getenv("BIGIRON_KUT_ONLY"), ",")
	var table bytes.Buffer
	table.WriteString("| test | applicable | PASS | FAIL | SKIP | verdict | time | notes |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, d := range Decide(tests) {
		if d.Test.Arch != "" && d.Test.Arch != "x86_64" {
			continue
		}
		if only[0] != "" && !slices.Contains(only, d.Test.Name) {
			continue
		}
		table.WriteString(referenceRow(t, qemu, src, d) + "\n")
	}
	t.Logf("reference results under QEMU TCG:\n%s", table.String())
}

// referenceRow runs d's test if it applies and gives its table row.
func referenceRow(t *testing.T, qemu, src string, d Decision) string {
	if !d.OK {
		return fmt.Sprintf("| %s | no: %s | | | | | | |", d.Test.Name, d.Why)
	}
	r, out, err := RunQEMU(context.Background(), qemu, src, d.Test, 0)
	if err != nil {
		t.Errorf("%s: %v", d.Test.Name, err)
		return fmt.Sprintf("| %s | yes | | | | not run: %v | | |", d.Test.Name, err)
	}
	saveLog(t, d.Test.Name, out)
	t.Logf("%s: %s", d.Test.Name, describe(r))
	return fmt.Sprintf("| %s | yes | %d | %d | %d | %s | %.1fs | %s |", d.Test.Name,
		r.Count(Pass), r.Count(Fail), r.Count(Skip), r.Verdict, r.Elapsed.Seconds(), rowNotes(r))
}

// rowNotes are a result's notes for the table: the reason, other
// statuses, and vmexit's skipped cases and figures.
func rowNotes(r Result) string {
	notes := []string{r.Reason}
	for _, s := range []Status{XFail, XPass, KFail, Error} {
		if n := r.Count(s); n > 0 {
			notes = append(notes, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(r.Skipped) > 0 {
		notes = append(notes, "cases skipped: "+strings.Join(r.Skipped, ", "))
	}
	if len(r.Cycles) > 0 {
		keys := make([]string, 0, len(r.Cycles))
		for k := range r.Cycles {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Cycles[k]))
		}
		notes = append(notes, "cycles: "+strings.Join(parts, ", "))
	}
	return strings.Join(notes, "; ")
}

// saveLog writes a test's output to BIGIRON_KUT_LOGS, when set.
func saveLog(t *testing.T, name string, out []byte) {
	dir := os.Getenv("BIGIRON_KUT_LOGS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("logs: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".log"), out, 0o644); err != nil {
		t.Errorf("logs: %v", err)
	}
}

// describe is a one-line account of a result.
func describe(r Result) string {
	s := fmt.Sprintf("%s (%s) in %.1fs, %d PASS, %d FAIL, %d SKIP", r.Verdict, r.Reason, r.Elapsed.Seconds(), r.Count(Pass), r.Count(Fail), r.Count(Skip))
	if r.Summary != nil {
		s += fmt.Sprintf(", SUMMARY %+v", *r.Summary)
	}
	return s
}

// buildSuite builds the suite into the cache folder and reads its cfg.
func buildSuite(t *testing.T, archive string) (string, []Test) {
	t.Helper()
	start := time.Now()
	src, err := Build(archive, cacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("suite built in %s (%.0fs)", src, time.Since(start).Seconds())
	f, err := os.Open(filepath.Join(src, "x86", "unittests.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return src, tests
}

// findTest is the test of that name.
func findTest(tests []Test, name string) (Test, bool) {
	for _, t := range tests {
		if t.Name == name {
			return t, true
		}
	}
	return Test{}, false
}
