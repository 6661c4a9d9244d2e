// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"fmt"
)

// waiter is a request with the channel its synchronous caller waits on;
// the client pools them so that a synchronous call allocates nothing.
type waiter struct {
	r  Request
	ch chan struct{}
}

// getWaiter takes a waiter from the pool or makes one.
func (c *Client) getWaiter() *waiter {
	if w, ok := c.waiters.Get().(*waiter); ok {
		return w
	}
	w := &waiter{ch: make(chan struct{}, 1)}
	w.r.Done = func(*Request) { w.ch <- struct{}{} }
	return w
}

// do submits one request and waits for it.
func (c *Client) do(op Op, off uint64, data []byte, length uint32) error {
	w := c.getWaiter()
	w.r.Op, w.r.Offset, w.r.Data, w.r.Length = op, off, data, length
	c.Submit(&w.r)
	<-w.ch
	err := w.r.Err
	w.r.Data, w.r.Err = nil, nil
	c.waiters.Put(w)
	return err
}

// chunk is the longest piece the synchronous calls send in one request.
func (c *Client) chunk() uint64 {
	if info, ok := c.Info(); ok {
		return uint64(info.MaxPayload)
	}
	return MaxPayload
}

// ReadAt reads len(p) bytes at offset off, in requests of at most
// Info().MaxPayload bytes, one after the other. off and len(p) must be
// multiples of the block size and inside the export; a short read
// returns the error that ended it (there is no io.EOF).
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	return c.transfer(OpRead, p, off)
}

// WriteAt writes p at offset off, as ReadAt reads. It returns once the
// server has acknowledged every piece; Flush makes them durable.
func (c *Client) WriteAt(p []byte, off int64) (int, error) {
	return c.transfer(OpWrite, p, off)
}

// transfer runs a read or write in pieces.
func (c *Client) transfer(op Op, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("nbd: %v at negative offset %d: %w", op, off, ErrInvalid)
	}
	if len(p) == 0 {
		return 0, nil
	}
	step := c.chunk()
	done := 0
	for done < len(p) {
		n := min(uint64(len(p)-done), step)
		if err := c.do(op, uint64(off)+uint64(done), p[done:done+int(n)], 0); err != nil {
			return done, err
		}
		done += int(n)
	}
	return done, nil
}

// Flush asks the server to make every write it has acknowledged durable
// (NBD_CMD_FLUSH) and returns once it has answered.
func (c *Client) Flush() error {
	return c.do(OpFlush, 0, nil, 0)
}

// Trim tells the server that length bytes at off are no longer needed
// (NBD_CMD_TRIM), in requests of at most Info().MaxPayload bytes. Their
// content is undefined until written again.
func (c *Client) Trim(off, length int64) error {
	if off < 0 || length < 0 {
		return fmt.Errorf("nbd: trim of %d bytes at %d: %w", length, off, ErrInvalid)
	}
	step := c.chunk()
	for length > 0 {
		n := min(uint64(length), step)
		if err := c.do(OpTrim, uint64(off), nil, uint32(n)); err != nil {
			return err
		}
		off += int64(n)
		length -= int64(n)
	}
	return nil
}
