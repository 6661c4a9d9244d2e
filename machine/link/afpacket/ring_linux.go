//go:build linux

package afpacket

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/big-iron/big-iron/machine/link"
)

// The receive ring (packet(7), "Packet MMAP", and
// Documentation/networking/packet_mmap.rst): the kernel writes each frame
// into a slot of a ring shared with the process and flips the slot's
// status word, as a NIC writes a descriptor ring, so that polling for a
// frame is a load from memory, not a system call.
const (
	solPacketRxRing  = 5  // PACKET_RX_RING (linux/if_packet.h)
	solPacketVersion = 10 // PACKET_VERSION
	tpacketV2        = 1  // TPACKET_V2

	// tp_status bits.
	tpStatusKernel = 0      // the slot belongs to the kernel
	tpStatusUser   = 1 << 0 // TP_STATUS_USER: a frame for the process

	// struct tpacket2_hdr: tp_status at 0, tp_len at 4, tp_snaplen at
	// 8, tp_mac at 12; 32 bytes, followed by struct sockaddr_ll, whose
	// sll_pkttype is at offset 10.
	tp2Len      = 4
	tp2Snaplen  = 8
	tp2Mac      = 12
	tp2HdrLen   = 32
	tp2Pkttype  = tp2HdrLen + 10
	tp2MinFrame = 80 // the data's offset with a 14-byte header is 66
)

// ringSlots is how many frames the ring holds: a burst of a window of
// pages (cluster.Window frames of a few pages each) many times over.
const ringSlots = 256

// ring is the mapped receive ring. Slots are taken in order; the one
// consumer at a time holds the Link's pollMu.
type ring struct {
	mem      []byte
	slotSize int
	next     int // the next slot to look at
}

// slotSize is the ring slot that holds a frame of HeaderLen+mtu bytes
// after the headers: a power of two, as the slots must tile the ring's
// blocks.
func slotSize(mtu int) int {
	n := 1 << 11
	for n < tp2MinFrame+link.HeaderLen+mtu {
		n <<= 1
	}
	return n
}

// newRing sets socket fd to TPACKET_V2 with a receive ring for frames of
// up to mtu payload bytes, and maps it.
func newRing(fd, mtu int) (*ring, error) {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_PACKET, solPacketVersion, tpacketV2); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION: %w", err)
	}
	slot := slotSize(mtu)
	block := max(slot, syscall.Getpagesize())
	req := struct{ blockSize, blockNr, frameSize, frameNr uint32 }{
		uint32(block), uint32(ringSlots * slot / block), uint32(slot), ringSlots,
	}
	if _, _, e := syscall.Syscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.SOL_PACKET, solPacketRxRing,
		uintptr(unsafe.Pointer(&req)), unsafe.Sizeof(req), 0); e != 0 {
		return nil, fmt.Errorf("PACKET_RX_RING of %d slots of %d bytes: %w", ringSlots, slot, e)
	}
	mem, err := syscall.Mmap(fd, 0, ringSlots*slot, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the receive ring: %w", err)
	}
	return &ring{mem: mem, slotSize: slot}, nil
}

// status is the status word of slot s.
func (r *ring) status(s []byte) *uint32 { return (*uint32)(unsafe.Pointer(&s[0])) }

// ready reports whether the next slot holds a frame.
func (r *ring) ready() bool {
	s := r.mem[r.next*r.slotSize:]
	return atomic.LoadUint32(r.status(s))&tpStatusUser != 0
}

// take returns the frame in the next slot, if it holds one, and whether
// it was one this host sent (seen where PACKET_IGNORE_OUTGOING is
// missing) or cut short; the caller hands the slot back with release
// once it no longer uses the frame.
func (r *ring) take() (frame []byte, skip, ok bool) {
	s := r.mem[r.next*r.slotSize : (r.next+1)*r.slotSize]
	if atomic.LoadUint32(r.status(s))&tpStatusUser == 0 {
		return nil, false, false
	}
	n := int(*(*uint32)(unsafe.Pointer(&s[tp2Len])))
	snap := int(*(*uint32)(unsafe.Pointer(&s[tp2Snaplen])))
	off := int(*(*uint16)(unsafe.Pointer(&s[tp2Mac])))
	if snap != n || snap < link.HeaderLen || off+snap > len(s) || s[tp2Pkttype] == syscall.PACKET_OUTGOING {
		return nil, true, true
	}
	return s[off : off+snap], false, true
}

// release hands the slot take returned back to the kernel.
func (r *ring) release() {
	s := r.mem[r.next*r.slotSize:]
	atomic.StoreUint32(r.status(s), tpStatusKernel)
	r.next = (r.next + 1) % ringSlots
}

// unmap unmaps the ring; the socket must be closed and no one polling.
func (r *ring) unmap() error { return syscall.Munmap(r.mem) }
