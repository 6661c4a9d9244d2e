// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSuite is a small archive in the suite's shape: a configure that
// counts its runs in the cache folder and writes config.mak, a Makefile
// (failing when makeFails), a folder and a symbolic link.
func fakeSuite(t *testing.T, name string, makeFails bool) {
	t.Helper()
	rule := "all:\n\techo built > built.txt\n"
	if makeFails {
		rule = "all:\n\t@echo 'x86/apic.c:1: error: broken'\n\t@false\n"
	}
	writeTarXZ(t, name, [][2]string{
		{"suite/", ""},
		{"suite/configure", "#!/bin/sh\necho run >> ../configure-runs\necho \"SRCDIR=$(pwd)\" > config.mak\n"},
		{"suite/Makefile", rule},
		{"suite/common/sieve.c", "int main(void) { return 0; }\n"},
		{"suite/x86/", ""},
		{"suite/x86/sieve.c", "->../common/sieve.c"},
	})
}

// needBuildTools skips a test without sh and make.
func needBuildTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"sh", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// TestBuildCaches builds a fake suite, then finds the build cached, then
// builds again for a changed archive.
func TestBuildCaches(t *testing.T) {
	needBuildTools(t)
	tmp := t.TempDir()
	archive, cache := filepath.Join(tmp, "suite.tar.xz"), filepath.Join(tmp, "cache")
	fakeSuite(t, archive, false)
	dir, err := Build(archive, cache)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(cache, "suite") {
		t.Errorf("dir %s", dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "x86", "sieve.c")); err != nil || !strings.Contains(string(b), "main") {
		t.Errorf("symbolic link: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "built.txt")); err != nil {
		t.Errorf("make did not run: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "configure")); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("configure lost its execute bit: %v %v", st.Mode(), err)
	}
	if _, err := Build(archive, cache); err != nil {
		t.Fatal(err)
	}
	if runs := configureRuns(t, cache); runs != 1 {
		t.Errorf("configure ran %d times for the same archive, want 1", runs)
	}
	writeTarXZ(t, archive, [][2]string{{"suite/configure", "#!/bin/sh\necho run >> ../configure-runs\ntouch config.mak\n"}, {"suite/Makefile", "all:\n"}})
	if _, err := Build(archive, cache); err != nil {
		t.Fatal(err)
	}
	if runs := configureRuns(t, cache); runs != 2 {
		t.Errorf("configure ran %d times after the archive changed, want 2", runs)
	}
	if _, err := os.Stat(filepath.Join(dir, "built.txt")); err == nil {
		t.Error("the earlier copy was not removed before unpacking the new archive")
	}
}

// configureRuns counts the fake configure's runs.
func configureRuns(t *testing.T, cache string) int {
	b, err := os.ReadFile(filepath.Join(cache, "configure-runs"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run")
}

// TestBuildFails checks that a failing make is named with its output's
// tail and leaves no stamp.
func TestBuildFails(t *testing.T) {
	needBuildTools(t)
	tmp := t.TempDir()
	archive, cache := filepath.Join(tmp, "suite.tar.xz"), filepath.Join(tmp, "cache")
	fakeSuite(t, archive, true)
	_, err := Build(archive, cache)
	if err == nil || !strings.Contains(err.Error(), "make -j2") || !strings.Contains(err.Error(), "x86/apic.c:1: error: broken") {
		t.Fatalf("error %v, want one naming make -j2 and quoting its output", err)
	}
	if _, err := os.Stat(filepath.Join(cache, StampFile)); err == nil {
		t.Error("a failed build left a stamp")
	}
	if _, err := Build(filepath.Join(tmp, "missing.tar.xz"), cache); err == nil {
		t.Error("a missing archive built")
	}
}

// TestUnpackRefuses checks that entries leaving the top folder are
// refused.
func TestUnpackRefuses(t *testing.T) {
	for name, files := range map[string][][2]string{
		"dotdot":       {{"suite/", ""}, {"suite/../evil", "x"}},
		"absolute":     {{"/etc/evil", "x"}},
		"two tops":     {{"suite/a", "x"}, {"other/b", "y"}},
		"link out":     {{"suite/", ""}, {"suite/l", "->../../etc/passwd"}},
		"abs link":     {{"suite/", ""}, {"suite/l", "->/etc/passwd"}},
		"stamp as top": {{StampFile + "/x", "y"}},
	} {
		tmp := t.TempDir()
		archive := filepath.Join(tmp, "a.tar.xz")
		writeTarXZ(t, archive, files)
		if _, err := Unpack(archive, tmp); err == nil {
			t.Errorf("%s: unpacked", name)
		}
	}
}
