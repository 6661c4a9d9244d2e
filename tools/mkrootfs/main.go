// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command mkrootfs builds a small Debian root file system for a guest, as
// an ext4 image to serve from an NBD server (`vm boot linux
// disk=nbd://... root=vda`): Debian's packages from Debian's mirror
// through mmdebstrap (debootstrap where mmdebstrap is absent), with
// systemd, openssh-server, iperf3 and fio; systemd-networkd asks for an
// address by DHCP on every en* and eth* interface; root logs in over ssh
// with a key the tool generates (ed25519, -key; kept across builds) and
// is logged in on the serial console (ttyS0) without a password; the
// guest kernel's modules (a subset, -modules) are in /lib/modules. The
// image is a sparse file of -size bytes made by mkfs.ext4 -d.
//
// It must run as root (the packages' files keep their owners). A build
// is skipped when the image exists and was made from the same recipe
// (packages, key, size, modules), which it records beside the image in
// IMAGE.recipe.
//
// Usage:
//
//	go run ./tools/mkrootfs -o build/guest/rootfs.img -key build/guest/rootfs_key \
//		-modules build/guest/root/lib/modules/6.1.0-57-amd64
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// packages are installed beside the base system (mmdebstrap's apt
// variant: the Essential packages and apt).
var packages = []string{
	"systemd-sysv", "udev", "kmod", "iproute2", "procps", "less",
	"openssh-server", "iperf3", "fio",
}

// recipeVersion changes whenever what the tool puts in the image changes
// in a way the flags and the package list do not show (the files of
// customize), so that an old image is rebuilt: bump it with such a
// change.
const recipeVersion = "1"

// options are the tool's flags.
type options struct {
	out, key, modules, suite, mirror string
	size                             int64
}

func main() {
	var o options
	flag.StringVar(&o.out, "o", "build/guest/rootfs.img", "the ext4 image to write")
	flag.StringVar(&o.key, "key", "build/guest/rootfs_key", "root's ssh key (private; .pub beside it): made when absent")
	flag.StringVar(&o.modules, "modules", "", "the guest kernel's module directory (lib/modules/VERSION); empty: no modules")
	flag.StringVar(&o.suite, "suite", "bookworm", "the Debian release")
	flag.StringVar(&o.mirror, "mirror", "", "Debian mirror URL (empty: the bootstrap tool's default)")
	size := flag.String("size", "1G", "the image's size (sparse), with K, M or G")
	flag.Parse()
	var err error
	if o.size, err = parseSize(*size); err != nil {
		log.Fatalf("mkrootfs: -size %s: %v", *size, err)
	}
	if err := build(o); err != nil {
		log.Fatalf("mkrootfs: %v", err)
	}
}

// build makes the image o asks for unless an image of the same recipe is
// there.
func build(o options) error {
	bootstrap, err := checkTools()
	if err != nil {
		return err
	}
	pub, err := ensureKey(o.key)
	if err != nil {
		return err
	}
	recipe := o.recipe(pub)
	if old, err := os.ReadFile(o.out + ".recipe"); err == nil && string(old) == recipe {
		if _, err := os.Stat(o.out); err == nil {
			log.Printf("%s is up to date", o.out)
			return nil
		}
	}
	start := time.Now()
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	// The tree is built next to the image, on the same disk: it is
	// hundreds of MiB.
	dir, err := os.MkdirTemp(filepath.Dir(o.out), ".rootfs-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := bootstrapTree(bootstrap, o, dir); err != nil {
		return err
	}
	if err := customize(dir, pub, o.modules); err != nil {
		return err
	}
	if err := makeImage(dir, o.out, o.size); err != nil {
		return err
	}
	if err := os.WriteFile(o.out+".recipe", []byte(recipe), 0o644); err != nil {
		return err
	}
	log.Printf("%s: Debian %s, %d MiB (sparse), root's key %s, in %v", o.out, o.suite, o.size>>20, o.key, time.Since(start).Round(time.Second))
	return nil
}

// recipe describes what the image is made of, for the up-to-date check.
func (o options) recipe(pub string) string {
	mods := "none"
	if o.modules != "" {
		mods = filepath.Base(o.modules)
	}
	return fmt.Sprintf("version %s\nsuite %s\nmirror %s\npackages %s\nsize %d\nmodules %s\nkey %s\n",
		recipeVersion, o.suite, o.mirror, strings.Join(packages, ","), o.size, mods, strings.TrimSpace(pub))
}

// checkTools says what is missing, with the Debian package that has it,
// and returns the bootstrap tool to use: mmdebstrap, or debootstrap.
func checkTools() (string, error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("needs root: the packages' files keep their owners (run it as root or with sudo)")
	}
	var missing []string
	for _, t := range []struct{ tool, pkg string }{
		{"mkfs.ext4", "e2fsprogs"}, {"ssh-keygen", "openssh-client"}, {"chroot", "coreutils"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t.tool, t.pkg))
		}
	}
	bootstrap := ""
	for _, t := range []string{"mmdebstrap", "debootstrap"} {
		if _, err := exec.LookPath(t); err == nil {
			bootstrap = t
			break
		}
	}
	if bootstrap == "" {
		missing = append(missing, "mmdebstrap or debootstrap (apt-get install mmdebstrap)")
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("missing: %s", strings.Join(missing, ", "))
	}
	return bootstrap, nil
}

// ensureKey makes an ed25519 key pair at path (no passphrase) unless one
// is there, and returns the public key.
func ensureKey(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		os.Remove(path + ".pub")
		cmd := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "big-iron guest root", "-f", path)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		return "", fmt.Errorf("root's public key: %w", err)
	}
	return string(pub), nil
}

// bootstrapTree installs Debian into dir.
func bootstrapTree(tool string, o options, dir string) error {
	var args []string
	switch tool {
	case "mmdebstrap":
		args = []string{"--mode=root", "--variant=apt", "--include=" + strings.Join(packages, ","), o.suite, dir}
	default:
		args = []string{"--variant=minbase", "--include=" + strings.Join(packages, ","), o.suite, dir}
	}
	if o.mirror != "" {
		args = append(args, o.mirror)
	}
	log.Printf("%s %s", tool, strings.Join(args, " "))
	cmd := exec.Command(tool, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w (it fetches Debian's packages: is Debian's mirror reachable?)", tool, err)
	}
	// debootstrap keeps the packages it fetched.
	debs, _ := filepath.Glob(filepath.Join(dir, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		os.Remove(d)
	}
	return nil
}

// makeImage writes a sparse ext4 image of size bytes holding dir, first
// to a temporary file renamed into place when complete.
func makeImage(dir, out string, size int64) error {
	tmp := out + ".tmp"
	os.Remove(tmp)
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-L", "bigiron-root", "-d", dir, tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkfs.ext4 -d: %v\n%s", err, b)
	}
	return os.Rename(tmp, out)
}

// parseSize reads bytes, or a number with K, M or G (binary multiples).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	digits := s
	if mult != 1 {
		digits = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > 1<<40/mult || n*mult < 64<<20 {
		return 0, fmt.Errorf("want a size of at least 64M, as bytes or with K, M or G")
	}
	return n * mult, nil
}
