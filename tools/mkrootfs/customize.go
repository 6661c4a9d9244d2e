// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// hostname is the guest's.
const hostname = "bigiron-guest"

// guestFiles are written into the tree, over what Debian put there.
var guestFiles = []struct {
	path, text string
	mode       os.FileMode
}{
	{"etc/hostname", hostname + "\n", 0o644},
	{"etc/hosts", "127.0.0.1 localhost\n127.0.1.1 " + hostname + "\n::1 localhost ip6-localhost ip6-loopback\n", 0o644},
	// The initramfs mounts the root read-write before systemd starts
	// (bigiron.root=); with no line for / systemd leaves it so.
	{"etc/fstab", "# The root file system (ext4, read-write) is mounted by big-iron's\n" +
		"# initramfs from bigiron.root= on the kernel command line.\n", 0o644},
	// No resolver here: DHCP's is not written without systemd-resolved.
	{"etc/resolv.conf", "# no name server configured\n", 0o644},
	// An address by DHCP on the virtio NIC, whatever udev names it.
	{"etc/systemd/network/20-bigiron.network", "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n", 0o644},
	{"etc/ssh/sshd_config.d/bigiron.conf", "# big-iron guest: root logs in with its key only.\n" +
		"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n", 0o644},
	// The serial console (the hyperkernel's `console` command) is the
	// operator's, as the initramfs's shell is: root without a
	// password there.
	{"etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", "[Service]\nExecStart=\n" +
		"ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM\n", 0o644},
}

// units are enabled (+) or disabled (-) with systemctl in the tree:
// networkd for DHCP, iperf3's server; no screen, so no getty on tty1;
// no daily apt runs (the guest reaches no mirror, and an emulator's
// guest has no time to spare).
var units = []string{"+systemd-networkd.service", "+iperf3.service",
	"-getty@tty1.service", "-apt-daily.timer", "-apt-daily-upgrade.timer"}

// moduleDirs are the parts of the guest kernel's modules copied into the
// image (about a quarter of them): file systems, networking, crypto,
// block, virtio and character devices; no graphics, sound, wireless or
// physical NICs, which a VM of big-iron's does not have.
var moduleDirs = []string{"kernel/arch", "kernel/block", "kernel/crypto", "kernel/fs", "kernel/lib", "kernel/mm", "kernel/net",
	"kernel/virt", "kernel/drivers/block", "kernel/drivers/char", "kernel/drivers/md", "kernel/drivers/net", "kernel/drivers/virtio"}

// moduleSkips are left out of moduleDirs.
var moduleSkips = []string{"kernel/drivers/net/wireless", "kernel/drivers/net/ethernet", "kernel/drivers/net/usb", "kernel/drivers/net/can"}

// customize makes the tree big-iron's guest: its files, root's ssh key,
// the units, the kernel's modules.
func customize(dir, pub, modules string) error {
	for _, f := range guestFiles {
		if err := writeFile(filepath.Join(dir, f.path), f.text, f.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "root/.ssh"), 0o700); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "root/.ssh/authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	for _, u := range units {
		verb := map[byte]string{'+': "enable", '-': "disable"}[u[0]]
		if err := inTree(dir, "systemctl", "--quiet", verb, u[1:]); err != nil {
			return err
		}
	}
	if modules == "" {
		return nil
	}
	version := filepath.Base(modules)
	if err := copyModules(modules, filepath.Join(dir, "lib/modules", version)); err != nil {
		return err
	}
	return inTree(dir, "depmod", "-a", version)
}

// writeFile writes text to path, its directory made as needed.
func writeFile(path, text string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path) // it may be a symlink (resolv.conf)
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// inTree runs a command chrooted into the tree.
func inTree(dir string, args ...string) error {
	cmd := exec.Command("chroot", append([]string{dir}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("in the tree, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// keepModule says whether a file of the module directory (rel, relative
// to it) goes into the image: the index files at its top, and moduleDirs
// less moduleSkips.
func keepModule(rel string) bool {
	if !strings.Contains(rel, "/") {
		return true
	}
	under := func(dirs []string) bool {
		for _, d := range dirs {
			if rel == d || strings.HasPrefix(rel, d+"/") {
				return true
			}
		}
		return false
	}
	return under(moduleDirs) && !under(moduleSkips)
}

// copyModules copies what keepModule keeps of src to dst.
func copyModules(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." || d.IsDir() || !keepModule(rel) {
			return err
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// copyFile copies one regular file, its mode kept.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
