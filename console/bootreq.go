// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/fetch"
)

// parseRoot reads root=vdX (or /dev/vdX): one of the guest's disks, of
// which it has disks (with none given, its one RAM disk).
func parseRoot(s string, disks int) (string, error) {
	name := strings.TrimPrefix(s, "/dev/")
	disks = max(disks, 1)
	if len(name) != 3 || !strings.HasPrefix(name, "vd") || name[2] < 'a' || int(name[2]-'a') >= disks {
		return "", fmt.Errorf("root=%s: want one of the guest's %d disks, vda to vd%c", s, disks, 'a'+disks-1)
	}
	return "/dev/" + name, nil
}

// NBDPort is the NBD protocol's registered TCP port (IANA, 10809).
const NBDPort = 10809

// maxDisks bounds the disks of one guest.
const maxDisks = 8

// ParseDisk reads one disk: "ram:SIZE" or the NBD URI
// "nbd://ADDRESS[:PORT]/EXPORT" (the form qemu-nbd and nbdkit take; an
// IPv4 address, the image resolves no names; the port defaults to 10809).
func ParseDisk(s string) (hv.DiskSpec, error) {
	if size, ok := strings.CutPrefix(s, "ram:"); ok {
		n, err := parseSize(size)
		if err != nil || n%512 != 0 {
			return hv.DiskSpec{}, fmt.Errorf("a RAM disk's size: want a multiple of 512 bytes, or with K, M or G")
		}
		return hv.DiskSpec{RAM: n}, nil
	}
	rest, ok := strings.CutPrefix(s, "nbd://")
	if !ok {
		return hv.DiskSpec{}, fmt.Errorf("want ram:SIZE or nbd://ADDRESS[:PORT]/EXPORT")
	}
	hostport, export, _ := strings.Cut(rest, "/")
	host, port := hostport, strconv.Itoa(NBDPort)
	if h, p, ok := strings.Cut(hostport, ":"); ok {
		host, port = h, p
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is4() {
		return hv.DiskSpec{}, fmt.Errorf("NBD server %q: want an IPv4 address", host)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return hv.DiskSpec{}, fmt.Errorf("NBD server port %q: want 1-65535", port)
	}
	if len(export) > 4096 {
		return hv.DiskSpec{}, fmt.Errorf("an NBD export name of %d bytes: at most 4096", len(export))
	}
	return hv.DiskSpec{Server: netip.AddrPortFrom(addr, uint16(pn)), Export: export}, nil
}

// parseDisks reads a comma-separated list of disks.
func parseDisks(s string) ([]hv.DiskSpec, error) {
	var out []hv.DiskSpec
	for _, one := range strings.Split(s, ",") {
		d, err := ParseDisk(one)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if len(out) > maxDisks {
		return nil, fmt.Errorf("%d disks: at most %d", len(out), maxDisks)
	}
	return out, nil
}

// bootFileKeys adds kernel= and initrd= to a: URLs of the guest's boot
// files on an HTTP server.
func bootFileKeys(a *Args, b *hv.BootFiles) {
	a.Func("kernel", func(v string) error { return checkURL(v, &b.Kernel) })
	a.Func("initrd", func(v string) error { return checkURL(v, &b.Initrd) })
}

// checkURL stores v in dst if it is a URL the node can fetch from.
func checkURL(v string, dst *string) error {
	if _, err := fetch.ParseURL(v); err != nil {
		return err
	}
	*dst = v
	return nil
}

// maxModules bounds a Multiboot guest's modules.
const maxModules = 16

// parseModules reads module=URL[,URL...] into dst.
func parseModules(v string, dst *[]string) error {
	urls := strings.Split(v, ",")
	if len(urls) > maxModules {
		return fmt.Errorf("%d modules: at most %d", len(urls), maxModules)
	}
	for _, u := range urls {
		var s string
		if err := checkURL(u, &s); err != nil {
			return err
		}
		*dst = append(*dst, s)
	}
	return nil
}

// parseNet reads net=on or net=MAC (a unicast address).
func parseNet(s string) (*hv.NetSpec, error) {
	if s == "on" {
		return &hv.NetSpec{}, nil
	}
	var m link.MAC
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fmt.Errorf("want on or a MAC like 0a:b1:00:00:00:01")
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return nil, fmt.Errorf("want on or a MAC like 0a:b1:00:00:00:01")
		}
		m[i] = byte(v)
	}
	if m.IsMulticast() || m == (link.MAC{}) {
		return nil, fmt.Errorf("%v is not a unicast MAC", m)
	}
	return &hv.NetSpec{MAC: m}, nil
}
