// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"github.com/big-iron/big-iron/boot/bzimage"
	"github.com/big-iron/big-iron/boot/memmap"
	"github.com/big-iron/big-iron/hyperkernel/devices"
	"github.com/big-iron/big-iron/hyperkernel/hv"
)

// defaultGuestCmdline is the guest kernel's command line unless the
// operator gives one: the console on the emulated COM1, early messages
// there too, the kernel where it was loaded. tsc=reliable: the guest TSC
// is the host's invariant TSC, and the guest has no second clock (no
// HPET, no ACPI PM timer) but jiffies to check it against, whose ticks a
// busy emulated node delivers late; without it Linux declares the TSC
// unstable and falls back to jiffies as its clocksource.
const defaultGuestCmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr tsc=reliable"

// defaultDistGuestCmdline is the command line of a guest that spans
// nodes. psi=0: pressure-stall accounting has every CPU's per-CPU
// counters read, and written, by a worker on another CPU every two
// seconds, under a sequence count whose readers retry while the owner
// writes; with the CPUs on different nodes each retry waits for pages to
// cross the network, and the worker spun for tens of seconds (soft
// lockups) in Bochs.
const defaultDistGuestCmdline = defaultGuestCmdline + " psi=0"

// linuxHost boots the image's Linux guest on the hypervisor.
type linuxHost struct {
	h              *hv.Hypervisor
	kernel, initrd []byte
}

// BootOS implements hv.OSHost.
func (l *linuxHost) BootOS(vcpus int, memory uint64, cmdline string) (hv.Guest, error) {
	return l.h.BootLinux(l.config(vcpus, memory, cmdline))
}

// config is the configuration of the image's Linux with vcpus processors,
// memory bytes of RAM and cmdline (empty: defaultGuestCmdline).
func (l *linuxHost) config(vcpus int, memory uint64, cmdline string) hv.LinuxConfig {
	if cmdline == "" {
		cmdline = defaultGuestCmdline
	}
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

// Guests implements hv.OSHost.
func (l *linuxHost) Guests() []hv.Guest {
	var gs []hv.Guest
	for _, vm := range l.h.VMs() {
		gs = append(gs, vm)
	}
	return gs
}
