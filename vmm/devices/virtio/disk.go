// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"errors"
	"fmt"
)

// Disk is the storage behind a Block: a RAM disk (MemDisk), a network
// block device. The Block has several requests in flight on it at once
// and answers the guest as each completes, in whatever order the disk
// completes them.
//
// The Block calls Submit from its device's worker only, one call at a
// time, never from a pinned goroutine. Size, ReadOnly and Caps are read
// once, when the Block is made, and must not change.
type Disk interface {
	// Size is the disk's size in bytes: a positive multiple of SectorSize
	// and of the block size (Caps).
	Size() uint64
	// ReadOnly reports whether the disk refuses writes and discards; the
	// guest is told (VIRTIO_BLK_F_RO) and the Block refuses them itself.
	ReadOnly() bool
	// Caps is what the disk can do beyond reading and writing.
	Caps() DiskCaps
	// Submit starts r. The disk calls r.Complete exactly once when r is
	// done, with nil or the error that failed it, from any goroutine
	// and possibly before Submit returns. Until then the disk owns r:
	// for DiskRead it fills r.Data, for DiskWrite it takes the bytes from
	// r.Data, and it keeps neither r nor r.Data after calling Complete.
	// Submit may wait to hand the request on (a socket's buffer), which
	// stalls this device's queue but nothing else; it should not wait
	// for the request to be done (a disk that does, like MemDisk,
	// serves one request at a time).
	//
	// The Block checks requests before it submits them: Offset and
	// Length are multiples of the block size and within Size, a read or
	// write has Length == len(Data) > 0, a flush has Offset, Length and
	// Data zero, a discard has no Data; writes and discards never reach
	// a read-only disk, flushes and discards never reach a disk whose
	// Caps lack them. Requests in flight together carry no ordering but
	// this one: the Block submits a flush only once every write and
	// discard it submitted before the flush has completed.
	Submit(r *DiskRequest)
}

// DiskCaps is what a Disk can do beyond reading and writing.
type DiskCaps struct {
	// Flush: the disk has a volatile write cache, which DiskFlush
	// empties; without it, writes are stable when they complete. The
	// guest is offered VIRTIO_BLK_F_FLUSH either way (the specification
	// asks devices to); without Flush the Block answers a flush itself.
	Flush bool
	// Discard: the disk takes DiskDiscard (VIRTIO_BLK_F_DISCARD).
	Discard bool
	// BlockSize is the disk's logical block size, the smallest unit it
	// reads and writes: a power of two from SectorSize to 4096, 0 for
	// SectorSize. The guest is told (VIRTIO_BLK_F_BLK_SIZE) and the Block
	// refuses requests not aligned to it.
	BlockSize uint32
}

// DiskOp is what a DiskRequest does.
type DiskOp uint8

// The operations of a DiskRequest.
const (
	DiskRead    DiskOp = iota // fill Data from Offset
	DiskWrite                 // write Data at Offset
	DiskFlush                 // make every write completed before it stable
	DiskDiscard               // the Length bytes at Offset are no longer needed
)

// String names the operation.
func (op DiskOp) String() string {
	switch op {
	case DiskRead:
		return "read"
	case DiskWrite:
		return "write"
	case DiskFlush:
		return "flush"
	case DiskDiscard:
		return "discard"
	}
	return fmt.Sprintf("DiskOp(%d)", uint8(op))
}

// DiskRequest is one operation on a Disk. Whoever submits it (a Block)
// fills in the exported fields but Err, sets Done, and does not touch the
// request until Done is called. The Disk changes none of the fields; it
// fills a read's Data, and Complete sets Err.
type DiskRequest struct {
	Op     DiskOp
	Offset uint64 // in bytes
	Length uint64 // in bytes
	// Data holds the bytes a write writes, or receives the bytes a read
	// reads: Data[:Length]. Nil for a flush or a discard.
	Data []byte
	// Err is the request's outcome, set by Complete.
	Err error
	// Done is called by Complete, on the completing goroutine. It must
	// not block.
	Done func(r *DiskRequest)

	slot uint16 // the Block's slot holding the request
}

// Complete ends the request with err (nil for success) and hands it back
// to its submitter. A Disk calls it exactly once per Submit.
func (r *DiskRequest) Complete(err error) {
	r.Err = err
	if r.Done != nil {
		r.Done(r)
	}
}

// Errors a Disk may complete a request with.
var (
	ErrDiskReadOnly    = errors.New("virtio: the disk is read-only")
	ErrDiskRange       = errors.New("virtio: request outside the disk")
	ErrDiskUnsupported = errors.New("virtio: the disk does not support the operation")
)

// MemDisk is a RAM disk: a Disk over a byte slice, which completes every
// request inside Submit. Like every Disk, it takes one Submit at a time.
type MemDisk struct {
	data []byte
	opts MemDiskOptions
}

// MemDiskOptions are a MemDisk's capabilities. The zero value is a
// writable disk with a (no-op) flush and no discard.
type MemDiskOptions struct {
	ReadOnly bool
	// Discard has the disk take discards, which zero their range.
	Discard bool
}

// NewMemDisk returns a RAM disk over data, whose length a Block requires
// to be a positive multiple of SectorSize.
func NewMemDisk(data []byte, opts MemDiskOptions) *MemDisk {
	return &MemDisk{data: data, opts: opts}
}

// Size implements Disk.
func (m *MemDisk) Size() uint64 { return uint64(len(m.data)) }

// ReadOnly implements Disk.
func (m *MemDisk) ReadOnly() bool { return m.opts.ReadOnly }

// Caps implements Disk: a flush that has nothing to do (memory is as
// stable as it gets) and, if asked for, discard.
func (m *MemDisk) Caps() DiskCaps {
	return DiskCaps{Flush: true, Discard: m.opts.Discard}
}

// Submit implements Disk: the request is done when it returns.
func (m *MemDisk) Submit(r *DiskRequest) {
	r.Complete(m.do(r))
}

func (m *MemDisk) do(r *DiskRequest) error {
	if r.Offset > uint64(len(m.data)) || r.Length > uint64(len(m.data))-r.Offset {
		return ErrDiskRange
	}
	chunk := m.data[r.Offset : r.Offset+r.Length]
	switch r.Op {
	case DiskRead:
		if uint64(len(r.Data)) < r.Length {
			return ErrDiskRange
		}
		copy(r.Data, chunk)
	case DiskWrite:
		if m.opts.ReadOnly {
			return ErrDiskReadOnly
		}
		if uint64(len(r.Data)) < r.Length {
			return ErrDiskRange
		}
		copy(chunk, r.Data)
	case DiskFlush:
	case DiskDiscard:
		if m.opts.ReadOnly {
			return ErrDiskReadOnly
		}
		if !m.opts.Discard {
			return ErrDiskUnsupported
		}
		clear(chunk)
	default:
		return ErrDiskUnsupported
	}
	return nil
}
