// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package mux splits one Ethernet port by EtherType: the cluster transport
// takes its frames (EtherType 0x88B5) off the receive path before the
// TCP/IP stack sees anything, and both send through the same port. It also
// bridges guests onto the port: a station is a guest's MAC on the same
// wire, which receives the frames addressed to it and a copy of every
// broadcast and multicast frame, never a frame of an EtherType the node
// claims for itself.
package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	// stations is copied on write: the receive path loads it without a
	// lock. Writers hold mu.
	stations atomic.Pointer[[]*Station]
	short    atomic.Uint64
	// foreign counts unicast frames for a MAC neither the node's nor a
	// station's (a NIC in promiscuous mode sees them).
	foreign atomic.Uint64
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

// Foreign returns the number of unicast frames dropped for being
// addressed to a MAC that is neither the node's nor a station's.
func (m *Mux) Foreign() uint64 { return m.foreign.Load() }

func (m *Mux) receive(frame []byte) {
	if len(frame) < link.HeaderLen {
		m.short.Add(1)
		return
	}
	t := link.EtherType(binary.BigEndian.Uint16(frame[12:14]))
	m.mu.RLock()
	p, claimed := m.ports[t]
	m.mu.RUnlock()
	dst := link.MAC(frame[0:6])
	if !dst.IsMulticast() && dst != m.lower.MAC() {
		m.toStation(dst, claimed, frame)
		return
	}
	if !claimed {
		p = m.def
		if dst.IsMulticast() {
			m.toStations(frame)
		}
	}
	p.deliver(frame)
}

// toStation delivers a unicast frame for dst to its station, unless the
// node claims its EtherType.
func (m *Mux) toStation(dst link.MAC, claimed bool, frame []byte) {
	if ss := m.stations.Load(); ss != nil {
		for _, s := range *ss {
			if s.mac == dst {
				if claimed {
					s.refused.Add(1)
					return
				}
				s.deliver(frame)
				return
			}
		}
	}
	m.foreign.Add(1)
}

// toStations gives every station a broadcast or multicast frame, before
// the node's own port sees it (a receiver may modify the bytes; none of
// the stations' does).
func (m *Mux) toStations(frame []byte) {
	if ss := m.stations.Load(); ss != nil {
		for _, s := range *ss {
			s.deliver(frame)
		}
	}
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

// MACFilter is a link that can receive frames for unicast MACs other than
// its own: a NIC whose address filter takes more entries, or that goes
// promiscuous.
type MACFilter interface {
	AcceptMAC(mac link.MAC) error
}

// Station is a guest's MAC bridged onto the mux's port: a link.Link whose
// receiver gets the frames addressed to that MAC, broadcasts and
// multicasts, and whose frames go out of the shared port as they are.
// The guest's device checks the source MAC and EtherType of what it sends.
type Station struct {
	Port
	mac link.MAC
	// refused counts frames for the station's MAC of an EtherType the
	// node claims (the cluster's).
	refused atomic.Uint64
}

// MAC implements link.Link: the station's own address.
func (s *Station) MAC() link.MAC { return s.mac }

// Refused returns the frames addressed to the station that carried an
// EtherType the node keeps for itself.
func (s *Station) Refused() uint64 { return s.refused.Load() }

// ErrStationExists is AddStation's error for a MAC that is already a
// station's.
var ErrStationExists = errors.New("already a station")

// AddStation bridges mac onto the port: the NIC is told to accept it
// (where it filters by address) and frames for it reach the returned
// station. mac must be a unicast address that is neither the port's nor
// another station's (ErrStationExists).
func (m *Mux) AddStation(mac link.MAC) (*Station, error) {
	if mac.IsMulticast() || mac == (link.MAC{}) || mac == m.lower.MAC() {
		return nil, fmt.Errorf("mux: %v cannot be a station's MAC", mac)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []*Station
	if ss := m.stations.Load(); ss != nil {
		old = *ss
	}
	for _, s := range old {
		if s.mac == mac {
			return nil, fmt.Errorf("mux: %v: %w", mac, ErrStationExists)
		}
	}
	if f, ok := m.lower.(MACFilter); ok {
		if err := f.AcceptMAC(mac); err != nil {
			return nil, fmt.Errorf("mux: the NIC refuses %v: %w", mac, err)
		}
	}
	s := &Station{Port: Port{m: m}, mac: mac}
	ss := append(append(make([]*Station, 0, len(old)+1), old...), s)
	m.stations.Store(&ss)
	return s, nil
}

// RemoveStation stops delivering frames to s. The NIC may go on
// accepting its MAC; the mux drops those frames as foreign.
func (m *Mux) RemoveStation(s *Station) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.stations.Load()
	if ss == nil {
		return
	}
	var kept []*Station
	for _, o := range *ss {
		if o != s {
			kept = append(kept, o)
		}
	}
	m.stations.Store(&kept)
}
