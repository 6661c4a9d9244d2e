// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package virtio implements virtio devices over the MMIO transport
// (OASIS "Virtual I/O Device (VIRTIO) Version 1.2", section 4.2
// "Virtio Over MMIO", version 2 register layout) with split virtqueues
// (2.7 "Split Virtqueues"). Everything the guest places in its rings is
// hostile input: descriptor indexes, chain lengths, addresses and sizes
// are validated, and a queue the guest corrupts puts the device in the
// DEVICE_NEEDS_RESET state instead of reaching the hyperkernel.
package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// MaxQueueSize is the largest queue a device offers (QueueNumMax).
const MaxQueueSize = 256

// ErrBadQueue is wrapped by every error about a malformed queue.
var ErrBadQueue = errors.New("virtio: malformed virtqueue")

// Queue is one split virtqueue as the driver configured it.
type Queue struct {
	Num                  uint16 // size, a power of 2 up to MaxQueueSize
	Ready                bool
	Desc, Driver, Device uint64 // descriptor table, available ring, used ring
	lastAvail            uint16
	usedIdx              uint16
	// gen is the device's gen (mmio.go) when the worker copied the queue
	// for a round: a backend whose requests outlive a round (Block) tells
	// by it whether they belong to the driver it is serving now.
	gen uint64
	// scratch is where ring entries are read and written: a field, not
	// a local, so that passing it to GuestMemory does not allocate.
	scratch [16]byte
}

// Buffer is one descriptor of a chain: guest-physical Addr and Len,
// Write if the device writes it.
type Buffer struct {
	Addr  uint64
	Len   uint32
	Write bool
}

// Chain is a descriptor chain popped from the available ring.
type Chain struct {
	Head    uint16
	Buffers []Buffer
}

// Bytes is the chain's length: the sum of its buffers' lengths.
func (c *Chain) Bytes() uint64 {
	var n uint64
	for _, b := range c.Buffers {
		n += uint64(b.Len)
	}
	return n
}

// reset forgets the configuration (a device reset).
func (q *Queue) reset() { *q = Queue{} }

// check validates the queue's configuration before use.
func (q *Queue) check() error {
	if !q.Ready {
		return fmt.Errorf("%w: not ready", ErrBadQueue)
	}
	if q.Num == 0 || q.Num > MaxQueueSize || q.Num&(q.Num-1) != 0 {
		return fmt.Errorf("%w: size %d", ErrBadQueue, q.Num)
	}
	if q.Desc%16 != 0 || q.Driver%2 != 0 || q.Device%4 != 0 {
		return fmt.Errorf("%w: misaligned rings %#x %#x %#x", ErrBadQueue, q.Desc, q.Driver, q.Device)
	}
	return nil
}

// Pop takes the next available chain into c (reusing its buffer slice),
// reporting false when the ring is empty.
func (q *Queue) Pop(mem devices.GuestMemory, c *Chain) (bool, error) {
	if err := q.check(); err != nil {
		return false, err
	}
	b := &q.scratch
	if err := mem.ReadAt(b[:2], q.Driver+2); err != nil {
		return false, fmt.Errorf("%w: available index: %v", ErrBadQueue, err)
	}
	availIdx := binary.LittleEndian.Uint16(b[:2])
	pending := availIdx - q.lastAvail
	if pending == 0 {
		return false, nil
	}
	if pending > q.Num {
		return false, fmt.Errorf("%w: available index %d is %d ahead of the device's %d (queue of %d)", ErrBadQueue, availIdx, pending, q.lastAvail, q.Num)
	}
	slot := uint64(q.lastAvail % q.Num)
	if err := mem.ReadAt(b[:2], q.Driver+4+2*slot); err != nil {
		return false, fmt.Errorf("%w: available ring: %v", ErrBadQueue, err)
	}
	head := binary.LittleEndian.Uint16(b[:2])
	c.Head = head
	c.Buffers = c.Buffers[:0]
	idx := head
	for n := 0; ; n++ {
		if idx >= q.Num {
			return false, fmt.Errorf("%w: descriptor %d of a queue of %d", ErrBadQueue, idx, q.Num)
		}
		if n >= int(q.Num) {
			return false, fmt.Errorf("%w: descriptor chain from %d loops", ErrBadQueue, head)
		}
		if err := mem.ReadAt(b[:], q.Desc+16*uint64(idx)); err != nil {
			return false, fmt.Errorf("%w: descriptor %d: %v", ErrBadQueue, idx, err)
		}
		addr := binary.LittleEndian.Uint64(b[0:])
		length := binary.LittleEndian.Uint32(b[8:])
		flags := binary.LittleEndian.Uint16(b[12:])
		next := binary.LittleEndian.Uint16(b[14:])
		if flags&spec.DescIndirect != 0 {
			return false, fmt.Errorf("%w: indirect descriptor (not negotiated)", ErrBadQueue)
		}
		if addr+uint64(length) < addr {
			return false, fmt.Errorf("%w: descriptor %d wraps: %#x+%#x", ErrBadQueue, idx, addr, length)
		}
		c.Buffers = append(c.Buffers, Buffer{Addr: addr, Len: length, Write: flags&spec.DescWrite != 0})
		if flags&spec.DescNext == 0 {
			break
		}
		idx = next
	}
	q.lastAvail++
	return true, nil
}

