// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command mkinitramfs builds the guest's initramfs: a u-root busybox of
// Go commands (compiled from the module cache, never fetched) with
// u-root's init, the gosh shell, and the kernel modules the guest needs
// for big-iron's virtio devices. /init is big-iron's tools/guest/guestinit:
// it mounts the kernel file systems and loads the modules in dependency
// order (lib/bigiron/modules); then, given bigiron.root=/dev/vdX on the
// kernel command line, it mounts that disk (ext4, whose modules are in
// lib/bigiron/modules.root) and switches to it, running its /sbin/init;
// otherwise it hands over to gosh running lib/bigiron/shell, which
// starts an interactive gosh on the console. (u-root's own init started
// its shell with no prompt on our serial console: it reads the console
// through a pipe of init's; the script keeps the console the shell's
// own terminal.)
//
// Usage:
//
//	go run ./tools/mkinitramfs -o build/guest/initramfs.cpio.gz \
//		-modules build/guest/root/lib/modules/6.1.0-56-amd64
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// commands are the u-root commands in the guest's busybox.
var commands = []string{
	"gosh", "ls", "cat", "echo", "grep", "wc", "dd", "insmod",
	"mount", "dmesg", "uname", "sleep", "mkdir", "shutdown", "sync",
	"hexdump", "ps", "free", "date", "true", "false", "rm", "cp", "uptime",
	// the guest's network and disks: an address by DHCP, traffic to the
	// host, checksums of what a disk holds
	"dhclient", "ip", "ping", "wget", "md5sum",
}

// guestPrograms are big-iron's own programs for the guest (package
// paths, built for linux/amd64 and put in /bin).
var guestPrograms = []string{
	"github.com/big-iron/big-iron/tools/guest/sharedcounter",
	"github.com/big-iron/big-iron/tools/guest/memtest",
	"github.com/big-iron/big-iron/tools/guest/avxcheck",
	"github.com/big-iron/big-iron/tools/guest/oncpu",
}

// guestInit is the initramfs's /init: it mounts the kernel's file
// systems, loads the modules, and switches to the guest's own root file
// system (bigiron.root=) or runs the shell.
const guestInit = "github.com/big-iron/big-iron/tools/guest/guestinit"

// modules are the kernel modules the guest needs for big-iron's virtio
// devices. Debian builds them as modules; a kernel with them built in
// has none to load. Their dependencies (each module's modinfo
// "depends=") come along, loaded first.
var modules = []string{"virtio_mmio", "virtio_blk", "virtio_console", "virtio_net"}

// rootModules are loaded only for a root file system of the guest's own
// (bigiron.root=): ext4, which Debian builds as a module, and
// crc32c_generic before it: ext4 and jbd2 ask the kernel's crypto API
// for crc32c (their modinfo's "softdep=pre: crypto-crc32c"), which would
// otherwise have to run modprobe, absent here, to load it.
var rootModules = []string{"crc32c_generic", "ext4"}

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

	files, err := moduleFiles(tmp, modDir)
	if err != nil {
		return err
	}
	shellPath := filepath.Join(tmp, "shell")
	if err := os.WriteFile(shellPath, []byte(shellScript), 0o755); err != nil {
		return err
	}
	files = append(files, shellPath+":lib/bigiron/shell")

	// big-iron's programs go into the busybox beside u-root's commands:
	// one Go runtime instead of one per program, since the initramfs
	// lives in the guest's RAM (separate binaries took 8 MiB more).
	pkgs := make([]string, 0, len(commands)+len(guestPrograms)+1)
	for _, c := range commands {
		pkgs = append(pkgs, "github.com/u-root/u-root/cmds/core/"+c)
	}
	pkgs = append(append(pkgs, guestPrograms...), guestInit)
	cpioPath := filepath.Join(tmp, "initramfs.cpio")
	l := llog.New(slog.LevelInfo, func(format string, v ...any) { log.Printf(format, v...) })
	err = uimage.Create(l,
		// goshsmall: gosh reads plain lines, which suits a serial
		// console (its full line editor needs a terminal that answers).
		uimage.WithEnv(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH("amd64"), golang.WithBuildTag("goshsmall")),
		uimage.WithTempDir(tmp),
		// The base: /dev/console and the other nodes the kernel and
		// init need before devtmpfs is mounted (without it the shell
		// has no terminal).
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithBusyboxCommands(pkgs...),
		uimage.WithShell("gosh"),
		uimage.WithInit(filepath.Base(guestInit)),
		uimage.WithSkipLDD(),
		uimage.WithFiles(files...),
		uimage.WithCPIOOutput(cpioPath),
	)
	if err != nil {
		return fmt.Errorf("building the u-root archive: %w", err)
	}
	return compress(cpioPath, out)
}

// shellScript is /lib/bigiron/shell, which /init runs with gosh in its
// place when the guest has no root file system of its own: the line the
// tests and the operator wait for, then the interactive shell.
const shellScript = "#!/bbin/gosh\n" +
	"export PATH=/bbin:/bin\n" +
	"echo big-iron guest: initramfs ready\n" +
	"gosh\n" +
	"echo big-iron guest: the shell exited\n"

// moduleFiles finds the modules and rootModules under modDir (none when
// modDir is empty) and returns the archive's entries for them: each
// module in lib/bigiron, and the two lists /init loads them from in
// dependency order (lib/bigiron/modules, lib/bigiron/modules.root: what
// only a root file system needs, less what the first list loads).
// (Not lib/modules: u-root's tools load what is there in name order,
// which is not dependency order.)
func moduleFiles(tmp, modDir string) ([]string, error) {
	if modDir == "" {
		return nil, nil
	}
	base, err := moduleOrder(modDir, modules)
	if err != nil {
		return nil, err
	}
	root, err := moduleOrder(modDir, rootModules)
	if err != nil {
		return nil, err
	}
	root = slices.DeleteFunc(root, func(p string) bool { return slices.Contains(base, p) })
	var files []string
	for _, l := range []struct {
		name  string
		order []string
	}{{"modules", base}, {"modules.root", root}} {
		var list strings.Builder
		for _, src := range l.order {
			dst := "lib/bigiron/" + filepath.Base(src)
			files = append(files, src+":"+dst)
			fmt.Fprintf(&list, "/%s\n", dst)
		}
		p := filepath.Join(tmp, l.name)
		if err := os.WriteFile(p, []byte(list.String()), 0o644); err != nil {
			return nil, err
		}
		files = append(files, p+":lib/bigiron/"+l.name)
	}
	return files, nil
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

// moduleOrder finds the named modules under dir and returns their files
// with every dependency before its dependents. Modules the kernel does
// not have as files (built in) are skipped.
func moduleOrder(dir string, names []string) ([]string, error) {
	paths := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			paths[strings.TrimSuffix(filepath.Base(p), ".ko")] = p
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = strings.ReplaceAll(name, "-", "_")
		p, ok := paths[name]
		if !ok || state[name] == 2 {
			return nil
		}
		if state[name] == 1 {
			return fmt.Errorf("kernel modules: dependency cycle through %s", name)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads the "depends=" entry of a module's .modinfo
// section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernel module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
