// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package netdisk puts an export of a network block device server behind
// a guest's virtio block device: it turns the device's requests
// (virtio.DiskRequest) into the NBD client's (nbd.Request), several in
// flight, without allocating per request.
package netdisk

import (
	"fmt"
	"math"
	"sync"

	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

// Disk is an NBD export as a virtio.Disk.
type Disk struct {
	c    *nbd.Client
	info nbd.Info
	size uint64

	mu   sync.Mutex // guards free
	free []*op      // requests not in flight, each with its Done bound once
}

// op carries one device request through the client.
type op struct {
	d    *Disk
	r    nbd.Request
	vr   *virtio.DiskRequest
	done func(*nbd.Request) // op.complete, bound once
}

var _ virtio.Disk = (*Disk)(nil)

// New wraps c, which must have opened its export (nbd.Dial): the disk's
// size and what it can do are the export's at that handshake. The size is
// rounded down to the block size; an export whose minimum block is
// larger than a page is refused.
func New(c *nbd.Client) (*Disk, error) {
	info, ok := c.Info()
	if !ok {
		return nil, fmt.Errorf("netdisk: the client has not opened its export")
	}
	bs := uint64(blockSize(info))
	if info.MinBlock > 4096 {
		return nil, fmt.Errorf("netdisk: the export's minimum block is %d bytes: a guest disk's is at most 4096", info.MinBlock)
	}
	size := info.Size &^ (bs - 1)
	if size == 0 {
		return nil, fmt.Errorf("netdisk: an export of %d bytes holds no block of %d", info.Size, bs)
	}
	return &Disk{c: c, info: info, size: size}, nil
}

// blockSize is the guest's logical block size for the export: its
// minimum block, at least a sector.
func blockSize(info nbd.Info) uint32 {
	return max(info.MinBlock, virtio.SectorSize)
}

// Client returns the NBD client behind the disk.
func (d *Disk) Client() *nbd.Client { return d.c }

// Size implements virtio.Disk.
func (d *Disk) Size() uint64 { return d.size }

// ReadOnly implements virtio.Disk: the export's flag.
func (d *Disk) ReadOnly() bool { return d.info.Flags&nbd.FlagReadOnly != 0 }

// Caps implements virtio.Disk: flush and discard where the server takes
// NBD_CMD_FLUSH and NBD_CMD_TRIM.
func (d *Disk) Caps() virtio.DiskCaps {
	bs := blockSize(d.info)
	if bs == virtio.SectorSize {
		bs = 0
	}
	return virtio.DiskCaps{
		Flush:     d.info.Flags&nbd.FlagSendFlush != 0,
		Discard:   d.info.Flags&nbd.FlagSendTrim != 0,
		BlockSize: bs,
	}
}

// Submit implements virtio.Disk: the request goes to the client, which
// completes it once the server has answered (or the client gave up on
// the server).
func (d *Disk) Submit(vr *virtio.DiskRequest) {
	o := d.take()
	o.vr = vr
	o.r = nbd.Request{Offset: vr.Offset, Done: o.done}
	switch vr.Op {
	case virtio.DiskRead:
		o.r.Op, o.r.Data = nbd.OpRead, vr.Data[:vr.Length]
	case virtio.DiskWrite:
		o.r.Op, o.r.Data = nbd.OpWrite, vr.Data[:vr.Length]
	case virtio.DiskFlush:
		o.r.Op = nbd.OpFlush
	case virtio.DiskDiscard:
		if vr.Length > math.MaxUint32 {
			d.finish(o, virtio.ErrDiskUnsupported)
			return
		}
		o.r.Op, o.r.Length = nbd.OpTrim, uint32(vr.Length)
	default:
		d.finish(o, virtio.ErrDiskUnsupported)
		return
	}
	d.c.Submit(&o.r)
}

// take returns an op from the free list, or a new one.
func (d *Disk) take() *op {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.free); n > 0 {
		o := d.free[n-1]
		d.free = d.free[:n-1]
		return o
	}
	o := &op{d: d}
	o.done = o.complete
	return o
}

// complete is the client's Done for o.
func (o *op) complete(r *nbd.Request) { o.d.finish(o, r.Err) }

// finish returns o to the free list, then completes its device request.
func (d *Disk) finish(o *op, err error) {
	vr := o.vr
	o.vr, o.r.Data = nil, nil
	d.mu.Lock()
	d.free = append(d.free, o)
	d.mu.Unlock()
	vr.Complete(err)
}
