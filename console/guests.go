// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/vmm/guestmem"
)

// OSHost boots operating-system guests: on bare metal the hv.Hypervisor
// with the guest image the node carries.
type OSHost interface {
	// BootOS starts a guest as r asks (NUMA aside).
	BootOS(r hv.LinuxRequest) (Guest, error)
	// Guests lists the guests started so far, running or not.
	Guests() []Guest
}

// Guest is an operating-system guest.
type Guest interface {
	Info() hv.VMInfo
	Console() *hv.ConsoleLog
	// Input types bytes on the guest's console and returns how many
	// its receive buffer took.
	Input(p []byte) int
	// VCPUs describes the virtual processors.
	VCPUs() []hv.VCPUInfo
	Stop()
}

// bootUsage is the form of `vm boot`.
const bootUsage = "`vm boot linux [vcpus=N] [mem=SIZE] [disk=ram:SIZE|nbd://ADDR[:PORT]/EXPORT[,...]] [net=on|MAC] [root=vdX] [kernel=URL] [initrd=URL] [cmdline=...]` or `vm boot multiboot kernel=URL [module=URL[,URL...]] [cmdline=...] [vcpus=N] [mem=SIZE]`"

// bootOS runs `vm boot linux|multiboot ...`.
func bootOS(w io.Writer, os OSHost, args []string) error {
	var r hv.LinuxRequest
	var err error
	switch {
	case len(args) > 0 && args[0] == "linux":
		r, err = linuxRequest(args[1:])
	case len(args) > 0 && args[0] == "multiboot":
		r, err = multibootRequest(args[1:])
	default:
		return fmt.Errorf("%w: want %s", shell.ErrUsage, bootUsage)
	}
	if err != nil {
		return err
	}
	g, err := os.BootOS(r)
	if err != nil {
		return err
	}
	in := g.Info()
	fmt.Fprintf(w, "vm %d: %s, %d vCPUs, %d MiB%s: started (`console %d` shows its console); %s\n", in.ID, in.Name, in.VCPUs, in.Memory>>20, ramAbove4G(in.Memory), in.ID, in.SetupLine())
	return nil
}

// linuxRequest reads the words after `vm boot linux`.
func linuxRequest(args []string) (hv.LinuxRequest, error) {
	r := hv.LinuxRequest{VCPUs: hv.DefaultGuestVCPUs, Memory: hv.DefaultGuestMemory}
	var a Args
	a.Int("vcpus", &r.VCPUs, 1, 64)
	a.Size("mem", &r.Memory)
	a.Func("disk", func(v string) (err error) { r.Disks, err = parseDisks(v); return err })
	a.Func("net", func(v string) (err error) { r.Net, err = parseNet(v); return err })
	a.String("cmdline", &r.Cmdline)
	bootFileKeys(&a, &r.Boot)
	root := ""
	a.String("root", &root)
	if err := a.Parse(args); err != nil {
		return r, err
	}
	if a.Given("root") {
		var err error
		if r.Root, err = parseRoot(root, len(r.Disks)); err != nil {
			return r, fmt.Errorf("%w: %v", shell.ErrUsage, err)
		}
	}
	return r, nil
}

// multibootRequest reads the words after `vm boot multiboot`: a
// Multiboot 1 kernel and its modules, fetched over HTTP.
func multibootRequest(args []string) (hv.LinuxRequest, error) {
	r := hv.LinuxRequest{VCPUs: hv.DefaultGuestVCPUs, Memory: hv.DefaultGuestMemory, Multiboot: true}
	var a Args
	a.Int("vcpus", &r.VCPUs, 1, 64)
	a.Size("mem", &r.Memory)
	a.String("cmdline", &r.Cmdline)
	a.Func("kernel", func(v string) error { return checkURL(v, &r.Boot.Kernel) })
	a.Func("module", func(v string) error { return parseModules(v, &r.Boot.Modules) })
	if err := a.Parse(args); err != nil {
		return r, err
	}
	if r.Boot.Kernel == "" {
		return r, fmt.Errorf("%w: a Multiboot guest needs kernel=http://SERVER/PATH", shell.ErrUsage)
	}
	return r, nil
}

// ramAbove4G says where a guest's RAM of mem bytes is when part of it is
// above 4 GiB (guestmem.Split), nothing otherwise.
func ramAbove4G(mem uint64) string {
	s := guestmem.NewSplit(mem)
	if s.High == 0 {
		return ""
	}
	return fmt.Sprintf(" at %v", s)
}

