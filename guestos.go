// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/hyperkernel/netdisk"
	"github.com/big-iron/big-iron/machine/boot/bzimage"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/multiboot"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/fetch"
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

// linuxHost boots the image's Linux guest on the hypervisor, on this node
// alone or as the device node of a distributed VM, and opens its disks
// and network card.
type linuxHost struct {
	h              *hv.Hypervisor
	kernel, initrd []byte
	net            *nodeNet

	mu    sync.Mutex
	disks map[virtio.Disk]guestDisk // the disks of guests not yet freed
}

func newLinuxHost(h *hv.Hypervisor, kernel, initrd []byte, net *nodeNet) *linuxHost {
	return &linuxHost{h: h, kernel: kernel, initrd: initrd, net: net, disks: make(map[virtio.Disk]guestDisk)}
}

// guestDisk is what backs one guest disk.
type guestDisk struct {
	spec hv.DiskSpec
	nbd  *nbd.Client // nil for a RAM disk
}

// nbdTimeout is how long a guest's requests wait for an NBD server that
// went away before they fail: long enough for a server to restart.
const nbdTimeout = 60 * time.Second

// BootOS implements console.OSHost.
func (l *linuxHost) BootOS(r hv.LinuxRequest) (console.Guest, error) {
	config := l.config
	if r.Multiboot {
		config = l.multibootConfig
	}
	cfg, err := config(r)
	if err != nil {
		return nil, err
	}
	return l.h.BootLinux(cfg)
}

// Bounds on a Multiboot guest's files fetched over the network.
const (
	maxMultibootKernel = 32 << 20
	maxMultibootModule = 32 << 20
)

// multibootConfig is the configuration of a Multiboot 1 guest: its
// kernel and modules fetched over HTTP, entered in 32-bit protected mode
// on a PC whose APICs power on in xAPIC mode, with the debug-exit port
// test suites end with.
func (l *linuxHost) multibootConfig(r hv.LinuxRequest) (hv.LinuxConfig, error) {
	kernel, err := l.fetch("kernel=", r.Boot.Kernel, maxMultibootKernel)
	if err != nil {
		return hv.LinuxConfig{}, err
	}
	mods := make([]multiboot.GuestModule, len(r.Boot.Modules))
	for i, u := range r.Boot.Modules {
		if mods[i].Data, err = l.fetch("module="+u, u, maxMultibootModule); err != nil {
			return hv.LinuxConfig{}, err
		}
		mods[i].Cmdline = u
	}
	return hv.LinuxConfig{
		Name:   "multiboot",
		VCPUs:  r.VCPUs,
		Memory: r.Memory,
		Load: func(mem devices.GuestMemory, layout memmap.Map, _ uint64) (hv.Entry, error) {
			lo, err := multiboot.Load(mem, multiboot.LoadConfig{Kernel: kernel, Cmdline: r.Cmdline, Modules: mods, RAM: layout, Name: "big-iron"})
			if err != nil {
				return hv.Entry{}, err
			}
			return hv.Entry{Flat32: true, EIP: lo.Entry, RAX: uint64(multiboot.BootMagic), RBX: uint64(lo.Info)}, nil
		},
		XAPIC:     true,
		DebugExit: true,
	}, nil
}

// Bounds on boot files fetched over the network: they are held in the Go
// heap (a quarter GiB, the image included) until the guest is loaded.
const (
	maxFetchedKernel = 48 << 20
	maxFetchedInitrd = 80 << 20
)

// bootFiles returns the kernel and initramfs r asks for: fetched over
// HTTP through the control plane where r.Boot names them, else the
// image's own.
func (l *linuxHost) bootFiles(r hv.LinuxRequest) (kernel, initrd []byte, err error) {
	kernel, initrd = l.kernel, l.initrd
	if r.Boot.Kernel == "" && r.Boot.Initrd == "" {
		if kernel == nil {
			return nil, nil, errors.New("this image carries no guest kernel: give kernel=http://SERVER/PATH (or build the image with GUEST=linux)")
		}
		return kernel, initrd, nil
	}
	if r.Boot.Kernel != "" {
		if kernel, err = l.fetch("kernel=", r.Boot.Kernel, maxFetchedKernel); err != nil {
			return nil, nil, err
		}
		initrd = nil
	} else if kernel == nil {
		return nil, nil, errors.New("initrd= without kernel=: this image carries no guest kernel")
	}
	if r.Boot.Initrd != "" {
		if initrd, err = l.fetch("initrd=", r.Boot.Initrd, maxFetchedInitrd); err != nil {
			return nil, nil, err
		}
	}
	return kernel, initrd, nil
}

