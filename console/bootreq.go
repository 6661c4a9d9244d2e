// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/big-iron/big-iron/machine/link"
)

// BootRequest is what `vm boot linux` asks of an OS host.
type BootRequest struct {
	// VCPUs is the number of processors; Memory the RAM in bytes.
	VCPUs  int
	Memory uint64
	// Cmdline is the kernel command line ("" for the image's default).
	Cmdline string
	// Disks are the guest's disks in order (vda, vdb, ...); none: one
	// RAM disk of the image's default size.
	Disks []DiskSpec
	// Net, if set, gives the guest a network card bridged onto the node's
	// NIC.
	Net *NetSpec
}

// DiskSpec says what backs one of a guest's disks: a RAM disk of RAM
// bytes, or (RAM zero) the export Export of the NBD server Server.
type DiskSpec struct {
	RAM    uint64
	Server netip.AddrPort
	Export string
}

// NBDPort is the NBD protocol's registered TCP port (IANA, 10809).
const NBDPort = 10809

// maxDisks bounds the disks of one guest.
const maxDisks = 8

// ParseDisk reads one disk: "ram:SIZE" or the NBD URI
// "nbd://ADDRESS[:PORT]/EXPORT" (the form qemu-nbd and nbdkit take; an
// IPv4 address, the image resolves no names; the port defaults to 10809).
func ParseDisk(s string) (DiskSpec, error) {
	if size, ok := strings.CutPrefix(s, "ram:"); ok {
		n, err := parseSize(size)
		if err != nil || n%512 != 0 {
			return DiskSpec{}, fmt.Errorf("a RAM disk's size: want a multiple of 512 bytes, or with K, M or G")
		}
		return DiskSpec{RAM: n}, nil
	}
	rest, ok := strings.CutPrefix(s, "nbd://")
	if !ok {
		return DiskSpec{}, fmt.Errorf("want ram:SIZE or nbd://ADDRESS[:PORT]/EXPORT")
	}
	hostport, export, _ := strings.Cut(rest, "/")
	host, port := hostport, strconv.Itoa(NBDPort)
	if h, p, ok := strings.Cut(hostport, ":"); ok {
		host, port = h, p
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is4() {
		return DiskSpec{}, fmt.Errorf("NBD server %q: want an IPv4 address", host)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return DiskSpec{}, fmt.Errorf("NBD server port %q: want 1-65535", port)
	}
	if len(export) > 4096 {
		return DiskSpec{}, fmt.Errorf("an NBD export name of %d bytes: at most 4096", len(export))
	}
	return DiskSpec{Server: netip.AddrPortFrom(addr, uint16(pn)), Export: export}, nil
}

// String formats d as ParseDisk reads it.
func (d DiskSpec) String() string {
	if d.RAM != 0 {
		return "ram:" + sizeString(d.RAM)
	}
	return fmt.Sprintf("nbd://%v/%s", d.Server, d.Export)
}

// parseDisks reads a comma-separated list of disks.
func parseDisks(s string) ([]DiskSpec, error) {
	var out []DiskSpec
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

// NetSpec describes a guest's network card. A zero MAC lets the host
// choose one.
type NetSpec struct {
	MAC link.MAC
}

// parseNet reads net=on or net=MAC (a unicast address).
func parseNet(s string) (*NetSpec, error) {
	if s == "on" {
		return &NetSpec{}, nil
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
	return &NetSpec{MAC: m}, nil
}

// sizeString formats n bytes as parseSize reads them, in the largest
// whole unit.
func sizeString(n uint64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatUint(n, 10)
}
