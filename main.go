// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// Command big-iron is the bare-metal hyperkernel image. Every server of a
// big-iron cluster boots it; it brings up the machine, prints a banner and
// a hardware summary, and serves the hyperkernel shell on the serial
// console.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/console/metrics"
	"github.com/big-iron/big-iron/console/shell"
)

// traceBits sizes the node's event ring: the latest 16384 events (768
// KiB of heap).
const traceBits = 14

func main() {
	start := time.Now()
	p := platform()
	b := buildInfo()

	fmt.Printf("big-iron hyperkernel %s (%s, tamago %s) on %s\n", b.Revision, b.Go, b.Tamago, p.Name)
	fmt.Print(p.Summary())

	sys := &console.System{
		Platform: p,
		Build:    b,
		Uptime:   func() time.Duration { return time.Since(start) },
	}
	cmds := console.SystemCommands(sys)
	cmds = append(cmds, console.VMXCommand(p.ReadMSR, p.CPUs[0].VMX.Capable, p.CPUs[0].VMX.Reason))
	cmds = append(cmds, console.SVMCommand(p.CPUID, p.ReadMSR))
	// the network first: it reserves its DMA memory before the
	// hypervisor hands out guest memory
	notices := &lateWriter{}
	var nn nodeNet
	netCmds, agent := startNetwork(p, notices, &nn)
	hvCmds, h, l := startHypervisor(p, &nn)
	cmds = append(cmds, hvCmds...)
	cmds = append(cmds, netCmds...)
	ring := trace.NewRing(traceBits)
	distCmds, dist := distCommands(h, l, agent, notices, ring)
	cmds = append(cmds, distCmds...)
	withDist(cmds, dist)
	src := metrics.Sources{Dist: dist}
	if dist == nil {
		ring = nil
	}
	cmds = append(cmds, console.TraceCommand(ring))
	src.Trace = ring
	if agent != nil {
		src.Cluster = agent
	}
	if l != nil {
		src.OS, src.Disks = l, l
	}
	serveMetrics(&nn, src)
	sh, err := shell.New(cmds...)
	if err != nil {
		fmt.Printf("shell: %v\n", err)
		p.Halt()
	}
	notices.set(sh.Notices())
	serveSSH(&nn, sh, notices)
	for {
		if err := sh.Serve(p.Console); err != nil {
			fmt.Printf("shell: %v\n", err)
		}
	}
}

// lateWriter passes writes to a writer set once the shell exists, and to
// standard output before.
type lateWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lateWriter) set(w io.Writer) {
	l.mu.Lock()
	l.w = w
	l.mu.Unlock()
}

// Write holds the lock while it writes, so that set, and the shell's
// first prompt after it, wait for a line already going to the UART.
func (l *lateWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return os.Stdout.Write(p)
	}
	return l.w.Write(p)
}

// revision is the git revision, set by the Makefile with -X; the Go
// toolchain's own VCS stamp is used where it is empty.
var revision string

// buildInfo reads the revision and module versions the Go linker embedded.
func buildInfo() console.Build {
	b := console.Build{Revision: "unknown", Go: runtime.Version(), Tamago: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
			if len(b.Revision) > 12 {
				b.Revision = b.Revision[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		b.Revision += "+dirty"
	}
	if revision != "" {
		b.Revision = revision
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/usbarmory/tamago" {
			b.Tamago = d.Version
		}
	}
	return b
}
