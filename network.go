// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/usbarmory/tamago/dma"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/cluster/node"
	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/x86"
	"github.com/big-iron/big-iron/machine/boot/cmdline"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/netstack/cluster"
	"github.com/big-iron/big-iron/netstack/dhcp"
	"github.com/big-iron/big-iron/netstack/e1000"
	"github.com/big-iron/big-iron/netstack/ipstack"
	"github.com/big-iron/big-iron/netstack/mux"
	"github.com/big-iron/big-iron/netstack/virtionet"
)

// The NIC drivers' rings and buffers live in a DMA region right above the
// Go runtime's memory.
const dmaSize = 8 << 20

// dhcpTimeout bounds the wait for a DHCP lease at boot.
const dhcpTimeout = 10 * time.Second

// waiterPollBudget is the most frames a goroutine waiting for a peer
// (node.Agent.Poll) takes in at one poll.
const waiterPollBudget = 16

// nodeNet is what guests get of the node's network: the port their
// network cards are bridged onto, and the control plane's TCP/IP stack
// (nil without an address) through which their network disks are
// reached.
type nodeNet struct {
	mux   *mux.Mux
	stack *ipstack.Stack
	// metricsPort is where the node serves its metrics (0: nowhere).
	metricsPort uint16
	// sshKeys may log in to the node's shell over SSH (none: no server).
	sshKeys []string
}

// startNetwork brings up the first NIC with a driver: the cluster port
// (EtherType 0x88B5) for the transport and membership, and gVisor's
// TCP/IP on the rest where bigiron.ip gives an address. It returns the
// network and cluster shell commands, the cluster agent (nil without
// one) and the network as guests see it (empty without a NIC).
// Membership events are written to notices, one line per Write.
func startNetwork(p *board.Platform, notices io.Writer, nn *nodeNet) ([]*shell.Command, *node.Agent) {
	fail := func(why string) ([]*shell.Command, *node.Agent) {
		fmt.Printf("network: %s\n", why)
		return append(console.NetCommands(nil), console.NodeCommands(nil, why)...), nil
	}
	opts, err := cmdline.Parse(p.CommandLine)
	if err != nil {
		return fail(err.Error())
	}
	region, err := reserveDMA(p)
	if err != nil {
		return fail(err.Error())
	}
	devs := openNICs(p, region, cluster.NodeID(opts.Node), opts.Uplink+1)
	if len(devs) == 0 {
		return fail("no NIC with a driver")
	}
	m, up, dev := startPorts(devs, opts, p.Emulator)
	nn.mux = up
	var ifs []console.Interface
	ip := ""
	if opts.DHCP {
		var xid [4]byte
		rand.Read(xid[:])
		lease, err := dhcp.Acquire(dhcp.Config{Link: up.Default(), XID: binary.LittleEndian.Uint32(xid[:]), Timeout: dhcpTimeout})
		if err != nil {
			fmt.Printf("network: %v\n", err)
		} else {
			fmt.Printf("network: DHCP lease %v from %v, gateway %v, for %v\n", lease.Addr, lease.Server, lease.Gateway, lease.Duration)
			opts.IP, opts.Gateway = lease.Addr, lease.Gateway
		}
	}
	nn.metricsPort, nn.sshKeys = opts.Metrics, opts.SSHKeys
	if opts.IP.IsValid() {
		st, err := ipstack.New(ipstack.Config{Name: "eth0", Link: up.Default(), Addr: opts.IP, Gateway: opts.Gateway})
		if err != nil {
			fmt.Printf("network: %v\n", err)
		} else {
			ifs = append(ifs, console.Interface{Stack: st, Card: dev})
			nn.stack = st
			ip = opts.IP.Addr().String()
			fmt.Printf("network: eth0 %v\n", opts.IP)
		}
	}
	cmds := console.NetCommands(ifs)

	key, keyName, err := node.ClusterKey(opts.Key, opts.Insecure, p.Emulator)
	if err != nil {
		fmt.Printf("network: %v\n", err)
		return append(cmds, console.NodeCommands(nil, err.Error())...), nil
	}
	fmt.Printf("network: cluster key %s\n", keyName)
	var boot []membership.Member
	for _, peer := range opts.Peers {
		m := membership.Member{ID: cluster.NodeID(peer.ID), MAC: link.MAC(peer.MAC)}
		if peer.IP.IsValid() {
			m.IP = peer.IP.String()
		}
		boot = append(boot, m)
	}
	base, err := counterBase(p)
	if err != nil {
		fmt.Printf("network: %v\n", err)
		return append(cmds, console.NodeCommands(nil, err.Error())...), nil
	}
	start := time.Now()
	agent, err := node.New(node.Config{
		Link:        m.Port(link.EtherTypeCluster),
		ID:          cluster.NodeID(opts.Node),
		Key:         key,
		Bootstrap:   boot,
		Join:        opts.Join,
		IP:          ip,
		CounterBase: base,
		Clock:       func() time.Duration { return time.Since(start) },
		Log:         notices,
		KeyName:     keyName,
		Poll:        func() bool { return devs[0].Poll(waiterPollBudget) > 0 },
		// bigiron.failtimeout; 0 keeps the membership's default.
		FailureTimeout: opts.FailureTimeout,
	})
	if err != nil {
		fmt.Printf("network: %v\n", err)
		return append(cmds, console.NodeCommands(nil, err.Error())...), nil
	}
	agent.Start()
	fmt.Printf("cluster: node %d, %d initial members\n", opts.Node, max(1, len(boot)))
	return append(cmds, console.NodeCommands(agent, "")...), agent
}

