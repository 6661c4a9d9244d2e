// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package ipstack

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

// wire is one end of a real-time point-to-point Ethernet cable: frames
// transmitted at one end are delivered to the other by a goroutine.
type wire struct {
	mac  link.MAC
	peer *wire
	in   chan []byte
	mu   sync.Mutex
	recv link.Receiver
	sent int
}

func cable(t *testing.T) (*wire, *wire) {
	a := &wire{mac: link.MAC{2, 0, 0, 0, 0, 1}, in: make(chan []byte, 256)}
	b := &wire{mac: link.MAC{2, 0, 0, 0, 0, 2}, in: make(chan []byte, 256)}
	a.peer, b.peer = b, a
	done := make(chan struct{})
	if t != nil {
		t.Cleanup(func() { close(done) })
	}
	for _, w := range []*wire{a, b} {
		go func() {
			for {
				select {
				case f := <-w.in:
					w.mu.Lock()
					r := w.recv
					w.mu.Unlock()
					if r != nil {
						r(f)
					}
				case <-done:
					return
				}
			}
		}()
	}
	return a, b
}

func (w *wire) Transmit(f []byte) error {
	if len(f) > link.HeaderLen+w.MTU() {
		return link.ErrFrameTooLong
	}
	w.mu.Lock()
	w.sent++
	w.mu.Unlock()
	w.peer.in <- bytes.Clone(f)
	return nil
}
func (w *wire) SetReceiver(r link.Receiver) { w.mu.Lock(); w.recv = r; w.mu.Unlock() }
func (w *wire) MAC() link.MAC               { return w.mac }
func (w *wire) MTU() int                    { return 1500 }
func (w *wire) Up() bool                    { return true }

func twoStacks(t *testing.T) (*Stack, *Stack) {
	a, b := cable(t)
	sa, err := New(Config{Name: "eth0", Link: a, Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := New(Config{Name: "eth0", Link: b, Addr: netip.MustParsePrefix("10.0.0.2/24"), Gateway: netip.MustParseAddr("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return sa, sb
}

func TestPing(t *testing.T) {
	sa, sb := twoStacks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seq := uint16(1); seq <= 3; seq++ {
		rtt, err := sa.Ping(ctx, netip.MustParseAddr("10.0.0.2"), seq, 56)
		if err != nil {
			t.Fatalf("ping %d: %v", seq, err)
		}
		if rtt <= 0 {
			t.Errorf("rtt %v", rtt)
		}
	}
	if got := sb.Stats().ICMP.V4.PacketsReceived.EchoRequest.Value(); got != 3 {
		t.Errorf("b received %d echo requests, want 3", got)
	}
	if got := sa.Stats().ARP.OutgoingRequestsSent.Value(); got == 0 {
		t.Error("no ARP request sent")
	}
}

func TestPingNobodyTimesOut(t *testing.T) {
	sa, _ := twoStacks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := sa.Ping(ctx, netip.MustParseAddr("10.0.0.99"), 1, 8)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.99") {
		t.Fatalf("ping to nobody: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	a, _ := cable(t)
	for _, c := range []Config{
		{Link: nil, Addr: netip.MustParsePrefix("10.0.0.1/24")},
		{Link: a},
		{Link: a, Addr: netip.MustParsePrefix("fe80::1/64")},
		{Link: a, Addr: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
	} {
		if s, err := New(c); err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestGarbageFramesAreDropped(t *testing.T) {
	sa, _ := twoStacks(t)
	for _, f := range [][]byte{{}, {1, 2, 3}, bytes.Repeat([]byte{0xff}, 14), bytes.Repeat([]byte{0x45}, 100)} {
		sa.Deliver(f)
	}
}

func FuzzDeliver(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0x45}, 60))
	a, _ := cable(nil)
	st, err := New(Config{Name: "eth0", Link: a, Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		st.Deliver(frame)
	})
}

// TestDialTCP carries a stream both ways over a TCP connection between
// two stacks, as the image's NBD client uses one, and refuses a port
// nobody listens on.
func TestDialTCP(t *testing.T) {
	a, b := twoStacks(t)
	l, err := a.ListenTCP(10809)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := b.DialTCP(ctx, netip.MustParseAddrPort("10.0.0.1:10809"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := bytes.Repeat([]byte("big-iron"), 32<<10) // 256 KiB: many segments
	go c.Write(want)
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the echoed stream differs")
	}
	if _, err := b.DialTCP(ctx, netip.MustParseAddrPort("10.0.0.1:9")); err == nil {
		t.Fatal("dialled a port nobody listens on")
	}
}
