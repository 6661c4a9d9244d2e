// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseResult feeds ParseResult what a guest may print on its serial
// line (the test binary is the guest's, and so is what it prints) with
// any exit status: it never panics, its counts agree with its check
// lines, and its verdict is one of the four.
func FuzzParseResult(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.out"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, 1)
			f.Add(b, NoExit)
		}
	}
	f.Add([]byte("SUMMARY: 99999999999999999999 tests, 5 unexpected failures\ncpuid 99999999999999999999\n"), 3)
	f.Add([]byte("PASS: a\r\nABORT: b\n  ipi x 1\nfoo (skipped)\n"), 77)
	f.Fuzz(func(t *testing.T, out []byte, status int) {
		r := ParseResult(out, status)
		if r.Pass != r.Count(Pass) || r.Fail != r.Count(Fail) || r.Skip != r.Count(Skip) {
			t.Errorf("counts %d/%d/%d do not match the check lines", r.Pass, r.Fail, r.Skip)
		}
		if n := strings.Count(string(out), "\n") + 1; len(r.Checks) > n {
			t.Errorf("%d checks from %d lines", len(r.Checks), n)
		}
		switch r.Verdict {
		case VerdictPass, VerdictFail, VerdictSkip, VerdictError:
		default:
			t.Errorf("verdict %q", r.Verdict)
		}
		if status < 0 && r.Verdict != VerdictError {
			t.Errorf("no exit status, verdict %q", r.Verdict)
		}
	})
}