// startPorts starts the receive loops of the cluster's NIC, devs[0],
// and of the uplink bigiron.uplink names, and returns their muxes: the
// cluster's, and the uplink's with its NIC (the cluster's again without
// an uplink of its own).
func startPorts(devs []nic.Device, opts cmdline.Options, emulator string) (clusterMux, up *mux.Mux, upDev nic.Device) {
	clusterMux = mux.New(devs[0])
	pol := nic.NodePolling(opts.PollHot, opts.PollHotSet, emulator != "")
	fmt.Printf("network: the receive loop polls for %v after a frame, then every %v\n", pol.Hot, pol.Idle)
	go pollLoop(devs[0], pol)
	if opts.Uplink == 0 {
		return clusterMux, clusterMux, devs[0]
	}
	if len(devs) <= opts.Uplink {
		fmt.Printf("network: bigiron.uplink=%d: this node has %d NICs with a driver; the control plane shares the cluster's\n", opts.Uplink, len(devs))
		return clusterMux, clusterMux, devs[0]
	}
	upDev = devs[opts.Uplink]
	up = mux.New(upDev) // the receiver, before the loop delivers
	go pollLoop(upDev, pol)
	fmt.Printf("network: the control plane and the guests' networks on %s, the cluster alone on %s\n", upDev.MAC(), devs[0].MAC())
	return clusterMux, up, upDev
}

// counterBase returns this boot's first frame counter: the real-time
// clock's second and random bits from RDRAND, checked (cluster.CounterBase).
// A CPU without a working RNG gets no cluster: its nonces could repeat.
func counterBase(p *board.Platform) (uint64, error) {
	var r [8]byte
	if err := x86.Random(p.CPUID, r[:]); err != nil {
		return 0, fmt.Errorf("%w: the cluster transport needs one for its frame counters", err)
	}
	boot, err := x86.ReadRTC()
	if err != nil {
		fmt.Printf("network: %v: frame counters start from random bits alone\n", err)
	}
	base, err := cluster.CounterBase(boot, binary.LittleEndian.Uint64(r[:]))
	if err == nil {
		fmt.Printf("network: frame counters start at %#x (real-time clock %s)\n", base, boot.Format(time.RFC3339))
	}
	return base, err
}

// reserveDMA sets aside the DMA region above the Go runtime's memory and
// records it as the hyperkernel's, so guests never get it.
func reserveDMA(p *board.Platform) (*dma.Region, error) {
	_, end := runtime.MemRegion()
	start := (end + 0xfffff) &^ 0xfffff
	r := memmap.Range{Start: start, Size: dmaSize}
	if !usable(p.Memory, r) {
		return nil, fmt.Errorf("no usable memory for NIC DMA at %#x-%#x", start, start+dmaSize)
	}
	region, err := dma.NewRegion(uint(start), dmaSize, false)
	if err != nil {
		return nil, fmt.Errorf("NIC DMA region: %w", err)
	}
	p.Reserved = append(p.Reserved, board.Reservation{Range: r, Owner: "NIC DMA rings and buffers"})
	return region, nil
}

// usable reports whether r lies inside one usable region of m.
func usable(m memmap.Map, r memmap.Range) bool {
	for _, reg := range m {
		if reg.Type == memmap.Usable && reg.Start <= r.Start && r.Start+r.Size <= reg.Start+reg.Size {
			return true
		}
	}
	return false
}

// openNICs starts the drivers of the first want NICs that have one, in
// the board's order.
func openNICs(p *board.Platform, region *dma.Region, id cluster.NodeID, want int) []nic.Device {
	var devs []nic.Device
	for _, n := range p.NICs {
		if len(devs) == want {
			break
		}
		hw, err := x86.NICHardware(n, region)
		var dev nic.Device
		if err == nil {
			dev, err = openNIC(n, hw, id)
		}
		if err != nil {
			fmt.Printf("network: %s at %s: %v\n", n.Kind, n.Where, err)
			continue
		}
		fmt.Printf("network: %s at %s, MAC %v, link %s\n", dev.Driver(), n.Where, dev.MAC(), upDown(dev.Up()))
		devs = append(devs, dev)
	}
	return devs
}

// pollLoop receives frames for ever: each poll delivers them to the mux,
// which hands cluster frames to the transport and the rest to gVisor.
func pollLoop(dev nic.Device, pol nic.Polling) {
	nic.PollLoop(dev, pol, nic.NewSystemClock(), nil)
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// openNIC starts the driver for n. Node ids pick locally administered
// MACs for cards that have none.
func openNIC(n board.NIC, hw nic.Hardware, id cluster.NodeID) (nic.Device, error) {
	switch n.Kind {
	case "e1000", "e1000e":
		m, ok := e1000.ModelFor(n.Vendor, n.Device)
		if !ok {
			return nil, fmt.Errorf("e1000: unknown device %04x:%04x", n.Vendor, n.Device)
		}
		return e1000.New(hw, m)
	case "virtio-net":
		return virtionet.New(hw)
	}
	return nil, fmt.Errorf("no driver for %s yet", n.Kind)
}
