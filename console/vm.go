// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// Runner is what the vm commands drive: the hv.Hypervisor on bare metal.
type Runner interface {
	RunTest(testguest.Variant) (*hv.Result, error)
	Stats() (exits.ExitStats, int)
	NumCores() int
	// Frames returns the node's frames for guests (4 KiB each) in use
	// and in all.
	Frames() (inUse, total int)
	// FailFramesAfter makes every frame allocation after the next n
	// fail (n < 0 cancels); FailFramesPending returns how many may still
	// pass before they do, or -1 if none are asked for.
	FailFramesAfter(n int)
	FailFramesPending() int
	// SliceWatch reports the second way a node ends a guest's turn
	// (AMD-V); SetSliceTimer turns the first, the slice timer, off to
	// test it, and on again.
	SliceWatch() hv.SliceWatchStatus
	SetSliceTimer(on bool) error
}

// VMCommands returns `vm` (`vm run test [VARIANT] [cores=all]`, `vm stat`,
// and with an OS host `vm boot linux ...`, `vm list`, `vm stop [ID]`) and
// `console`. r is nil where VMX is unavailable; the commands then say
// why. os may be nil where the node carries no guest image.
func VMCommands(r Runner, os OSHost, unavailable string) []*shell.Command {
	return []*shell.Command{{
		Name:  "vm",
		Usage: "run test [standard|triplefault|probe] [cores=all] | stat [ID] | boot linux [vcpus=N] [mem=SIZE] [disk=...] [net=on] [root=vdX] [kernel=URL] [initrd=URL] [cmdline=...] | list | stop [ID] | fail [N|off] | slice [on|off]",
		Help:  "run the built-in test guest or boot Linux; list and stop VMs; show VM exits by reason; make frame allocations after the next N fail, until off, or turn AMD-V's slice timer off (testing)",
		Run: func(w io.Writer, args []string) error {
			if r == nil {
				return fmt.Errorf("VMX unavailable: %s", unavailable)
			}
			if len(args) > 0 && (args[0] == "boot" || args[0] == "list" || args[0] == "stop") && os == nil {
				return fmt.Errorf("this image carries no guest operating system (build it with GUEST=linux)")
			}
			switch {
			case len(args) >= 1 && args[0] == "boot":
				return bootOS(w, os, args[1:])
			case len(args) == 1 && args[0] == "list":
				listOS(w, os)
				return nil
			case len(args) >= 1 && args[0] == "stop" && len(args) <= 2:
				g, err := findGuest(os, args[1:])
				if err != nil {
					return err
				}
				g.Stop()
				fmt.Fprintf(w, "vm %d: %s\n", g.Info().ID, g.Info().Outcome)
				return nil
			case len(args) >= 2 && args[0] == "run" && args[1] == "test":
				return runTest(w, r, args[2:])
			case len(args) == 2 && args[0] == "fail":
				return failFrames(w, r, args[1])
			case len(args) >= 1 && args[0] == "slice" && len(args) <= 2:
				return sliceTimer(w, r, args[1:])
			case len(args) == 1 && args[0] == "fail":
				if n := r.FailFramesPending(); n >= 0 {
					fmt.Fprintf(w, "frame allocations: those after the next %d fail\n", n)
				} else {
					fmt.Fprintln(w, "frame allocations: no failure injected")
				}
				return nil
			case len(args) == 2 && args[0] == "stat":
				if _, err := strconv.Atoi(args[1]); err != nil {
					return fmt.Errorf("%w: VM id %q", shell.ErrUsage, args[1])
				}
				if os == nil {
					return fmt.Errorf("this image carries no guest operating system (build it with GUEST=linux)")
				}
				g, err := findGuest(os, args[1:])
				if err != nil {
					return err
				}
				in := g.Info()
				fmt.Fprintf(w, "vm %d (%s, %s): %d exits in %v; %s\n", in.ID, in.Name, in.Outcome, in.Exits.Total(), time.Since(in.Started).Round(time.Second), in.SetupLine())
				fmt.Fprint(w, in.Exits.String())
				writeNetStatus(w, g)
				return nil
			case len(args) == 1 && args[0] == "stat":
				st, runs := r.Stats()
				inUse, total := r.Frames()
				fmt.Fprintf(w, "guest memory: %s in use of %s, %s free\n", memmap.FormatSize(uint64(inUse)<<12),
					memmap.FormatSize(uint64(total)<<12), memmap.FormatSize(uint64(total-inUse)<<12))
				fmt.Fprintf(w, "%d runs, %d exits\n", runs, st.Total())
				fmt.Fprint(w, st.String())
				writeSliceWatch(w, r.SliceWatch())
				return nil
			}
			return fmt.Errorf("%w: want `vm run test [VARIANT] [cores=all]`, `vm stat`, `vm boot linux ...`, `vm list`, `vm stop [ID]`, `vm fail [N|off]` or `vm slice [on|off]`", shell.ErrUsage)
		},
	}, ConsoleCommand(os), VCPUsCommand(os)}
}

