// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"fmt"
	"sync"

	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/boot/bzimage"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/mux"
	"github.com/big-iron/big-iron/vmm/devices"
)

// defaultGuestCmdline is the guest kernel's command line unless the
// operator gives one: the console on the emulated COM1, early messages
// there too, the kernel where it was loaded. tsc=reliable: the guest TSC
// is the host's invariant TSC, and the guest has no second clock (no
// HPET, no ACPI PM timer) but jiffies to check it against, whose ticks a
// busy emulated node delivers late; without it Linux declares the TSC
// unstable and falls back to jiffies as its clocksource.
const defaultGuestCmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr tsc=reliable"

// distGuestCmdline is the command line of a guest of vcpus vCPUs that
// spans nodes: vCPU 0 starts on the node that hosts the devices and keeps
// the machine's housekeeping; the others are spared every page that all
// CPUs write, since on another node each such write costs a page
// transfer (milliseconds in Bochs) where an SMP machine moves a cache
// line:
//
//   - nohz_full and rcu_nocbs: the periodic tick, in which every CPU
//     reads jiffies and the timekeeper that the timekeeping CPU writes
//     every 4 ms, stops on a CPU running one task or idle, and RCU
//     callbacks run on vCPU 0 (in Bochs, the remote vCPU spent all its
//     time fetching those two pages, tick after tick);
//   - isolcpus: the scheduler puts on the other vCPUs only the tasks
//     pinned there, so that a shell and the system's daemons do not land
//     on a vCPU whose every page comes from another node;
//   - irqaffinity=0: device interrupts go to vCPU 0, whose handlers'
//     register reads are then local;
//   - psi=0: pressure-stall accounting has every CPU's counters read and
//     written by a worker on another CPU every two seconds, under a
//     sequence count whose reader retried for tens of seconds;
//   - with numa (the guest has an SRAT and a SLIT), numa_balancing=disable:
//     automatic NUMA balancing would unmap the guest's pages periodically
//     to sample where they are used, and its memory is all on node 0
//     anyway.
func distGuestCmdline(vcpus int, numa bool) string {
	c := defaultGuestCmdline + " psi=0 irqaffinity=0"
	if vcpus > 1 {
		c += fmt.Sprintf(" nohz_full=1-%d rcu_nocbs=1-%d isolcpus=1-%d", vcpus-1, vcpus-1, vcpus-1)
	}
	if numa {
		c += " numa_balancing=disable"
	}
	return c
}

// linuxHost boots the image's Linux guest on the hypervisor.
type linuxHost struct {
	h              *hv.Hypervisor
	kernel, initrd []byte
	net            *nodeNet // nil on a distributed VM's host for now

	mu    sync.Mutex
	cards int // network cards given out, for their MACs
}

// BootOS implements console.OSHost.
func (l *linuxHost) BootOS(r console.BootRequest) (console.Guest, error) {
	if len(r.Disks) > 0 {
		return nil, fmt.Errorf("disk= is not wired to the hypervisor yet")
	}
	cfg := l.config(r.VCPUs, r.Memory, r.Cmdline)
	release := func() {
		for _, f := range cfg.Release {
			f()
		}
	}
	if r.Net != nil {
		st, err := l.station(r.Net.MAC)
		if err != nil {
			return nil, err
		}
		cfg.Net = st
		cfg.Release = append(cfg.Release, func() { l.net.mux.RemoveStation(st) })
	}
	vm, err := l.h.BootLinux(cfg)
	if err != nil {
		release()
		return nil, err
	}
	return vm, nil
}

// station bridges a guest's network card onto the node's NIC, with mac or
// (zero) a locally administered MAC made of the node's and a count of
// the cards given out: 0a:b1 and the node MAC's last three bytes, then
// the count.
func (l *linuxHost) station(mac link.MAC) (*mux.Station, error) {
	if l.net == nil || l.net.mux == nil {
		return nil, fmt.Errorf("net=: this node has no NIC to bridge the guest onto")
	}
	if mac == (link.MAC{}) {
		node := l.net.mux.Default().MAC()
		l.mu.Lock()
		l.cards++
		mac = link.MAC{0x0a, 0xb1, node[3], node[4], node[5], byte(l.cards)}
		l.mu.Unlock()
	}
	return l.net.mux.AddStation(mac)
}

// config is the configuration of the image's Linux with vcpus processors,
// memory bytes of RAM and cmdline (empty: defaultGuestCmdline).
func (l *linuxHost) config(vcpus int, memory uint64, cmdline string) hv.LinuxConfig {
	if cmdline == "" {
		cmdline = defaultGuestCmdline
	}
	cmdline = l.h.GuestCmdline(cmdline)
	return hv.LinuxConfig{
		Name:   "linux",
		VCPUs:  vcpus,
		Memory: memory,
		Load: func(mem devices.GuestMemory, layout memmap.Map, rsdp uint64) (hv.LongModeEntry, uint64, error) {
			e, err := bzimage.Load(mem, bzimage.Config{Kernel: l.kernel, Initrd: l.initrd, Cmdline: cmdline, Memory: layout, RSDP: rsdp})
			if err != nil {
				return hv.LongModeEntry{}, 0, err
			}
			return hv.LongModeEntry{RIP: e.RIP, RSP: e.RSP, CR3: e.CR3, GDTBase: e.GDTBase, GDTLimit: e.GDTLimit, CS: e.CS, DS: e.DS}, e.RSI, nil
		},
	}
}

// Guests implements console.OSHost.
func (l *linuxHost) Guests() []console.Guest {
	var gs []console.Guest
	for _, vm := range l.h.VMs() {
		gs = append(gs, vm)
	}
	return gs
}
