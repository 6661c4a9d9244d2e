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
// The socket is non-blocking and registered with the Go runtime's network
// poller (an *os.File), so that the receive goroutine waits for a frame
// without holding a thread in a system call: a goroutine the receiver
// wakes runs at once on the freed processor instead of waiting for the
// runtime to notice the blocked one.
type Link struct {
	f       *os.File
	rc      syscall.RawConn
	ignored bool // PACKET_IGNORE_OUTGOING is set: no need to look at pkttype
	ifindex int
	name    string
	mac     link.MAC
	mtu     int
	etype   link.EtherType

	mu      sync.Mutex
	recv    link.Receiver
	started bool
	// pollMu guards the poll fields: one Poll at a time reads into
	// pollBuf, through pollRead (made once: a closure made per call
	// would allocate), which leaves its results in pollN and pollErr.
	pollMu   sync.Mutex
	pollBuf  []byte
	pollRead func(fd uintptr)
	pollN    int
	pollErr  error
	closed   atomic.Bool
	done     chan struct{}
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
	// Without the option (kernels before 4.20) the receive loop skips
	// outgoing frames itself.
	ignored := syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetIgnoreOutgoing, 1) == nil
	f := os.NewFile(uintptr(fd), "afpacket:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("afpacket: %q: %w", name, err)
	}
	l := &Link{f: f, rc: rc, ignored: ignored, ifindex: ifi.Index, name: name, mtu: ifi.MTU, etype: etype, done: make(chan struct{})}
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
	if l.closed.Load() || !l.pollMu.TryLock() {
		return 0
	}
	defer l.pollMu.Unlock()
	if l.pollBuf == nil {
		l.pollBuf = make([]byte, link.HeaderLen+l.mtu)
		l.pollRead = func(fd uintptr) { l.pollN, l.pollErr = l.readFrame(int(fd), l.pollBuf) }
	}
	n := 0
	for n < budget {
		if err := l.rc.Control(l.pollRead); err != nil || l.pollErr == syscall.EAGAIN {
			break
		}
		got := l.pollN
		if l.pollErr != nil || got < link.HeaderLen {
			continue // EINTR, an outgoing frame, a runt
		}
		l.deliver(l.pollBuf[:got])
		n++
	}
	return n
}

// receiveLoop reads frames into one reused buffer and hands them to the
// receiver until Close. Frames this host sent are skipped.
func (l *Link) receiveLoop() {
	defer close(l.done)
	buf := make([]byte, link.HeaderLen+l.mtu)
	var n int
	var rerr error
	read := func(fd uintptr) bool {
		n, rerr = l.readFrame(int(fd), buf)
		return rerr != syscall.EAGAIN
	}
	for !l.closed.Load() {
		if err := l.rc.Read(read); err != nil {
			return // the file was closed
		}
		if rerr != nil || n < link.HeaderLen {
			continue // EINTR, an outgoing frame, a runt
		}
		l.deliver(buf[:n])
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

// readFrame reads one frame from fd into buf. Where the socket still sees
// outgoing frames it reads with recvfrom(2) and reports them as empty.
func (l *Link) readFrame(fd int, buf []byte) (int, error) {
	if l.ignored {
		return syscall.Read(fd, buf)
	}
	n, from, err := syscall.Recvfrom(fd, buf, 0)
	if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
		return 0, err
	}
	return n, err
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
