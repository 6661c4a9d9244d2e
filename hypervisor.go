// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"github.com/big-iron/big-iron/board"
	"github.com/big-iron/big-iron/boot/memmap"
	"github.com/big-iron/big-iron/hyperkernel/frames"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/hyperkernel/shell"
)

// Guest frames come from free memory between 16 MiB and 256 MiB for now;
// the network drivers' DMA buffers live above the Go heap.
const (
	guestFramesStart = 16 << 20
	guestFramesEnd   = 256 << 20
)

// startHypervisor prepares VMX and returns the vm commands; where VMX is
// unavailable the commands say why.
func startHypervisor(p *board.Platform) []*shell.Command {
	var m memmap.Map
	for _, r := range p.GuestMemory() {
		lo, hi := max(r.Start, guestFramesStart), min(r.End(), guestFramesEnd)
		if lo < hi {
			m = append(m, memmap.Region{Start: lo, Size: hi - lo, Type: memmap.Usable})
		}
	}
	pool, err := frames.NewPool(m)
	if err != nil {
		return hv.Commands(nil, nil, err.Error())
	}
	h, err := hv.New(p, pool)
	if err != nil {
		return hv.Commands(nil, nil, err.Error())
	}
	var os hv.OSHost
	if kernel, initrd := guestFiles(); kernel != nil {
		os = &linuxHost{h: h, kernel: kernel, initrd: initrd}
	}
	return hv.Commands(h, os, "")
}
