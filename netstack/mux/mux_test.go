// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mux

import (
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

func FuzzReceive(f *testing.F) {
	f.Add(frame(link.EtherTypeCluster, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		lower := &fakeLink{}
		m := New(lower)
		m.Port(link.EtherTypeCluster).SetReceiver(func(fr []byte) {
			if len(fr) < link.HeaderLen {
				t.Fatalf("runt delivered")
			}
		})
		lower.recv(b)
	})
}
