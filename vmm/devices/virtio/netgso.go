// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// maxGSOFrame bounds a frame the driver hands over for segmentation: an
// IP packet of 64 KiB (Linux's GSO_MAX_SIZE) after an Ethernet header
// and a VLAN tag.
const maxGSOFrame = link.HeaderLen + vlanTagLen + 65536

// IP and TCP layouts (RFC 791, 3.1; RFC 8200, 3; RFC 9293, 3.1).
const (
	etherTypeIPv4   link.EtherType = 0x0800
	etherTypeIPv6   link.EtherType = 0x86DD
	ipv4MinLen                     = 20
	ipv6Len                        = 40
	tcpMinLen                      = 20
	protoTCP                       = 6
	ipv4FlagsMF                    = 0x2000 // more fragments
	ipv4FragOffMask                = 0x1FFF
	tcpFlagFIN                     = 0x01
	tcpFlagPSH                     = 0x08
	tcpFlagCWR                     = 0x80
)

// gsoPacket is a TCP packet to segment: where its headers are in the
// frame and what each segment carries.
type gsoPacket struct {
	v6       bool
	l3, l4   int // offsets of the IP and TCP headers
	hdrs     int // all headers' length (the TCP payload's offset)
	end      int // the IP packet's end in the frame
	mss      int
	checkOff int // the TCP checksum's offset
}

// parseGSO checks a frame whose header asks for segmentation (5.1.6.2):
// TCP over IPv4 (not a fragment) or IPv6 (TCP the first next header),
// as the header's gso_type says and the negotiated features allow,
// with gso_size of payload per segment fitting the MTU. It reports false
// for anything else.
func (n *Net) parseGSO(hdr, frame []byte, features uint64) (gsoPacket, bool) {
	var p gsoPacket
	gso := hdr[spec.NetHdrGSOType]
	p.mss = int(binary.LittleEndian.Uint16(hdr[spec.NetHdrGSOSize:]))
	t, tags, ok := innerType(frame)
	if !ok || p.mss == 0 {
		return p, false
	}
	p.l3 = link.HeaderLen + tags*vlanTagLen
	ip := frame[p.l3:]
	switch {
	case gso == spec.NetGSOTCPv4 && features&spec.NetFeatureHostTSO4 != 0 && t == etherTypeIPv4:
		if len(ip) < ipv4MinLen || ip[0]>>4 != 4 {
			return p, false
		}
		ihl := int(ip[0]&0xF) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		frag := binary.BigEndian.Uint16(ip[6:])
		if ihl < ipv4MinLen || total < ihl || total > len(ip) || frag&(ipv4FlagsMF|ipv4FragOffMask) != 0 || ip[9] != protoTCP {
			return p, false
		}
		p.l4, p.end = p.l3+ihl, p.l3+total
	case gso == spec.NetGSOTCPv6 && features&spec.NetFeatureHostTSO6 != 0 && t == etherTypeIPv6:
		if len(ip) < ipv6Len || ip[0]>>4 != 6 || ip[6] != protoTCP {
			return p, false
		}
		total := ipv6Len + int(binary.BigEndian.Uint16(ip[4:]))
		if total > len(ip) {
			return p, false
		}
		p.v6, p.l4, p.end = true, p.l3+ipv6Len, p.l3+total
	default: // ECN, UDP, a type not offered, or not the packet it says
		return p, false
	}
	if p.end-p.l4 < tcpMinLen {
		return p, false
	}
	thl := int(frame[p.l4+12]>>4) * 4
	p.hdrs, p.checkOff = p.l4+thl, p.l4+16
	if thl < tcpMinLen || p.hdrs > p.end || p.hdrs+p.mss > n.frameMax(tags) {
		return p, false
	}
	return p, true
}

// sendGSO segments frame as p says into n.segBuf, one segment at a time,
// each with its IP length (and IPv4 identification and checksum), TCP
// sequence number, flags and checksum filled in, and sends each through
// the checks and the rate limit.
func (n *Net) sendGSO(frame []byte, p gsoPacket) {
	payload := frame[p.hdrs:p.end]
	seq := binary.BigEndian.Uint32(frame[p.l4+4:])
	flags := frame[p.l4+13]
	var id uint16
	if !p.v6 {
		id = binary.BigEndian.Uint16(frame[p.l3+4:])
	}
	for off, i := 0, 0; off < len(payload) || i == 0; off, i = off+p.mss, i+1 {
		chunk := min(p.mss, len(payload)-off)
		seg := n.segBuf[:p.hdrs+chunk]
		copy(seg, frame[:p.hdrs])
		copy(seg[p.hdrs:], payload[off:off+chunk])
		ip, tcp := seg[p.l3:], seg[p.l4:]
		if p.v6 {
			binary.BigEndian.PutUint16(ip[4:], uint16(len(seg)-p.l4))
		} else {
			binary.BigEndian.PutUint16(ip[2:], uint16(len(seg)-p.l3))
			binary.BigEndian.PutUint16(ip[4:], id+uint16(i))
			binary.BigEndian.PutUint16(ip[10:], 0)
			binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip[:p.l4-p.l3]))
		}
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(off))
		f := flags
		if off+chunk < len(payload) {
			f &^= tcpFlagFIN | tcpFlagPSH
		}
		if i > 0 {
			f &^= tcpFlagCWR
		}
		tcp[13] = f
		binary.BigEndian.PutUint16(seg[p.checkOff:], 0)
		binary.BigEndian.PutUint16(seg[p.checkOff:], ^onesAdd(pseudoSum(seg, p), onesSum(tcp)))
		n.sendFrame(seg)
		if off+chunk >= len(payload) {
			break
		}
	}
}

// pseudoSum is the ones' complement sum of the TCP pseudo-header of the
// segment seg (RFC 9293, 3.1; RFC 8200, 8.1).
func pseudoSum(seg []byte, p gsoPacket) uint16 {
	var b [8]byte
	tcpLen := len(seg) - p.l4
	var addrs []byte
	if p.v6 {
		addrs = seg[p.l3+8 : p.l3+40]
		binary.BigEndian.PutUint32(b[0:], uint32(tcpLen))
		b[7] = protoTCP
	} else {
		addrs = seg[p.l3+12 : p.l3+20]
		b[1] = protoTCP
		binary.BigEndian.PutUint16(b[2:], uint16(tcpLen))
	}
	return onesAdd(onesSum(addrs), onesSum(b[:]))
}

// onesAdd adds two ones' complement sums.
func onesAdd(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s>>16 + s&0xFFFF)
}
