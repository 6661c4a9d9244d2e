// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Status is the outcome of one check a test reports (lib/report.c).
type Status string

// The statuses of a check line. Error stands for an ABORT: line, which
// ends the test.
const (
	Pass  Status = "PASS"
	Fail  Status = "FAIL"
	Skip  Status = "SKIP"
	XFail Status = "XFAIL"
	XPass Status = "XPASS"
	KFail Status = "KFAIL"
	Error Status = "ERROR"
)

// The verdicts, a whole test's outcome, from its exit status (see
// ParseResult). They are plain strings, so that callers can keep
// verdicts of their own (e.g. "not started") beside them.
const (
	// VerdictPass: the test exited with code 0.
	VerdictPass = "PASS"
	// VerdictFail: it exited with another code (1: unexpected
	// failures; 63: abort(), e.g. an unhandled exception).
	VerdictFail = "FAIL"
	// VerdictSkip: it exited with code 38, every check skipped.
	VerdictSkip = "SKIP"
	// VerdictError: it never wrote the debug-exit port (timeout,
	// crash, triple fault, QEMU failure).
	VerdictError = "ERROR"
)

// Guest exit codes (lib/report.c, lib/abort.c): QEMU exits with
// (code << 1) | 1.
const (
	CodePass    = 0
	CodeFail    = 1
	CodeSkipped = 77 >> 1 // 38: QEMU's status is then 77, autotools' "skipped"
	CodeAbort   = 63      // QEMU's status 127
)

// NoExit is the exit status to give ParseResult when the VM did not end
// through the debug-exit port (killed at its timeout, crashed).
const NoExit = -1

// Check is one check line of a test's output, "STATUS: text".
type Check struct {
	Status Status
	// Text is the rest of the line: the report prefixes and message.
	Text string
}

// Summary is a test's SUMMARY line: "SUMMARY: N tests, F unexpected
// failures, K known failures, X expected failures, S skipped", where
// the parts after the count appear only when not zero.
type Summary struct {
	Tests, Failures, KnownFailures, ExpectedFailures, Skipped int
}

// Result is what a test's run gave.
type Result struct {
	// Checks are the check lines in order.
	Checks []Check
	// Pass, Fail and Skip count the PASS, FAIL and SKIP check lines
	// (Count counts any status).
	Pass, Fail, Skip int
	// Summary is the SUMMARY line, nil when the test printed none (it
	// crashed, or, like vmexit and realmode, it reports no checks).
	Summary *Summary
	// ExitStatus is the status QEMU exited with, NoExit when none.
	ExitStatus int
	// Code is the guest's debug-exit code, -1 when it wrote none.
	Code int
	// Verdict is the test's outcome, one of the Verdict constants;
	// Reason says what it rests on.
	Verdict string
	Reason  string
	// Cycles are the vmexit test's figures, TSC cycles per iteration:
	// "cpuid" for the line "cpuid 97", and "NAME ipi" / "NAME eoi" for
	// its "  ipi NAME n" / "  eoi NAME n" lines. Nil when there are none.
	Cycles map[string]int64
	// Skipped are the vmexit cases it printed as "NAME (skipped)".
	Skipped []string
	// Elapsed is the run's wall time, when RunQEMU ran it.
	Elapsed time.Duration
}

// Count is the number of check lines with status s.
func (r Result) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

var (
	checkRE   = regexp.MustCompile(`^(PASS|FAIL|SKIP|XFAIL|XPASS|KFAIL|ABORT): ?(.*)$`)
	summaryRE = regexp.MustCompile(`^SUMMARY: (\d+) tests((?:, \d+ [a-z ]+)*)\s*$`)
	partRE    = regexp.MustCompile(`, (\d+) ([a-z ]+)`)
	cyclesRE  = regexp.MustCompile(`^([A-Za-z0-9_.:-]+) (\d+)$`)
	subRE     = regexp.MustCompile(`^  (ipi|eoi) ([A-Za-z0-9_.:-]+) (\d+)$`)
	skippedRE = regexp.MustCompile(`^([A-Za-z0-9_.:-]+) \(skipped\)$`)
)

