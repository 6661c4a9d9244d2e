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
//	go run ./tools/toolchain [-src path] [-go go]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/big-iron/big-iron/tools/toolchain/tamagodist"
)

func main() {
	src := flag.String("src", os.Getenv("TAMAGO_GO_SRC"), "tamago Go source: a .tar.xz (git archive --prefix=TAG/) or a checkout of the tag")
	goCmd := flag.String("go", "go", "the stock go command: module version and bootstrap toolchain")
	flag.Parse()
	if err := run(*src, *goCmd); err != nil {
		fmt.Fprintf(os.Stderr, "toolchain: %v\n", err)
		os.Exit(1)
	}
}

func run(src, goCmd string) error {
	modVersion, err := output(goCmd, "list", "-m", "-f", "{{.Version}}", "github.com/usbarmory/tamago")
	if err != nil {
		return fmt.Errorf("tamago module version: %w", err)
	}
	tag, err := tamagodist.Tag(modVersion)
	if err != nil {
		return err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return err
	}
	root := tamagodist.Root(cache, tag)
	state := tamagodist.Check(root, tag)
	if state == nil {
		return nil
	}
	if src == "" {
		return leaveToTamago(root, tag, state)
	}
	bootstrap, err := output(goCmd, "env", "GOROOT")
	if err != nil {
		return fmt.Errorf("bootstrap toolchain: %w", err)
	}
	start := time.Now()
	if err := tamagodist.Install(root, tag, src, bootstrap, os.Stdout); err != nil {
		return err
	}
	fmt.Printf("toolchain: %s ready after %v\n", tag, time.Since(start).Round(time.Second))
	return nil
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
