// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/stress"
)

// Build identifies the running image.
type Build struct {
	// Revision is the git revision the image was built from ("unknown"
	// when built outside a checkout), with "+dirty" for local changes.
	Revision string
	// Go is the Go toolchain version; Tamago the tamago module version.
	Go     string
	Tamago string
}

// System holds what the machine commands report on.
type System struct {
	Platform *board.Platform
	Build    Build
	// Uptime returns the time since boot.
	Uptime func() time.Duration
}

// SystemCommands returns version, cpus, mem, uptime, stress, halt and
// reboot.
func SystemCommands(sys *System) []*shell.Command {
	noArgs := func(name string, run func(w io.Writer) error) func(io.Writer, []string) error {
		return func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: %s takes no arguments", shell.ErrUsage, name)
			}
			return run(w)
		}
	}
	return []*shell.Command{
		{Name: "version", Help: "image revision, Go and tamago versions", Run: noArgs("version", sys.version)},
		{Name: "cpus", Help: "each core: APIC id, state, VMX capable, TSC kHz", Run: noArgs("cpus", sys.cpus)},
		{Name: "mem", Help: "physical memory map and memory free for guests", Run: noArgs("mem", sys.mem)},
		{Name: "uptime", Help: "time since boot", Run: noArgs("uptime", sys.uptime)},
		{Name: "stress", Usage: "[DURATION]", Help: "stop the world over and over while goroutines wake each other on every core (default 10s)", Run: sys.stress},
		{Name: "halt", Help: "stop this node (power stays on; reset to restart)", Run: noArgs("halt", sys.halt)},
		{Name: "reboot", Help: "reset this node", Run: noArgs("reboot", sys.reboot)},
	}
}

func (sys *System) version(w io.Writer) error {
	fmt.Fprintf(w, "big-iron %s\ngo %s\ntamago %s\n", sys.Build.Revision, sys.Build.Go, sys.Build.Tamago)
	return nil
}

func (sys *System) cpus(w io.Writer) error {
	p := sys.Platform
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "cpu\tapic\trole\tstate\tvmx\tept\ttsc-khz")
	for i, c := range p.CPUs {
		role, state, vmx, ept := "AP", "offline", "no", "no"
		if c.BSP {
			role = "BSP"
		}
		if c.Online {
			state = "online"
		}
		if c.VMX.Capable {
			vmx = "yes"
		}
		if c.VMX.EPT {
			ept = "yes"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%d\n", i, c.APICID, role, state, vmx, ept, p.TSCHz/1000)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d cores, %d online; TSC from %s; Go runtime on %d hardware threads\n",
		len(p.CPUs), p.OnlineCPUs(), p.TSCSource, runtime.GOMAXPROCS(0))
	if n := sys.extraThreadRequests(); n > 0 {
		fmt.Fprintf(w, "Go runtime asked for a hardware thread beyond the cores %d times; each time its work went back to the scheduler\n", n)
	}
	for _, c := range p.CPUs {
		if !c.VMX.Capable && c.VMX.Reason != "" {
			fmt.Fprintf(w, "vmx: %s\n", c.VMX.Reason)
			break
		}
	}
	return nil
}

func (sys *System) mem(w io.Writer) error {
	p := sys.Platform
	if len(p.Memory) == 0 {
		fmt.Fprintln(w, "no memory map from the boot loader")
	} else {
		fmt.Fprint(w, p.Memory.String())
	}
	for _, r := range p.Reserved {
		fmt.Fprintf(w, "reserved 0x%016x-0x%016x %10s  %s\n", r.Start, r.End()-1, memmap.FormatSize(r.Size), r.Owner)
	}
	free := p.GuestMemory()
	fmt.Fprintf(w, "free for guests: %s in %d regions\n", memmap.FormatSize(free.TotalUsable()), len(free))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "Go runtime: %s obtained (heap %s in use, stacks %s), %d collections\n",
		memmap.FormatSize(ms.Sys), memmap.FormatSize(ms.HeapInuse), memmap.FormatSize(ms.StackInuse), ms.NumGC)
	return nil
}

// Bounds of the stress command's duration.
const (
	minStress     = 100 * time.Millisecond
	maxStress     = 10 * time.Minute
	defaultStress = 10 * time.Second
)

func (sys *System) stress(w io.Writer, args []string) error {
	d := defaultStress
	switch len(args) {
	case 0:
	case 1:
		var err error
		if d, err = time.ParseDuration(args[0]); err != nil || d < minStress || d > maxStress {
			return fmt.Errorf("%w: stress takes a duration from %v to %v, as 30s or 2m", shell.ErrUsage, minStress, maxStress)
		}
	default:
		return fmt.Errorf("%w: stress takes at most a duration", shell.ErrUsage)
	}
	before := sys.extraThreadRequests()
	r := stress.Scheduler(d)
	fmt.Fprintf(w, "stress: %d stop-the-world pauses (%v each) and %d goroutine hand-offs in %v\n",
		r.Stops, r.PerStop().Round(10*time.Nanosecond), r.Handoffs, r.Elapsed.Round(time.Millisecond))
	if sys.Platform.ExtraThreadRequests != nil {
		n := sys.extraThreadRequests()
		fmt.Fprintf(w, "stress: the Go runtime asked for a hardware thread beyond the cores %d times (%d since boot); each time its work went back to the scheduler\n", n-before, n)
	}
	return nil
}

// extraThreadRequests returns the board's count of refused hardware
// thread requests, 0 where it keeps none.
func (sys *System) extraThreadRequests() uint64 {
	if f := sys.Platform.ExtraThreadRequests; f != nil {
		return f()
	}
	return 0
}

func (sys *System) uptime(w io.Writer) error {
	d := sys.Uptime()
	fmt.Fprintf(w, "up %s\n", d.Truncate(time.Millisecond))
	return nil
}

func (sys *System) halt(w io.Writer) error {
	fmt.Fprintln(w, "halting")
	if sys.Platform.Halt == nil {
		return fmt.Errorf("this platform cannot halt")
	}
	sys.Platform.Halt()
	return nil
}

func (sys *System) reboot(w io.Writer) error {
	fmt.Fprintln(w, "rebooting")
	if sys.Platform.Reboot == nil {
		return fmt.Errorf("this platform cannot reboot")
	}
	sys.Platform.Reboot()
	return fmt.Errorf("reset did not take effect")
}
