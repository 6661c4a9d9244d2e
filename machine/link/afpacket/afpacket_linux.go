//go:build linux

package afpacket

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/big-iron/big-iron/machine/link"
)

// packetIgnoreOutgoing is the SOL_PACKET option PACKET_IGNORE_OUTGOING
// (linux/if_packet.h, Linux 4.20): the socket does not see the frames
// this host sends. The syscall package does not name it.
const packetIgnoreOutgoing = 23

// htons converts a 16-bit value to network byte order for the sockaddr
// and socket() protocol argument (packet(7)).
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Link is an AF_PACKET port. Its receive loop runs on its own goroutine
// once Start is called and calls the receiver from there; the receiver must
// do its own locking.
//
// Frames arrive in a receive ring the kernel shares with the process
// (see ring), as a NIC's descriptor ring: Poll looks at memory, not the
// socket. The socket is non-blocking and registered with the Go
// runtime's network poller (an *os.File), so that the receive goroutine
// waits for a frame without holding a thread in a system call: a
// goroutine the receiver wakes runs at once on the freed processor
// instead of waiting for the runtime to notice the blocked one.
type Link struct {
	f       *os.File
	rc      syscall.RawConn
	ifindex int
	name    string
	mac     link.MAC
	mtu     int
	etype   link.EtherType

	mu      sync.Mutex
	recv    link.Receiver
	started bool
	// pollMu is held by whoever takes frames from the ring: Poll or
	// the receive loop; Close unmaps the ring under it.
	pollMu sync.Mutex
	ring   *ring // nil once closed
	// ready is the receive loop's test for the network poller, made
	// once: a closure made per wait would allocate.
	ready  func(fd uintptr) bool
	closed atomic.Bool
	done   chan struct{}
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
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, int(proto))
	if err != nil {
		return nil, fmt.Errorf("afpacket: socket on %q: %w", name, err)
	}
	sa := &syscall.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("afpacket: bind to %q: %w", name, err)
	}
	// Without the option (kernels before 4.20) the ring holds outgoing
	// frames too, and ring.take skips them.
	syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetIgnoreOutgoing, 1)
	r, err := newRing(fd, ifi.MTU)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("afpacket: %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "afpacket:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		r.unmap()
		return nil, fmt.Errorf("afpacket: %q: %w", name, err)
	}
	l := &Link{f: f, rc: rc, ifindex: ifi.Index, name: name, mtu: ifi.MTU, etype: etype, ring: r, done: make(chan struct{})}
	l.ready = func(uintptr) bool { return l.ringReady() }
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

// Poll hands the receiver up to budget frames that have arrived, without
// waiting, and returns how many it read: a goroutine that waits for an
// answer can take it in itself instead of waiting for the receive loop
// to be woken and to wake it (the nic.Device contract on bare metal).
// It runs beside the receive loop (each frame goes to one of them) and
// returns 0 while another Poll runs.
func (l *Link) Poll(budget int) int {
	if !l.pollMu.TryLock() {
		return 0
	}
	defer l.pollMu.Unlock()
	return l.takeLocked(budget)
}

// takeLocked hands the receiver up to budget frames from the ring, the
// caller holding pollMu, and returns how many.
func (l *Link) takeLocked(budget int) int {
	if l.ring == nil {
		return 0
	}
	n := 0
	for n < budget {
		frame, skip, ok := l.ring.take()
		if !ok {
			break
		}
		if !skip {
			l.deliver(frame)
			n++
		}
		l.ring.release()
	}
	return n
}

// ringReady reports whether a frame waits in the ring (or the link is
// closed, which ends the wait).
func (l *Link) ringReady() bool {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	return l.ring == nil || l.ring.ready()
}

// receiveLoop waits for frames in the ring, through the network poller,
// and hands them to the receiver until Close.
func (l *Link) receiveLoop() {
	defer close(l.done)
	for !l.closed.Load() {
		if err := l.rc.Read(l.ready); err != nil {
			return // the file was closed
		}
		l.pollMu.Lock()
		for l.takeLocked(64) > 0 {
		}
		l.pollMu.Unlock()
	}
}

// deliver hands a frame read by the receive loop or Poll to the receiver.
func (l *Link) deliver(frame []byte) {
	l.mu.Lock()
	r := l.recv
	l.mu.Unlock()
	if r != nil {
		r(frame)
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
	err := l.f.Close() // wakes the receive loop
	if started {
		<-l.done
	}
	l.pollMu.Lock()
	if uerr := l.ring.unmap(); err == nil {
		err = uerr
	}
	l.ring = nil
	l.pollMu.Unlock()
	if err != nil {
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
	// The socket is bound to the interface and the EtherType, and the
	// frame carries its destination: a plain write sends it (packet(7)),
	// without the socket address sendto(2) would need built per frame.
	if _, err := l.f.Write(frame); err != nil {
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
	var e syscall.Errno
	err := l.rc.Control(func(fd uintptr) {
		_, _, e = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req)))
	})
	if err != nil || e != 0 {
		return false
	}
	return req.flags&syscall.IFF_UP != 0 && req.flags&syscall.IFF_RUNNING != 0
}

var _ link.Link = (*Link)(nil)
