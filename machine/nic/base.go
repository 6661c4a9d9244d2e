// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nic

import (
	"sync"

	"github.com/big-iron/big-iron/machine/link"
)

// Base is the part of a Device that every driver keeps the same way: the
// card's address, the receiver its frames go to, and its counters. A
// driver embeds it, which gives its Device MAC, MTU, SetReceiver and
// Stats; the driver sets the address once in its constructor (SetMAC),
// holds the receiver with LockReceiver while it hands frames up, and
// counts with Count. The zero value has no address and no receiver.
type Base struct {
	mac link.MAC

	rxMu sync.Mutex
	recv link.Receiver

	statsMu sync.Mutex
	stats   Stats
}

// SetMAC sets the card's address; a driver calls it before the device is
// in use.
func (b *Base) SetMAC(m link.MAC) { b.mac = m }

// MAC implements link.Link.
func (b *Base) MAC() link.MAC { return b.mac }

// MTU implements link.Link: the standard Ethernet payload.
func (b *Base) MTU() int { return link.DefaultMTU }

// SetReceiver implements link.Link. It waits for a Poll that holds the
// receiver (LockReceiver), so that no frame goes to the old receiver once
// it returns.
func (b *Base) SetReceiver(r link.Receiver) {
	b.rxMu.Lock()
	b.recv = r
	b.rxMu.Unlock()
}

// LockReceiver returns the receiver (nil: frames are dropped) and holds
// off SetReceiver until UnlockReceiver. A driver's Poll holds it while it
// hands frames up, and may guard its receive ring with it.
func (b *Base) LockReceiver() link.Receiver {
	b.rxMu.Lock()
	return b.recv
}

// UnlockReceiver ends LockReceiver.
func (b *Base) UnlockReceiver() { b.rxMu.Unlock() }

// Stats implements Device.
func (b *Base) Stats() Stats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	return b.stats
}

// Count updates the counters with f, under their lock.
func (b *Base) Count(f func(*Stats)) {
	b.statsMu.Lock()
	f(&b.stats)
	b.statsMu.Unlock()
}
