// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command mkinitramfs builds the guest's initramfs: a u-root busybox of
// Go commands (compiled from the module cache, never fetched) with
// u-root's init, the gosh shell, and the kernel modules the guest needs
// for big-iron's virtio devices, loaded by a small uinit script.
//
// Usage:
//
//	go run ./tools/mkinitramfs -o build/guest/initramfs.cpio.gz \
//		-modules build/guest/root/lib/modules/6.1.0-56-amd64
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// commands are the u-root commands in the guest's busybox.
var commands = []string{
	"init", "gosh", "ls", "cat", "echo", "grep", "wc", "dd", "insmod",
	"mount", "dmesg", "uname", "sleep", "mkdir", "shutdown", "sync",
	"hexdump", "ps", "free", "date", "true", "false", "rm", "cp", "uptime",
}

// modules are the kernel modules loaded at boot, in dependency order,
// by their path below the kernel's module directory. Debian builds them
// as modules; a kernel with them built in simply has none to load.
var modules = []string{
	"kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_mmio.ko",
	"kernel/drivers/block/virtio_blk.ko",
	"kernel/drivers/char/virtio_console.ko",
}

func main() {
	out := flag.String("o", "build/guest/initramfs.cpio.gz", "output: a gzip-compressed cpio archive")
	modDir := flag.String("modules", "", "the guest kernel's module directory (lib/modules/VERSION); empty: no modules")
	flag.Parse()
	if err := build(*out, *modDir); err != nil {
		log.Fatalf("mkinitramfs: %v", err)
	}
}

func build(out, modDir string) error {
	tmp, err := os.MkdirTemp("", "mkinitramfs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The uinit script: load the modules there are, then say so.
	var script strings.Builder
	files := []string{}
	for _, m := range modules {
		if modDir == "" {
			break
		}
		src := filepath.Join(modDir, m)
		if _, err := os.Stat(src); err != nil {
			continue // built in, or absent from this kernel
		}
		dst := "lib/modules/" + filepath.Base(m)
		files = append(files, src+":"+dst)
		fmt.Fprintf(&script, "insmod /%s\n", dst)
	}
	script.WriteString("echo big-iron guest: initramfs ready\n")
	scriptPath := filepath.Join(tmp, "bigiron-init.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o755); err != nil {
		return err
	}
	files = append(files, scriptPath+":etc/bigiron-init.sh")

	pkgs := make([]string, len(commands))
	for i, c := range commands {
		pkgs[i] = "github.com/u-root/u-root/cmds/core/" + c
	}
	cpioPath := filepath.Join(tmp, "initramfs.cpio")
	l := llog.New(slog.LevelInfo, func(format string, v ...any) { log.Printf(format, v...) })
	err = uimage.Create(l,
		uimage.WithEnv(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH("amd64")),
		uimage.WithTempDir(tmp),
		uimage.WithBusyboxCommands(pkgs...),
		uimage.WithInit("init"),
		uimage.WithShell("gosh"),
		uimage.WithUinit("gosh", "/etc/bigiron-init.sh"),
		uimage.WithSkipLDD(),
		uimage.WithFiles(files...),
		uimage.WithCPIOOutput(cpioPath),
	)
	if err != nil {
		return fmt.Errorf("building the u-root archive: %w", err)
	}
	return compress(cpioPath, out)
}

func compress(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	z, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
	if _, err := io.Copy(z, in); err != nil {
		f.Close()
		return fmt.Errorf("compressing: %w", err)
	}
	if err := z.Close(); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
