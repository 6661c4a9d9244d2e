// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package ipstack runs gVisor's TCP/IP stack (gvisor.dev/gvisor/pkg/tcpip:
// ARP, IPv4, ICMP, TCP, UDP) on a link.Link, the control plane's network.
// Outbound packets leave through the link as the stack writes them; the
// caller hands inbound frames to Deliver (or lets New install it as the
// link's receiver).
package ipstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/big-iron/big-iron/machine/link"
)

// nicID is the stack's id for the one interface.
const nicID tcpip.NICID = 1

// queueLen is the depth of the outbound queue between the stack and the
// link; the link drains it as soon as a packet is queued.
const queueLen = 256

// Config configures a Stack.
type Config struct {
	// Name is the interface name shown by ifconfig, e.g. "eth0".
	Name string
	// Link carries the frames. New installs the stack as its receiver.
	Link link.Link
	// Addr is the interface's IPv4 address and prefix.
	Addr netip.Prefix
	// Gateway, if valid, is the default route's next hop.
	Gateway netip.Addr
}

// Stack is a gVisor network stack on one Ethernet link.
type Stack struct {
	cfg Config
	s   *stack.Stack
	ch  *channel.Endpoint

	txMu     sync.Mutex
	txErrors uint64
}

// New starts a stack on cfg.Link with a static IPv4 address.
func New(cfg Config) (*Stack, error) {
	if cfg.Link == nil {
		return nil, errors.New("ipstack: no link")
	}
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("ipstack: %q is not an IPv4 address with prefix", cfg.Addr)
	}
	if cfg.Gateway.IsValid() && !cfg.Addr.Contains(cfg.Gateway) {
		return nil, fmt.Errorf("ipstack: gateway %v is outside %v", cfg.Gateway, cfg.Addr.Masked())
	}
	mac := cfg.Link.MAC()
	st := &Stack{cfg: cfg}
	st.s = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        true,
	})
	st.ch = channel.New(queueLen, uint32(cfg.Link.MTU()), tcpip.LinkAddress(mac[:]))
	st.ch.AddNotify(st)
	if err := st.s.CreateNIC(nicID, ethernet.New(st.ch)); err != nil {
		return nil, fmt.Errorf("ipstack: creating the interface: %v", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(cfg.Addr.Addr().As4()), PrefixLen: cfg.Addr.Bits()},
	}
	if err := st.s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("ipstack: adding %v: %v", cfg.Addr, err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}}
	if cfg.Gateway.IsValid() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(cfg.Gateway.As4()), NIC: nicID})
	}
	st.s.SetRouteTable(routes)
	cfg.Link.SetReceiver(st.Deliver)
	return st, nil
}

// Close stops the stack.
func (st *Stack) Close() {
	st.s.Close()
	st.ch.Close()
}

// Addr returns the interface's address and prefix.
func (st *Stack) Addr() netip.Prefix { return st.cfg.Addr }

// Name returns the interface's name.
func (st *Stack) Name() string { return st.cfg.Name }

// Link returns the link the stack runs on.
func (st *Stack) Link() link.Link { return st.cfg.Link }

// Gateway returns the default route's next hop, if any.
func (st *Stack) Gateway() netip.Addr { return st.cfg.Gateway }

// Stats returns the stack's protocol counters.
func (st *Stack) Stats() tcpip.Stats { return st.s.Stats() }

