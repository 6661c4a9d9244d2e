// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package tamagodist installs the tamago Go distribution where `go tool
// tamago` looks for it, from a local source archive or checkout instead of
// the internet, and tells a complete installation from a half-built one.
//
// `go tool tamago` (github.com/usbarmory/tamago/cmd/tamago) derives a tag
// such as tamago-go1.26.0 from the tamago module version, looks for
// tamago-go/<tag>/bin/go under os.UserCacheDir() and, when it is missing,
// clones the tag from GitHub and runs src/make.bash. Install does the same
// from a .tar.xz of the source tree (top folder <tag>/, as `git archive
// --prefix=<tag>/` writes it) or from a checkout of the tag, building in a
// staging folder beside the final one and renaming it into place only once
// the build is complete, so that an interrupted build never looks done.
package tamagodist

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Tag returns the distribution tag that `go tool tamago` pairs with a
// tamago module version, by the same rule: v1.26.0 gives tamago-go1.26.0,
// and a pseudo-version such as v1.25.7-0.2026...-5d846371fd71 (built after
// tag v1.25.6) gives tamago-go1.25.6.
func Tag(moduleVersion string) (string, error) {
	v := moduleVersion
	if !strings.HasPrefix(v, "v1.") {
		return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
	}
	if base, _, ok := strings.Cut(v, "-"); ok {
		parts := strings.SplitN(base, ".", 3)
		if len(parts) != 3 {
			return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
		}
		patch, err := strconv.Atoi(parts[2])
		if err != nil || patch == 0 {
			return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
		}
		parts[2] = strconv.Itoa(patch - 1)
		v = strings.Join(parts, ".")
	}
	return "tamago-go" + strings.TrimPrefix(v, "v"), nil
}

// GoVersion is the first line of the VERSION file of the distribution
// tagged tag: tamago-go1.26.0 carries go1.26.0.
func GoVersion(tag string) string {
	return strings.TrimPrefix(tag, "tamago-")
}

// Root is the folder where `go tool tamago` expects the distribution tagged
// tag, under the user cache directory cache (os.UserCacheDir).
func Root(cache, tag string) string {
	return filepath.Join(cache, "tamago-go", tag)
}

// hostTools are the programs of a finished build under pkg/tool/GOOS_GOARCH.
var hostTools = []string{"asm", "cgo", "compile", "link", "vet"}

// ErrNotInstalled says that no distribution is in the folder at all.
var ErrNotInstalled = errors.New("not installed")

// Check reports whether root holds a complete build of the distribution
// tagged tag. It returns nil for a complete build, an error wrapping
// ErrNotInstalled when root does not exist, and another error saying what
// is wrong for anything else: the wrong version, or a tree whose build did
// not finish (make.bash removes src/cmd/dist/dist and cmd/dist removes
// go_bootstrap only at the end; bin/go and the host tools appear last).
func Check(root, tag string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", root, ErrNotInstalled)
	}
	if err := checkSource(root, tag); err != nil {
		return err
	}
	tooldir := filepath.Join(root, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH)
	leftovers := []string{
		filepath.Join(root, "src", "cmd", "dist", "dist"),
		filepath.Join(tooldir, "go_bootstrap"),
	}
	for _, f := range leftovers {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s: build did not finish (%s is still there)", root, f)
		}
	}
	need := []string{filepath.Join(root, "bin", "go"), filepath.Join(root, "bin", "gofmt")}
	for _, t := range hostTools {
		need = append(need, filepath.Join(tooldir, t))
	}
	for _, f := range need {
		fi, err := os.Stat(f)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: build did not finish (%s missing)", root, f)
		}
	}
	return nil
}