// Push returns chain head to the driver through the used ring with the
// number of bytes the device wrote.
func (q *Queue) Push(mem devices.GuestMemory, head uint16, written uint32) error {
	b := q.scratch[:8]
	slot := uint64(q.usedIdx % q.Num)
	binary.LittleEndian.PutUint32(b[0:], uint32(head))
	binary.LittleEndian.PutUint32(b[4:], written)
	if err := mem.WriteAt(b, q.Device+4+8*slot); err != nil {
		return fmt.Errorf("%w: used ring: %v", ErrBadQueue, err)
	}
	q.usedIdx++
	binary.LittleEndian.PutUint16(b[:2], q.usedIdx)
	if err := mem.WriteAt(b[:2], q.Device+2); err != nil {
		return fmt.Errorf("%w: used index: %v", ErrBadQueue, err)
	}
	return nil
}

// Unpop gives back the last n chains Pop took and the device did not
// use: the next Pop takes them again. A backend that needs several
// chains for one piece of work (a received packet over mergeable
// buffers) and finds too few puts them back to wait for more.
func (q *Queue) Unpop(n int) { q.lastAvail -= uint16(n) }

// Stage writes the used-ring entry of chain head, which the device wrote
// written bytes of, k places after the next one, without returning it:
// Publish does, with those before it, so that the driver sees them all
// at once (a packet over several buffers, 5.1.6.4, is seen whole).
func (q *Queue) Stage(mem devices.GuestMemory, k uint16, head uint16, written uint32) error {
	b := q.scratch[:8]
	slot := uint64((q.usedIdx + k) % q.Num)
	binary.LittleEndian.PutUint32(b[0:], uint32(head))
	binary.LittleEndian.PutUint32(b[4:], written)
	if err := mem.WriteAt(b, q.Device+4+8*slot); err != nil {
		return fmt.Errorf("%w: used ring: %v", ErrBadQueue, err)
	}
	return nil
}

// Publish returns the n entries Stage wrote to the driver.
func (q *Queue) Publish(mem devices.GuestMemory, n uint16) error {
	q.usedIdx += n
	b := q.scratch[:2]
	binary.LittleEndian.PutUint16(b, q.usedIdx)
	if err := mem.WriteAt(b, q.Device+2); err != nil {
		return fmt.Errorf("%w: used index: %v", ErrBadQueue, err)
	}
	return nil
}

// prefetch hands the first n bytes of bufs to mem's Prefetch, if it has
// one (devices.Prefetcher), before a copy to (write) or from them.
func prefetch(mem devices.GuestMemory, bufs []Buffer, n int, write bool) {
	pf, ok := mem.(devices.Prefetcher)
	if !ok {
		return
	}
	for _, d := range bufs {
		if n <= 0 {
			return
		}
		k := min(int(d.Len), n)
		pf.Prefetch(d.Addr, uint64(k), write)
		n -= k
	}
}
