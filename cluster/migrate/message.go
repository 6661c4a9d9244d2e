package migrate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/cluster/memory"
)

// Kind is the type of a migration message.
type Kind uint8

// Message kinds.
const (
	KindMigrate  Kind = 1 // source -> destination: a frozen vCPU
	KindDeliver  Kind = 2 // any -> believed host: raise an interrupt, forwarded if moved
	KindLocation Kind = 3 // host -> interrupt origin: the vCPU is at Node since Epoch
	kindLimit    Kind = 4
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindMigrate:
		return "Migrate"
	case KindDeliver:
		return "Deliver"
	case KindLocation:
		return "Location"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is one migration protocol message.
type Message struct {
	Kind   Kind
	Src    memory.NodeID
	Dst    memory.NodeID
	Origin memory.NodeID // KindDeliver: node that raised the interrupt
	Node   memory.NodeID // KindLocation: the host
	Hops   uint8         // KindDeliver: times forwarded
	Vector uint8         // KindDeliver: the interrupt's vector, 0 for an NMI
	// NMIs is, for KindDeliver, 1 if the message carries an NMI instead
	// of an interrupt; for KindMigrate, the NMIs pending for the vCPU
	// (at most MaxNMIs).
	NMIs  uint8
	VCPU  VCPUID
	Epoch uint32
	// KindMigrate only.
	IRR           [4]uint64
	TimerDeadline uint64
	TimerVector   uint8
	State         []byte
}

// Wire format, little endian. Header (MessageHeaderSize bytes):
//
//	0  magic (MessageMagic)
//	1  kind
//	2  src
//	3  dst
//	4  origin
//	5  node
//	6  hops
//	7  vector
//	8  vcpu (2 bytes)
//	10 timer vector
//	11 NMIs
//	12 epoch (4 bytes)
//
// KindMigrate continues with the IRR (32 bytes), the timer deadline (8
// bytes), the state length (4 bytes) and the state.
const (
	// MessageMagic is the first byte of every migration message.
	MessageMagic = 0xB2
	// MessageHeaderSize is the size of the common header.
	MessageHeaderSize = 16
	migrateFixed      = 32 + 8 + 4
)

// ErrBadMessage reports undecodable bytes.
var ErrBadMessage = errors.New("migrate: malformed message")

// Size returns the encoded size of msg.
func (msg *Message) Size() int {
	if msg.Kind == KindMigrate {
		return MessageHeaderSize + migrateFixed + len(msg.State)
	}
	return MessageHeaderSize
}

// MarshalTo encodes msg into b, returning the bytes written.
func (msg *Message) MarshalTo(b []byte) (int, error) {
	n := msg.Size()
	if len(b) < n {
		return 0, fmt.Errorf("migrate: marshal %v: buffer of %d bytes, need %d", msg.Kind, len(b), n)
	}
	if len(msg.State) > MaxStateSize {
		return 0, fmt.Errorf("migrate: marshal: state of %d bytes exceeds %d", len(msg.State), MaxStateSize)
	}
	b[0], b[1], b[2], b[3] = MessageMagic, byte(msg.Kind), byte(msg.Src), byte(msg.Dst)
	b[4], b[5], b[6], b[7] = byte(msg.Origin), byte(msg.Node), msg.Hops, msg.Vector
	binary.LittleEndian.PutUint16(b[8:], uint16(msg.VCPU))
	b[10], b[11] = msg.TimerVector, msg.NMIs
	binary.LittleEndian.PutUint32(b[12:], msg.Epoch)
	if msg.Kind == KindMigrate {
		p := b[MessageHeaderSize:]
		for i, w := range msg.IRR {
			binary.LittleEndian.PutUint64(p[8*i:], w)
		}
		binary.LittleEndian.PutUint64(p[32:], msg.TimerDeadline)
		binary.LittleEndian.PutUint32(p[40:], uint32(len(msg.State)))
		copy(p[migrateFixed:], msg.State)
	}
	return n, nil
}

// Unmarshal decodes b into msg. For KindMigrate, msg.State aliases b: the
// receiver copies it (HandleMessage does) before b is reused.
func (msg *Message) Unmarshal(b []byte) error {
	if len(b) < MessageHeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrBadMessage, len(b))
	}
	if b[0] != MessageMagic {
		return fmt.Errorf("%w: magic %#x", ErrBadMessage, b[0])
	}
	k := Kind(b[1])
	if k == 0 || k >= kindLimit {
		return fmt.Errorf("%w: kind %d", ErrBadMessage, b[1])
	}
	for i := 2; i <= 5; i++ {
		if b[i] >= memory.MaxNodes {
			return fmt.Errorf("%w: node %d out of range", ErrBadMessage, b[i])
		}
	}
	if err := checkNMIs(k, b[7], b[11]); err != nil {
		return err
	}
	*msg = Message{Kind: k, Src: memory.NodeID(b[2]), Dst: memory.NodeID(b[3]), Origin: memory.NodeID(b[4]), Node: memory.NodeID(b[5]), Hops: b[6], Vector: b[7],
		VCPU: VCPUID(binary.LittleEndian.Uint16(b[8:])), TimerVector: b[10], NMIs: b[11], Epoch: binary.LittleEndian.Uint32(b[12:])}
	if k != KindMigrate {
		if len(b) != MessageHeaderSize || msg.TimerVector != 0 {
			return fmt.Errorf("%w: %v message of %d bytes, timer vector %d", ErrBadMessage, k, len(b), msg.TimerVector)
		}
		return nil
	}
	p := b[MessageHeaderSize:]
	if len(p) < migrateFixed {
		return fmt.Errorf("%w: migrate message of %d bytes", ErrBadMessage, len(b))
	}
	for i := range msg.IRR {
		msg.IRR[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	msg.TimerDeadline = binary.LittleEndian.Uint64(p[32:])
	n := binary.LittleEndian.Uint32(p[40:])
	if n > MaxStateSize || int(n) != len(p)-migrateFixed {
		return fmt.Errorf("%w: state length %d in %d bytes", ErrBadMessage, n, len(p)-migrateFixed)
	}
	msg.State = p[migrateFixed:]
	return nil
}

// checkNMIs checks the NMIs byte of a message of kind k whose vector byte
// is vector: a delivery carries one NMI or an interrupt, a migrating vCPU
// at most MaxNMIs, other messages none.
func checkNMIs(k Kind, vector, nmis uint8) error {
	switch {
	case k == KindDeliver && nmis > 1, k == KindDeliver && nmis == 1 && vector != 0:
		return fmt.Errorf("%w: delivery of %d NMIs, vector %d", ErrBadMessage, nmis, vector)
	case k == KindMigrate && nmis > MaxNMIs:
		return fmt.Errorf("%w: migrating vCPU with %d NMIs pending, at most %d", ErrBadMessage, nmis, MaxNMIs)
	case k == KindLocation && nmis != 0:
		return fmt.Errorf("%w: location message with NMIs byte %d", ErrBadMessage, nmis)
	}
	return nil
}

// String formats the message without its state.
func (msg *Message) String() string {
	return fmt.Sprintf("%v %d->%d vcpu=%d epoch=%d origin=%d hops=%d vector=%d nmis=%d state=%dB", msg.Kind, msg.Src, msg.Dst, msg.VCPU, msg.Epoch, msg.Origin, msg.Hops, msg.Vector, msg.NMIs, len(msg.State))
}
