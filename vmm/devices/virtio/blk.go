// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/spinlock"
)

// Block device constants (VIRTIO 1.2, 5.2).
const (
	// SectorSize is the unit of the protocol's sectors and capacity.
	SectorSize = 512

	blkIn      = 0
	blkOut     = 1
	blkFlush   = 4
	blkGetID   = 8
	blkDiscard = 11

	blkOK     = 0
	blkIOErr  = 1
	blkUnsupp = 2

	featureBlkSizeMax = 1 << 1
	featureBlkSegMax  = 1 << 2
	featureBlkRO      = 1 << 5
	featureBlkBlkSize = 1 << 6
	featureBlkFlush   = 1 << 9
	featureBlkDiscard = 1 << 13

	blkHeaderSize = 16
	blkIDSize     = 20
	// A discard's data is segments of struct virtio_blk_discard_write_zeroes
	// {le64 sector; le32 num_sectors; le32 flags}.
	blkSegmentSize  = 16
	blkDiscardUnmap = 1
)

// Offsets in struct virtio_blk_config (5.2.4).
const (
	cfgCapacity          = 0
	cfgSizeMax           = 8
	cfgSegMax            = 12
	cfgBlkSize           = 20
	cfgMaxDiscardSectors = 36
	cfgMaxDiscardSeg     = 40
	cfgDiscardAlignment  = 44
	// blkConfigSize covers the fields up to write zeroes'; the rest (secure
	// erase, zoned: features not offered) reads as zero.
	blkConfigSize = 60
)

// Defaults of BlockConfig.
const (
	DefaultMaxInFlight        = 32
	DefaultMaxSegments        = 64
	DefaultMaxSegmentSize     = 4096
	DefaultMaxDiscardSegments = 16
)

// maxDiscardSectors is the longest discard segment taken (2 GiB): one a
// 32-bit length (NBD's) still carries.
const maxDiscardSectors = 1 << 22

// maxRequestData bounds MaxSegments * MaxSegmentSize, the buffer each
// request in flight may need.
const maxRequestData = 16 << 20

// BlockConfig is a Block's configuration beyond its disk. Zero fields
// take the defaults.
type BlockConfig struct {
	// ID is what VIRTIO_BLK_T_GET_ID answers; at most 20 bytes are.
	ID string
	// MaxInFlight is the most requests taken from the queue and not yet
	// answered (DefaultMaxInFlight, at most MaxQueueSize). Past it, the
	// guest's further requests wait in the ring.
	MaxInFlight int
	// MaxSegments and MaxSegmentSize are offered as seg_max and size_max:
	// a read or write carries at most their product of data bytes, which
	// is what each request in flight has a buffer for; a longer one is
	// refused (IOERR). MaxSegments is at most MaxQueueSize-2, so that the
	// longest request fits in the ring; MaxSegmentSize at least 4096 (Linux
	// will not take less than a page).
	MaxSegments    int
	MaxSegmentSize int
	// MaxDiscardSegments is offered as max_discard_seg when the disk can
	// discard.
	MaxDiscardSegments int
}

// withDefaults fills in cfg's zero fields and checks the rest.
func (cfg BlockConfig) withDefaults() (BlockConfig, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxInFlight, DefaultMaxInFlight)
	def(&cfg.MaxSegments, DefaultMaxSegments)
	def(&cfg.MaxSegmentSize, DefaultMaxSegmentSize)
	def(&cfg.MaxDiscardSegments, DefaultMaxDiscardSegments)
	switch {
	case cfg.MaxInFlight < 1 || cfg.MaxInFlight > MaxQueueSize:
		return cfg, fmt.Errorf("virtio: %d requests in flight: want 1 to %d", cfg.MaxInFlight, MaxQueueSize)
	case cfg.MaxSegments < 1 || cfg.MaxSegments > MaxQueueSize-2:
		return cfg, fmt.Errorf("virtio: %d segments a request: want 1 to %d", cfg.MaxSegments, MaxQueueSize-2)
	case cfg.MaxSegmentSize < 4096 || cfg.MaxSegments*cfg.MaxSegmentSize > maxRequestData:
		return cfg, fmt.Errorf("virtio: segments of %d bytes, %d to a request: want at least 4096 bytes and %d a request", cfg.MaxSegmentSize, cfg.MaxSegments, maxRequestData)
	case cfg.MaxDiscardSegments < 1 || cfg.MaxDiscardSegments*blkSegmentSize > cfg.MaxSegments*cfg.MaxSegmentSize:
		return cfg, fmt.Errorf("virtio: %d discard segments a request", cfg.MaxDiscardSegments)
	}
	return cfg, nil
}

