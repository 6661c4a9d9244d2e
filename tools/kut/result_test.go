// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture is a captured output in testdata.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseResultPass: a passing run, QEMU status 1 (code 0).
func TestParseResultPass(t *testing.T) {
	r := ParseResult(fixture(t, "pass.out"), 1)
	want := []Check{
		{Pass, "IPI to each CPU"},
		{Pass, "msr: MSR_IA32_SYSENTER_CS: read-back 0x1234"},
		{Skip, "msr: MSR_IA32_TSX_CTRL: not supported"},
	}
	if !reflect.DeepEqual(r.Checks, want) {
		t.Errorf("checks %+v", r.Checks)
	}
	if r.Summary == nil || *r.Summary != (Summary{Tests: 3, Skipped: 1}) {
		t.Errorf("summary %+v", r.Summary)
	}
	if r.Verdict != VerdictPass || r.Code != 0 || r.Pass != 2 || r.Fail != 0 || r.Skip != 1 || r.Count(Pass) != 2 {
		t.Errorf("result %+v", r)
	}
	if r.Cycles != nil {
		t.Errorf("figures %v in a test that prints none", r.Cycles)
	}
}

// TestParseResultFail: unexpected failures, CRLF line ends, every status.
func TestParseResultFail(t *testing.T) {
	r := ParseResult(fixture(t, "fail.out"), 3)
	for s, n := range map[Status]int{Pass: 1, Fail: 1, XFail: 1, XPass: 1, KFail: 1} {
		if r.Count(s) != n {
			t.Errorf("%d %s, want %d", r.Count(s), s, n)
		}
	}
	if r.Checks[1] != (Check{Fail, "apic: x2apic: rdmsr of APIC_ID"}) {
		t.Errorf("check %+v", r.Checks[1])
	}
	want := Summary{Tests: 5, Failures: 2, KnownFailures: 1, ExpectedFailures: 1}
	if r.Summary == nil || *r.Summary != want {
		t.Errorf("summary %+v, want %+v", r.Summary, want)
	}
	if r.Verdict != VerdictFail || r.Code != CodeFail {
		t.Errorf("verdict %s code %d", r.Verdict, r.Code)
	}
}

// TestParseResultSkipped: every check skipped, QEMU status 77 (code 38).
func TestParseResultSkipped(t *testing.T) {
	r := ParseResult(fixture(t, "skip.out"), 77)
	if r.Verdict != VerdictSkip || r.Code != CodeSkipped || r.Count(Skip) != 2 {
		t.Errorf("result %+v", r)
	}
	if r.Summary == nil || *r.Summary != (Summary{Tests: 2, Skipped: 2}) {
		t.Errorf("summary %+v", r.Summary)
	}
}

// TestParseResultCrash: an unhandled exception and no SUMMARY, ended by
// abort() (status 127), by a triple fault (QEMU's own status 0 with
// -no-reboot) or not at all (killed at the timeout).
func TestParseResultCrash(t *testing.T) {
	out := fixture(t, "crash.out")
	for _, c := range []struct {
		status  int
		verdict string
		code    int
		reason  string
	}{
		{127, VerdictFail, CodeAbort, "aborted"},
		{0, VerdictError, -1, "without the debug-exit port"},
		{NoExit, VerdictError, -1, "no exit status"},
	} {
		r := ParseResult(out, c.status)
		if r.Verdict != c.verdict || r.Code != c.code || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("status %d: %s code %d (%s); want %s code %d (%s)", c.status, r.Verdict, r.Code, r.Reason, c.verdict, c.code, c.reason)
		}
		if r.Summary != nil || r.Count(Pass) != 2 {
			t.Errorf("status %d: summary %+v, %d PASS", c.status, r.Summary, r.Count(Pass))
		}
	}
}

// TestParseResultAbort: an ABORT: line is an ERROR check.
func TestParseResultAbort(t *testing.T) {
	r := ParseResult(fixture(t, "abort.out"), 127)
	if r.Count(Error) != 1 || r.Checks[2] != (Check{Error, "tsc: cannot go on without RDTSCP"}) {
		t.Errorf("checks %+v", r.Checks)
	}
	if r.Verdict != VerdictFail || r.Summary == nil || r.Summary.Failures != 1 {
		t.Errorf("result %+v", r)
	}
}

// TestParseResultVmexit: the vmexit test's figures, and its pass with no
// SUMMARY.
func TestParseResultVmexit(t *testing.T) {
	r := ParseResult(fixture(t, "vmexit.out"), 1)
	want := map[string]int64{
		"cpuid": 1234, "inl_from_pmtimer": 5678, "self_ipi_sti_nop": 910,
		"self_ipi_sti_nop ipi": 120, "self_ipi_sti_nop eoi": 45, "ipi": 2500, "ipi ipi": 2400,
	}
	if !reflect.DeepEqual(r.Cycles, want) {
		t.Errorf("figures %v\nwant %v", r.Cycles, want)
	}
	if !reflect.DeepEqual(r.Skipped, []string{"tscdeadline"}) {
		t.Errorf("skipped %v", r.Skipped)
	}
	if r.Verdict != VerdictPass || r.Summary != nil || !strings.Contains(r.Reason, "no SUMMARY") {
		t.Errorf("result %+v", r)
	}
}

// TestParseResultOtherCode: a code other than the library's is a failure
// that names it.
func TestParseResultOtherCode(t *testing.T) {
	r := ParseResult([]byte("--- DONE: 5 ---\n"), 5<<1|1)
	if r.Verdict != VerdictFail || r.Code != 5 || !strings.Contains(r.Reason, "exit code 5") {
		t.Errorf("result %+v", r)
	}
}