// ParseResult reads a test's serial output and the status QEMU exited
// with: (code << 1) | 1 when the guest wrote code to the debug-exit port
// (a VMM that hands over the guest's code itself passes that form, e.g.
// debugexit.Status), NoExit (or any negative value) when the VM ended
// otherwise. Code 0 is a pass, 38 all skipped, any other a failure; an
// even status (QEMU ended for another reason, e.g. a triple fault with
// -no-reboot) and no status are errors.
func ParseResult(output []byte, exitStatus int) Result {
	r := Result{ExitStatus: exitStatus, Code: -1}
	for line := range strings.Lines(string(output)) {
		r.addLine(strings.TrimRight(line, "\r\n"))
	}
	r.Pass, r.Fail, r.Skip = r.Count(Pass), r.Count(Fail), r.Count(Skip)
	r.judge()
	return r
}

// addLine takes one output line.
func (r *Result) addLine(line string) {
	if m := checkRE.FindStringSubmatch(line); m != nil {
		st := Status(m[1])
		if st == "ABORT" {
			st = Error
		}
		r.Checks = append(r.Checks, Check{Status: st, Text: m[2]})
		return
	}
	if s, ok := parseSummary(line); ok {
		r.Summary = &s
		return
	}
	r.addFigure(line)
}

// parseSummary reads a SUMMARY line.
func parseSummary(line string) (Summary, bool) {
	m := summaryRE.FindStringSubmatch(line)
	if m == nil {
		return Summary{}, false
	}
	var s Summary
	s.Tests, _ = strconv.Atoi(m[1])
	for _, p := range partRE.FindAllStringSubmatch(m[2], -1) {
		n, _ := strconv.Atoi(p[1])
		switch p[2] {
		case "unexpected failures":
			s.Failures = n
		case "known failures":
			s.KnownFailures = n
		case "expected failures":
			s.ExpectedFailures = n
		case "skipped":
			s.Skipped = n
		}
	}
	return s, true
}

// addFigure takes a vmexit figure line, if line is one.
func (r *Result) addFigure(line string) {
	if m := subRE.FindStringSubmatch(line); m != nil {
		r.setCycles(m[2]+" "+m[1], m[3])
	} else if m := cyclesRE.FindStringSubmatch(line); m != nil {
		r.setCycles(m[1], m[2])
	} else if m := skippedRE.FindStringSubmatch(line); m != nil {
		r.Skipped = append(r.Skipped, m[1])
	}
}

// setCycles records one figure.
func (r *Result) setCycles(name, value string) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return
	}
	if r.Cycles == nil {
		r.Cycles = map[string]int64{}
	}
	r.Cycles[name] = n
}

// judge sets Code, Verdict and Reason from the exit status.
func (r *Result) judge() {
	switch {
	case r.ExitStatus < 0:
		r.Verdict, r.Reason = VerdictError, "no exit status: the VM did not end through the debug-exit port (timeout or crash)"
	case r.ExitStatus&1 == 0:
		r.Verdict, r.Reason = VerdictError, fmt.Sprintf("exit status %d: QEMU ended without the debug-exit port (triple fault, shutdown or QEMU error)", r.ExitStatus)
	default:
		r.Code = r.ExitStatus >> 1
		r.Verdict, r.Reason = codeVerdict(r.Code)
	}
	if r.Summary == nil && r.Verdict != VerdictError {
		r.Reason += "; no SUMMARY line"
	}
}

// codeVerdict is the verdict for a guest's exit code.
func codeVerdict(code int) (verdict, reason string) {
	switch code {
	case CodePass:
		return VerdictPass, "exit code 0"
	case CodeFail:
		return VerdictFail, "exit code 1: unexpected failures"
	case CodeSkipped:
		return VerdictSkip, "exit code 38: every check skipped"
	case CodeAbort:
		return VerdictFail, "exit code 63: the test aborted"
	}
	return VerdictFail, fmt.Sprintf("exit code %d", code)
}
