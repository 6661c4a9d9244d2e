// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/ipstack"
)

// wire is one end of a real-time Ethernet cable: frames transmitted at
// one end are delivered to the other by a goroutine.
type wire struct {
	mac  link.MAC
	peer *wire
	in   chan []byte
	mu   sync.Mutex
	recv link.Receiver
}

func (w *wire) Transmit(f []byte) error {
	w.peer.in <- bytes.Clone(f)
	return nil
}
func (w *wire) SetReceiver(r link.Receiver) { w.mu.Lock(); w.recv = r; w.mu.Unlock() }
func (w *wire) MAC() link.MAC               { return w.mac }
func (w *wire) MTU() int                    { return 1500 }
func (w *wire) Up() bool                    { return true }

// twoStacks returns the stacks at the ends of a cable: 10.0.0.1 and
// 10.0.0.2.
func twoStacks(t *testing.T) (*ipstack.Stack, *ipstack.Stack) {
	a := &wire{mac: link.MAC{2, 0, 0, 0, 0, 1}, in: make(chan []byte, 256)}
	b := &wire{mac: link.MAC{2, 0, 0, 0, 0, 2}, in: make(chan []byte, 256)}
	a.peer, b.peer = b, a
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
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
	sa, err := ipstack.New(ipstack.Config{Name: "eth0", Link: a, Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ipstack.New(ipstack.Config{Name: "eth0", Link: b, Addr: netip.MustParsePrefix("10.0.0.2/24"), Gateway: netip.MustParseAddr("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	return sa, sb
}

func TestNetCommands(t *testing.T) {
	sa, _ := twoStacks(t)
	cmds := NetCommands([]Interface{{Stack: sa}})
	run := func(name string, args ...string) (string, error) {
		for _, c := range cmds {
			if c.Name == name {
				var b bytes.Buffer
				err := c.Run(&b, args)
				return b.String(), err
			}
		}
		t.Fatalf("no command %q", name)
		return "", nil
	}
	out, err := run("ping", "10.0.0.2", "count=2")
	if err != nil || !strings.Contains(out, "2 packets transmitted, 2 received, 0% packet loss") {
		t.Errorf("ping: %v\n%s", err, out)
	}
	out, err = run("ifconfig")
	if err != nil || !strings.Contains(out, "inet 10.0.0.1/24") || !strings.Contains(out, "ether 02:00:00:00:00:01") {
		t.Errorf("ifconfig: %v\n%s", err, out)
	}
	out, err = run("netstat")
	if err != nil || !strings.Contains(out, "2 echo replies received") {
		t.Errorf("netstat: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{}, {"nonsense"}, {"10.0.0.2", "count=0"}, {"10.0.0.2", "size=99999"}, {"::1"},
		{"10.0.0.2", "count"}, {"10.0.0.2", "ttl=3"}, {"10.0.0.2", "count=1", "count=2"}} {
		if _, err := run("ping", bad...); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("ping %v: %v, want a usage error", bad, err)
		}
	}
	if err := NetCommands(nil)[0].Run(&bytes.Buffer{}, nil); err == nil || !strings.Contains(err.Error(), "bigiron.ip=") {
		t.Errorf("ifconfig without interfaces: %v", err)
	}
}
