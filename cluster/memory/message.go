package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// Kind is the type of a coherence message.
type Kind uint8

// Message kinds. "Home" is the node holding the page's directory entry.
const (
	KindReadReq    Kind = 1  // requester -> home: want a Shared copy
	KindWriteReq   Kind = 2  // requester -> home: want Modified (FlagHaveCopy if it holds a Shared copy)
	KindReadData   Kind = 3  // home -> requester: data + version, grants Shared
	KindWriteGrant Kind = 4  // home -> requester: grants Modified; carries data unless the requester's copy is current
	KindInv        Kind = 5  // home -> sharer: drop your copy, answer KindInvAck
	KindInvAck     Kind = 6  // sharer -> home
	KindFetch      Kind = 7  // home -> owner: downgrade Modified to Shared, send data
	KindFetchInv   Kind = 8  // home -> owner: drop Modified, send data
	KindFetchReply Kind = 9  // owner -> home: data if still owned (FlagHasData), FlagKeptShared after KindFetch
	KindWriteback  Kind = 10 // owner -> home: eviction of a Modified page, with data
	kindLimit      Kind = 11
)

var kindNames = [kindLimit]string{"?", "ReadReq", "WriteReq", "ReadData", "WriteGrant", "Inv", "InvAck", "Fetch", "FetchInv", "FetchReply", "Writeback"}

