// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package e2e boots the real big-iron image in emulators (QEMU, Bochs) and
// drives its shell over the serial line. Its tests are the end-to-end tier
// of `make test`; they run when BIGIRON_E2E=1 and skip, naming what is
// missing, where the tamago toolchain or an emulator is absent.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Console is the serial line of a booted node: everything the node prints
// is kept, and Expect waits for text to appear after a mark.
type Console struct {
	w io.Writer

	mu   sync.Mutex
	buf  bytes.Buffer
	read int // Expect consumes output up to here
	eof  error
	cond *sync.Cond
}

// NewConsole starts collecting r and sends input to w.
func NewConsole(r io.Reader, w io.Writer) *Console {
	c := &Console{w: w}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			if err != nil {
				c.eof = err
			}
			c.cond.Broadcast()
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

// Expect waits until want appears in the output not yet consumed and
// returns the output up to and including it.
func (c *Console) Expect(want string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()

	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		out := c.buf.String()[c.read:]
		if i := strings.Index(out, want); i >= 0 {
			c.read += i + len(want)
			return out[:i+len(want)], nil
		}
		if c.eof != nil {
			return out, fmt.Errorf("console closed (%v) before %q appeared", c.eof, want)
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%q did not appear within %v", want, timeout)
		}
		c.cond.Wait()
	}
}

// Send types a line, ending it with a carriage return as a terminal does.
func (c *Console) Send(line string) error {
	// type slowly: emulated UARTs have 16-byte FIFOs
	for _, b := range []byte(line + "\r") {
		if _, err := c.w.Write([]byte{b}); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// Output returns everything the node printed so far.
func (c *Console) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
