// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command toolchain makes sure the tamago Go distribution that `go tool
// tamago` runs is built, without the internet when it has to.
//
// It derives the distribution's tag from the tamago module version in
// go.mod, as `go tool tamago` does, and checks the folder that command
// uses (tamago-go/<tag> under the user cache directory). A complete build
// is left alone. Otherwise, with -src (default $TAMAGO_GO_SRC) naming a
// .tar.xz of the distribution's source or a checkout of its tag, it builds
// the distribution there with src/make.bash; a half-built tree from an
// interrupted build is removed and built again. Without a source it leaves
// the fetch to `go tool tamago` when github.com resolves, and fails at once,
// saying both ways to get the toolchain, when it does not.
//
// With -overlay it also writes a `go build -overlay` file that adds the Go
// files of -runtime (the board's additions to the runtime package) to that
// distribution; the Makefile builds and vets the image with it.
//
//	go run ./tools/toolchain [-src path] [-go go] [-overlay file [-runtime dir]]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/big-iron/big-iron/tools/toolchain/tamagodist"
)

func main() {
	src := flag.String("src", os.Getenv("TAMAGO_GO_SRC"), "tamago Go source: a .tar.xz (git archive --prefix=TAG/) or a checkout of the tag")
	goCmd := flag.String("go", "go", "the stock go command: module version and bootstrap toolchain")
	overlay := flag.String("overlay", "", "write a go build -overlay file adding -runtime's files to the distribution's runtime package")
	adds := flag.String("runtime", "machine/board/x86/_runtime", "folder of the Go files -overlay adds to the runtime package")
	flag.Parse()
	root, err := run(*src, *goCmd)
	if err == nil && *overlay != "" {
		err = writeOverlay(*overlay, root, *adds)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "toolchain: %v\n", err)
		os.Exit(1)
	}
}

// run makes sure the distribution is built, or left to `go tool tamago`,
// and returns its root.
func run(src, goCmd string) (string, error) {
	modVersion, err := output(goCmd, "list", "-m", "-f", "{{.Version}}", "github.com/usbarmory/tamago")
	if err != nil {
		return "", fmt.Errorf("tamago module version: %w", err)
	}
	tag, err := tamagodist.Tag(modVersion)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	root := tamagodist.Root(cache, tag)
	state := tamagodist.Check(root, tag)
	if state == nil {
		return root, nil
	}
	if src == "" {
		return root, leaveToTamago(root, tag, state)
	}
	bootstrap, err := output(goCmd, "env", "GOROOT")
	if err != nil {
		return "", fmt.Errorf("bootstrap toolchain: %w", err)
	}
	start := time.Now()
	if err := tamagodist.Install(root, tag, src, bootstrap, os.Stdout); err != nil {
		return "", err
	}
	fmt.Printf("toolchain: %s ready after %v\n", tag, time.Since(start).Round(time.Second))
	return root, nil
}

// writeOverlay writes the overlay adding the files of dir to the runtime
// package of the distribution at root, replacing file only when its
// content changes (go build hashes the overlay, not its time).
func writeOverlay(file, root, dir string) error {
	adds, err := tamagodist.RuntimeAdds(dir)
	if err != nil {
		return err
	}
	js, err := tamagodist.RuntimeOverlay(root, adds)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(file); err == nil && string(old) == string(js) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, js, 0o644)
}

// leaveToTamago handles a missing or broken distribution when no source was
// given: a half-built tree goes (`go tool tamago` would run it if its bin/go
// exists), and the fetch is left to `go tool tamago` only where it can work.
func leaveToTamago(root, tag string, state error) error {
	if !errors.Is(state, tamagodist.ErrNotInstalled) {
		fmt.Printf("toolchain: %v: removing it\n", state)
		if err := os.RemoveAll(root); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, "github.com"); err != nil {
		return fmt.Errorf("%s is not built in %s and github.com cannot be reached (%v): set TAMAGO_GO_SRC to its source, a .tar.xz made by git archive --prefix=%s/ or a checkout of tag %s (README: Building offline), or build once with internet access so that `go tool tamago` fetches it",
			tag, root, err, tag, tag)
	}
	fmt.Printf("toolchain: %s is not built; `go tool tamago` fetches and builds it from github.com\n", tag)
	return nil
}

// output runs a command and returns its trimmed standard output.
func output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