// findGuest returns the guest named by args[0], or the newest.
func findGuest(os OSHost, args []string) (Guest, error) {
	gs := os.Guests()
	if len(gs) == 0 {
		return nil, fmt.Errorf("no VMs (start one with `vm boot linux`)")
	}
	if len(args) == 0 {
		return gs[len(gs)-1], nil
	}
	id, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, fmt.Errorf("%w: VM id %q", shell.ErrUsage, args[0])
	}
	for _, g := range gs {
		if g.Info().ID == id {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no VM %d", id)
}

// listOS prints `vm list`.
func listOS(w io.Writer, os OSHost) {
	fmt.Fprintf(w, "id  name     vcpus  memory    up        exits      state\n")
	for _, g := range os.Guests() {
		in := g.Info()
		fmt.Fprintf(w, "%-3d %-8s %-6d %-9s %-9s %-10d %s\n", in.ID, in.Name, in.VCPUs,
			fmt.Sprintf("%dM", in.Memory>>20), time.Since(in.Started).Round(time.Second), in.Exits.Total(), in.Outcome)
	}
}

// DetachKey, typed on an attached console, returns the operator to the
// hyperkernel shell: Ctrl-] (as in telnet and virsh console).
const DetachKey = 0x1D

// ConsoleCommand returns `console [ID] [wait=SECONDS]`. On the operator's
// terminal it attaches to the guest's console: the output so far, then
// the live output, and every key typed goes to the guest until Ctrl-]
// (DetachKey). With wait=, or where there is no terminal, it prints the
// output and follows it for the given seconds (default 0: what is there
// now) without taking input.
func ConsoleCommand(os OSHost) *shell.Command {
	parse := func(args []string) (Guest, time.Duration, bool, error) {
		if os == nil {
			return nil, 0, false, fmt.Errorf("no VMs on this node")
		}
		secs := 0
		var a Args
		a.Int("wait", &secs, 0, 3600)
		ids, err := a.ParseMixed(args)
		if err != nil {
			return nil, 0, false, err
		}
		g, err := findGuest(os, ids)
		return g, time.Duration(secs) * time.Second, a.Given("wait"), err
	}
	follow := func(w io.Writer, g Guest, wait time.Duration) {
		var at uint64
		deadline := time.Now().Add(wait)
		for {
			b, next := g.Console().Since(at)
			w.Write(crlf(b))
			at = next
			if !time.Now().Before(deadline) || len(b) == 0 && g.Info().Outcome != "running" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(w, "\n[vm %d: %s]\n", g.Info().ID, g.Info().Outcome)
	}
	return &shell.Command{
		Name:  "console",
		Usage: "[ID] [wait=SECONDS]",
		Help:  "attach to a VM's console (the newest VM by default; Ctrl-] detaches)",
		Run: func(w io.Writer, args []string) error {
			g, wait, _, err := parse(args)
			if err != nil {
				return err
			}
			follow(w, g, wait)
			return nil
		},
		Attach: func(in io.Reader, w io.Writer, args []string) error {
			g, wait, following, err := parse(args)
			if err != nil {
				return err
			}
			if following {
				follow(w, g, wait)
				return nil
			}
			return attach(in, w, g)
		},
	}
}

// attach connects the operator to g's console until DetachKey, or a key
// after the VM ended.
func attach(in io.Reader, w io.Writer, g Guest) error {
	id := g.Info().ID
	fmt.Fprintf(w, "[vm %d console: Ctrl-] returns to the shell]\n", id)
	done := make(chan struct{})
	ended := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var at uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			b, next := g.Console().Since(at)
			if len(b) > 0 {
				w.Write(crlf(b))
			}
			at = next
			if len(b) == 0 && g.Info().Outcome != "running" {
				fmt.Fprintf(w, "\n[vm %d: %s; press a key]\n", id, g.Info().Outcome)
				close(ended)
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	buf := make([]byte, 256)
	var rerr error
	for {
		n, err := in.Read(buf)
		if err != nil {
			rerr = err
			break
		}
		stopped := false
		select {
		case <-ended:
			stopped = true
		default:
		}
		if stopped {
			break
		}
		if i := bytes.IndexByte(buf[:n], DetachKey); i >= 0 {
			g.Input(buf[:i])
			break
		}
		g.Input(buf[:n])
	}
	close(done)
	wg.Wait()
	fmt.Fprintf(w, "\n[detached from vm %d]\n", id)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return fmt.Errorf("reading the terminal: %w", rerr)
	}
	return nil
}

// crlf turns lone line feeds into CR LF for the serial terminal.
func crlf(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/16)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// VCPUsCommand returns `vcpus [ID]`: each vCPU of a VM with its state,
// the core it runs on and its exit rate, sampled over half a second.
func VCPUsCommand(os OSHost) *shell.Command {
	return &shell.Command{
		Name:  "vcpus",
		Usage: "[ID]",
		Help:  "show a VM's vCPUs: state, core, exits per second (the newest VM by default)",
		Run: func(w io.Writer, args []string) error {
			if os == nil {
				return fmt.Errorf("no VMs on this node")
			}
			g, err := findGuest(os, args)
			if err != nil {
				return err
			}
			before := g.VCPUs()
			const sample = 500 * time.Millisecond
			time.Sleep(sample)
			after := g.VCPUs()
			fmt.Fprintf(w, "vm %d (%s)\nvcpu  apic  state          core  exits      exits/s  in service  requested\n", g.Info().ID, g.Info().Name)
			for i, v := range after {
				rate := 0.0
				if i < len(before) && v.Exits >= before[i].Exits {
					rate = float64(v.Exits-before[i].Exits) / sample.Seconds()
				}
				core := "-"
				if v.Core >= 0 {
					core = strconv.Itoa(v.Core)
				}
				fmt.Fprintf(w, "%-5d %-5d %-14s %-5s %-10d %-8.0f %-11s %s\n", v.Index, v.APICID, v.State, core, v.Exits, rate, &v.InService, &v.Requested)
			}
			return nil
		},
	}
}
