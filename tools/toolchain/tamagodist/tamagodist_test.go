// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package tamagodist

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

const tag = "tamago-go1.26.0"

func TestTag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.26.0", "tamago-go1.26.0"},
		{"v1.25.7-0.20260130090423-5d846371fd71+dirty", "tamago-go1.25.6"},
		{"v1.26.1-0.20260301000000-abcdefabcdef", "tamago-go1.26.0"},
	} {
		if got, err := Tag(tc.in); err != nil || got != tc.want {
			t.Errorf("Tag(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"v2.0.0", "1.26.0", "v1.26.0-pre", "v1.26-x", "(devel)"} {
		if got, err := Tag(bad); err == nil {
			t.Errorf("Tag(%q) = %q, want an error", bad, got)
		}
	}
}

// fakeMake is a make.bash that writes what a finished build leaves, or,
// when the file FAIL exists beside it, stops half-way the way an
// interrupted build does (cmd/dist/dist and go_bootstrap still there,
// bin/go already written).
const fakeMake = `#!/bin/sh
set -e
cd ..
tools=pkg/tool/` + runtime.GOOS + "_" + runtime.GOARCH + `
mkdir -p bin $tools
echo dist > src/cmd/dist/dist
echo boot > $tools/go_bootstrap; chmod +x $tools/go_bootstrap
printf '#!/bin/sh\necho go version go1.26.0\n' > bin/go; chmod +x bin/go
if [ -e src/FAIL ]; then echo "make.bash: killed" >&2; exit 1; fi
for f in bin/gofmt $tools/asm $tools/cgo $tools/compile $tools/link $tools/vet; do echo x > $f; chmod +x $f; done
rm $tools/go_bootstrap src/cmd/dist/dist
echo "$GOROOT_BOOTSTRAP" > built-with
`

// sourceFiles is a minimal distribution source tree.
func sourceFiles(version string) map[string]string {
	return map[string]string{
		"VERSION":                  version + "\ntime 2026-02-10T01:22:00Z\n",
		"src/make.bash":            fakeMake,
		"src/runtime/os_tamago.go": "package runtime\n",
		"src/cmd/dist/build.go":    "package main\n",
	}
}

// writeArchive writes files as a .tar.xz with every name under prefix.
func writeArchive(t *testing.T, files map[string]string, prefix string) string {
	t.Helper()
	var buf bytes.Buffer
	xw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(xw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "0123"}})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: prefix, Mode: 0o755})
	for name, body := range files {
		if strings.Contains(name, "..") {
			continue
		}
		mode := int64(0o644)
		if strings.HasSuffix(name, ".bash") {
			mode = 0o755
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: prefix + name, Mode: mode, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: prefix + "src/link", Linkname: "runtime/os_tamago.go"})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "src.tar.xz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallFromArchive(t *testing.T) {
	archive := writeArchive(t, sourceFiles("go1.26.0"), tag+"/")
	sum := sha256.Sum256(must(os.ReadFile(archive)))
	os.WriteFile(archive+".sha256", []byte(hex.EncodeToString(sum[:])+"  src.tar.xz\n"), 0o644)
	root := Root(t.TempDir(), tag)
	if err := Check(root, tag); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Check of an empty cache = %v, want ErrNotInstalled", err)
	}
	var log bytes.Buffer
	if err := Install(root, tag, archive, "/boot/strap", &log); err != nil {
		t.Fatalf("Install: %v\n%s", err, log.String())
	}
	if err := Check(root, tag); err != nil {
		t.Fatalf("Check after Install: %v", err)
	}
	if got := string(must(os.ReadFile(filepath.Join(root, "built-with")))); got != "/boot/strap\n" {
		t.Errorf("make.bash saw GOROOT_BOOTSTRAP %q", got)
	}
	if target, err := os.Readlink(filepath.Join(root, "src", "link")); err != nil || target != "runtime/os_tamago.go" {
		t.Errorf("symbolic link: %q, %v", target, err)
	}
	if _, err := os.Stat(root + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging folder left behind: %v", err)
	}
}

