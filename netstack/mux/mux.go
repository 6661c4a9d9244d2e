// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package mux splits one Ethernet port by EtherType: the cluster transport
// takes its frames (EtherType 0x88B5) off the receive path before the
// TCP/IP stack sees anything, and both send through the same port.
package mux

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/big-iron/big-iron/machine/link"
)

// Mux hands each received frame to the port registered for its EtherType,
// or to the default port. Frames shorter than an Ethernet header are
// counted and dropped.
type Mux struct {
	lower link.Link
	mu    sync.RWMutex
	ports map[link.EtherType]*Port
	def   *Port
	short atomic.Uint64
}

// New takes over lower's receiver.
func New(lower link.Link) *Mux {
	m := &Mux{lower: lower, ports: make(map[link.EtherType]*Port)}
	m.def = &Port{m: m}
	lower.SetReceiver(m.receive)
	return m
}

// Port returns the port receiving frames of EtherType t, creating it on
// first use.
func (m *Mux) Port(t link.EtherType) *Port {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.ports[t]
	if !ok {
		p = &Port{m: m}
		m.ports[t] = p
	}
	return p
}

// Default returns the port receiving every frame no other port claims.
func (m *Mux) Default() *Port { return m.def }

// Short returns the number of frames dropped for lacking a full header.
func (m *Mux) Short() uint64 { return m.short.Load() }

func (m *Mux) receive(frame []byte) {
	if len(frame) < link.HeaderLen {
		m.short.Add(1)
		return
	}
	t := link.EtherType(binary.BigEndian.Uint16(frame[12:14]))
	m.mu.RLock()
	p, ok := m.ports[t]
	m.mu.RUnlock()
	if !ok {
		p = m.def
	}
	p.deliver(frame)
}

// Port is a link.Link view of the Mux for one EtherType (or the rest).
type Port struct {
	m        *Mux
	recv     atomic.Pointer[link.Receiver]
	frames   atomic.Uint64
	unwanted atomic.Uint64
}

var _ link.Link = (*Port)(nil)

func (p *Port) deliver(frame []byte) {
	r := p.recv.Load()
	if r == nil || *r == nil {
		p.unwanted.Add(1)
		return
	}
	p.frames.Add(1)
	(*r)(frame)
}

// Transmit implements link.Link: the frame goes out of the shared port.
func (p *Port) Transmit(frame []byte) error { return p.m.lower.Transmit(frame) }

// SetReceiver implements link.Link.
func (p *Port) SetReceiver(r link.Receiver) { p.recv.Store(&r) }

// MAC implements link.Link.
func (p *Port) MAC() link.MAC { return p.m.lower.MAC() }

// MTU implements link.Link.
func (p *Port) MTU() int { return p.m.lower.MTU() }

// Up implements link.Link.
func (p *Port) Up() bool { return p.m.lower.Up() }

// Received returns the frames delivered to this port's receiver, and those
// dropped because it had none.
func (p *Port) Received() (delivered, dropped uint64) {
	return p.frames.Load(), p.unwanted.Load()
}
