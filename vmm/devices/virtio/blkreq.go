// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/big-iron/big-iron/vmm/devices"
)

// A Block's requests in flight live in slots, one per request, each with
// a data buffer for the largest request admitted, made at the slot's
// first use and kept: requests after the first few allocate nothing.
type blkSlot struct {
	req DiskRequest
	// inDisk is true from Submit to Complete: a second Complete, which
	// would free the slot twice, panics instead.
	inDisk atomic.Bool
	state  slotState
	op     DiskOp
	gen    uint64 // the gen of the round the request was taken in
	seq    uint64 // the order it was taken in
	head   uint16
	length uint64   // a read's or write's data bytes: the worker's own copy of req.Length
	status uint64   // the status byte's guest address
	data   []Buffer // the data's pieces in guest memory
	buf    []byte   // the data, maxData bytes
	// A discard's segments are in buf; next is the next to submit.
	nseg, next int
}

type slotState uint8

const (
	slotFree      slotState = iota
	slotWorker              // taken by the worker: being parsed or answered
	slotHeld                // a flush waiting for the writes before it
	slotSubmitted           // the disk has it
)

// blkPending is parse's answer for a request handed to the disk (or held
// back for it): the answer comes when the disk completes it.
const blkPending = 0xFF

// Notify implements Backend. It answers the requests the disk completed,
// then takes new ones from the ring while the budget and a free slot
// last, starting each on the disk or answering it at once (errors,
// GET_ID). It does not wait for the disk: a completion that comes after
// Notify left kicks the queue and brings the worker back.
func (b *Block) Notify(mem devices.GuestMemory, q *Queue, index int, budget *Budget) (used bool, err error) {
	b.gen = q.gen
	b.mu.Lock()
	b.serving = true
	b.mu.Unlock()
	for {
		u, err := b.pass(mem, q, budget)
		used = used || u
		if err != nil || !budget.Left() {
			b.mu.Lock()
			b.serving = false
			b.mu.Unlock()
			return used, err
		}
		if b.idle() {
			return used, nil
		}
	}
}

// idle reports whether no completion is waiting; if so the worker is no
// longer serving, and the next completion kicks the queue.
func (b *Block) idle() bool {
	b.mu.Lock()
	idle := len(b.finished) == 0
	if idle {
		b.serving = false
	}
	b.mu.Unlock()
	return idle
}

// pass answers completions, submits the flushes now free to go, and takes
// chains from the ring until the budget, the free slots or the ring run
// out.
func (b *Block) pass(mem devices.GuestMemory, q *Queue, budget *Budget) (used bool, err error) {
	for {
		u, err := b.answer(mem, q, budget)
		used = used || u
		if err != nil {
			return used, err
		}
		b.releaseFlushes()
		if !budget.Left() || len(b.free) == 0 {
			return used, nil
		}
		ok, err := q.Pop(mem, &b.chain)
		if err != nil || !ok {
			return used, err
		}
		u, err = b.start(mem, q, budget)
		used = used || u
		if err != nil {
			return used, err
		}
	}
}

// complete is every DiskRequest's Done: it runs on the disk's goroutine,
// queues the slot for the worker and, unless the worker is serving, kicks
// the queue. It touches no guest memory and does not block.
func (b *Block) complete(r *DiskRequest) {
	if int(r.slot) >= len(b.slots) || &b.slots[r.slot].req != r || !b.slots[r.slot].inDisk.Swap(false) {
		panic("virtio: a Disk completed a request twice, or one it was not given")
	}
	b.mu.Lock()
	b.finished = append(b.finished, r.slot) // never grows: a slot is there once
	dev, kick := b.dev, !b.serving
	b.mu.Unlock()
	if kick && dev != nil {
		dev.Kick(0)
	}
}

// submit hands s's request to the disk. Once it is called, s is the
// disk's until it completes.
func (b *Block) submit(s *blkSlot) {
	s.state = slotSubmitted
	s.req.Err = nil
	s.inDisk.Store(true)
	b.disk.Submit(&s.req)
}

