// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Command big-iron is the bare-metal hyperkernel image. Every server of a
// big-iron cluster boots it; it brings up the machine, prints a hardware
// summary and serves the hyperkernel shell on the serial console.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	p := platform()
	fmt.Printf("big-iron hyperkernel %s (%s, %s)\n", "dev", runtime.Version(), p.Name)
	fmt.Print(p.Summary())
	p.Halt()
}
