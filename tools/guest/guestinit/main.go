// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux

// Command guestinit is /init in the guest's initramfs (tools/mkinitramfs
// puts it there). It mounts the kernel's file systems (/proc, /sys,
// /dev), loads the kernel modules listed in /lib/bigiron/modules in
// their order (big-iron's virtio devices), and then:
//
//   - with bigiron.root=DEVICE on the kernel command line (`vm boot
//     linux root=vda` puts bigiron.root=/dev/vda there), it loads the
//     modules of /lib/bigiron/modules.root (ext4 and what it needs),
//     mounts DEVICE as ext4 on /newroot and switches to it: /dev, /proc
//     and /sys move there, the initramfs is emptied, and the root file
//     system's /sbin/init (Debian's systemd) runs as process 1. If a
//     step fails it says which and why, and starts the shell instead;
//   - otherwise it runs /lib/bigiron/shell with gosh in its place, which
//     prints "big-iron guest: initramfs ready" and starts an interactive
//     gosh on the console, as the initramfs always did.
//
// It is a program rather than a line of the gosh script because the
// switch must happen in process 1 and end in an exec of the new init:
// gosh runs every command, exec's argument too, as a child.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// Where mkinitramfs puts what this program reads.
const (
	modulesList     = "/lib/bigiron/modules"
	rootModulesList = "/lib/bigiron/modules.root"
	shellScript     = "/lib/bigiron/shell"
	gosh            = "/bbin/gosh"
	newRoot         = "/newroot"
	rootInit        = "/sbin/init"
	// rootFSType is the one file system a guest's root may have.
	rootFSType = "ext4"
	// deviceWait bounds the wait for the root device's node.
	deviceWait = 10 * time.Second
)

func main() {
	mountKernelFS()
	loadModules(modulesList)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		say("reading the kernel command line: %v", err)
	}
	if dev, err := RootDevice(string(cmdline)); err != nil {
		say("%v; the initramfs shell instead", err)
	} else if dev != "" {
		err := switchRoot(dev)
		// Only a failure comes back.
		say("root file system %s: %v; the initramfs shell instead", dev, err)
	}
	err = syscall.Exec(gosh, []string{"gosh", shellScript}, os.Environ())
	say("starting the shell: %v", err)
	// Process 1 must not exit: the kernel would panic with no word of
	// why.
	for {
		time.Sleep(time.Hour)
	}
}

// say prints one line on the console, as the guest's other messages.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "big-iron guest: "+format+"\n", args...)
}

// mountKernelFS mounts /proc, /sys and /dev (devtmpfs: the kernel makes
// the device nodes, the virtio disks' too).
func mountKernelFS() {
	for _, m := range []struct{ fstype, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			say("mkdir %s: %v", m.dir, err)
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			say("mounting %s on %s: %v", m.fstype, m.dir, err)
		}
	}
}

// loadModules loads the modules a list file names (one path a line,
// dependencies first). A module the kernel already has is no error.
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with everything built in
	}
	if err != nil {
		say("kernel modules: %v", err)
		return err
	}
	var failed error
	for _, p := range ModulePaths(string(b)) {
		if err := loadModule(p); err != nil {
			say("%v", err)
			failed = errors.Join(failed, err)
		}
	}
	return failed
}

// loadModule is insmod with no parameters.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kernel module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading kernel module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// switchRoot mounts dev on newRoot and makes it the root, ending in an
// exec of its init; it returns only on failure, with what failed.
func switchRoot(dev string) error {
	say("root file system on %s (%s)", dev, rootFSType)
	if err := loadModules(rootModulesList); err != nil {
		return err
	}
	if err := waitForDevice(dev, deviceWait); err != nil {
		return err
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, rootFSType, 0, ""); err != nil {
		return fmt.Errorf("mounting it on %s: %w", newRoot, err)
	}
	if _, err := os.Lstat(newRoot + rootInit); err != nil {
		unix.Unmount(newRoot, 0)
		return fmt.Errorf("it has no %s: %w", rootInit, err)
	}
	// SwitchRoot moves /dev, /proc and /sys, chroots, deletes the
	// initramfs's files (their memory goes back to the guest) and execs
	// the new init in this process.
	return mount.SwitchRoot(newRoot, rootInit)
}

// waitForDevice waits for a device node to appear (a disk's driver may
// still be probing it).
func waitForDevice(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(dev)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no such device after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RootDevice reads bigiron.root=DEVICE from a kernel command line (the
// last one given wins) and returns the device node: /dev/vda, or vda
// which means the same; "" when there is none. A path outside /dev is
// an error.
func RootDevice(cmdline string) (string, error) {
	given, dev := false, ""
	for _, w := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(w, "bigiron.root="); ok {
			given, dev = true, v
		}
	}
	if !given {
		return "", nil
	}
	full := dev
	if !strings.HasPrefix(full, "/") {
		full = "/dev/" + full
	}
	if filepath.Clean(full) != full || !strings.HasPrefix(full, "/dev/") || len(full) == len("/dev/") {
		return "", fmt.Errorf("bigiron.root=%s: want a device such as /dev/vda or vda", dev)
	}
	return full, nil
}

// ModulePaths reads a module list: one path a line, blank lines and
// lines starting with # skipped.
func ModulePaths(list string) []string {
	var out []string
	for _, l := range strings.Split(list, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
