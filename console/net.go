// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/netstack/ipstack"
)

// Interface is what ifconfig shows of one interface: its stack and, where
// known, the card under it.
type Interface struct {
	Stack *ipstack.Stack
	// Card is the network card's driver, nil for a link without one.
	Card interface {
		Driver() string
		Stats() nic.Stats
	}
}

// pingTimeout bounds the wait for each echo reply.
const pingTimeout = time.Second

// NetCommands returns the shell's network commands: ifconfig, ping and
// netstat over the interfaces given (none: the commands say so).
func NetCommands(ifs []Interface) []*shell.Command {
	noNet := func() error {
		if len(ifs) == 0 {
			return fmt.Errorf("no network interface (no supported NIC, or no address: bigiron.ip=ADDR/PREFIX)")
		}
		return nil
	}
	return []*shell.Command{{
		Name: "ifconfig",
		Help: "network interfaces: address, MAC, link, traffic",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: ifconfig takes no arguments", shell.ErrUsage)
			}
			if err := noNet(); err != nil {
				return err
			}
			for _, i := range ifs {
				writeInterface(w, i)
			}
			return nil
		},
	}, {
		Name:  "ping",
		Usage: "HOST [count=N] [size=BYTES]",
		Help:  "send ICMP echo requests and show the replies",
		Run: func(w io.Writer, args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("%w: ping needs an IPv4 address", shell.ErrUsage)
			}
			dst, err := netip.ParseAddr(args[0])
			if err != nil || !dst.Is4() {
				return fmt.Errorf("%w: %q is not an IPv4 address", shell.ErrUsage, args[0])
			}
			count, size := 3, 56
			var a Args
			a.Int("count", &count, 1, 1000)
			a.Int("size", &size, 0, 1400)
			if err := a.Parse(args[1:]); err != nil {
				return err
			}
			if err := noNet(); err != nil {
				return err
			}
			return ping(w, ifs[0].Stack, dst, count, size)
		},
	}, {
		Name: "netstat",
		Help: "IP, ICMP, TCP and UDP counters of the network stack",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: netstat takes no arguments", shell.ErrUsage)
			}
			if err := noNet(); err != nil {
				return err
			}
			for _, i := range ifs {
				writeNetstat(w, i.Stack)
			}
			return nil
		},
	}}
}

func writeInterface(w io.Writer, i Interface) {
	st := i.Stack
	l := st.Link()
	state := "down"
	if l.Up() {
		state = "up"
	}
	fmt.Fprintf(w, "%s: link %s, mtu %d, ether %v", st.Name(), state, l.MTU(), l.MAC())
	if i.Card != nil {
		fmt.Fprintf(w, ", driver %s", i.Card.Driver())
	}
	fmt.Fprintf(w, "\n  inet %v", st.Addr())
	if gw := st.Gateway(); gw.IsValid() {
		fmt.Fprintf(w, ", gateway %v", gw)
	}
	fmt.Fprintln(w)
	if i.Card != nil {
		s := i.Card.Stats()
		fmt.Fprintf(w, "  rx %d frames, %d bytes, %d dropped, %d errors\n", s.RxFrames, s.RxBytes, s.RxDropped, s.RxErrors)
		fmt.Fprintf(w, "  tx %d frames, %d bytes, %d dropped, %d errors\n", s.TxFrames, s.TxBytes, s.TxDropped, s.TxErrors)
	}
}

func ping(w io.Writer, st *ipstack.Stack, dst netip.Addr, count, size int) error {
	fmt.Fprintf(w, "PING %v: %d data bytes\n", dst, size)
	received := 0
	var min, max, sum time.Duration
	for seq := 1; seq <= count; seq++ {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		rtt, err := st.Ping(ctx, dst, uint16(seq), size)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "icmp_seq=%d: %v\n", seq, err)
			continue
		}
		received++
		if received == 1 || rtt < min {
			min = rtt
		}
		if rtt > max {
			max = rtt
		}
		sum += rtt
		fmt.Fprintf(w, "%d bytes from %v: icmp_seq=%d time=%v\n", size+8, dst, seq, rtt.Round(time.Microsecond))
	}
	fmt.Fprintf(w, "%d packets transmitted, %d received, %d%% packet loss\n", count, received, 100*(count-received)/count)
	if received > 0 {
		fmt.Fprintf(w, "rtt min/avg/max = %v/%v/%v\n", min.Round(time.Microsecond), (sum / time.Duration(received)).Round(time.Microsecond), max.Round(time.Microsecond))
	}
	if received == 0 {
		return fmt.Errorf("ping %v: no reply", dst)
	}
	return nil
}

func writeNetstat(w io.Writer, st *ipstack.Stack) {
	s := st.Stats()
	fmt.Fprintf(w, "%s (%v):\n", st.Name(), st.Addr())
	fmt.Fprintf(w, "  ip:   %d packets received, %d delivered, %d sent, %d malformed, %d output errors\n",
		s.IP.PacketsReceived.Value(), s.IP.PacketsDelivered.Value(), s.IP.PacketsSent.Value(),
		s.IP.MalformedPacketsReceived.Value(), s.IP.OutgoingPacketErrors.Value())
	fmt.Fprintf(w, "  arp:  %d requests received, %d replies received, %d requests sent\n",
		s.ARP.RequestsReceived.Value(), s.ARP.RepliesReceived.Value(), s.ARP.OutgoingRequestsSent.Value())
	fmt.Fprintf(w, "  icmp: %d echo requests received, %d echo replies received, %d echo requests sent, %d echo replies sent\n",
		s.ICMP.V4.PacketsReceived.EchoRequest.Value(), s.ICMP.V4.PacketsReceived.EchoReply.Value(),
		s.ICMP.V4.PacketsSent.EchoRequest.Value(), s.ICMP.V4.PacketsSent.EchoReply.Value())
	fmt.Fprintf(w, "  tcp:  %d active opens, %d passive opens, %d established, %d segments received, %d sent, %d retransmitted\n",
		s.TCP.ActiveConnectionOpenings.Value(), s.TCP.PassiveConnectionOpenings.Value(), s.TCP.CurrentEstablished.Value(),
		s.TCP.ValidSegmentsReceived.Value(), s.TCP.SegmentsSent.Value(), s.TCP.Retransmits.Value())
	fmt.Fprintf(w, "  udp:  %d datagrams received, %d sent, %d to unknown ports, %d receive errors\n",
		s.UDP.PacketsReceived.Value(), s.UDP.PacketsSent.Value(), s.UDP.UnknownPortErrors.Value(), s.UDP.MalformedPacketsReceived.Value())
	fmt.Fprintf(w, "  link: %d frames refused by the card\n", st.TxErrors())
}
