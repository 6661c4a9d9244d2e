// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mux

import (
	"errors"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
)

// fakeLink records transmissions and lets the test inject frames.
type fakeLink struct {
	recv link.Receiver
	sent [][]byte
}

func (f *fakeLink) Transmit(b []byte) error {
	f.sent = append(f.sent, append([]byte(nil), b...))
	return nil
}
func (f *fakeLink) SetReceiver(r link.Receiver) { f.recv = r }
func (f *fakeLink) MAC() link.MAC               { return link.MAC{2, 0, 0, 0, 0, 1} }
func (f *fakeLink) MTU() int                    { return 1500 }
func (f *fakeLink) Up() bool                    { return true }
func frame(t link.EtherType, payload byte) []byte {
	b := make([]byte, 60)
	link.PutHeader(b, link.Broadcast, link.MAC{2}, t)
	b[14] = payload
	return b
}

func TestSplitsByEtherType(t *testing.T) {
	lower := &fakeLink{}
	m := New(lower)
	var cluster, ip []byte
	m.Port(link.EtherTypeCluster).SetReceiver(func(b []byte) { cluster = append(cluster, b[14]) })
	m.Default().SetReceiver(func(b []byte) { ip = append(ip, b[14]) })

	lower.recv(frame(link.EtherTypeCluster, 1))
	lower.recv(frame(link.EtherTypeIPv4, 2))
	lower.recv(frame(link.EtherTypeARP, 3))
	lower.recv(frame(link.EtherTypeCluster, 4))
	lower.recv([]byte{1, 2, 3}) // runt

	if string(cluster) != "\x01\x04" || string(ip) != "\x02\x03" {
		t.Errorf("cluster got %v, default got %v", cluster, ip)
	}
	if m.Short() != 1 {
		t.Errorf("short = %d, want 1", m.Short())
	}
	if d, _ := m.Port(link.EtherTypeCluster).Received(); d != 2 {
		t.Errorf("cluster port delivered %d", d)
	}
	if err := m.Port(link.EtherTypeCluster).Transmit(frame(link.EtherTypeCluster, 9)); err != nil || len(lower.sent) != 1 {
		t.Errorf("transmit through port: %v, %d sent", err, len(lower.sent))
	}
}

func TestPortWithoutReceiverDrops(t *testing.T) {
	lower := &fakeLink{}
	m := New(lower)
	p := m.Port(link.EtherTypeCluster)
	lower.recv(frame(link.EtherTypeCluster, 1))
	p.SetReceiver(nil)
	lower.recv(frame(link.EtherTypeCluster, 1))
	if d, dropped := p.Received(); d != 0 || dropped != 2 {
		t.Errorf("delivered %d dropped %d", d, dropped)
	}
}

func TestReceiveDoesNotAllocate(t *testing.T) {
	lower := &fakeLink{}
	m := New(lower)
	n := 0
	m.Port(link.EtherTypeCluster).SetReceiver(func([]byte) { n++ })
	f := frame(link.EtherTypeCluster, 1)
	if a := testing.AllocsPerRun(1000, func() { lower.recv(f) }); a != 0 {
		t.Errorf("%v allocations per frame", a)
	}
}

// filterLink is a fakeLink whose NIC filters by address.
type filterLink struct {
	fakeLink
	accepted []link.MAC
	full     bool
}

func (f *filterLink) AcceptMAC(m link.MAC) error {
	if f.full {
		return errors.New("address filter full")
	}
	f.accepted = append(f.accepted, m)
	return nil
}

func frameTo(dst link.MAC, t link.EtherType, payload byte) []byte {
	b := frame(t, payload)
	copy(b[0:6], dst[:])
	return b
}

