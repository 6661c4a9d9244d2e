// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"fmt"
	"io"
	"sync"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// Console device constants (VIRTIO 1.2, 5.3): no features, port 0's
// receive and transmit queues only.
const (
	consoleRx       = 0
	consoleTx       = 1
	consoleInputMax = 4096
)

// Console is a virtio console (the guest's /dev/hvc0): what the guest
// transmits goes to an io.Writer, and Input queues bytes for it to
// receive. Connect it to its transport with Attach before Input.
//
// Notify runs on the device's worker only; chain and buf are its own.
// Input's bytes wait in `in` (guarded by mu) and are moved to buf before
// guest memory is written, so Input never waits for guest memory.
type Console struct {
	out   io.Writer
	chain Chain
	buf   [512]byte

	mu  sync.Mutex // guards in and dev
	in  []byte
	dev *Device
}

// NewConsole returns a console device transmitting to out.
func NewConsole(out io.Writer) *Console {
	return &Console{out: out, chain: Chain{Buffers: make([]Buffer, 0, MaxQueueSize)}, in: make([]byte, 0, consoleInputMax)}
}

// Attach tells the console the transport it is on, so that Input can
// kick the receive queue.
func (c *Console) Attach(d *Device) {
	c.mu.Lock()
	c.dev = d
	c.mu.Unlock()
}

// DeviceID implements Backend.
func (c *Console) DeviceID() uint32 { return spec.DeviceConsole }

// Features implements Backend: none.
func (c *Console) Features() uint64 { return 0 }

// NumQueues implements Backend: receiveq0 and transmitq0.
func (c *Console) NumQueues() int { return 2 }

// ReadConfig implements Backend: no configuration fields are offered.
func (c *Console) ReadConfig(off uint64, size int) uint64 { return 0 }

// Reset implements Backend: pending input is kept for the next driver.
func (c *Console) Reset() {}

// Input queues p for the guest and returns how many bytes were taken.
func (c *Console) Input(p []byte) int {
	c.mu.Lock()
	n := min(len(p), consoleInputMax-len(c.in))
	c.in = append(c.in, p[:n]...)
	dev := c.dev
	c.mu.Unlock()
	if dev != nil {
		dev.Kick(consoleRx)
	}
	return n
}

// Notify implements Backend.
func (c *Console) Notify(mem devices.GuestMemory, q *Queue, index int, budget *Budget) (bool, error) {
	switch index {
	case consoleTx:
		return c.transmit(mem, q, budget)
	case consoleRx:
		return c.receive(mem, q, budget)
	}
	return false, nil
}

// maxConsoleChain is the longest transmit chain the console takes: Linux
// sends a page at most; a longer chain breaks the queue rather than
// keeping the worker copying guest memory to the log.
const maxConsoleChain = 1 << 20

func (c *Console) transmit(mem devices.GuestMemory, q *Queue, budget *Budget) (bool, error) {
	used := false
	for budget.Left() {
		ok, err := q.Pop(mem, &c.chain)
		if err != nil || !ok {
			return used, err
		}
		if n := c.chain.Bytes(); n > maxConsoleChain {
			return used, fmt.Errorf("%w: console transmit chain of %d bytes, more than %d", ErrBadQueue, n, maxConsoleChain)
		}
		for _, b := range c.chain.Buffers {
			if b.Write {
				return used, fmt.Errorf("%w: console transmit buffer is device-writable", ErrBadQueue)
			}
			for done := uint32(0); done < b.Len; {
				n := min(b.Len-done, uint32(len(c.buf)))
				if err := mem.ReadAt(c.buf[:n], b.Addr+uint64(done)); err != nil {
					return used, fmt.Errorf("%w: console transmit buffer: %v", ErrBadQueue, err)
				}
				c.out.Write(c.buf[:n])
				done += n
			}
		}
		if err := q.Push(mem, c.chain.Head, 0); err != nil {
			return used, err
		}
		budget.Spend(c.chain.Bytes())
		used = true
	}
	return used, nil
}

func (c *Console) receive(mem devices.GuestMemory, q *Queue, budget *Budget) (bool, error) {
	used := false
	for budget.Left() && c.inputWaiting() {
		ok, err := q.Pop(mem, &c.chain)
		if err != nil || !ok {
			return used, err
		}
		written := uint32(0)
		for _, b := range c.chain.Buffers {
			if !b.Write {
				return used, fmt.Errorf("%w: console receive buffer is read-only", ErrBadQueue)
			}
			for done := uint32(0); done < b.Len; {
				n := c.takeInput(int(min(b.Len-done, uint32(len(c.buf)))))
				if n == 0 {
					break
				}
				if err := mem.WriteAt(c.buf[:n], b.Addr+uint64(done)); err != nil {
					return used, fmt.Errorf("%w: console receive buffer: %v", ErrBadQueue, err)
				}
				done += uint32(n)
				written += uint32(n)
			}
		}
		if err := q.Push(mem, c.chain.Head, written); err != nil {
			return used, err
		}
		budget.Spend(uint64(written))
		used = true
	}
	return used, nil
}

// inputWaiting reports whether Input left bytes for the guest.
func (c *Console) inputWaiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in) > 0
}

// takeInput moves up to max waiting input bytes to c.buf and returns how
// many.
func (c *Console) takeInput(max int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := copy(c.buf[:max], c.in)
	c.in = c.in[:copy(c.in, c.in[n:])]
	return n
}
