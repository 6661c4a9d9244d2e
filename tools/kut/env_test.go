// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"strings"
	"testing"
)

// TestEnv checks the module text for big-iron: no pc-testdev, a loader
// that passes only the arguments.
func TestEnv(t *testing.T) {
	got := string(Env(2, 512))
	want := "NR_CPUS=2\nMEMSIZE=512\nTEST_DEVICE=0\nBOOTLOADER=1\n"
	if got != want {
		t.Errorf("Env(2, 512) = %q, want %q", got, want)
	}
}

// TestEnvConfig checks every field and the refusals.
func TestEnvConfig(t *testing.T) {
	b, err := EnvConfig{NrCPUs: 4, MemMiB: 2048, MemLimitMiB: 1024, TestDevice: true,
		Extra: []string{"ERRATA_FORCE=y", "ERRATA_9e3f7a296940=y"}}.Text()
	if err != nil {
		t.Fatal(err)
	}
	want := "NR_CPUS=4\nMEMSIZE=2048\nMEMLIMIT=1024\nTEST_DEVICE=1\nBOOTLOADER=0\nERRATA_9e3f7a296940=y\nERRATA_FORCE=y\n"
	if string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	for _, bad := range []string{"NOEQUALS", "=x", "1X=2", "A-B=1", "A=1\nB=2"} {
		if _, err := (EnvConfig{Extra: []string{bad}}).Text(); err == nil {
			t.Errorf("extra line %q: no error", bad)
		}
	}
	if _, err := (EnvConfig{Extra: []string{"BIG=" + strings.Repeat("x", MaxEnvSize)}}).Text(); err == nil {
		t.Error("oversized environment: no error")
	}
}