// alloc takes a free slot for the chain just popped.
func (b *Block) alloc() *blkSlot {
	i := b.free[len(b.free)-1]
	b.free = b.free[:len(b.free)-1]
	s := &b.slots[i]
	if s.buf == nil {
		s.buf = make([]byte, b.maxData)
		s.data = make([]Buffer, 0, MaxQueueSize)
	}
	s.state, s.gen, s.seq, s.head = slotWorker, b.gen, b.seq, b.chain.Head
	b.seq++
	b.stats.inFlight.Add(1)
	return s
}

// release frees slot s.
func (b *Block) release(s *blkSlot) {
	s.state = slotFree
	s.req.Data = nil
	b.free = append(b.free, s.req.slot)
	b.stats.inFlight.Add(-1)
}

// answer moves the disk's completions to ready and answers them, in the
// order they completed, while the budget's bytes last.
func (b *Block) answer(mem devices.GuestMemory, q *Queue, budget *Budget) (used bool, err error) {
	b.mu.Lock()
	b.ready = append(b.ready, b.finished...) // never grows: each slot once
	b.finished = b.finished[:0]
	b.mu.Unlock()
	n := 0
	for n < len(b.ready) && budget.Bytes > 0 && err == nil {
		var u bool
		u, err = b.answerOne(mem, q, &b.slots[b.ready[n]], budget)
		used = used || u
		n++
	}
	b.ready = b.ready[:copy(b.ready, b.ready[n:])]
	return used, err
}

// answerOne answers the completed request in s: a read's data to the
// guest's buffers, the status byte, the used ring. A request taken before
// the driver reset the device is dropped without touching guest memory.
func (b *Block) answerOne(mem devices.GuestMemory, q *Queue, s *blkSlot, budget *Budget) (bool, error) {
	s.state = slotWorker
	if s.gen != b.gen {
		b.stats.dropped.Add(1)
		b.release(s)
		return false, nil
	}
	code, written := byte(blkOK), uint32(0)
	switch {
	case s.req.Err != nil:
		code = blkIOErr
		b.stats.diskErrors.Add(1)
	case s.op == DiskDiscard:
		if b.nextDiscard(s) {
			return false, nil // its next segment is on the disk
		}
	case s.op == DiskRead:
		n, err := scatter(mem, s.data, s.buf[:s.length])
		written = n
		budget.Bytes -= int(s.length)
		if err != nil {
			code = blkIOErr
			break
		}
		b.stats.bytesRead.Add(s.length)
	case s.op == DiskWrite:
		b.stats.bytesWritten.Add(s.length)
	}
	return true, b.finish(mem, q, s, code, written)
}

// finish writes s's status byte, returns its chain to the driver with
// the written bytes and the status byte, and frees s.
func (b *Block) finish(mem devices.GuestMemory, q *Queue, s *blkSlot, code byte, written uint32) error {
	switch code {
	case blkIOErr:
		b.stats.ioErrors.Add(1)
	case blkUnsupp:
		b.stats.unsupported.Add(1)
	}
	head, at := s.head, s.status
	b.release(s)
	b.status[0] = code
	if err := mem.WriteAt(b.status[:], at); err != nil {
		return fmt.Errorf("%w: block status byte: %v", ErrBadQueue, err)
	}
	return q.Push(mem, head, written+1)
}

// releaseFlushes submits the held flushes that no write or discard
// submitted before them, and still on the disk, holds back; it drops
// those taken before a reset.
func (b *Block) releaseFlushes() {
	if len(b.held) == 0 {
		return
	}
	oldest := uint64(math.MaxUint64)
	for i := range b.slots {
		s := &b.slots[i]
		if s.state == slotSubmitted && (s.op == DiskWrite || s.op == DiskDiscard) && s.seq < oldest {
			oldest = s.seq
		}
	}
	k := 0
	for _, i := range b.held {
		s := &b.slots[i]
		switch {
		case s.gen != b.gen:
			b.stats.dropped.Add(1)
			b.release(s)
		case s.seq < oldest:
			b.submit(s)
		default:
			b.held[k] = i
			k++
		}
	}
	b.held = b.held[:k]
}

// start serves the chain just popped: it frames the request in a slot
// and starts it, or answers it at once. Only a chain not shaped like a
// request is an error.
func (b *Block) start(mem devices.GuestMemory, q *Queue, budget *Budget) (bool, error) {
	s := b.alloc()
	if err := b.frame(mem, s); err != nil {
		b.release(s)
		return false, err
	}
	code, written, moved := b.parse(mem, s)
	budget.Spend(blkHeaderSize + moved)
	if code == blkPending {
		return false, nil
	}
	return true, b.finish(mem, q, s, code, written)
}

