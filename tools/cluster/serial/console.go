// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package serial drives a node's serial console as a person at a
// terminal would: it keeps everything the node prints, waits for text to
// appear, and types lines. The end-to-end tests and the cluster launcher
// (which types the demo's first commands) use it.
package serial

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by Expect once the console's output has ended.
var ErrClosed = errors.New("console closed")

// Console is the serial line of a booted node: everything the node prints
// is kept, and Expect waits for text to appear after a mark.
type Console struct {
	w io.Writer

	mu   sync.Mutex
	buf  bytes.Buffer
	read int // Expect consumes output up to here
	eof  error
	cond *sync.Cond
	done chan struct{}
}

// NewConsole starts collecting r and sends input to w.
func NewConsole(r io.Reader, w io.Writer) *Console {
	c := &Console{w: w, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		defer close(c.done)
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
	_, out, err := c.ExpectAny([]string{want}, timeout)
	return out, err
}

// ExpectAny waits until one of wants appears in the output not yet
// consumed and returns which (the one that appears first; the first in
// wants on a tie) and the output up to and including it.
func (c *Console) ExpectAny(wants []string, timeout time.Duration) (int, string, error) {
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
		found, at := -1, len(out)
		for i, w := range wants {
			if j := strings.Index(out, w); j >= 0 && j < at {
				found, at = i, j
			}
		}
		if found >= 0 {
			end := at + len(wants[found])
			c.read += end
			return found, out[:end], nil
		}
		if c.eof != nil {
			return -1, out, fmt.Errorf("%w (%v) before %q appeared", ErrClosed, c.eof, wants)
		}
		if time.Now().After(deadline) {
			return -1, out, fmt.Errorf("%q did not appear within %v", wants, timeout)
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

// Done is closed once the node's output has ended (the emulator exited
// or closed its console).
func (c *Console) Done() <-chan struct{} { return c.done }

// Write sends b as it is (a control character, say), without pacing.
func (c *Console) Write(b []byte) (int, error) { return c.w.Write(b) }

// Output returns everything the node printed so far.
func (c *Console) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