// fetch gets a guest's boot file over HTTP through the control plane's
// TCP, at most limit bytes; errors begin with what (the console word
// that asked for it).
func (l *linuxHost) fetch(what, url string, limit int64) ([]byte, error) {
	if l.net == nil || l.net.stack == nil {
		return nil, fmt.Errorf("%s: this node has no control-plane address to fetch from (bigiron.ip)", what)
	}
	b, err := fetch.Get(context.Background(), fetch.Config{Dial: l.net.stack.DialTCP, Limit: limit}, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// config is the configuration of Linux as r asks for it: the image's
// kernel and initramfs, or those r names on an HTTP server.
func (l *linuxHost) config(r hv.LinuxRequest) (hv.LinuxConfig, error) {
	kernel, initrd, err := l.bootFiles(r)
	if err != nil {
		return hv.LinuxConfig{}, err
	}
	cmdline := l.h.GuestCmdline(r.KernelCmdline(defaultGuestCmdline), r.Dilation)
	return hv.LinuxConfig{
		Name:   "linux",
		VCPUs:  r.VCPUs,
		Memory: r.Memory,
		Load: func(mem devices.GuestMemory, layout memmap.Map, rsdp uint64) (hv.Entry, error) {
			e, err := bzimage.Load(mem, bzimage.Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Memory: layout, RSDP: rsdp})
			if err != nil {
				return hv.Entry{}, err
			}
			return hv.Entry{
				Long: hv.LongModeEntry{RIP: e.RIP, RSP: e.RSP, CR3: e.CR3, GDTBase: e.GDTBase, GDTLimit: e.GDTLimit, CS: e.CS, DS: e.DS},
				RSI:  e.RSI,
			}, nil
		},
		Open: func(cfg *hv.LinuxConfig) error { return l.open(r.Disks, r.Net, cfg) },
	}, nil
}

// open opens the disks and the network card a guest asked for and puts
// them in cfg, with what releases each (once) in cfg.Release.
func (l *linuxHost) open(disks []hv.DiskSpec, card *hv.NetSpec, cfg *hv.LinuxConfig) error {
	if len(disks) > hv.MaxDisks {
		return fmt.Errorf("%d disks: a guest has at most %d", len(disks), hv.MaxDisks)
	}
	for _, spec := range disks {
		d, err := l.openDisk(spec, cfg)
		if err != nil {
			return fmt.Errorf("disk=%s: %w", spec, err)
		}
		cfg.Disks = append(cfg.Disks, d)
	}
	if card == nil {
		return nil
	}
	st, err := l.station(card.MAC)
	if err != nil {
		return err
	}
	cfg.Net = st
	cfg.Release = append(cfg.Release, sync.OnceFunc(func() { l.net.mux.RemoveStation(st) }))
	return nil
}

// openDisk opens one disk: a RAM disk, or an NBD export through the
// control plane's TCP.
func (l *linuxHost) openDisk(spec hv.DiskSpec, cfg *hv.LinuxConfig) (virtio.Disk, error) {
	var d virtio.Disk
	var c *nbd.Client
	if spec.RAM != 0 {
		d = virtio.NewMemDisk(make([]byte, spec.RAM), virtio.MemDiskOptions{Discard: true})
	} else {
		if l.net == nil || l.net.stack == nil {
			return nil, fmt.Errorf("this node has no control-plane address to reach the server from (bigiron.ip)")
		}
		st := l.net.stack
		var err error
		c, err = nbd.Dial(context.Background(), nbd.Config{
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return st.DialTCP(ctx, netip.MustParseAddrPort(addr))
			},
			Addr: spec.Server.String(), Export: spec.Export, Timeout: nbdTimeout,
		})
		if err != nil {
			return nil, err
		}
		if d, err = netdisk.New(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	l.mu.Lock()
	l.disks[d] = guestDisk{spec: spec, nbd: c}
	l.mu.Unlock()
	cfg.Release = append(cfg.Release, sync.OnceFunc(func() {
		l.mu.Lock()
		delete(l.disks, d)
		l.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}))
	return d, nil
}

// station bridges a guest's network card onto the node's NIC, with mac or
// (zero) a locally administered MAC made of the node's and a card
// number: 0a:b1 and the node MAC's last three bytes, then the lowest
// number no running guest's card has. A guest booted again after `vm
// stop` so gets the MAC it had, and from a DHCP server the address it
// had.
func (l *linuxHost) station(mac link.MAC) (*mux.Station, error) {
	if l.net == nil || l.net.mux == nil {
		return nil, fmt.Errorf("net=: this node has no NIC to bridge the guest onto")
	}
	if mac != (link.MAC{}) {
		return l.net.mux.AddStation(mac)
	}
	node := l.net.mux.Default().MAC()
	for card := 1; card <= 0xff; card++ {
		st, err := l.net.mux.AddStation(link.MAC{0x0a, 0xb1, node[3], node[4], node[5], byte(card)})
		if !errors.Is(err, mux.ErrStationExists) {
			return st, err
		}
	}
	return nil, fmt.Errorf("net=on: all 255 of this node's guest MACs are in use")
}

// Guests implements console.OSHost.
func (l *linuxHost) Guests() []console.Guest {
	var gs []console.Guest
	for _, vm := range l.h.VMs() {
		gs = append(gs, vm)
	}
	return gs
}

// Disks implements console.DiskLister: the disks of the guests running
// on this node (a distributed VM's on its device node).
func (l *linuxHost) Disks() []console.DiskInfo {
	var out []console.DiskInfo
	for _, vm := range l.h.VMs() {
		in := vm.Info()
		if in.Outcome != "running" {
			continue
		}
		for i, ds := range vm.Disks() {
			l.mu.Lock()
			gd, ok := l.disks[ds.Disk]
			l.mu.Unlock()
			if !ok {
				gd.spec = hv.DiskSpec{RAM: ds.Disk.Size()}
			}
			di := console.DiskInfo{VM: in.ID, Name: "vd" + string(rune('a'+i)), Spec: gd.spec, Size: ds.Disk.Size(), Block: ds.Stats}
			if gd.nbd != nil {
				s := gd.nbd.Status()
				di.NBD = &s
			}
			out = append(out, di)
		}
	}
	return out
}