// Block is a virtio block device (5.2) over a Disk, with several
// requests in flight on it.
//
// Requests in flight are unordered, as the specification allows: the
// disk may complete them in any order, and they are answered as they
// complete. The one ordering kept is a flush's: it goes to the disk only
// once every write and discard taken from the ring before it has
// completed, so that it covers them even on a disk (an NBD server) that
// reorders what it holds. The specification asks less (a flush covers
// the writes completed before it was sent, which is all Linux relies on:
// REQ_PREFLUSH covers completed writes), so the guest loses nothing;
// later requests do not wait for the flush.
//
// A reset abandons the requests in flight: each request remembers the
// gen of the worker's round that took it (Queue.gen), and one whose gen
// is not the current round's is dropped when it completes, without
// touching guest memory; its slot, and the buffer the disk may still be
// writing, is freed only then. (A round already under way when the reset
// comes finishes its writes to guest memory, as with every backend, but
// the reset's writer waits for it: Device.Settle.)
//
// Notify runs on the device's worker only and owns the fields marked
// worker's; a slot's req belongs to the disk between Submit and
// Complete. Completions come from any goroutine: they take mu, a spin
// lock (Reset and ReadConfig run under the Device's spin lock, so
// nothing here may park), queue the slot on finished and Kick the
// device unless the worker is serving and will look at finished before
// it stops. Lock order: Device.mu, then mu; Kick is called without mu.
type Block struct {
	disk     Disk
	caps     DiskCaps
	ro       bool
	size     uint64 // bytes
	bsize    uint64 // the logical block size
	maxData  int    // the most data bytes of a read or write
	maxSegs  int    // discard segments a request
	features uint64
	config   [blkConfigSize]byte // immutable after NewBlock
	id       [blkIDSize]byte
	done     func(*DiskRequest) // b.complete, made once

	// The worker's.
	slots  []blkSlot
	free   []uint16 // free slots, a stack: the one used last is used next
	ready  []uint16 // completed slots taken from finished, not yet answered
	held   []uint16 // flushes waiting for earlier writes, in order
	gen    uint64   // the gen of the round being served (Queue.gen)
	seq    uint64   // counts requests taken from the ring
	chain  Chain
	hdr    [blkHeaderSize]byte
	status [1]byte

	mu       spinlock.Lock // guards dev, finished and serving
	dev      *Device
	finished []uint16 // slots the disk completed, for the worker
	serving  bool     // the worker is in Notify and reads finished before it leaves

	stats blockCounters
}

// blockCounters are the operator's counters, updated by the worker.
type blockCounters struct {
	reads, writes, flushes, discards, getIDs, others atomic.Uint64
	inFlight                                         atomic.Int64
	bytesRead, bytesWritten                          atomic.Uint64
	ioErrors, unsupported, diskErrors, dropped       atomic.Uint64
}

// BlockStats is a snapshot of a Block's counters.
type BlockStats struct {
	// Requests taken from the ring, by type; Others are types the device
	// does not know.
	Reads, Writes, Flushes, Discards, GetIDs, Others uint64
	// InFlight is the requests taken from the ring and not yet answered,
	// and those a reset abandoned that the disk has not yet completed.
	InFlight uint64
	// BytesRead and BytesWritten count the data of requests that
	// succeeded.
	BytesRead, BytesWritten uint64
	// IOErrors is the requests answered VIRTIO_BLK_S_IOERR, refused by the
	// device or failed by the disk; DiskErrors those the disk failed.
	// Unsupported is the requests answered VIRTIO_BLK_S_UNSUPP.
	IOErrors, DiskErrors, Unsupported uint64
	// Dropped is the completions discarded unanswered because the driver
	// reset the device after submitting them.
	Dropped uint64
}

// NewBlock returns a block device over disk with the default
// configuration; id is what VIRTIO_BLK_T_GET_ID answers.
func NewBlock(disk Disk, id string) (*Block, error) {
	return NewBlockConfig(disk, BlockConfig{ID: id})
}

