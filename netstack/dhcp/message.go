// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package dhcp is a DHCPv4 client (RFC 2131, options from RFC 2132) that
// runs on a raw link.Link before the IP stack has an address: it builds
// its own Ethernet, IPv4 and UDP headers, broadcasts DISCOVER and
// REQUEST, and takes the server's OFFER and ACK off the link.
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Message types (RFC 2132, 9.6).
const (
	Discover = 1
	Offer    = 2
	Request  = 3
	Decline  = 4
	Ack      = 5
	Nak      = 6
	Release  = 7
)

// Option codes (RFC 2132).
const (
	optPad         = 0
	optSubnetMask  = 1
	optRouter      = 3
	optDNS         = 6
	optRequestedIP = 50
	optLeaseTime   = 51
	optMessageType = 53
	optServerID    = 54
	optParamList   = 55
	optEnd         = 255
)

// Fixed layout (RFC 2131, 2, Figure 1).
const (
	opRequest    = 1
	opReply      = 2
	htypeEther   = 1
	fixedLen     = 236
	magicCookie  = 0x63825363
	flagBcast    = 0x8000
	minMessage   = 300 // BOOTP minimum (RFC 1542, 3.1.1)
	maxOptionLen = 255
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("dhcp: malformed message")

// Message is the part of a DHCP message the client uses.
type Message struct {
	Op        uint8
	XID       uint32
	Flags     uint16
	CIAddr    netip.Addr // client's address (renewing)
	YIAddr    netip.Addr // "your" address: the offer
	CHAddr    [6]byte
	Type      uint8
	ServerID  netip.Addr
	Requested netip.Addr
	Mask      netip.Addr
	Router    netip.Addr
	LeaseSecs uint32
	// Params lists the options asked for (a client's message).
	Params []byte
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}

// Decode parses a DHCP message. Options it does not use are skipped;
// lengths are checked against the message.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) < fixedLen+4 {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if binary.BigEndian.Uint32(b[fixedLen:]) != magicCookie {
		return m, fmt.Errorf("%w: no magic cookie", ErrMalformed)
	}
	if b[1] != htypeEther || b[2] != 6 {
		return m, fmt.Errorf("%w: hardware type %d length %d", ErrMalformed, b[1], b[2])
	}
	m.Op = b[0]
	m.XID = binary.BigEndian.Uint32(b[4:])
	m.Flags = binary.BigEndian.Uint16(b[10:])
	m.CIAddr, m.YIAddr = addr4(b[12:]), addr4(b[16:])
	copy(m.CHAddr[:], b[28:34])
	opts := b[fixedLen+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) > len(opts)-2 {
			return m, fmt.Errorf("%w: option %d overruns the message", ErrMalformed, code)
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+int(opts[1]):]
		need := func(n int) error {
			if len(v) != n {
				return fmt.Errorf("%w: option %d has %d bytes, want %d", ErrMalformed, code, len(v), n)
			}
			return nil
		}
		var err error
		switch code {
		case optMessageType:
			if err = need(1); err == nil {
				m.Type = v[0]
			}
		case optServerID, optRequestedIP, optSubnetMask:
			if err = need(4); err == nil {
				a := addr4(v)
				switch code {
				case optServerID:
					m.ServerID = a
				case optRequestedIP:
					m.Requested = a
				default:
					m.Mask = a
				}
			}
		case optRouter:
			if len(v) < 4 || len(v)%4 != 0 {
				err = fmt.Errorf("%w: router option of %d bytes", ErrMalformed, len(v))
			} else {
				m.Router = addr4(v)
			}
		case optLeaseTime:
			if err = need(4); err == nil {
				m.LeaseSecs = binary.BigEndian.Uint32(v)
			}
		case optParamList:
			m.Params = append([]byte(nil), v...)
		}
		if err != nil {
			return m, err
		}
	}
	if m.Type == 0 {
		return m, fmt.Errorf("%w: no message type (BOOTP)", ErrMalformed)
	}
	return m, nil
}

// Append encodes m after b.
func (m *Message) Append(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, fixedLen+4)...)
	f := b[start:]
	f[0], f[1], f[2] = m.Op, htypeEther, 6
	binary.BigEndian.PutUint32(f[4:], m.XID)
	binary.BigEndian.PutUint16(f[10:], m.Flags)
	put4(f[12:], m.CIAddr)
	put4(f[16:], m.YIAddr)
	copy(f[28:], m.CHAddr[:])
	binary.BigEndian.PutUint32(f[fixedLen:], magicCookie)
	b = append(b, optMessageType, 1, m.Type)
	add4 := func(code byte, a netip.Addr) {
		if a.Is4() {
			v := a.As4()
			b = append(b, code, 4, v[0], v[1], v[2], v[3])
		}
	}
	add4(optRequestedIP, m.Requested)
	add4(optServerID, m.ServerID)
	add4(optSubnetMask, m.Mask)
	add4(optRouter, m.Router)
	if m.LeaseSecs != 0 {
		b = append(b, optLeaseTime, 4)
		b = binary.BigEndian.AppendUint32(b, m.LeaseSecs)
	}
	if len(m.Params) > 0 && len(m.Params) <= maxOptionLen {
		b = append(b, optParamList, byte(len(m.Params)))
		b = append(b, m.Params...)
	}
	b = append(b, optEnd)
	for len(b)-start < minMessage {
		b = append(b, optPad)
	}
	return b
}