// sliceTimer serves `vm slice [on|off]`.
func sliceTimer(w io.Writer, r Runner, args []string) error {
	if len(args) == 1 {
		if args[0] != "on" && args[0] != "off" {
			return fmt.Errorf("%w: vm slice takes on or off", shell.ErrUsage)
		}
		if err := r.SetSliceTimer(args[0] == "on"); err != nil {
			return err
		}
	}
	st := r.SliceWatch()
	if !st.Watched {
		fmt.Fprintln(w, "time slices: VT-x's preemption timer ends each guest's turn; no slice watch")
		return nil
	}
	writeSliceWatch(w, st)
	return nil
}

// writeSliceWatch prints the slice watch's line, where the node has one.
func writeSliceWatch(w io.Writer, st hv.SliceWatchStatus) {
	if !st.Watched {
		return
	}
	timer := "on"
	if st.TimerOff {
		timer = "OFF (testing: only the watch ends a turn)"
	}
	fmt.Fprintf(w, "time slices: slice timer %s; %d turns ended by the watch's NMI (a turn longer than %v)\n", timer, st.Regained, st.Limit.Round(time.Millisecond))
}

// failFrames serves `vm fail N|off`.
func failFrames(w io.Writer, r Runner, arg string) error {
	if arg == "off" {
		r.FailFramesAfter(-1)
		fmt.Fprintln(w, "frame allocations: no failure injected")
		return nil
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: vm fail takes a count of allocations to let through, or off", shell.ErrUsage)
	}
	r.FailFramesAfter(n)
	fmt.Fprintf(w, "frame allocations: those after the next %d fail, until `vm fail off`\n", n)
	return nil
}

func runTest(w io.Writer, r Runner, args []string) error {
	variant, cores := testguest.VariantStandard, ""
	var a Args
	a.Choice("cores", &cores, "all")
	names, err := a.ParseMixed(args)
	if err != nil {
		return err
	}
	for _, name := range names {
		v, ok := variantByName(name)
		if !ok {
			return fmt.Errorf("%w: unknown test guest %q (%s)", shell.ErrUsage, name, variantNames())
		}
		variant = v
	}
	if cores != "all" {
		res, err := r.RunTest(variant)
		if err != nil {
			return err
		}
		fmt.Fprint(w, res.String())
		return nil
	}
	return runOnAllCores(w, r, variant)
}

// maxRounds bounds the rounds of `vm run test cores=all`.
const maxRounds = 8

// runOnAllCores runs one test VM per core at once, so that the scheduler
// spreads them over the cores, round after round until every core has run
// a VM (or maxRounds). It prints each round that reached a new core.
func runOnAllCores(w io.Writer, r Runner, v testguest.Variant) error {
	n := r.NumCores()
	var covered []uint32
	for round := 0; round < maxRounds && len(covered) < n; round++ {
		results := make([]*hv.Result, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = r.RunTest(v) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		before := len(covered)
		for _, res := range results {
			for _, c := range res.Cores {
				if !slices.Contains(covered, c) {
					covered = append(covered, c)
				}
			}
		}
		if round == 0 || len(covered) > before {
			for _, res := range results {
				fmt.Fprint(w, res.String())
			}
		}
	}
	slices.Sort(covered)
	fmt.Fprintf(w, "ran on %d of %d cores %v\n", len(covered), n, covered)
	return nil
}

func variantByName(s string) (testguest.Variant, bool) {
	for _, v := range testguest.Variants() {
		if v.String() == s {
			return v, true
		}
	}
	return 0, false
}

func variantNames() string {
	var n []string
	for _, v := range testguest.Variants() {
		n = append(n, v.String())
	}
	return strings.Join(n, ", ")
}

// NetReporter is a guest that may have a network card.
type NetReporter interface {
	NetStatus() (virtio.NetStatus, bool)
}

// writeNetStatus prints the guest's network card, if it has one: its MAC,
// traffic each way and the frames dropped, by reason.
func writeNetStatus(w io.Writer, g Guest) {
	r, ok := g.(NetReporter)
	if !ok {
		return
	}
	st, ok := r.NetStatus()
	if !ok {
		return
	}
	fmt.Fprintf(w, "network card %v: received %d frames (%s), sent %d (%s), %d waiting\n", st.MAC,
		st.RxFrames, memmap.FormatSize(st.RxBytes), st.TxFrames, memmap.FormatSize(st.TxBytes), st.RxQueued)
	for i, n := range st.Drops {
		if n != 0 {
			fmt.Fprintf(w, "  dropped %d: %v\n", n, virtio.NetDrop(i))
		}
	}
}
