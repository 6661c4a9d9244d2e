// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"time"

	"github.com/usbarmory/tamago/soc/intel/uart"
)

// Console adapts a polled 16550 UART to io.ReadWriter for the shell.
type Console struct {
	UART *uart.UART
	// Poll is how long Read sleeps between empty polls.
	Poll time.Duration
}

// Read blocks until at least one byte arrives, then returns what is
// buffered in the UART.
func (c *Console) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n := 0
		for n < len(p) {
			b, ok := c.UART.Rx()
			if !ok {
				break
			}
			p[n] = b
			n++
		}
		if n > 0 {
			return n, nil
		}
		time.Sleep(c.Poll)
	}
}

// Write sends p to the UART.
func (c *Console) Write(p []byte) (int, error) {
	for _, b := range p {
		c.UART.Tx(b)
	}
	return len(p), nil
}
