// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"
	"fmt"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// Block device constants (VIRTIO 1.2, 5.2).
const (
	SectorSize = 512

	blkIn    = 0
	blkOut   = 1
	blkFlush = 4
	blkGetID = 8

	blkOK     = 0
	blkIOErr  = 1
	blkUnsupp = 2

	featureBlkFlush = 1 << 9
	blkHeaderSize   = 16
	blkIDSize       = 20
)

// Block is a virtio block device backed by a byte slice (a RAM disk).
type Block struct {
	disk   []byte
	chain  Chain
	status [1]byte
	hdr    [blkHeaderSize]byte
	id     [blkIDSize]byte
	// Requests counts requests served, by type: in, out, flush, other.
	Requests [4]uint64
}

// NewBlock returns a block device over disk, whose length must be a
// multiple of SectorSize; id is what VIRTIO_BLK_T_GET_ID answers.
func NewBlock(disk []byte, id string) (*Block, error) {
	if len(disk) == 0 || len(disk)%SectorSize != 0 {
		return nil, fmt.Errorf("virtio: a disk of %d bytes: want a positive multiple of %d", len(disk), SectorSize)
	}
	b := &Block{disk: disk, chain: Chain{Buffers: make([]Buffer, 0, MaxQueueSize)}}
	copy(b.id[:], id)
	return b, nil
}

// DeviceID implements Backend.
func (b *Block) DeviceID() uint32 { return spec.DeviceBlock }

// Features implements Backend: cache flush.
func (b *Block) Features() uint64 { return featureBlkFlush }

// NumQueues implements Backend: one request queue.
func (b *Block) NumQueues() int { return 1 }

// Reset implements Backend.
func (b *Block) Reset() {}

// ReadConfig implements Backend: the capacity in sectors (5.2.4), the
// rest zero.
func (b *Block) ReadConfig(off uint64, size int) uint64 {
	var cfg [8]byte
	binary.LittleEndian.PutUint64(cfg[:], uint64(len(b.disk)/SectorSize))
	if size < 1 || size > 8 || off >= 8 || off+uint64(size) > 8 {
		return 0
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(cfg[off+uint64(i)])
	}
	return v
}

// Notify implements Backend: it serves available requests while the
// budget lasts.
func (b *Block) Notify(mem devices.GuestMemory, q *Queue, index int, budget *Budget) (bool, error) {
	used := false
	for budget.Left() {
		ok, err := q.Pop(mem, &b.chain)
		if err != nil || !ok {
			return used, err
		}
		written, err := b.serve(mem, &b.chain)
		if err != nil {
			return used, err
		}
		if err := q.Push(mem, b.chain.Head, written); err != nil {
			return used, err
		}
		budget.Spend(b.chain.Bytes())
		used = true
	}
	return used, nil
}

// serve performs one request (5.2.6): a 16-byte header the device reads,
// data buffers, and a status byte the device writes last. A request
// whose I/O fails gets an error status; a chain that is not shaped like
// a request breaks the queue.
func (b *Block) serve(mem devices.GuestMemory, c *Chain) (uint32, error) {
	bufs := c.Buffers
	if len(bufs) < 2 || bufs[0].Write || bufs[0].Len < blkHeaderSize {
		return 0, fmt.Errorf("%w: block request %d has no header", ErrBadQueue, c.Head)
	}
	status := bufs[len(bufs)-1]
	if !status.Write || status.Len < 1 {
		return 0, fmt.Errorf("%w: block request %d has no status byte", ErrBadQueue, c.Head)
	}
	hdr := &b.hdr
	if err := mem.ReadAt(hdr[:], bufs[0].Addr); err != nil {
		return 0, fmt.Errorf("%w: block request header: %v", ErrBadQueue, err)
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	sector := binary.LittleEndian.Uint64(hdr[8:])
	data := bufs[1 : len(bufs)-1]
	code, written := byte(blkOK), uint32(0)
	switch typ {
	case blkIn, blkOut:
		b.Requests[typ]++
		pos := sector * SectorSize
		if sector > uint64(len(b.disk))/SectorSize {
			code = blkIOErr
			break
		}
		for _, d := range data {
			if d.Write != (typ == blkIn) || uint64(d.Len) > uint64(len(b.disk))-pos {
				code = blkIOErr
				break
			}
			chunk := b.disk[pos : pos+uint64(d.Len)]
			var err error
			if typ == blkIn {
				err = mem.WriteAt(chunk, d.Addr)
				written += d.Len
			} else {
				err = mem.ReadAt(chunk, d.Addr)
			}
			if err != nil {
				code = blkIOErr
				break
			}
			pos += uint64(d.Len)
		}
	case blkFlush:
		b.Requests[2]++
	case blkGetID:
		b.Requests[3]++
		if len(data) != 1 || !data[0].Write {
			code = blkIOErr
			break
		}
		n := min(data[0].Len, blkIDSize)
		if err := mem.WriteAt(b.id[:n], data[0].Addr); err != nil {
			code = blkIOErr
			break
		}
		written += n
	default:
		b.Requests[3]++
		code = blkUnsupp
	}
	b.status[0] = code
	if err := mem.WriteAt(b.status[:], status.Addr+uint64(status.Len)-1); err != nil {
		return 0, fmt.Errorf("%w: block status byte: %v", ErrBadQueue, err)
	}
	return written + 1, nil
}
