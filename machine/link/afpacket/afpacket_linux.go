//go:build linux

package afpacket

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/machine/link"
)

// pollInterval bounds how long the receive loop blocks before it looks for
// Close (SO_RCVTIMEO).
const pollInterval = 100 * time.Millisecond

// htons converts a 16-bit value to network byte order for the sockaddr
// and socket() protocol argument (packet(7)).
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Link is an AF_PACKET port. Its receive loop runs on its own goroutine
// once Start is called and calls the receiver from there; the receiver must
// do its own locking.
type Link struct {
	fd      int
	ifindex int
	name    string
	mac     link.MAC
	mtu     int
	etype   link.EtherType

	mu      sync.Mutex
	recv    link.Receiver
	started bool
	closed  atomic.Bool
	done    chan struct{}
}

// Open binds a raw socket to interface name for frames of EtherType etype
// (link.EtherTypeCluster for the cluster transport). It needs CAP_NET_RAW.
func Open(name string, etype link.EtherType) (*Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("afpacket: interface %q: %w", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("afpacket: interface %q has no Ethernet address", name)
	}
	proto := htons(uint16(etype))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("afpacket: socket on %q: %w", name, err)
	}
	sa := &syscall.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("afpacket: bind to %q: %w", name, err)
	}
	tv := syscall.NsecToTimeval(pollInterval.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("afpacket: receive timeout on %q: %w", name, err)
	}
	l := &Link{fd: fd, ifindex: ifi.Index, name: name, mtu: ifi.MTU, etype: etype, done: make(chan struct{})}
	copy(l.mac[:], ifi.HardwareAddr)
	return l, nil
}

// Start runs the receive loop on a new goroutine until Close.
func (l *Link) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed.Load() {
		return
	}
	l.started = true
	go l.receiveLoop()
}

// receiveLoop reads frames into one reused buffer and hands them to the
// receiver. Frames this host sent are skipped.
func (l *Link) receiveLoop() {
	defer close(l.done)
	buf := make([]byte, link.HeaderLen+l.mtu)
	for !l.closed.Load() {
		n, from, err := syscall.Recvfrom(l.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			if l.closed.Load() {
				return
			}
			continue
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue
		}
		l.mu.Lock()
		r := l.recv
		l.mu.Unlock()
		if r != nil && n >= link.HeaderLen {
			r(buf[:n])
		}
	}
}

// Close stops the receive loop, waiting for it, and closes the socket.
func (l *Link) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if started {
		<-l.done
	}
	if err := syscall.Close(l.fd); err != nil {
		return fmt.Errorf("afpacket: close %q: %w", l.name, err)
	}
	return nil
}

// Transmit implements link.Link.
func (l *Link) Transmit(frame []byte) error {
	if err := link.CheckFrame(frame, l.mtu); err != nil {
		return err
	}
	if l.closed.Load() {
		return link.ErrDown
	}
	sa := &syscall.SockaddrLinklayer{Protocol: htons(uint16(l.etype)), Ifindex: l.ifindex, Halen: 6}
	copy(sa.Addr[:6], frame[:6])
	if err := syscall.Sendto(l.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("afpacket: send on %q: %w", l.name, err)
	}
	return nil
}

// SetReceiver implements link.Link.
func (l *Link) SetReceiver(r link.Receiver) {
	l.mu.Lock()
	l.recv = r
	l.mu.Unlock()
}

// MAC implements link.Link.
func (l *Link) MAC() link.MAC { return l.mac }

// MTU implements link.Link.
func (l *Link) MTU() int { return l.mtu }

// ifreqFlags is struct ifreq (netdevice(7)) as used by SIOCGIFFLAGS: the
// interface name, then ifr_flags, padded to the union's size.
type ifreqFlags struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// Up implements link.Link: the interface is administratively up and has
// carrier (IFF_UP and IFF_RUNNING, netdevice(7)). The query goes through
// the socket, so it sees the socket's network namespace.
func (l *Link) Up() bool {
	if l.closed.Load() {
		return false
	}
	var req ifreqFlags
	copy(req.name[:len(req.name)-1], l.name)
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(l.fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req)))
	if e != 0 {
		return false
	}
	return req.flags&syscall.IFF_UP != 0 && req.flags&syscall.IFF_RUNNING != 0
}

var _ link.Link = (*Link)(nil)
