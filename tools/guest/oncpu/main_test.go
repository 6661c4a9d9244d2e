// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux && amd64

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefuses checks the arguments oncpu refuses before it pins or
// executes anything (an exec replaces the process: the end-to-end tests
// run that form in the guest).
func TestRunRefuses(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"0"}, "usage"},
		{[]string{"x", "true"}, "not one of the"},
		{[]string{"-1", "true"}, "not one of the"},
		{[]string{"4096", "true"}, "not one of the"},
		{[]string{"0", "no-such-command-here"}, "not found"},
		{[]string{"0", "write"}, "FILE TEXT pairs"},
		{[]string{"0", "write", "/tmp/x"}, "FILE TEXT pairs"},
		{[]string{"0", "write", "/no/such/dir/file", "1"}, "no such file"},
	} {
		err := run(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error with %q", c.args, err, c.want)
		}
	}
}

// TestWrite checks the write form: each text to its file, in order, and
// a stop at the first file that cannot be written (the later ones keep
// what they had).
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, f := range []string{a, b, c} {
		if err := os.WriteFile(f, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := run([]string{"0", "write", a, "virtio0", b, "virtio1"}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{a: "virtio0", b: "virtio1", c: "old"} {
		if got, _ := os.ReadFile(f); string(got) != want {
			t.Errorf("%s holds %q, want %q", f, got, want)
		}
	}
	err := run([]string{"0", "write", a, "new", filepath.Join(dir, "missing"), "x", c, "new"})
	if err == nil {
		t.Fatal("writing to a missing file succeeded")
	}
	if got, _ := os.ReadFile(c); string(got) != "old" {
		t.Errorf("the write after the failed one happened: %s holds %q", c, got)
	}
}
