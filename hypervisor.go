// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"errors"
	"io"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/node"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/x86"
	"github.com/big-iron/big-iron/netstack/cluster"
	"github.com/big-iron/big-iron/vmm/frames"
)

// Guest frames come from the memory no one else reserved (GuestMemory
// leaves out the Go runtime's and the NIC DMA region): from 16 MiB up to
// 3 GiB, the cacheable part of the identity map cpuinit installs (3-4
// GiB is mapped uncached, for MMIO), and everything above 4 GiB, which
// x86.MapHigh maps first (x86.PlanFrames).
const (
	guestFramesStart = 16 << 20
	guestFramesEnd   = 3 << 30
)

// startHypervisor prepares VMX and returns the vm and disks commands, the
// hypervisor (nil where VMX is unavailable: the commands then say why)
// and the host of Linux guests (the image's own, or one fetched over
// the network; nil where VMX is unavailable).
func startHypervisor(p *board.Platform, nn *nodeNet) ([]*shell.Command, *hv.Hypervisor, *linuxHost) {
	plan, err := x86.PlanFrames(p.GuestMemory(), guestFramesStart, guestFramesEnd)
	if err == nil && plan.HighEnd != 0 {
		err = x86.MapHigh(plan.HighEnd, plan.Tables)
	}
	if err != nil {
		return console.VMCommands(nil, nil, err.Error()), nil, nil
	}
	pool, err := frames.NewPool(plan.Frames)
	if err != nil {
		return console.VMCommands(nil, nil, err.Error()), nil, nil
	}
	h, err := hv.New(p, pool)
	if err != nil {
		return console.VMCommands(nil, nil, err.Error()), nil, nil
	}
	kernel, initrd := guestFiles()
	l := newLinuxHost(h, kernel, initrd, nn)
	return append(console.VMCommands(h, l, ""), console.DisksCommand(l)), h, l
}

// distCommands connects distributed VMs to the cluster: the hypervisor
// receives dvm.Channel messages from the agent and sends through it. The
// runner is nil where distributed VMs are unavailable.
func distCommands(h *hv.Hypervisor, l *linuxHost, agent *node.Agent, notices io.Writer, ring *trace.Ring) ([]*shell.Command, console.DistRunner) {
	switch {
	case h == nil:
		return console.DistCommands(nil, "VT-x is unavailable on this node"), nil
	case agent == nil:
		return console.DistCommands(nil, "this node has no cluster transport"), nil
	}
	an := agentNet{a: agent, self: agent.Status().ID}
	d := h.NewDist(an, notices)
	d.SetTrace(ring)
	if l != nil {
		d.SetLinux(func(r hv.LinuxRequest) (hv.LinuxConfig, error) {
			if r.Multiboot {
				return l.multibootConfig(r)
			}
			if r.Cmdline == "" {
				r.Cmdline = distGuestCmdline(r.VCPUs, r.NUMA)
			}
			return l.config(r)
		})
	}
	plane := d.Plane()
	if err := agent.Handle(dvm.Channel, func(from cluster.NodeID, msg []byte) {
		if i, ok := dvm.NodeIndex(from); ok {
			plane.Receive(i, msg)
		}
	}); err != nil {
		return console.DistCommands(nil, err.Error()), nil
	}
	if err := agent.SetRoom(dvm.Channel, func(from cluster.NodeID) bool {
		i, ok := dvm.NodeIndex(from)
		return !ok || plane.Room(i)
	}); err != nil {
		return console.DistCommands(nil, err.Error()), nil
	}
	return console.DistCommands(d, ""), d
}

// withDist extends the `vcpus` and `node` commands with the distributed
// VM run by r: `vcpus` shows where its vCPUs run and `node evacuate N`
// moves it off a node.
func withDist(cmds []*shell.Command, r console.DistRunner) {
	if r == nil {
		return
	}
	for i, c := range cmds {
		switch c.Name {
		case "vcpus":
			cmds[i] = console.WithDistVCPUs(c, r)
		case "node":
			cmds[i] = console.WithNodeEvacuate(c, r)
		}
	}
}

// agentNet is the cluster as package hv's distributed VMs see it. A
// distributed VM numbers its nodes from 0 and the cluster its members
// from 1; dvm.ClusterID and dvm.NodeIndex translate, without a lookup in
// the receive path.
type agentNet struct {
	a    *node.Agent
	self cluster.NodeID // this node's, fixed at boot
}

func (n agentNet) Self() memory.NodeID {
	i, _ := dvm.NodeIndex(n.self)
	return i
}

func (n agentNet) Members() []memory.NodeID {
	var out []memory.NodeID
	for _, m := range n.a.Status().Members {
		if i, ok := dvm.NodeIndex(m); ok {
			out = append(out, i)
		}
	}
	return out
}

func (n agentNet) Lost(i memory.NodeID, silence time.Duration) (string, bool) {
	return n.a.Lost(dvm.ClusterID(i), silence)
}

func (n agentNet) Send(to memory.NodeID, msg []byte) error {
	return n.a.Send(dvm.ClusterID(to), dvm.Channel, msg)
}

func (n agentNet) TrySend(to memory.NodeID, msg []byte) (bool, error) {
	err := n.a.TrySend(dvm.ClusterID(to), dvm.Channel, msg)
	if errors.Is(err, cluster.ErrBusy) {
		return false, nil
	}
	return err == nil, err
}

func (n agentNet) Poll() bool { return n.a.Poll() }

func (agentNet) ClusterID(i memory.NodeID) uint32 { return uint32(dvm.ClusterID(i)) }

func (agentNet) Index(id uint32) (memory.NodeID, bool) { return dvm.NodeIndex(cluster.NodeID(id)) }