// NewBlockConfig returns a block device over disk configured by cfg. Put
// it on its transport with NewDevice and Attach it to that Device, so
// that the disk's completions wake the device's worker.
func NewBlockConfig(disk Disk, cfg BlockConfig) (*Block, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	caps := disk.Caps()
	if disk.ReadOnly() {
		caps.Discard = false // not offered: there is nothing to discard
	}
	if caps.BlockSize == 0 {
		caps.BlockSize = SectorSize
	}
	if bs := caps.BlockSize; bs < SectorSize || bs > 4096 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("virtio: a disk with blocks of %d bytes: want a power of 2 from %d to 4096", bs, SectorSize)
	}
	size := disk.Size()
	if size == 0 || size%uint64(caps.BlockSize) != 0 {
		return nil, fmt.Errorf("virtio: a disk of %d bytes: want a positive multiple of %d", size, caps.BlockSize)
	}
	b := &Block{disk: disk, caps: caps, ro: disk.ReadOnly(), size: size, bsize: uint64(caps.BlockSize),
		maxData: cfg.MaxSegments * cfg.MaxSegmentSize, maxSegs: cfg.MaxDiscardSegments,
		slots: make([]blkSlot, cfg.MaxInFlight), free: make([]uint16, 0, cfg.MaxInFlight),
		ready: make([]uint16, 0, cfg.MaxInFlight), held: make([]uint16, 0, cfg.MaxInFlight),
		finished: make([]uint16, 0, cfg.MaxInFlight),
		chain:    Chain{Buffers: make([]Buffer, 0, MaxQueueSize)}}
	b.done = b.complete
	for i := len(b.slots) - 1; i >= 0; i-- {
		b.slots[i].req = DiskRequest{Done: b.done, slot: uint16(i)}
		b.free = append(b.free, uint16(i))
	}
	copy(b.id[:], cfg.ID)
	b.setConfig(cfg)
	return b, nil
}

// setConfig fixes the features offered and the configuration space.
func (b *Block) setConfig(cfg BlockConfig) {
	le := binary.LittleEndian
	b.features = featureBlkSizeMax | featureBlkSegMax | featureBlkBlkSize | featureBlkFlush
	le.PutUint64(b.config[cfgCapacity:], b.size/SectorSize)
	le.PutUint32(b.config[cfgSizeMax:], uint32(cfg.MaxSegmentSize))
	le.PutUint32(b.config[cfgSegMax:], uint32(cfg.MaxSegments))
	le.PutUint32(b.config[cfgBlkSize:], uint32(b.bsize))
	if b.ro {
		b.features |= featureBlkRO
	}
	if b.caps.Discard {
		b.features |= featureBlkDiscard
		le.PutUint32(b.config[cfgMaxDiscardSectors:], maxDiscardSectors)
		le.PutUint32(b.config[cfgMaxDiscardSeg:], uint32(cfg.MaxDiscardSegments))
		le.PutUint32(b.config[cfgDiscardAlignment:], uint32(b.bsize/SectorSize))
	}
}

// Attach tells the block device the transport it is on, so that the
// disk's completions can have the request queue served.
func (b *Block) Attach(d *Device) {
	b.mu.Lock()
	b.dev = d
	b.mu.Unlock()
}

// DeviceID implements Backend.
func (b *Block) DeviceID() uint32 { return spec.DeviceBlock }

// Features implements Backend: SIZE_MAX, SEG_MAX, BLK_SIZE and FLUSH,
// RO for a read-only disk, DISCARD for a writable disk that discards.
func (b *Block) Features() uint64 { return b.features }

// NumQueues implements Backend: one request queue.
func (b *Block) NumQueues() int { return 1 }

// Reset implements Backend. It runs under the Device's spin lock and has
// nothing to do at once: the requests in flight were taken in rounds of
// the old gen (Queue.gen), so the worker drops their completions
// unanswered, and frees their slots only once the disk has completed
// them.
func (b *Block) Reset() {}

// ReadConfig implements Backend: struct virtio_blk_config (5.2.4), the
// fields of features not offered zero.
func (b *Block) ReadConfig(off uint64, size int) uint64 {
	if size < 1 || size > 8 || off >= blkConfigSize || off+uint64(size) > blkConfigSize {
		return 0
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b.config[off+uint64(i)])
	}
	return v
}

// Stats returns the device's counters.
func (b *Block) Stats() BlockStats {
	c := &b.stats
	return BlockStats{
		Reads: c.reads.Load(), Writes: c.writes.Load(), Flushes: c.flushes.Load(),
		Discards: c.discards.Load(), GetIDs: c.getIDs.Load(), Others: c.others.Load(),
		InFlight:  uint64(max(c.inFlight.Load(), 0)),
		BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
		IOErrors: c.ioErrors.Load(), DiskErrors: c.diskErrors.Load(),
		Unsupported: c.unsupported.Load(), Dropped: c.dropped.Load(),
	}
}