// String returns the kind's name.
func (k Kind) String() string {
	if k >= kindLimit {
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Message flags.
const (
	FlagHasData    uint8 = 1 << 0 // the message carries the page's 4096 bytes
	FlagHaveCopy   uint8 = 1 << 1 // KindWriteReq: requester holds a Shared copy of Version
	FlagKeptShared uint8 = 1 << 2 // KindFetchReply: the old owner kept a Shared copy
	FlagCanHome    uint8 = 1 << 4 // KindWriteReq: the requester has room to take the page's home
	FlagHome       uint8 = 1 << 5 // KindWriteGrant: the page's home (its memory and directory entry) moves to the requester
	flagsKnown           = FlagHasData | FlagHaveCopy | FlagKeptShared | FlagCanHome | FlagHome

	// flagPacked is a wire flag, never in a decoded Message: the page's
	// data is zero-run packed (see packPage).
	flagPacked uint8 = 1 << 3
)

// Message is one coherence protocol message. Data points at page contents
// when FlagHasData is set; messages produced by an [Engine] borrow the
// engine's frames and are valid until the next call on that engine.
type Message struct {
	Kind      Kind
	Flags     uint8
	Src       NodeID // sender
	Dst       NodeID // receiver
	Requester NodeID // node on whose behalf a transaction runs
	GPA       uint64 // page-aligned guest physical address
	Version   uint64 // page version (incremented on every grant of Modified)
	Data      *Page
}

// Wire format (little endian), MessageHeaderSize bytes followed, when
// FlagHasData is set, by the page: its PageSize bytes, or with flag bit 3
// (packed) runs that skip its zero words. Packed, the data is a sequence
// of runs, each a count of zero 8-byte words (2 bytes), a count of
// literal words (2 bytes) and the literal words, covering the page's 512
// words exactly; a page goes packed when that is shorter.
//
//	0  magic (MessageMagic)
//	1  kind
//	2  src
//	3  dst
//	4  requester
//	5  flags
//	6  reserved, zero (2 bytes)
//	8  gpa (8 bytes)
//	16 version (8 bytes)
const (
	// MessageMagic is the first byte of every coherence message; it lets a
	// transport multiplex protocols on one channel.
	MessageMagic = 0xB1
	// MessageHeaderSize is the encoded size of a message without data.
	MessageHeaderSize = 24
	// MaxMessageSize is the encoded size of a message with data.
	MaxMessageSize = MessageHeaderSize + PageSize
)

// Decoding errors.
var (
	ErrShortMessage = errors.New("memory: message too short")
	ErrBadMessage   = errors.New("memory: malformed message")
)

// Size returns the largest encoded size of m: with data, a page may
// travel packed and take fewer bytes (MarshalTo returns how many).
func (m *Message) Size() int {
	if m.Flags&FlagHasData == 0 {
		return MessageHeaderSize
	}
	return MaxMessageSize
}

// pageWords is the number of 8-byte words in a page.
const pageWords = PageSize / 8

// words views a page as its 512 little-endian 8-byte words (x86 is
// little endian and takes unaligned loads; frames are page aligned).
func words(p *Page) *[pageWords]uint64 { return (*[pageWords]uint64)(unsafe.Pointer(p)) }

// packPage writes p's packed encoding into b (at least PageSize bytes)
// and returns its length, or 0 if it would not be shorter than the page.
// It reads the page once.
func packPage(p *Page, b []byte) int {
	const limit = PageSize - 1
	ws := words(p)
	o, w := 0, 0
	for w < pageWords {
		z := w
		for z < pageWords && ws[z] == 0 {
			z++
		}
		l := z
		for l < pageWords && ws[l] != 0 {
			l++
		}
		n := 4 + 8*(l-z)
		if o+n > limit {
			return 0
		}
		binary.LittleEndian.PutUint16(b[o:], uint16(z-w))
		binary.LittleEndian.PutUint16(b[o+2:], uint16(l-z))
		copy(b[o+4:o+n], p[8*z:8*l])
		o += n
		w = l
	}
	return o
}

// unpackPage decodes packed data b into p.
func unpackPage(b []byte, p *Page) error {
	w := 0
	for w < pageWords {
		if len(b) < 4 {
			return fmt.Errorf("%w: packed page ends after %d of %d words", ErrBadMessage, w, pageWords)
		}
		z, l := int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint16(b[2:]))
		b = b[4:]
		if z+l == 0 || z+l > pageWords-w || len(b) < 8*l {
			return fmt.Errorf("%w: packed page run of %d zero and %d literal words at word %d", ErrBadMessage, z, l, w)
		}
		clear(words(p)[w : w+z])
		copy(p[8*(w+z):8*(w+z+l)], b[:8*l])
		b = b[8*l:]
		w += z + l
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after a packed page", ErrBadMessage, len(b))
	}
	return nil
}

// MarshalTo encodes m into b and returns the number of bytes written. b must
// hold at least m.Size() bytes.
func (m *Message) MarshalTo(b []byte) (int, error) {
	n := m.Size()
	if len(b) < n {
		return 0, fmt.Errorf("memory: marshal %v: buffer of %d bytes, need %d", m.Kind, len(b), n)
	}
	if m.Flags&FlagHasData != 0 && m.Data == nil {
		return 0, fmt.Errorf("memory: marshal %v: FlagHasData without data", m.Kind)
	}
	if m.Flags&^flagsKnown != 0 {
		return 0, fmt.Errorf("memory: marshal %v: unknown flags %#x", m.Kind, m.Flags)
	}
	b[0] = MessageMagic
	b[1] = byte(m.Kind)
	b[2] = byte(m.Src)
	b[3] = byte(m.Dst)
	b[4] = byte(m.Requester)
	b[5] = m.Flags
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint64(b[8:], m.GPA)
	binary.LittleEndian.PutUint64(b[16:], m.Version)
	if m.Flags&FlagHasData == 0 {
		return n, nil
	}
	if k := packPage(m.Data, b[MessageHeaderSize:]); k > 0 {
		b[5] |= flagPacked
		return MessageHeaderSize + k, nil
	}
	copy(b[MessageHeaderSize:n], m.Data[:])
	return n, nil
}

// Unmarshal decodes b into m. Page data, if present, is copied into buf,
// which then becomes m.Data; buf may be nil only for messages without data.
// Unmarshal never retains b.
func (m *Message) Unmarshal(b []byte, buf *Page) error {
	if len(b) < MessageHeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrShortMessage, len(b))
	}
	if b[0] != MessageMagic {
		return fmt.Errorf("%w: magic %#x", ErrBadMessage, b[0])
	}
	k := Kind(b[1])
	if k == 0 || k >= kindLimit {
		return fmt.Errorf("%w: kind %d", ErrBadMessage, b[1])
	}
	src, dst, req := NodeID(b[2]), NodeID(b[3]), NodeID(b[4])
	if src >= MaxNodes || dst >= MaxNodes || req >= MaxNodes {
		return fmt.Errorf("%w: node out of range (src %d dst %d requester %d)", ErrBadMessage, src, dst, req)
	}
	flags := b[5]
	packed := flags&flagPacked != 0
	flags &^= flagPacked
	if flags&^flagsKnown != 0 || b[6] != 0 || b[7] != 0 || packed && flags&FlagHasData == 0 {
		return fmt.Errorf("%w: unknown flags %#x or reserved bytes set", ErrBadMessage, b[5])
	}
	gpa := binary.LittleEndian.Uint64(b[8:])
	if gpa&(PageSize-1) != 0 {
		return fmt.Errorf("%w: gpa %#x not page aligned", ErrBadMessage, gpa)
	}
	want := MessageHeaderSize
	if flags&FlagHasData != 0 {
		want = MaxMessageSize
	}
	if packed && (len(b) <= MessageHeaderSize || len(b) >= MaxMessageSize) || !packed && len(b) != want {
		return fmt.Errorf("%w: %v message of %d bytes, want %d", ErrBadMessage, k, len(b), want)
	}
	m.Kind, m.Flags, m.Src, m.Dst, m.Requester = k, flags, src, dst, req
	m.GPA = gpa
	m.Version = binary.LittleEndian.Uint64(b[16:])
	m.Data = nil
	if flags&FlagHasData != 0 {
		if buf == nil {
			return fmt.Errorf("memory: unmarshal %v: no buffer for page data", k)
		}
		if packed {
			if err := unpackPage(b[MessageHeaderSize:], buf); err != nil {
				return fmt.Errorf("memory: unmarshal %v: %w", k, err)
			}
		} else {
			copy(buf[:], b[MessageHeaderSize:])
		}
		m.Data = buf
	}
	return nil
}

// String formats the message for traces and errors.
func (m *Message) String() string {
	return fmt.Sprintf("%v %d->%d req=%d gpa=%#x v=%d flags=%#x", m.Kind, m.Src, m.Dst, m.Requester, m.GPA, m.Version, m.Flags)
}