// Deliver hands a received Ethernet frame to the stack; the stack copies
// it, so frame may be reused when Deliver returns.
func (st *Stack) Deliver(frame []byte) {
	if len(frame) < link.HeaderLen {
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	st.ch.InjectInbound(0, pkt)
	pkt.DecRef()
}

// WriteNotify is called by the channel endpoint when the stack queued a
// packet: send everything queued through the link.
func (st *Stack) WriteNotify() {
	for {
		pkt := st.ch.Read()
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		if err := st.cfg.Link.Transmit(v.AsSlice()); err != nil {
			st.txMu.Lock()
			st.txErrors++
			st.txMu.Unlock()
		}
		v.Release()
		pkt.DecRef()
	}
}

// TxErrors returns the number of packets the link refused.
func (st *Stack) TxErrors() uint64 {
	st.txMu.Lock()
	defer st.txMu.Unlock()
	return st.txErrors
}

// Ping sends one ICMP echo request to dst carrying size bytes and waits
// for the reply, returning the round-trip time.
func (st *Stack) Ping(ctx context.Context, dst netip.Addr, seq uint16, size int) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("ping: %v is not an IPv4 address", dst)
	}
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return 0, fmt.Errorf("ping: ICMP endpoint: %v", terr)
	}
	defer ep.Close()
	we, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)

	to := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(dst.As4())}
	if terr := ep.Connect(to); terr != nil {
		return 0, fmt.Errorf("ping %v: %v", dst, terr)
	}
	req := make([]byte, header.ICMPv4MinimumSize+size)
	h := header.ICMPv4(req)
	h.SetType(header.ICMPv4Echo)
	h.SetSequence(seq)
	for i := header.ICMPv4MinimumSize; i < len(req); i++ {
		req[i] = byte(i)
	}
	start := time.Now()
	for {
		var r readerOf
		r.Reset(req)
		_, terr := ep.Write(&r, tcpip.WriteOptions{})
		if terr == nil {
			break
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("ping %v: %v", dst, terr)
		}
		// address resolution under way
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("ping %v: no ARP reply: %w", dst, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	var reply [2048]byte
	for {
		w := writerTo{buf: reply[:0:len(reply)]}
		_, terr := ep.Read(&w, tcpip.ReadOptions{})
		if terr == nil {
			rh := header.ICMPv4(w.buf)
			if len(w.buf) >= header.ICMPv4MinimumSize && rh.Type() == header.ICMPv4EchoReply && rh.Sequence() == seq {
				return time.Since(start), nil
			}
			continue
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("ping %v: %v", dst, terr)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return 0, fmt.Errorf("ping %v: no reply: %w", dst, ctx.Err())
		}
	}
}

// readerOf is an io.Reader over a byte slice, reusable without allocating.
type readerOf struct {
	b []byte
	n int
}

func (r *readerOf) Reset(b []byte) { r.b, r.n = b, 0 }

func (r *readerOf) Read(p []byte) (int, error) {
	if r.n >= len(r.b) {
		return 0, errEOF
	}
	n := copy(p, r.b[r.n:])
	r.n += n
	return n, nil
}

// Len lets gVisor size the write.
func (r *readerOf) Len() int { return len(r.b) - r.n }

var errEOF = errors.New("EOF")

// writerTo is an io.Writer appending to a fixed buffer.
type writerTo struct{ buf []byte }

func (w *writerTo) Write(p []byte) (int, error) {
	n := copy(w.buf[len(w.buf):cap(w.buf)], p)
	w.buf = w.buf[:len(w.buf)+n]
	return len(p), nil
}

// DialTCP opens a TCP connection to dst through the stack, as net.Dial
// would; ctx bounds the handshake.
func (st *Stack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	if !dst.Addr().Is4() {
		return nil, fmt.Errorf("ipstack: dial %v: only IPv4", dst)
	}
	fa := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(dst.Addr().As4()), Port: dst.Port()}
	c, err := gonet.DialContextTCP(ctx, st.s, fa, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("ipstack: dial %v: %w", dst, err)
	}
	return c, nil
}

// ListenTCP accepts TCP connections on port of the stack's address.
func (st *Stack) ListenTCP(port uint16) (net.Listener, error) {
	fa := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(st.cfg.Addr.Addr().As4()), Port: port}
	l, err := gonet.ListenTCP(st.s, fa, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("ipstack: listen on port %d: %w", port, err)
	}
	return l, nil
}
