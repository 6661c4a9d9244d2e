// Package cluster implements the big-iron cluster transport: authenticated
// frames of EtherType 0x88B5 carried directly over Ethernet, with reliable,
// ordered, flow-controlled message channels between nodes.
//
// Wire format of one frame (all integers big-endian):
//
//	Ethernet II header (14 bytes, link.HeaderLen)
//	offset  size  field
//	0       1     version (Version)
//	1       1     type (FrameType)
//	2       1     channel
//	3       1     flags (reserved, zero)
//	4       4     source node id
//	8       4     destination node id (0: every node, for hellos)
//	12      8     frame counter of the sender (AEAD nonce, replay window)
//	20      4     sequence number (data frames)
//	24      4     cumulative ack: next sequence number expected
//	28      8     selective-ack bitmap: bit i set = ack+1+i received
//	36      2     fragment index
//	38      2     fragment count
//	40      2     payload length
//	42      2     receive window in frames
//	44      n     payload, encrypted
//	44+n    16    AEAD tag over the associated data (Ethernet source
//	              address, EtherType and this header) and the payload
//
// The AEAD nonce is the source node id followed by the frame counter, so a
// sender never reuses a nonce as long as its counter never repeats under the
// same cluster key (see Config.CounterBase).
package cluster

import (
	"encoding/binary"
	"errors"
)

// NodeID names a node in the cluster. Zero is reserved ("any node").
type NodeID uint32

// Version is the frame format version this package speaks.
// Version 2 authenticates the Ethernet source address and EtherType with
// the header (version 1 did not: a rewritten source moved a peer).
const Version = 2

// FrameType says what a frame carries.
type FrameType uint8

// Frame types.
const (
	// TypeData carries one fragment of a message on a reliable channel.
	TypeData FrameType = 1
	// TypeAck carries only acknowledgement state for a channel.
	TypeAck FrameType = 2
	// TypeHello announces a node; it is broadcast and may come from a node
	// that is not yet a peer.
	TypeHello FrameType = 3
	// TypeDatagram carries an unreliable, unordered message (heartbeats).
	TypeDatagram FrameType = 4
)

// String names the frame type.
func (t FrameType) String() string {
	switch t {
	case TypeData:
		return "data"
	case TypeAck:
		return "ack"
	case TypeHello:
		return "hello"
	case TypeDatagram:
		return "datagram"
	}
	return "unknown"
}

// Layout constants.
const (
	// HeaderLen is the length of the cluster header after the Ethernet header.
	HeaderLen = 44
	// TagLen is the length of the AEAD tag (AES-GCM, NIST SP 800-38D, 5.2.1.2).
	TagLen = 16
	// NonceLen is the AEAD nonce length (NIST SP 800-38D, 5.2.1.1: 96 bits).
	NonceLen = 12
	// Overhead is the number of bytes of the link MTU a frame spends on
	// the cluster header and tag.
	Overhead = HeaderLen + TagLen
	// MaxFragments bounds the fragment count of one message.
	MaxFragments = 1 << 12

	offVersion   = 0
	offType      = 1
	offChannel   = 2
	offFlags     = 3
	offSrc       = 4
	offDst       = 8
	offCounter   = 12
	offSeq       = 20
	offAck       = 24
	offSACK      = 28
	offFragIndex = 36
	offFragCount = 38
	offLen       = 40
	offWindow    = 42
)

// Header is a decoded cluster frame header.
type Header struct {
	Type       FrameType
	Channel    uint8
	Src, Dst   NodeID
	Counter    uint64
	Seq, Ack   uint32
	SACK       uint64
	FragIndex  uint16
	FragCount  uint16
	PayloadLen uint16
	Window     uint16
}

// Errors for malformed frames. They are sentinels so the receive path does
// not allocate; each maps to one drop counter.
var (
	ErrShort    = errors.New("cluster: frame shorter than header and tag")
	ErrVersion  = errors.New("cluster: unsupported frame version")
	ErrType     = errors.New("cluster: unknown frame type")
	ErrFlags    = errors.New("cluster: reserved flags set")
	ErrLength   = errors.New("cluster: payload length exceeds frame")
	ErrFragment = errors.New("cluster: bad fragment index or count")
	ErrSource   = errors.New("cluster: zero source node id")
	ErrAuth     = errors.New("cluster: authentication failed")
	ErrTooLong  = errors.New("cluster: payload too long for frame")
	ErrBufSmall = errors.New("cluster: buffer too small for frame")
)

// Put encodes h into the first HeaderLen bytes of b.
func (h *Header) Put(b []byte) {
	_ = b[HeaderLen-1]
	b[offVersion] = Version
	b[offType] = byte(h.Type)
	b[offChannel] = h.Channel
	b[offFlags] = 0
	binary.BigEndian.PutUint32(b[offSrc:], uint32(h.Src))
	binary.BigEndian.PutUint32(b[offDst:], uint32(h.Dst))
	binary.BigEndian.PutUint64(b[offCounter:], h.Counter)
	binary.BigEndian.PutUint32(b[offSeq:], h.Seq)
	binary.BigEndian.PutUint32(b[offAck:], h.Ack)
	binary.BigEndian.PutUint64(b[offSACK:], h.SACK)
	binary.BigEndian.PutUint16(b[offFragIndex:], h.FragIndex)
	binary.BigEndian.PutUint16(b[offFragCount:], h.FragCount)
	binary.BigEndian.PutUint16(b[offLen:], h.PayloadLen)
	binary.BigEndian.PutUint16(b[offWindow:], h.Window)
}

// ParseHeader decodes and validates the cluster header at the start of b
// (the bytes after the Ethernet header). It checks that the payload and tag
// fit in b; it does not authenticate.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < Overhead {
		return h, ErrShort
	}
	if b[offVersion] != Version {
		return h, ErrVersion
	}
	if b[offFlags] != 0 {
		return h, ErrFlags
	}
	h.Type = FrameType(b[offType])
	h.Channel = b[offChannel]
	h.Src = NodeID(binary.BigEndian.Uint32(b[offSrc:]))
	h.Dst = NodeID(binary.BigEndian.Uint32(b[offDst:]))
	h.Counter = binary.BigEndian.Uint64(b[offCounter:])
	h.Seq = binary.BigEndian.Uint32(b[offSeq:])
	h.Ack = binary.BigEndian.Uint32(b[offAck:])
	h.SACK = binary.BigEndian.Uint64(b[offSACK:])
	h.FragIndex = binary.BigEndian.Uint16(b[offFragIndex:])
	h.FragCount = binary.BigEndian.Uint16(b[offFragCount:])
	h.PayloadLen = binary.BigEndian.Uint16(b[offLen:])
	h.Window = binary.BigEndian.Uint16(b[offWindow:])
	if h.Src == 0 {
		return h, ErrSource
	}
	if int(h.PayloadLen) > len(b)-Overhead {
		return h, ErrLength
	}
	switch h.Type {
	case TypeData:
		if h.FragCount == 0 || h.FragCount > MaxFragments || h.FragIndex >= h.FragCount {
			return h, ErrFragment
		}
	case TypeAck, TypeHello, TypeDatagram:
		if h.FragCount != 0 || h.FragIndex != 0 {
			return h, ErrFragment
		}
		if h.Type == TypeAck && h.PayloadLen != 0 {
			return h, ErrLength
		}
	default:
		return h, ErrType
	}
	return h, nil
}

// FrameLen returns the length of a cluster frame (without Ethernet header)
// carrying n payload bytes.
func FrameLen(n int) int { return HeaderLen + n + TagLen }
