package exits

import (
	"fmt"
	"sync/atomic"
)

// PortDevice emulates a device's I/O ports. size is 1, 2 or 4 bytes; In
// returns the value in the low size bytes. port is the port the guest
// accessed; the device gets the accesses for every port it registered.
// Handlers may be called concurrently from several vCPUs.
type PortDevice interface {
	In(port uint16, size uint8) uint32
	Out(port uint16, size uint8, value uint32)
}

type portRange struct {
	base, last uint16
	dev        PortDevice
	name       string
}

// IOBus maps the 64 Ki I/O ports to devices. Lookup is one table index
// (O(1), 128 KiB of table). Ports no device claims read as all ones and
// ignore writes, as on a PC bus with nothing decoding them; such accesses
// are counted. Register every device before the vCPUs start: the bus is
// read without locks afterwards.
type IOBus struct {
	index         [1 << 16]uint16 // 0: none; n: ranges[n-1]
	ranges        []portRange
	unknownReads  atomic.Uint64
	unknownWrites atomic.Uint64
	badSizeAccess atomic.Uint64
}

// NewIOBus returns an empty bus.
func NewIOBus() *IOBus { return &IOBus{} }

// Register gives ports base..base+count-1 to dev. Overlaps with a range
// already registered are refused.
func (b *IOBus) Register(base, count uint16, name string, dev PortDevice) error {
	if count == 0 {
		return fmt.Errorf("io bus: %s: empty port range at %#x", name, base)
	}
	if dev == nil {
		return fmt.Errorf("io bus: %s: nil device", name)
	}
	last := uint32(base) + uint32(count) - 1
	if last > 0xFFFF {
		return fmt.Errorf("io bus: %s: ports %#x+%d run past 0xFFFF", name, base, count)
	}
	for p := uint32(base); p <= last; p++ {
		if i := b.index[p]; i != 0 {
			r := b.ranges[i-1]
			return fmt.Errorf("io bus: %s: port %#x already belongs to %s (%#x-%#x)", name, p, r.name, r.base, r.last)
		}
	}
	if len(b.ranges) >= 0xFFFF {
		return fmt.Errorf("io bus: %s: too many ranges", name)
	}
	b.ranges = append(b.ranges, portRange{base: base, last: uint16(last), dev: dev, name: name})
	n := uint16(len(b.ranges))
	for p := uint32(base); p <= last; p++ {
		b.index[p] = n
	}
	return nil
}

func sizeMask(size uint8) uint32 {
	switch size {
	case 1:
		return 0xFF
	case 2:
		return 0xFFFF
	}
	return 0xFFFFFFFF
}

func validSize(size uint8) bool { return size == 1 || size == 2 || size == 4 }

// In performs a guest IN of size bytes from port. A multi-byte access goes
// to the device owning its first port.
func (b *IOBus) In(port uint16, size uint8) uint32 {
	if !validSize(size) {
		b.badSizeAccess.Add(1)
		return 0xFFFFFFFF
	}
	i := b.index[port]
	if i == 0 {
		b.unknownReads.Add(1)
		return sizeMask(size)
	}
	return b.ranges[i-1].dev.In(port, size) & sizeMask(size)
}

// Out performs a guest OUT of the low size bytes of value to port.
func (b *IOBus) Out(port uint16, size uint8, value uint32) {
	if !validSize(size) {
		b.badSizeAccess.Add(1)
		return
	}
	i := b.index[port]
	if i == 0 {
		b.unknownWrites.Add(1)
		return
	}
	b.ranges[i-1].dev.Out(port, size, value&sizeMask(size))
}

// Device returns the name of the device owning port, or "".
func (b *IOBus) Device(port uint16) string {
	if i := b.index[port]; i != 0 {
		return b.ranges[i-1].name
	}
	return ""
}

// IOBusStats counts accesses no device handled.
type IOBusStats struct {
	UnknownReads, UnknownWrites, BadSize uint64
}

// Stats returns the counters.
func (b *IOBus) Stats() IOBusStats {
	return IOBusStats{UnknownReads: b.unknownReads.Load(), UnknownWrites: b.unknownWrites.Load(), BadSize: b.badSizeAccess.Load()}
}