// TestStations bridges a guest MAC: it gets its unicast frames and a copy
// of broadcasts, never the cluster's EtherType; the node keeps its own
// unicast, and frames for anyone else are dropped as foreign.
func TestStations(t *testing.T) {
	lower := &filterLink{}
	m := New(lower)
	var cluster, ip, guest []byte
	m.Port(link.EtherTypeCluster).SetReceiver(func(b []byte) { cluster = append(cluster, b[14]) })
	m.Default().SetReceiver(func(b []byte) { ip = append(ip, b[14]) })
	gmac := link.MAC{0x52, 0x54, 0, 0, 0, 7}
	s, err := m.AddStation(gmac)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReceiver(func(b []byte) { guest = append(guest, b[14]) })
	if len(lower.accepted) != 1 || lower.accepted[0] != gmac {
		t.Errorf("the NIC was told to accept %v", lower.accepted)
	}
	if s.MAC() != gmac {
		t.Errorf("station MAC %v", s.MAC())
	}

	node := lower.MAC()
	lower.recv(frameTo(gmac, link.EtherTypeIPv4, 1))                       // guest only
	lower.recv(frameTo(link.Broadcast, link.EtherTypeARP, 2))              // both
	lower.recv(frameTo(node, link.EtherTypeIPv4, 3))                       // node only
	lower.recv(frameTo(gmac, link.EtherTypeCluster, 4))                    // refused
	lower.recv(frameTo(link.MAC{0x33, 0x33, 0, 0, 0, 1}, 0x86dd, 5))       // multicast: both
	lower.recv(frameTo(link.MAC{2, 9, 9, 9, 9, 9}, link.EtherTypeIPv4, 6)) // foreign
	lower.recv(frameTo(link.Broadcast, link.EtherTypeCluster, 7))          // cluster only

	if string(guest) != "\x01\x02\x05" {
		t.Errorf("guest got %v", guest)
	}
	if string(ip) != "\x02\x03\x05" {
		t.Errorf("node's IP port got %v", ip)
	}
	if string(cluster) != "\x07" {
		t.Errorf("cluster port got %v", cluster)
	}
	if s.Refused() != 1 || m.Foreign() != 1 {
		t.Errorf("refused %d, foreign %d; want 1, 1", s.Refused(), m.Foreign())
	}

	if _, err := m.AddStation(gmac); !errors.Is(err, ErrStationExists) {
		t.Errorf("the same MAC as a station twice: %v, want ErrStationExists", err)
	}
	for _, bad := range []link.MAC{node, link.Broadcast, {0x01, 0, 0x5e, 0, 0, 1}, {}} {
		if _, err := m.AddStation(bad); err == nil {
			t.Errorf("%v became a station", bad)
		}
	}
	lower.full = true
	if _, err := m.AddStation(link.MAC{2, 1, 1, 1, 1, 1}); err == nil {
		t.Error("a station the NIC cannot accept was added")
	}

	m.RemoveStation(s)
	lower.recv(frameTo(gmac, link.EtherTypeIPv4, 8))
	lower.recv(frameTo(link.Broadcast, link.EtherTypeARP, 9))
	if string(guest) != "\x01\x02\x05" || m.Foreign() != 2 {
		t.Errorf("after removal the guest got %v, foreign %d", guest, m.Foreign())
	}
	// A removed station's MAC can be a station again (a VM booted anew).
	lower.full = false
	if _, err := m.AddStation(gmac); err != nil {
		t.Errorf("a removed station's MAC: %v", err)
	}
}

// TestStationReceiveAllocs checks that bridging costs no allocation per
// frame.
func TestStationReceiveAllocs(t *testing.T) {
	lower := &filterLink{}
	m := New(lower)
	m.Default().SetReceiver(func([]byte) {})
	s, _ := m.AddStation(link.MAC{0x52, 0x54, 0, 0, 0, 7})
	n := 0
	s.SetReceiver(func([]byte) { n++ })
	uni, bc := frameTo(s.MAC(), link.EtherTypeIPv4, 1), frameTo(link.Broadcast, link.EtherTypeARP, 2)
	if a := testing.AllocsPerRun(100, func() { lower.recv(uni); lower.recv(bc) }); a != 0 {
		t.Errorf("%v allocations per pair of frames", a)
	}
	if n == 0 {
		t.Error("the station received nothing")
	}
}

// FuzzReceive feeds the mux any frame a LAN can carry: it never panics,
// a frame reaches at most the node's port for its EtherType (or the
// default) and the station it names, a station never sees the cluster's
// EtherType, and every frame is delivered, counted short, or counted
// foreign or refused.
func FuzzReceive(f *testing.F) {
	gmac := link.MAC{0x0a, 0xb1, 0, 0, 0, 1}
	f.Add(frameTo(gmac, link.EtherTypeIPv4, 1))
	f.Add(frameTo(gmac, link.EtherTypeCluster, 1))
	f.Add(frameTo(link.Broadcast, link.EtherTypeARP, 2))
	f.Add(frameTo(link.MAC{2, 0, 0, 0, 0, 1}, link.EtherTypeCluster, 3))
	f.Add(frameTo(link.MAC{0x33, 0x33, 0, 0, 0, 1}, link.EtherTypeIPv6, 4))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		lower := &filterLink{}
		m := New(lower)
		var node, cluster, guest int
		runt := func(b []byte) {
			if len(b) < link.HeaderLen {
				t.Fatalf("runt delivered: % x", b)
			}
		}
		m.Default().SetReceiver(func(b []byte) { runt(b); node++ })
		m.Port(link.EtherTypeCluster).SetReceiver(func(b []byte) { runt(b); cluster++ })
		s, err := m.AddStation(gmac)
		if err != nil {
			t.Fatal(err)
		}
		s.SetReceiver(func(b []byte) {
			runt(b)
			guest++
			if len(b) >= link.HeaderLen && link.EtherType(uint16(b[12])<<8|uint16(b[13])) == link.EtherTypeCluster {
				t.Errorf("a station got a cluster frame: % x", b)
			}
		})
		lower.recv(frame)
		if node+cluster > 1 || guest > 1 {
			t.Errorf("one frame delivered %d times to the node, %d to the guest", node+cluster, guest)
		}
		if node+cluster+guest == 0 && m.Short()+m.Foreign()+s.Refused() != 1 {
			t.Errorf("frame % x neither delivered nor counted", frame)
		}
	})
}
