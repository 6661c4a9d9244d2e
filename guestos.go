// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/hyperkernel/netdisk"
	"github.com/big-iron/big-iron/machine/boot/bzimage"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/mux"
	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
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
	cards int         // network cards given out, for their MACs
	disks []guestDisk // every disk of every guest started, in order
}

// guestDisk is one disk given to a guest.
type guestDisk struct {
	vm   *hv.LinuxVM
	spec console.DiskSpec
	size uint64
	nbd  *nbd.Client // nil for a RAM disk
}

// nbdTimeout is how long a guest's requests wait for an NBD server that
// went away before they fail: long enough for a server to restart.
const nbdTimeout = 60 * time.Second

// BootOS implements console.OSHost.
func (l *linuxHost) BootOS(r console.BootRequest) (console.Guest, error) {
	cfg := l.config(r.VCPUs, r.Memory, r.Cmdline)
	release := func() {
		for _, f := range cfg.Release {
			f()
		}
	}
	disks, err := l.openDisks(r.Disks, &cfg)
	if err != nil {
		release()
		return nil, err
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
	l.mu.Lock()
	for i := range disks {
		disks[i].vm = vm
	}
	l.disks = slices.DeleteFunc(l.disks, func(d guestDisk) bool { return d.vm.Info().Outcome != "running" })
	l.disks = append(l.disks, disks...)
	l.mu.Unlock()
	return vm, nil
}

// openDisks opens the disks specs ask for and puts them in cfg: RAM
// disks, and NBD exports through the control plane's TCP, each client
// closed when the VM is freed.
func (l *linuxHost) openDisks(specs []console.DiskSpec, cfg *hv.LinuxConfig) ([]guestDisk, error) {
	if len(specs) > hv.MaxDisks {
		return nil, fmt.Errorf("%d disks: a guest has at most %d", len(specs), hv.MaxDisks)
	}
	var out []guestDisk
	for _, spec := range specs {
		if spec.RAM != 0 {
			cfg.Disks = append(cfg.Disks, virtio.NewMemDisk(make([]byte, spec.RAM), virtio.MemDiskOptions{Discard: true}))
			out = append(out, guestDisk{spec: spec, size: spec.RAM})
			continue
		}
		if l.net == nil || l.net.stack == nil {
			return nil, fmt.Errorf("disk=%s: this node has no control-plane address to reach the server from (bigiron.ip)", spec)
		}
		st := l.net.stack
		c, err := nbd.Dial(context.Background(), nbd.Config{
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return st.DialTCP(ctx, netip.MustParseAddrPort(addr))
			},
			Addr: spec.Server.String(), Export: spec.Export, Timeout: nbdTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("disk=%s: %w", spec, err)
		}
		cfg.Release = append(cfg.Release, func() { c.Close() })
		d, err := netdisk.New(c)
		if err != nil {
			return nil, fmt.Errorf("disk=%s: %w", spec, err)
		}
		cfg.Disks = append(cfg.Disks, d)
		out = append(out, guestDisk{spec: spec, size: d.Size(), nbd: c})
	}
	return out, nil
}

// Disks implements console.DiskLister: the disks of the guests still
// running.
func (l *linuxHost) Disks() []console.DiskInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []console.DiskInfo
	n := map[*hv.LinuxVM]int{}
	for _, d := range l.disks {
		in := d.vm.Info()
		i := n[d.vm]
		n[d.vm]++
		if in.Outcome != "running" {
			continue
		}
		di := console.DiskInfo{VM: in.ID, Name: "vd" + string(rune('a'+i)), Spec: d.spec, Size: d.size}
		if st := d.vm.Disks(); i < len(st) {
			di.Block = st[i]
		}
		if d.nbd != nil {
			s := d.nbd.Status()
			di.NBD = &s
		}
		out = append(out, di)
	}
	return out
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
