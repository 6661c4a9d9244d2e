// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dhcp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

var (
	clientMAC = link.MAC{0x52, 0x54, 0, 0, 0, 1}
	serverMAC = link.MAC{0x52, 0x55, 0, 0, 0, 2}
	serverIP  = netip.MustParseAddr("10.0.2.2")
)

// fakeLink is a port whose transmitted frames go to a server function
// that may answer with frames of its own.
type fakeLink struct {
	mu     sync.Mutex
	recv   link.Receiver
	server func(req Message) []Message
	sent   []Message
}

func (l *fakeLink) MAC() link.MAC { return clientMAC }
func (l *fakeLink) MTU() int      { return 1500 }
func (l *fakeLink) Up() bool      { return true }
func (l *fakeLink) SetReceiver(r link.Receiver) {
	l.mu.Lock()
	l.recv = r
	l.mu.Unlock()
}

func (l *fakeLink) Transmit(f []byte) error {
	if f[link.HeaderLen+9] != protoUDP || binary.BigEndian.Uint16(f[link.HeaderLen+22:]) != ServerPort {
		return errors.New("not a DHCP request")
	}
	ip := f[link.HeaderLen : link.HeaderLen+ipv4HeaderLen]
	if checksum(ip) != 0 {
		return errors.New("bad IPv4 header checksum")
	}
	m, err := Decode(f[link.HeaderLen+ipv4HeaderLen+udpHeaderLen:])
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.sent = append(l.sent, m)
	server, recv := l.server, l.recv
	l.mu.Unlock()
	for _, r := range server(m) {
		r := r
		b := reply(&r)
		go recv(b)
	}
	return nil
}

// reply frames a server message to the client.
func reply(m *Message) []byte {
	b := frame(serverMAC, m)
	udp := b[link.HeaderLen+ipv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], ServerPort)
	binary.BigEndian.PutUint16(udp[2:], ClientPort)
	return b
}

// server answers like QEMU's user network: 10.0.2.15/24, router .2.
func server(naks int) func(Message) []Message {
	return func(req Message) []Message {
		base := Message{Op: opReply, XID: req.XID, CHAddr: req.CHAddr, ServerID: serverIP}
		switch req.Type {
		case Discover:
			m := base
			m.Type, m.YIAddr = Offer, netip.MustParseAddr("10.0.2.15")
			// A reply for somebody else first, and one with another xid.
			other := m
			other.CHAddr = [6]byte{1, 2, 3, 4, 5, 6}
			stale := m
			stale.XID++
			return []Message{other, stale, m}
		case Request:
			m := base
			if naks > 0 {
				naks--
				m.Type = Nak
				return []Message{m}
			}
			m.Type, m.YIAddr = Ack, req.Requested
			m.Mask, m.Router, m.LeaseSecs = netip.MustParseAddr("255.255.255.0"), serverIP, 86400
			return []Message{m}
		}
		return nil
	}
}

func TestAcquire(t *testing.T) {
	for _, naks := range []int{0, 1} {
		l := &fakeLink{server: server(naks)}
		lease, err := Acquire(Config{Link: l, XID: 0x1234, Timeout: 10 * time.Second, Retry: 200 * time.Millisecond})
		if err != nil {
			t.Fatalf("naks %d: %v", naks, err)
		}
		want := Lease{Addr: netip.MustParsePrefix("10.0.2.15/24"), Gateway: serverIP, Server: serverIP, Duration: 24 * time.Hour}
		if lease != want {
			t.Errorf("naks %d: lease %+v, want %+v", naks, lease, want)
		}
		var types []uint8
		for _, m := range l.sent {
			types = append(types, m.Type)
		}
		wantTypes := []uint8{Discover, Request}
		if naks == 1 {
			wantTypes = []uint8{Discover, Request, Discover, Request}
		}
		if string(types) != string(wantTypes) {
			t.Errorf("naks %d: sent %v, want %v", naks, types, wantTypes)
		}
		if last := l.sent[len(l.sent)-1]; last.Requested != lease.Addr.Addr() || last.ServerID != serverIP || last.CHAddr != clientMAC {
			t.Errorf("REQUEST %+v", last)
		}
		if l.recv != nil {
			t.Error("Acquire left its receiver on the link")
		}
	}
}

func TestTimeout(t *testing.T) {
	l := &fakeLink{server: func(Message) []Message { return nil }}
	start := time.Now()
	if _, err := Acquire(Config{Link: l, XID: 1, Timeout: 300 * time.Millisecond, Retry: 100 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("no server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if len(l.sent) < 2 {
		t.Errorf("DISCOVER sent %d times: no retries", len(l.sent))
	}
}

func TestRoundTrip(t *testing.T) {
	m := Message{Op: opReply, XID: 7, Flags: flagBcast, YIAddr: netip.MustParseAddr("192.168.1.9"), CHAddr: clientMAC, Type: Ack,
		ServerID: serverIP, Mask: netip.MustParseAddr("255.255.0.0"), Router: serverIP, LeaseSecs: 3600, Params: params}
	b := m.Append(nil)
	if len(b) < minMessage {
		t.Errorf("%d bytes, below the BOOTP minimum", len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.XID != m.XID || got.YIAddr != m.YIAddr || got.Mask != m.Mask || got.Router != m.Router || got.LeaseSecs != 3600 || got.Type != Ack || string(got.Params) != string(params) {
		t.Errorf("round trip: %+v", got)
	}
	for name, bad := range map[string][]byte{
		"short":     b[:100],
		"no cookie": append(make([]byte, fixedLen), 1, 2, 3, 4),
		"overrun":   append(append([]byte(nil), b[:fixedLen+4]...), optMessageType, 9),
		"bad type":  append(append([]byte(nil), b[:fixedLen+4]...), optMessageType, 2, 1, 1, optEnd),
		"bootp":     append(append([]byte(nil), b[:fixedLen+4]...), optEnd),
	} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	m := Message{Op: opReply, XID: 7, CHAddr: clientMAC, Type: Offer, ServerID: serverIP, Router: serverIP}
	f.Add(m.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same values.
		again, err := Decode(got.Append(nil))
		if err != nil {
			t.Fatalf("re-encoding failed: %v", err)
		}
		if again.XID != got.XID || again.Type != got.Type || again.YIAddr != got.YIAddr || again.ServerID != got.ServerID {
			t.Fatalf("re-encoded %+v, decoded %+v", got, again)
		}
		_, _ = parseReply(append(make([]byte, link.HeaderLen+ipv4HeaderLen+udpHeaderLen), b...), clientMAC, 7)
	})
}