// frame finds the request in the chain (5.2.6), whatever its
// descriptors' layout (2.6.4): the 16-byte header is the chain's first
// bytes, device-readable; the status byte its last, device-writable; the
// data (s.data) what lies between.
func (b *Block) frame(mem devices.GuestMemory, s *blkSlot) error {
	c := &b.chain
	total := c.Bytes()
	if total < blkHeaderSize+1 {
		return fmt.Errorf("%w: block request %d of %d bytes", ErrBadQueue, c.Head, total)
	}
	last := total - 1
	s.data = s.data[:0]
	off := uint64(0)
	for _, d := range c.Buffers {
		lo, hi := off, off+uint64(d.Len)
		off = hi
		if lo < blkHeaderSize && lo < hi {
			if d.Write {
				return fmt.Errorf("%w: block request %d has its header in a device-writable buffer", ErrBadQueue, c.Head)
			}
			if err := mem.ReadAt(b.hdr[lo:min(hi, blkHeaderSize)], d.Addr); err != nil {
				return fmt.Errorf("%w: block request header: %v", ErrBadQueue, err)
			}
		}
		if dlo, dhi := max(lo, blkHeaderSize), min(hi, last); dlo < dhi {
			s.data = append(s.data, Buffer{Addr: d.Addr + (dlo - lo), Len: uint32(dhi - dlo), Write: d.Write})
		}
		if lo <= last && last < hi {
			if !d.Write {
				return fmt.Errorf("%w: block request %d has its status byte in a device-readable buffer", ErrBadQueue, c.Head)
			}
			s.status = d.Addr + (last - lo)
		}
	}
	return nil
}

// parse starts the request framed in s: it returns blkPending once the
// request is on the disk (or held for it), else the status to answer at
// once and the bytes written to the guest; moved is the bytes copied from
// guest memory.
func (b *Block) parse(mem devices.GuestMemory, s *blkSlot) (code byte, written uint32, moved uint64) {
	typ := binary.LittleEndian.Uint32(b.hdr[0:])
	sector := binary.LittleEndian.Uint64(b.hdr[8:])
	switch typ {
	case blkIn:
		b.stats.reads.Add(1)
		return b.readWrite(mem, s, DiskRead, sector)
	case blkOut:
		b.stats.writes.Add(1)
		return b.readWrite(mem, s, DiskWrite, sector)
	case blkFlush:
		b.stats.flushes.Add(1)
		if !b.caps.Flush {
			return blkOK, 0, 0 // writes are stable once completed
		}
		s.op = DiskFlush
		s.req.Op, s.req.Offset, s.req.Length, s.req.Data = DiskFlush, 0, 0, nil
		s.state = slotHeld
		b.held = append(b.held, s.req.slot)
		return blkPending, 0, 0
	case blkGetID:
		b.stats.getIDs.Add(1)
		if !allWritable(s.data, true) {
			return blkIOErr, 0, 0
		}
		n, err := scatter(mem, s.data, b.id[:min(dataBytes(s.data), blkIDSize)])
		if err != nil {
			return blkIOErr, n, 0
		}
		return blkOK, n, 0
	case blkDiscard:
		b.stats.discards.Add(1)
		return b.discard(mem, s)
	}
	b.stats.others.Add(1)
	return blkUnsupp, 0, 0
}

// readWrite starts a read or a write of the data framed in s at sector,
// after checking it: the data buffers' direction, the disk's bounds, block
// alignment and read-only state, and the slot buffer's size.
func (b *Block) readWrite(mem devices.GuestMemory, s *blkSlot, op DiskOp, sector uint64) (code byte, written uint32, moved uint64) {
	n := dataBytes(s.data)
	if !allWritable(s.data, op == DiskRead) || (op == DiskWrite && b.ro) || sector > b.size/SectorSize {
		return blkIOErr, 0, 0
	}
	off := sector * SectorSize
	if n > uint64(b.maxData) || n > b.size-off || off%b.bsize != 0 || n%b.bsize != 0 {
		return blkIOErr, 0, 0
	}
	if n == 0 {
		return blkOK, 0, 0
	}
	s.op, s.length = op, n
	s.req.Op, s.req.Offset, s.req.Length, s.req.Data = op, off, n, s.buf[:n]
	if op == DiskWrite {
		moved = n
		if err := gather(mem, s.data, s.buf[:n]); err != nil {
			return blkIOErr, 0, moved
		}
	}
	b.submit(s)
	return blkPending, 0, moved
}