func TestInstallAfterInterruptedBuild(t *testing.T) {
	files := sourceFiles("go1.26.0")
	files["src/FAIL"] = ""
	failing := writeArchive(t, files, tag+"/")
	root := Root(t.TempDir(), tag)
	var log bytes.Buffer
	if err := Install(root, tag, failing, "/b", &log); err == nil {
		t.Fatal("Install with a failing make.bash succeeded")
	}
	// The failed build stays in the staging folder; the final one is
	// absent, so `go tool tamago` never runs a half-built compiler.
	if err := Check(root, tag); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("after a failed build Check = %v, want ErrNotInstalled", err)
	}
	// The next Install starts the staging folder afresh.
	if err := Install(root, tag, failing, "/b", &log); err == nil || !strings.Contains(log.String(), "left by an interrupted build") {
		t.Fatalf("second Install: %v\n%s", err, log.String())
	}
	// A tree that an interrupted `go tool tamago` left where the final one
	// goes, bin/go included, is recognised as half-built.
	if err := os.Rename(root+".partial", root); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, tag); err == nil || errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("Check of a half-built tree = %v, want 'did not finish'", err)
	}
	good := writeArchive(t, sourceFiles("go1.26.0"), tag+"/")
	log.Reset()
	if err := Install(root, tag, good, "/b", &log); err != nil {
		t.Fatalf("Install over a half-built tree: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "removing it to build again") {
		t.Errorf("Install did not say it rebuilt:\n%s", log.String())
	}
	if err := Check(root, tag); err != nil {
		t.Fatalf("Check after rebuild: %v", err)
	}
}

func TestInstallRefusesWrongSource(t *testing.T) {
	stock := sourceFiles("go1.26.0")
	delete(stock, "src/runtime/os_tamago.go")
	for name, tc := range map[string]struct {
		archive string
		sum     string
		want    string
	}{
		"top folder": {writeArchive(t, sourceFiles("go1.26.0"), "tamago-go1.25.6/"), "", "not under tamago-go1.26.0/"},
		"no prefix":  {writeArchive(t, sourceFiles("go1.26.0"), ""), "", "not under"},
		"VERSION":    {writeArchive(t, sourceFiles("go1.25.6"), tag+"/"), "", `VERSION says "go1.25.6"`},
		"stock Go":   {writeArchive(t, stock, tag+"/"), "", "no tamago port"},
		"sum":        {writeArchive(t, sourceFiles("go1.26.0"), tag+"/"), strings.Repeat("0", 64), "damaged or different"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.sum != "" {
				os.WriteFile(tc.archive+".sha256", []byte(tc.sum+"  x\n"), 0o644)
			}
			root := Root(t.TempDir(), tag)
			var log bytes.Buffer
			err := Install(root, tag, tc.archive, "/b", &log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused source left %s behind", root)
			}
			if _, err := os.Stat(root + ".partial"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused source left its staging folder behind")
			}
		})
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for name, h := range map[string]*tar.Header{
		"dotdot":  {Typeflag: tar.TypeReg, Name: tag + "/../../evil", Mode: 0o644},
		"symlink": {Typeflag: tar.TypeSymlink, Name: tag + "/src/l", Linkname: "../../../etc/passwd"},
		"abslink": {Typeflag: tar.TypeSymlink, Name: tag + "/src/l", Linkname: "/etc/passwd"},
		"device":  {Typeflag: tar.TypeChar, Name: tag + "/dev"},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(h)
			tw.Close()
			p := filepath.Join(t.TempDir(), "x.tar")
			os.WriteFile(p, buf.Bytes(), 0o644)
			dir := t.TempDir()
			if err := Unpack(p, tag, dir); err == nil {
				t.Fatalf("Unpack accepted %+v", h)
			}
		})
	}
}

func TestInstallFromCheckout(t *testing.T) {
	src := t.TempDir()
	for name, body := range sourceFiles("go1.26.0") {
		if strings.Contains(name, "..") {
			continue
		}
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o755)
	}
	os.MkdirAll(filepath.Join(src, ".git", "objects"), 0o755)
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "stale"), nil, 0o755)
	root := Root(t.TempDir(), tag)
	var log bytes.Buffer
	if err := Install(root, tag, src, "/b", &log); err != nil {
		t.Fatalf("Install from a checkout: %v\n%s", err, log.String())
	}
	for _, gone := range []string{".git", "bin/stale"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s was copied", gone)
		}
	}
	if err := Check(root, tag); err != nil {
		t.Fatal(err)
	}
}

func TestBuildEnv(t *testing.T) {
	env := buildEnv([]string{"GOOS=tamago", "GOARCH=amd64", "HOME=/h", "PATH=/usr/bin", "GOROOT=/x", "GOFLAGS=-tags=x"}, "/r", "/boot")
	joined := strings.Join(env, " ")
	for _, gone := range []string{"GOOS=", "GOARCH=", "GOROOT=/x", "GOFLAGS="} {
		if strings.Contains(joined, gone) {
			t.Errorf("environment keeps %s: %v", gone, env)
		}
	}
	for _, kept := range []string{"HOME=/h", "PATH=/r/bin:/usr/bin", "GOROOT_BOOTSTRAP=/boot", "PWD=/r/src"} {
		if !strings.Contains(joined, kept) {
			t.Errorf("environment lacks %s: %v", kept, env)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
