// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// suiteName is the suite's archive and top folder, without .tar.xz.
const suiteName = "kvm-unit-tests-v2026-04-17"

// builtCopy is where a built copy of the suite may lie on a developer's
// machine, for reading its unittests.cfg without building.
const builtCopy = "/work/kut/" + suiteName

// suiteArchive is the suite's archive: BIGIRON_KUT_ARCHIVE, else the one
// in shared/suites beside the repository; "" when there is none.
func suiteArchive() string {
	if a := os.Getenv("BIGIRON_KUT_ARCHIVE"); a != "" {
		return a
	}
	a, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "suites", suiteName+".tar.xz"))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(a); err != nil {
		return ""
	}
	return a
}

// cacheDir is where the tests build the suite: BIGIRON_KUT_CACHE, else
// $HOME/.cache/bigiron-kut.
func cacheDir(t *testing.T) string {
	if d := os.Getenv("BIGIRON_KUT_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatalf("no BIGIRON_KUT_CACHE and no home folder: %v", err)
	}
	return filepath.Join(home, ".cache", "bigiron-kut")
}

// realConfig is the suite's x86/unittests.cfg: from the built copy if
// there is one, else read out of the archive; the test skips, naming
// both, when neither is there.
func realConfig(t *testing.T) []byte {
	t.Helper()
	name := filepath.Join(builtCopy, "x86", "unittests.cfg")
	if b, err := os.ReadFile(name); err == nil {
		return b
	}
	a := suiteArchive()
	if a == "" {
		t.Skipf("no %s and no suite archive (BIGIRON_KUT_ARCHIVE or shared/suites/%s.tar.xz)", name, suiteName)
	}
	b, err := readFromArchive(a, suiteName+"/x86/unittests.cfg")
	if err != nil {
		t.Fatalf("reading unittests.cfg from %s: %v", a, err)
	}
	return b
}

// readFromArchive is one file's contents from a .tar.xz.
func readFromArchive(archive, name string) ([]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := xz.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}

// writeTarXZ writes a .tar.xz of files (name -> contents; a name ending
// in / is a folder, contents starting with "->" a symbolic link) with
// mode 0755 for names ending in configure, 0644 otherwise.
func writeTarXZ(t *testing.T, name string, files [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(tarHeader(f[0], f[1])); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(f[0], "/") && !strings.HasPrefix(f[1], "->") {
			if _, err := tw.Write([]byte(f[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tarHeader is the header writeTarXZ gives an entry.
func tarHeader(name, contents string) *tar.Header {
	switch {
	case strings.HasSuffix(name, "/"):
		return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
	case strings.HasPrefix(contents, "->"):
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: strings.TrimPrefix(contents, "->")}
	}
	mode := int64(0o644)
	if strings.HasSuffix(name, "configure") {
		mode = 0o755
	}
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(contents))}
}

// e2eQEMU is qemu-system-x86_64's path, or skips the test naming what
// is missing: BIGIRON_E2E=1, QEMU or the suite's archive.
func e2eQEMU(t *testing.T, gate string) (qemu, archive string) {
	t.Helper()
	if os.Getenv(gate) != "1" {
		t.Skipf("opt-in: set %s=1", gate)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	archive = suiteArchive()
	if archive == "" {
		t.Skipf("no suite archive: set BIGIRON_KUT_ARCHIVE or put %s.tar.xz in shared/suites", suiteName)
	}
	for _, tool := range []string{"make", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the suite cannot be built", tool)
		}
	}
	return qemu, archive
}
