// Package link defines the smallest interface the hyperkernel needs from a raw
// Ethernet port, plus helpers for the Ethernet II header.
//
// The interface is shaped so that a NIC driver with a DMA receive ring can
// implement it without allocating per frame: received frames are handed to a
// callback as a slice that is valid only for the duration of the call (the
// driver recycles the descriptor afterwards), and Transmit copies the frame
// into the transmit ring before returning.
package link

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EtherType is the 16-bit protocol identifier of an Ethernet II frame
// (IEEE Std 802.3-2018, 3.2.6 "Length/Type field").
type EtherType uint16

const (
	// EtherTypeCluster is the EtherType of big-iron cluster transport frames:
	// "Local Experimental EtherType 1" reserved by IEEE Std 802-2014, 9.2.4,
	// for use in private networks without registration.
	EtherTypeCluster EtherType = 0x88B5
	// EtherTypeIPv4 is Internet Protocol version 4 (RFC 894).
	EtherTypeIPv4 EtherType = 0x0800
	// EtherTypeARP is the Address Resolution Protocol (RFC 826).
	EtherTypeARP EtherType = 0x0806
	// EtherTypeIPv6 is Internet Protocol version 6 (RFC 2464).
	EtherTypeIPv6 EtherType = 0x86DD
)

// Ethernet II header layout (IEEE Std 802.3-2018, 3.1.1 "Packet format";
// the preamble, SFD and FCS are handled by the MAC and never seen here).
const (
	// HeaderLen is the length of the Ethernet II header: destination MAC,
	// source MAC and EtherType.
	HeaderLen = 14
	// offDst is the offset of the destination address.
	offDst = 0
	// offSrc is the offset of the source address.
	offSrc = 6
	// offType is the offset of the EtherType.
	offType = 12
	// MinFrameLen is the minimum frame length without FCS (IEEE Std
	// 802.3-2018, 4.4.2 "minFrameSize" 64 octets less the 4-octet FCS).
	MinFrameLen = 60
	// DefaultMTU is the standard Ethernet payload size.
	DefaultMTU = 1500
	// JumboMTU is the conventional jumbo-frame payload size.
	JumboMTU = 9000
)

// MAC is a 48-bit IEEE 802 MAC address.
type MAC [6]byte

// Broadcast is the all-ones broadcast address.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsBroadcast reports whether m is the broadcast address.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsMulticast reports whether m is a group address (I/G bit set; IEEE Std
// 802-2014, 8.2 "Universal addresses and protocol identifiers").
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// String formats m as six colon-separated hex octets.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Receiver is called by a Link for every received frame. The frame starts
// with the Ethernet header and has no FCS. It is valid only until Receiver
// returns: a receiver that needs the bytes later must copy them. The receiver
// may modify the bytes in place (to decrypt them, for example); the link
// reuses the buffer afterwards.
type Receiver func(frame []byte)

// Link is a raw Ethernet port.
//
// Implementations must make Transmit safe to call from the Receiver callback
// (a protocol answers a frame while handling it).
type Link interface {
	// Transmit sends one frame, starting with the Ethernet header, without
	// FCS. The link does not keep frame after Transmit returns. Frames
	// longer than HeaderLen+MTU() are rejected with ErrFrameTooLong; short
	// frames are padded by the link or the hardware.
	Transmit(frame []byte) error
	// SetReceiver installs the callback for received frames, replacing any
	// previous one. A nil Receiver drops frames.
	SetReceiver(r Receiver)
	// MAC returns the port's own address.
	MAC() MAC
	// MTU returns the largest payload (bytes after the Ethernet header)
	// the port can send and receive.
	MTU() int
	// Up reports whether the port has carrier and is enabled.
	Up() bool
}

// Errors returned by Link implementations.
var (
	// ErrFrameTooLong is returned by Transmit for frames over the MTU.
	ErrFrameTooLong = errors.New("link: frame longer than MTU")
	// ErrFrameTooShort is returned for frames without a full header.
	ErrFrameTooShort = errors.New("link: frame shorter than Ethernet header")
	// ErrDown is returned by Transmit when the port is down.
	ErrDown = errors.New("link: port down")
)

// CheckFrame returns the error a Transmit of frame on a link of the given
// MTU fails with before it sends anything: ErrFrameTooShort for a frame
// without a full header, ErrFrameTooLong for one over HeaderLen+mtu; nil
// otherwise.
func CheckFrame(frame []byte, mtu int) error {
	if len(frame) < HeaderLen {
		return ErrFrameTooShort
	}
	if len(frame) > HeaderLen+mtu {
		return ErrFrameTooLong
	}
	return nil
}

// PutHeader writes an Ethernet II header into b, which must be at least
// HeaderLen bytes long.
func PutHeader(b []byte, dst, src MAC, t EtherType) {
	copy(b[offDst:offDst+6], dst[:])
	copy(b[offSrc:offSrc+6], src[:])
	binary.BigEndian.PutUint16(b[offType:], uint16(t))
}

// Header is a decoded Ethernet II header.
type Header struct {
	Dst, Src MAC
	Type     EtherType
}

// ParseHeader decodes the Ethernet II header at the start of frame.
func ParseHeader(frame []byte) (Header, error) {
	if len(frame) < HeaderLen {
		return Header{}, ErrFrameTooShort
	}
	var h Header
	copy(h.Dst[:], frame[offDst:offDst+6])
	copy(h.Src[:], frame[offSrc:offSrc+6])
	h.Type = EtherType(binary.BigEndian.Uint16(frame[offType:]))
	return h, nil
}
