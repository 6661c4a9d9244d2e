// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

// UDP ports (RFC 2131, 4.1) and header sizes.
const (
	ServerPort = 67
	ClientPort = 68

	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	protoUDP      = 17
	ttl           = 64
)

// Lease is an address the server gave.
type Lease struct {
	Addr     netip.Prefix
	Gateway  netip.Addr // invalid if the server named no router
	Server   netip.Addr
	Duration time.Duration
}

// Config configures Acquire.
type Config struct {
	// Link is the raw port; Acquire is its receiver while it runs and
	// leaves no receiver behind.
	Link link.Link
	// XID is the transaction id (random, so that clients booted together
	// do not take each other's replies).
	XID uint32
	// Timeout bounds the whole exchange; Retry is the wait for each
	// reply before the request is sent again (default 1 s).
	Timeout, Retry time.Duration
}

// Errors of Acquire.
var (
	ErrTimeout = errors.New("dhcp: no lease before the timeout")
)

// params are the options the client asks for.
var params = []byte{optSubnetMask, optRouter, optDNS, optLeaseTime, optServerID}

// Acquire runs DISCOVER, OFFER, REQUEST, ACK on cfg.Link and returns the
// lease. A NAK starts over; replies for other clients or transactions,
// and malformed frames, are ignored.
func Acquire(cfg Config) (Lease, error) {
	if cfg.Link == nil {
		return Lease{}, errors.New("dhcp: no link")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	mac := cfg.Link.MAC()
	replies := make(chan Message, 16)
	cfg.Link.SetReceiver(func(frame []byte) {
		if m, ok := parseReply(frame, mac, cfg.XID); ok {
			select {
			case replies <- m:
			default:
			}
		}
	})
	defer cfg.Link.SetReceiver(nil)

	deadline := time.Now().Add(cfg.Timeout)
	var offer Message
	requesting := false
	for time.Now().Before(deadline) {
		out := Message{Op: opRequest, XID: cfg.XID, Flags: flagBcast, CHAddr: mac, Type: Discover, Params: params}
		if requesting {
			out.Type, out.Requested, out.ServerID = Request, offer.YIAddr, offer.ServerID
		}
		if err := cfg.Link.Transmit(frame(mac, &out)); err != nil {
			return Lease{}, fmt.Errorf("dhcp: sending: %w", err)
		}
		wait := time.NewTimer(min(cfg.Retry, time.Until(deadline)))
	replies:
		for {
			select {
			case m := <-replies:
				switch {
				case !requesting && m.Type == Offer && m.YIAddr.Is4() && m.ServerID.Is4():
					offer, requesting = m, true
					wait.Stop()
					break replies
				case requesting && m.ServerID == offer.ServerID && m.Type == Nak:
					requesting = false
					wait.Stop()
					break replies
				case requesting && m.ServerID == offer.ServerID && m.Type == Ack:
					wait.Stop()
					return lease(m)
				}
			case <-wait.C:
				if requesting {
					requesting = false // the server went quiet: start over
				}
				break replies
			}
		}
	}
	return Lease{}, ErrTimeout
}

// lease makes a Lease of an ACK.
func lease(m Message) (Lease, error) {
	if !m.YIAddr.Is4() || !m.Mask.Is4() {
		return Lease{}, fmt.Errorf("dhcp: ACK without an address or subnet mask")
	}
	mask := m.Mask.As4()
	bits := 0
	for v := binary.BigEndian.Uint32(mask[:]); v&(1<<31) != 0; v <<= 1 {
		bits++
	}
	p := netip.PrefixFrom(m.YIAddr, bits)
	l := Lease{Addr: p, Server: m.ServerID, Duration: time.Duration(m.LeaseSecs) * time.Second}
	if m.Router.Is4() && p.Contains(m.Router) {
		l.Gateway = m.Router
	}
	return l, nil
}

// frame builds the broadcast Ethernet/IPv4/UDP frame carrying m from
// 0.0.0.0:68 to 255.255.255.255:67.
func frame(mac link.MAC, m *Message) []byte {
	b := make([]byte, link.HeaderLen+ipv4HeaderLen+udpHeaderLen, 600)
	link.PutHeader(b, link.Broadcast, mac, link.EtherTypeIPv4)
	b = m.Append(b)
	ip := b[link.HeaderLen:]
	ip[0], ip[8], ip[9] = 0x45, ttl, protoUDP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[16:20], []byte{255, 255, 255, 255})
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:ipv4HeaderLen]))
	udp := ip[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], ClientPort)
	binary.BigEndian.PutUint16(udp[2:], ServerPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp))) // checksum 0: none (RFC 768)
	return b
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xFFFF + s>>16
	}
	return ^uint16(s)
}

// parseReply takes a server reply for this client and transaction out of
// an Ethernet frame.
func parseReply(f []byte, mac link.MAC, xid uint32) (Message, bool) {
	h, err := link.ParseHeader(f)
	if err != nil || h.Type != link.EtherTypeIPv4 {
		return Message{}, false
	}
	ip := f[link.HeaderLen:]
	if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 || ip[9] != protoUDP {
		return Message{}, false
	}
	ihl := int(ip[0]&0xF) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < ipv4HeaderLen || total > len(ip) || total < ihl+udpHeaderLen {
		return Message{}, false
	}
	udp := ip[ihl:total]
	if binary.BigEndian.Uint16(udp[2:]) != ClientPort {
		return Message{}, false
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpHeaderLen || ulen > len(udp) {
		return Message{}, false
	}
	m, err := Decode(udp[udpHeaderLen:ulen])
	if err != nil || m.Op != opReply || m.XID != xid || m.CHAddr != mac {
		return Message{}, false
	}
	return m, true
}