// discard starts a discard (5.2.6: segments of sector, num_sectors,
// flags) after checking every segment: a flag set is UNSUPP (unmap is
// write zeroes' only), a range outside the disk or off the block size an
// IOERR. The segments go to the disk one after the other.
func (b *Block) discard(mem devices.GuestMemory, s *blkSlot) (code byte, written uint32, moved uint64) {
	if !b.caps.Discard {
		return blkUnsupp, 0, 0
	}
	n := dataBytes(s.data)
	if !allWritable(s.data, false) || b.ro || n == 0 || n%blkSegmentSize != 0 || n/blkSegmentSize > uint64(b.maxSegs) {
		return blkIOErr, 0, 0
	}
	if err := gather(mem, s.data, s.buf[:n]); err != nil {
		return blkIOErr, 0, n
	}
	s.op, s.nseg, s.next = DiskDiscard, int(n/blkSegmentSize), 0
	for i := range s.nseg {
		if code := b.checkSegment(s.buf[i*blkSegmentSize:]); code != blkOK {
			return code, 0, n
		}
	}
	if !b.nextDiscard(s) {
		return blkOK, 0, n // every segment was empty
	}
	return blkPending, 0, n
}

// checkSegment checks one discard segment.
func (b *Block) checkSegment(seg []byte) byte {
	sector := binary.LittleEndian.Uint64(seg[0:])
	num := uint64(binary.LittleEndian.Uint32(seg[8:]))
	if flags := binary.LittleEndian.Uint32(seg[12:]); flags != 0 {
		return blkUnsupp
	}
	sectors := b.size / SectorSize
	if num > maxDiscardSectors || sector > sectors || num > sectors-sector {
		return blkIOErr
	}
	if (sector*SectorSize)%b.bsize != 0 || (num*SectorSize)%b.bsize != 0 {
		return blkIOErr
	}
	return blkOK
}

// nextDiscard submits s's next non-empty discard segment and reports
// whether there was one.
func (b *Block) nextDiscard(s *blkSlot) bool {
	for s.next < s.nseg {
		seg := s.buf[s.next*blkSegmentSize:]
		s.next++
		num := uint64(binary.LittleEndian.Uint32(seg[8:]))
		if num == 0 {
			continue
		}
		s.req.Op, s.req.Offset, s.req.Length, s.req.Data = DiskDiscard, binary.LittleEndian.Uint64(seg[0:])*SectorSize, num*SectorSize, nil
		b.submit(s)
		return true
	}
	return false
}

// dataBytes is the length of a request's data.
func dataBytes(bufs []Buffer) uint64 {
	var n uint64
	for _, d := range bufs {
		n += uint64(d.Len)
	}
	return n
}

// allWritable reports whether every buffer's Write is w.
func allWritable(bufs []Buffer, w bool) bool {
	for _, d := range bufs {
		if d.Write != w {
			return false
		}
	}
	return true
}

// gather copies the guest's buffers, in order, into p until it is full.
func gather(mem devices.GuestMemory, bufs []Buffer, p []byte) error {
	prefetch(mem, bufs, len(p), false)
	for _, d := range bufs {
		if len(p) == 0 {
			break
		}
		n := min(int(d.Len), len(p))
		if err := mem.ReadAt(p[:n], d.Addr); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// scatter copies p into the guest's buffers, in order, and returns how
// many bytes it wrote.
func scatter(mem devices.GuestMemory, bufs []Buffer, p []byte) (uint32, error) {
	prefetch(mem, bufs, len(p), true)
	var written uint32
	for _, d := range bufs {
		if len(p) == 0 {
			break
		}
		n := min(int(d.Len), len(p))
		if err := mem.WriteAt(p[:n], d.Addr); err != nil {
			return written, err
		}
		written += uint32(n)
		p = p[n:]
	}
	return written, nil
}
