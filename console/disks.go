// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

// DiskInfo is one of a guest's disks as `disks` shows it.
type DiskInfo struct {
	// VM is the guest's id; Name the disk's in the guest (vda, vdb, ...).
	VM   int
	Name string
	// Spec is what backs it, Size its size in bytes.
	Spec hv.DiskSpec
	Size uint64
	// Block is what the guest's device did with it.
	Block virtio.BlockStats
	// NBD is the network disk's client, nil for a RAM disk.
	NBD *nbd.Status
}

// DiskLister lists the disks of the guests an OS host started.
type DiskLister interface {
	Disks() []DiskInfo
}

// DisksCommand returns `disks`: every disk of every guest, its server,
// the connection's state, requests in flight, traffic and latency.
func DisksCommand(l DiskLister) *shell.Command {
	return &shell.Command{
		Name:  "disks",
		Usage: "",
		Help:  "the guests' disks: what backs each, its server's connection, requests in flight, bytes and latency",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return shell.ErrUsage
			}
			if l == nil {
				return fmt.Errorf("this image carries no guest operating system (build it with GUEST=linux)")
			}
			ds := l.Disks()
			if len(ds) == 0 {
				fmt.Fprintln(w, "no guest has a disk")
			}
			for _, d := range ds {
				writeDisk(w, d)
			}
			return nil
		},
	}
}

// writeDisk prints one disk: a line for the device, one more for a
// network disk's connection.
func writeDisk(w io.Writer, d DiskInfo) {
	b := d.Block
	fmt.Fprintf(w, "vm %d %s %s, %s: %d in flight; read %d (%s), written %d (%s), %d flushes, %d discards; %d errors\n",
		d.VM, d.Name, d.Spec, memmap.FormatSize(d.Size), b.InFlight, b.Reads, memmap.FormatSize(b.BytesRead),
		b.Writes, memmap.FormatSize(b.BytesWritten), b.Flushes, b.Discards, b.IOErrors)
	if s := d.NBD; s != nil {
		fmt.Fprintf(w, "  server %s: %s, %d in flight, %d queued; latency mean %v, max %v; reconnects %d",
			s.Addr, s.State, s.InFlight, s.Queued, s.Latency.Mean(), s.Latency.Max, s.Reconnects)
		if s.LastError != nil {
			fmt.Fprintf(w, "; last error: %v", s.LastError)
		}
		fmt.Fprintln(w)
	}
}
