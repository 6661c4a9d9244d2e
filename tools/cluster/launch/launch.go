// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package launch builds the emulator command lines of a big-iron cluster
// on one host: n nodes on one Ethernet segment, each with its node id,
// MAC, IPv4 address and the list of initial members on its boot command
// line. QEMU nodes share a segment through a multicast UDP socket netdev
// (no root needed); Bochs nodes through bxhub.
package launch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Cluster describes the nodes to start.
type Cluster struct {
	// Nodes is the number of nodes, 1 to 6 (bxhub's limit; QEMU has none
	// but the MAC scheme below allows 254).
	Nodes int
	// Segment is the multicast port (QEMU) or bxhub base port (Bochs).
	Segment int
	// CPUs and MemMiB size each node; MemMiB is at least 1024 (the
	// image runs from 256 MiB to 512 MiB and keeps DMA memory above;
	// guests get the rest).
	CPUs, MemMiB int
	// Key is the cluster key as hex, or empty for the development key.
	Key string
	// FailureTimeout, if set, is how long a member may stay silent
	// before it is declared failed (bigiron.failtimeout): longer than
	// the default for more single-threaded emulators than host cores,
	// where a node's silence is its emulator waiting for a core.
	FailureTimeout time.Duration
	// PollHot, if set, is how long each node's receive loop polls
	// without sleeping after a frame (bigiron.pollhot; under an
	// emulator the image's default is 0).
	PollHot time.Duration
}

// MAC returns node i's MAC address (nodes count from 1): locally
// administered, 52:54:00 as QEMU's own, then be:00:i.
func MAC(i int) string { return fmt.Sprintf("52:54:00:be:00:%02x", i) }

// IP returns node i's control-plane address.
func IP(i int) string { return fmt.Sprintf("10.77.0.%d", i) }

// CommandLine is node i's boot command line.
func (c Cluster) CommandLine(i int) string {
	var peers []string
	for j := 1; j <= c.Nodes; j++ {
		peers = append(peers, fmt.Sprintf("%d@%s@%s", j, MAC(j), IP(j)))
	}
	s := fmt.Sprintf("bigiron.node=%d bigiron.ip=%s/24 bigiron.peers=%s", i, IP(i), strings.Join(peers, ","))
	if c.Key != "" {
		s += " bigiron.key=" + c.Key
	}
	if c.FailureTimeout != 0 {
		s += " bigiron.failtimeout=" + c.FailureTimeout.String()
	}
	if c.PollHot != 0 {
		s += " bigiron.pollhot=" + c.PollHot.String()
	}
	return s
}

// Check validates the description.
func (c Cluster) Check() error {
	if c.Nodes < 1 || c.Nodes > 6 {
		return fmt.Errorf("launch: %d nodes: want 1 to 6", c.Nodes)
	}
	if c.Segment < 1024 || c.Segment > 65000 {
		return fmt.Errorf("launch: segment port %d out of range", c.Segment)
	}
	return nil
}

// QEMU returns the qemu-system-x86_64 arguments of node i (from 1)
// booting elf (PVH) on a q35 machine with an 82540EM NIC, serial console
// on stdio. accel is e.g. "-cpu max" or "-enable-kvm -cpu host".
func (c Cluster) QEMU(i int, elf string, accel []string) []string {
	args := []string{"-machine", "q35"}
	args = append(args, accel...)
	args = append(args,
		"-smp", fmt.Sprint(max(1, c.CPUs)), "-m", fmt.Sprint(max(1024, c.MemMiB)),
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", fmt.Sprintf("socket,id=n0,mcast=230.0.0.1:%d,localaddr=127.0.0.1", c.Segment),
		"-device", "e1000,netdev=n0,mac="+MAC(i),
		"-kernel", elf,
		"-append", c.CommandLine(i),
	)
	return args
}

// BochsHub returns the bxhub arguments for the cluster.
func (c Cluster) BochsHub() []string {
	return []string{fmt.Sprintf("-ports=%d", max(2, c.Nodes)), fmt.Sprintf("-base=%d", c.Segment)}
}

// Bochs returns the bochs arguments of node i (from 1) booting iso,
// console on a socket at consolePort, after the options of rc (the
// repository's qemu/bochsrc.txt) which these override. Bochs cannot put a
// per-node command line on a GRUB ISO, so each node gets its own ISO:
// isoFor(i) names it.
func (c Cluster) Bochs(i int, bochsrc, iso, log string, consolePort, vncPort int) []string {
	return []string{"-q", "-f", bochsrc,
		fmt.Sprintf("cpu: model=corei7_haswell_4770, count=%d, ips=100000000, reset_on_triple_fault=0", max(1, c.CPUs)),
		fmt.Sprintf("megs: %d", max(1024, c.MemMiB)),
		"ata0-master: type=cdrom, path=" + iso + ", status=inserted",
		"log: " + log,
		// ethdev is a bare UDP port: Bochs reads "127.0.0.1:N" as port 127
		// and binds it; bxhub listens on the port above.
		fmt.Sprintf("e1000: enabled=1, mac=%s, ethmod=socket, ethdev=%d", MAC(i), c.Segment+2*(i-1)),
		fmt.Sprintf("com1: enabled=1, mode=socket-server, dev=127.0.0.1:%d", consolePort),
		fmt.Sprintf("display_library: rfb, options=\"timeout=0 port=%d\"", vncPort),
	}
}

// GrubConfig is the GRUB configuration of node i's ISO: the multiboot
// image with the node's command line.
func (c Cluster) GrubConfig(i int) string {
	return grubConfig(fmt.Sprintf("big-iron node %d", i), c.CommandLine(i))
}

// grubConfig is the GRUB configuration of an ISO whose one menu entry,
// title, boots the multiboot image with cmdline, console on COM1.
func grubConfig(title, cmdline string) string {
	return fmt.Sprintf(`set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry %q {
	multiboot /boot/bigiron.mb %s
	boot
}
`, title, cmdline)
}

// NodeDir is where node i's files go under dir.
func NodeDir(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }

// NodeISO writes node i's GRUB ISO into dir (the node's directory) from
// the multiboot image mb: its menu entry carries the node's command line.
// It returns the ISO's path. It needs grub-mkrescue (with xorriso and
// mtools).
func (c Cluster) NodeISO(i int, mb, dir string) (string, error) {
	iso, err := ISO(mb, dir, fmt.Sprintf("big-iron node %d", i), c.CommandLine(i))
	if err != nil {
		return "", fmt.Errorf("launch: node %d ISO: %w", i, err)
	}
	return iso, nil
}

// ISO writes dir/bigiron.iso, a GRUB ISO whose one menu entry, title,
// boots the multiboot image mb with cmdline, and returns its path. It
// needs grub-mkrescue (with xorriso and mtools).
func ISO(mb, dir, title, cmdline string) (string, error) {
	root := filepath.Join(dir, "iso")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		return "", err
	}
	image, err := os.ReadFile(mb)
	if err != nil {
		return "", fmt.Errorf("%w (make image first)", err)
	}
	if err := os.WriteFile(filepath.Join(root, "boot", "bigiron.mb"), image, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(grubConfig(title, cmdline)), 0o644); err != nil {
		return "", err
	}
	iso := filepath.Join(dir, "bigiron.iso")
	if out, err := exec.Command("grub-mkrescue", "-o", iso, root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("grub-mkrescue: %v\n%s", err, out)
	}
	return iso, nil
}
