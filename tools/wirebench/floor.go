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

// serveFloor echoes every frame back to its sender, addresses swapped,
// until stop is set.
func serveFloor(s *rawSocket, mtu int, stop *atomic.Bool) error {
	buf := make([]byte, link.HeaderLen+mtu)
	for !stop.Load() {
		n, err := unix.Read(s.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("floor: read: %w", err)
		}
		if n < link.HeaderLen {
			continue
		}
		var dst [6]byte
		copy(dst[:], buf[0:6])
		copy(buf[0:6], buf[6:12])
		copy(buf[6:12], dst[:])
		if _, err := unix.Write(s.fd, buf[:n]); err != nil {
			return fmt.Errorf("floor: write: %w", err)
		}
	}
	return nil
}

// floorEcho is the measuring side of the floor: one frame out, the same
// frame back.
type floorEcho struct {
	s     *rawSocket
	frame []byte
	buf   []byte
	seq   uint64
}

// newFloorEcho prepares echoes of frames with size bytes of payload from
// src to dst.
func newFloorEcho(s *rawSocket, dst, src link.MAC, size int) *floorEcho {
	f := &floorEcho{s: s, frame: make([]byte, link.HeaderLen+size), buf: make([]byte, link.HeaderLen+size)}
	link.PutHeader(f.frame, dst, src, etherFloor)
	return f
}

// echo sends the frame, numbered, and waits for it to come back; frames
// of earlier, timed-out echoes are skipped.
func (f *floorEcho) echo() error {
	f.seq++
	binary.LittleEndian.PutUint64(f.frame[link.HeaderLen:], f.seq)
	if _, err := unix.Write(f.s.fd, f.frame); err != nil {
		return fmt.Errorf("floor: write: %w", err)
	}
	for {
		n, err := unix.Read(f.s.fd, f.buf)
		if errors.Is(err, unix.EINTR) {
			// A read with a timeout is not restarted after a signal
			// (signal(7)), and the runtime preempts with signals.
			continue
		}
		if err != nil {
			return fmt.Errorf("floor: echo %d: %w", f.seq, err)
		}
		if n == len(f.frame) && binary.LittleEndian.Uint64(f.buf[link.HeaderLen:]) == f.seq {
			return nil
		}
	}
}
