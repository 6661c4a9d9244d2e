// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Package pc is big-iron's board support for PC-class x86 machines:
// BIOS or UEFI servers, Bochs, and QEMU's pc and q35 machines. It is
// imported for its side effects by the image's main package; early
// initialization is machine/board/x86's (x86.Machine), and the rest of the image
// sees only the board.Platform value it describes.
//
// It must be built with the `linkcpuinit` tag (big-iron's own entry point,
// machine/board/x86) and the `linkprintk` tag (console output goes to COM1 here).
package pc

import (
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/x86"
)

// machine is a PC: network cards on PCI.
var machine = x86.Machine{Name: "pc", NICs: x86.PCINICs}

// plat is set during board init.
var plat *board.Platform

func init() {
	plat = machine.Start()
}

// Platform returns the description of this machine.
func Platform() *board.Platform {
	return plat
}