// checkSource checks that dir holds the source of the distribution tagged
// tag: its VERSION names the matching Go release and its runtime has the
// tamago port (a stock Go tree of the same release has not).
func checkSource(dir, tag string) error {
	b, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		return fmt.Errorf("%s: not a Go source tree (no VERSION file): %w", dir, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if want := GoVersion(tag); strings.TrimSpace(first) != want {
		return fmt.Errorf("%s: VERSION says %q, %s needs %q", dir, strings.TrimSpace(first), tag, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "src", "runtime", "os_tamago.go")); err != nil {
		return fmt.Errorf("%s: VERSION is %s but src/runtime has no tamago port: stock Go, not %s", dir, GoVersion(tag), tag)
	}
	return nil
}

// Build runs src/make.bash in root with the Go installation bootstrap
// (a GOROOT) as its bootstrap toolchain, log receiving its output. The
// environment loses every variable that would make the new toolchain
// build for another target or from another tree.
func Build(root, bootstrap string, log io.Writer) error {
	cmd := exec.Command(filepath.Join(root, "src", "make.bash"))
	cmd.Dir = filepath.Join(root, "src")
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.Env = buildEnv(os.Environ(), root, bootstrap)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make.bash in %s: %w", cmd.Dir, err)
	}
	return nil
}

// buildEnv returns env without the variables that steer a Go build
// (GOOS=tamago from a caller's make, say), with the bootstrap toolchain
// named, the new tree's bin first on PATH (it silences make.bash's path
// warning) and PWD set to the build folder, as `go tool tamago` does.
func buildEnv(env []string, root, bootstrap string) []string {
	drop := map[string]bool{
		"GOOS": true, "GOARCH": true, "GOOSPKG": true, "GOROOT": true,
		"GOFLAGS": true, "GOEXPERIMENT": true, "GOROOT_BOOTSTRAP": true,
		"GOBIN": true, "CGO_ENABLED": true, "PWD": true,
	}
	var out []string
	path := filepath.Join(root, "bin")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case drop[k]:
		case k == "PATH":
			path += string(filepath.ListSeparator) + v
		default:
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+path, "GOROOT_BOOTSTRAP="+bootstrap,
		"PWD="+filepath.Join(root, "src"), "GOTOOLCHAIN=local")
}

// Install makes root hold a complete build of the distribution tagged tag,
// from src: a .tar.xz of its source tree or a folder with a checkout of
// its tag. It does nothing when root already holds one; it removes a
// half-built root, unpacks or copies the source into root+".partial",
// checks it is the right release, builds it with bootstrap (a GOROOT) and
// renames it to root only once Check passes. Progress lines and make.bash's
// output go to out. Two Installs of one root wait for each other.
func Install(root, tag, src, bootstrap string, out io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	unlock, err := lock(root + ".lock")
	if err != nil {
		return fmt.Errorf("locking %s: %w", root, err)
	}
	defer unlock()
	err = Check(root, tag)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotInstalled) {
		fmt.Fprintf(out, "toolchain: %v: removing it to build again\n", err)
		if err := os.RemoveAll(root); err != nil {
			return err
		}
	}
	staging := root + ".partial"
	if _, err := os.Stat(staging); err == nil {
		fmt.Fprintf(out, "toolchain: removing %s, left by an interrupted build\n", staging)
	}
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := stage(src, tag, staging, out); err != nil {
		os.RemoveAll(staging)
		return err
	}
	fmt.Fprintf(out, "toolchain: building %s in %s with src/make.bash (bootstrap %s)\n", tag, staging, bootstrap)
	if err := Build(staging, bootstrap, out); err != nil {
		return err
	}
	if err := Check(staging, tag); err != nil {
		return fmt.Errorf("after make.bash: %w", err)
	}
	if err := os.Rename(staging, root); err != nil {
		return err
	}
	fmt.Fprintf(out, "toolchain: %s installed in %s\n", tag, root)
	return nil
}

// stage puts the source tree of tag from src into dir and checks it.
func stage(src, tag, dir string, out io.Writer) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("tamago Go source: %w", err)
	}
	if fi.IsDir() {
		if err := checkSource(src, tag); err != nil {
			return err
		}
		fmt.Fprintf(out, "toolchain: copying %s to %s\n", src, dir)
		if err := CopyTree(src, dir); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
	} else {
		if err := VerifySum(src); err != nil {
			return err
		}
		fmt.Fprintf(out, "toolchain: unpacking %s to %s\n", src, dir)
		if err := Unpack(src, tag, dir); err != nil {
			return err
		}
	}
	return checkSource(dir, tag)
}
