//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/big-iron/big-iron/machine/link"
)

// etherFloor is the EtherType of the floor's frames: "Local Experimental
// EtherType 2" (IEEE Std 802-2014, 9.2.4), so that they never reach the
// cluster transport's sockets.
const etherFloor = 0x88B6

// rawSocket is a plain AF_PACKET socket (packet(7)) bound to one
// interface for frames of etherFloor, not seeing the frames it sends.
type rawSocket struct {
	fd int
}

// openRaw opens a rawSocket on interface name. Reads time out after
// timeout, so that a lost frame or a stop request is noticed.
func openRaw(name string, timeout time.Duration) (*rawSocket, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	proto := uint16(etherFloor>>8 | etherFloor<<8&0xff00) // network byte order
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("floor: socket: %w", err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	steps := []func() error{
		func() error { return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1) },
		func() error { return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) },
		func() error { return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("floor: set up socket on %s: %w", name, err)
		}
	}
	return &rawSocket{fd: fd}, nil
}

// close closes the socket.
func (s *rawSocket) close() error { return unix.Close(s.fd) }

// A floor frame's payload starts with floorHeaderLen bytes: the
// exchange's number (8 bytes), the frame's index in its direction and the
// number of frames in it (2 bytes each), and, in the measuring side's
// frames, the payload bytes the serving side sends back once the last of
// them arrived (4 bytes); all little-endian. The rest is padding.
const floorHeaderLen = 16

// floorMin is the smallest floor frame's payload: 64 bytes, the smallest
// size measured, and room for the header.
const floorMin = 64

// frameSizes splits n payload bytes into the frames of a link with MTU
// mtu: full frames, then the rest, none smaller than floorMin.
func frameSizes(n, mtu int) []int {
	var sizes []int
	for ; n > mtu; n -= mtu {
		sizes = append(sizes, mtu)
	}
	return append(sizes, max(n, floorMin))
}

// floorFrames builds the frames of EtherType etype carrying n payload
// bytes from src to dst at mtu, their headers filled but for the
// exchange's number; back is what each asks the other side to send back.
func floorFrames(etype link.EtherType, dst, src link.MAC, n, back, mtu int) [][]byte {
	sizes := frameSizes(n, mtu)
	frames := make([][]byte, len(sizes))
	for i, size := range sizes {
		f := make([]byte, link.HeaderLen+size)
		link.PutHeader(f, dst, src, etype)
		p := f[link.HeaderLen:]
		binary.LittleEndian.PutUint16(p[8:], uint16(i))
		binary.LittleEndian.PutUint16(p[10:], uint16(len(sizes)))
		binary.LittleEndian.PutUint32(p[12:], uint32(back))
		frames[i] = f
	}
	return frames
}

// serveFloor answers the measuring side's exchanges until stop is set:
// when the last frame of one arrives, it sends back the payload bytes that
// frame asks for, in frames numbered as the exchange.
func serveFloor(s *rawSocket, mtu int, stop *atomic.Bool) error {
	buf := make([]byte, link.HeaderLen+mtu)
	answers := newFloorAnswers(etherFloor, mtu)
	for !stop.Load() {
		n, err := unix.Read(s.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("floor: read: %w", err)
		}
		for _, f := range answers.to(buf[:n]) {
			if _, err := unix.Write(s.fd, f); err != nil {
				return fmt.Errorf("floor: write: %w", err)
			}
		}
	}
	return nil
}

// floorAnswers are the serving side's answers of every size asked so far,
// built once: the serving side of a floor does as little as the
// measuring side.
type floorAnswers struct {
	etype link.EtherType
	mtu   int
	m     map[int][][]byte
}

func newFloorAnswers(etype link.EtherType, mtu int) *floorAnswers {
	return &floorAnswers{etype: etype, mtu: mtu, m: map[int][][]byte{}}
}

// to returns the frames that answer frame f, numbered as its exchange,
// or none if f does not end an exchange.
func (a *floorAnswers) to(f []byte) [][]byte {
	if len(f) < link.HeaderLen+floorHeaderLen {
		return nil
	}
	p := f[link.HeaderLen:]
	i, k := binary.LittleEndian.Uint16(p[8:]), binary.LittleEndian.Uint16(p[10:])
	back := int(binary.LittleEndian.Uint32(p[12:]))
	if i+1 != k || back == 0 {
		return nil
	}
	frames, ok := a.m[back]
	if !ok {
		var dst, src link.MAC
		copy(dst[:], f[6:12])
		copy(src[:], f[0:6])
		frames = floorFrames(a.etype, dst, src, back, 0, a.mtu)
		a.m[back] = frames
	}
	for _, fr := range frames {
		copy(fr[link.HeaderLen:], p[:8])
	}
	return frames
}

// floorExchange is the measuring side of the floor: frames carrying out
// payload bytes sent, frames carrying back bytes received, written as
// plainly as a program that only moves frames can be.
type floorExchange struct {
	s      *rawSocket
	frames [][]byte
	nBack  int // frames that come back
	buf    []byte
	seq    uint64
}

// newFloorExchange prepares exchanges of out payload bytes from src to dst
// and back bytes in return at mtu. An echo of one frame of size bytes is
// newFloorExchange(s, dst, src, size, size, mtu).
func newFloorExchange(s *rawSocket, dst, src link.MAC, out, back, mtu int) *floorExchange {
	return &floorExchange{s: s, frames: floorFrames(etherFloor, dst, src, out, back, mtu),
		nBack: len(frameSizes(back, mtu)), buf: make([]byte, link.HeaderLen+mtu)}
}

// run sends the exchange's frames, numbered, and waits for every frame of
// the answer; frames of earlier, timed-out exchanges are skipped.
func (f *floorExchange) run() error {
	f.seq++
	for _, fr := range f.frames {
		binary.LittleEndian.PutUint64(fr[link.HeaderLen:], f.seq)
		if _, err := unix.Write(f.s.fd, fr); err != nil {
			return fmt.Errorf("floor: write: %w", err)
		}
	}
	for got := 0; got < f.nBack; {
		n, err := unix.Read(f.s.fd, f.buf)
		if errors.Is(err, unix.EINTR) {
			// A read with a timeout is not restarted after a signal
			// (signal(7)), and the runtime preempts with signals.
			continue
		}
		if err != nil {
			return fmt.Errorf("floor: exchange %d: %w", f.seq, err)
		}
		if n >= link.HeaderLen+floorHeaderLen && binary.LittleEndian.Uint64(f.buf[link.HeaderLen:]) == f.seq {
			got++
		}
	}
	return nil
}
