// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// DistRunner runs distributed VMs: implemented by the bare-metal hv.Dist.
type DistRunner interface {
	// Start creates and starts a VM, writing one line per step to
	// progress.
	Start(req hv.DistStart, progress io.Writer) (dvm.Spec, error)
	Status() (hv.DistStatus, error)
	Peek(gpa uint64) (uint32, error)
	Migrate(vcpu, node int) error
	// Evacuate moves every vCPU off a node and has it give back the page
	// copies it does not home and hand its homes on; it returns the
	// vCPUs it moved.
	Evacuate(node int) (int, error)
	Stop() error
}

// DistCommands returns the shell commands of distributed VMs: `dvm`,
// `pages` and `migrate`. A nil runner makes them say why (unavailable).
func DistCommands(r DistRunner, unavailable string) []*shell.Command {
	d := distCommands{r: r, unavailable: unavailable}
	return []*shell.Command{
		{
			Name:  "dvm",
			Usage: "dvm start [guest=counter|pingpong|linux|multiboot] [nodes=N] [vcpus=N] [iters=N] [mem=SIZE] [place=spread|node0] [dilate=N] [move=pull|hysteresis|always|learned] [devices=forward|move] [balance=none|spread|learned] [numa=on] [homes=node0|striped|fill] [firsttouch=on] [moveafter=N] [walkwin=on|off] [large=on|off] [disk=...] [net=on] [root=vdX] [kernel=URL] [initrd=URL] [module=URL,...] [cmdline=...] | stat | peek GPA | evacuate NODE | stop",
			Help:  "run a guest (Linux, or a test guest: shared counter, IPI ping-pong) as one VM across cluster nodes",
			Run:   d.dvm,
		},
		{
			Name:  "pages",
			Usage: "pages [map]",
			Help:  "page placement and remote-fault rates of the distributed VM on this node; map: which pages it holds",
			Run:   d.pages,
		},
		{
			Name:  "migrate",
			Usage: "migrate VCPU NODE",
			Help:  "move a vCPU of the distributed VM to another node while it runs",
			Run:   d.migrate,
		},
	}
}

// distCommands runs the commands of DistCommands on its runner.
type distCommands struct {
	r           DistRunner // nil when distributed VMs are unavailable
	unavailable string     // why, then
}

// need reports whether there is a runner; when there is none it says
// why on w. Commands call it once they have checked the form of their
// arguments, so that usage errors show even without a runner.
func (d distCommands) need(w io.Writer) bool {
	if d.r == nil {
		fmt.Fprintf(w, "distributed VMs unavailable: %s\n", d.unavailable)
		return false
	}
	return true
}

// dvm runs `dvm SUBCOMMAND ARGS...`: it hands ARGS to the subcommand.
func (d distCommands) dvm(w io.Writer, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dvm needs a subcommand: start, stat, peek or stop", shell.ErrUsage)
	}
	switch args[0] {
	case "start":
		return d.dvmStart(w, args[1:])
	case "stat":
		return d.dvmStat(w, args[1:])
	case "peek":
		return d.dvmPeek(w, args[1:])
	case "evacuate":
		return d.dvmEvacuate(w, args[1:])
	case "stop":
		return d.dvmStop(w)
	}
	return fmt.Errorf("%w: dvm: unknown subcommand %q", shell.ErrUsage, args[0])
}

// dvmStart runs `dvm start [NAME=VALUE...]` (see parseDistStart): it
// starts a VM and says what started.
func (d distCommands) dvmStart(w io.Writer, args []string) error {
	req, err := parseDistStart(args)
	if err != nil {
		return err
	}
	if !req.Linux && (req.Disks != nil || req.Net != nil || req.Root != "" || !req.Boot.Empty()) {
		return fmt.Errorf("%w: disk=, net=, root=, kernel= and initrd= are for guest=linux", shell.ErrUsage)
	}
	if !d.need(w) {
		return nil
	}
	spec, err := d.r.Start(req, w)
	if err != nil {
		return err
	}
	if req.Linux {
		writeLinuxStarted(w, d.r, req, spec)
		return nil
	}
	fmt.Fprintf(w, "dvm %d: %v guest, %d vCPUs on %d nodes, %d MiB, %d iterations per vCPU%s%s: started\n",
		spec.ID, req.Guest, spec.VCPUs, spec.Nodes, spec.Pages*4096>>20, spec.Arg, homeMoves(spec), walkWindows(spec))
	return nil
}

// writeLinuxStarted says that the Linux VM spec, which req asked for,
// has started: its size, where its pages and vCPUs are, its time
// dilation and NUMA tables.
func writeLinuxStarted(w io.Writer, r DistRunner, req hv.DistStart, spec dvm.Spec) {
	topology := ""
	if req.NUMA {
		topology = ", an SRAT and a SLIT"
	}
	homes := fmt.Sprintf("pages homed on node %d", st0(r))
	switch spec.Homes {
	case dvm.HomesStriped:
		homes = "pages striped over the nodes"
	case dvm.HomesFill:
		homes = "pages homed in ranges sized by each node's room"
	}
	homes += homeMoves(spec) + walkWindows(spec)
	guest := "Linux"
	if req.Multiboot {
		guest = "Multiboot"
	}
	fmt.Fprintf(w, "dvm %d: %s, %d vCPUs on %d nodes, %d MiB%s (%s, vCPUs placed %v, time dilation %d%s): started; `console` attaches on this node\n",
		spec.ID, guest, spec.VCPUs, spec.Nodes, spec.Pages*4096>>20, ramAbove4G(uint64(spec.Pages)*4096), homes, spec.Place, max(spec.Dilation, 1), topology)
}

// dvmStat runs `dvm stat`: the VM's status on this node, with its vCPUs.
func (d distCommands) dvmStat(w io.Writer, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%w: dvm stat takes no arguments", shell.ErrUsage)
	}
	if !d.need(w) {
		return nil
	}
	st, err := d.r.Status()
	if err != nil {
		return err
	}
	writeDistStatus(w, &st, true)
	return nil
}

// dvmPeek runs `dvm peek GPA`: the 32-bit word of guest memory at GPA.
func (d distCommands) dvmPeek(w io.Writer, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: dvm peek needs a guest-physical address", shell.ErrUsage)
	}
	gpa, err := strconv.ParseUint(args[0], 0, 64)
	if err != nil || gpa%4 != 0 {
		return fmt.Errorf("%w: dvm peek: bad address %q (want a 4-byte aligned number)", shell.ErrUsage, args[0])
	}
	if !d.need(w) {
		return nil
	}
	v, err := d.r.Peek(gpa)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%#x: %d (%#x)\n", gpa, v, v)
	return nil
}

// dvmEvacuate runs `dvm evacuate NODE` (see evacuate).
func (d distCommands) dvmEvacuate(w io.Writer, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: dvm evacuate needs a node", shell.ErrUsage)
	}
	if !d.need(w) {
		return nil
	}
	return evacuate(w, d.r, args[0])
}

// dvmStop runs `dvm stop`: it stops the VM on every node.
func (d distCommands) dvmStop(w io.Writer) error {
	if !d.need(w) {
		return nil
	}
	return d.r.Stop()
}

// pages runs `pages [map]`: the VM's status on this node, without its
// vCPUs, and with map which pages this node holds.
func (d distCommands) pages(w io.Writer, args []string) error {
	if len(args) > 1 || len(args) == 1 && args[0] != "map" {
		return fmt.Errorf("%w: want `pages` or `pages map`", shell.ErrUsage)
	}
	if !d.need(w) {
		return nil
	}
	st, err := d.r.Status()
	if err != nil {
		return err
	}
	writeDistStatus(w, &st, false)
	if len(args) == 1 {
		writePageMap(w, &st)
	}
	return nil
}

// migrate runs `migrate VCPU NODE`: it has the vCPU move to the node at
// its next exit.
func (d distCommands) migrate(w io.Writer, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%w: migrate needs a vCPU and a node", shell.ErrUsage)
	}
	v, err1 := strconv.Atoi(args[0])
	n, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || v < 0 || n < 0 {
		return fmt.Errorf("%w: migrate: bad vCPU %q or node %q", shell.ErrUsage, args[0], args[1])
	}
	if !d.need(w) {
		return nil
	}
	if err := d.r.Migrate(v, n); err != nil {
		return err
	}
	fmt.Fprintf(w, "vCPU %d: moving to node %d at its next exit\n", v, n)
	return nil
}

// parseDistStart reads the arguments of `dvm start`.
func parseDistStart(args []string) (hv.DistStart, error) {
	req := hv.DistStart{Iterations: testguest.DefaultCounterIterations, Guest: testguest.VariantCounter}
	var a Args
	a.Func("guest", func(v string) error {
		switch v {
		case "linux":
			req.Linux = true
			return nil
		case "multiboot":
			req.Linux, req.Multiboot = true, true
			return nil
		}
		g, known := hv.DistGuest(v)
		if !known {
			return fmt.Errorf("unknown guest (counter, pingpong, linux or multiboot)")
		}
		req.Guest = g
		return nil
	})
	a.Int("nodes", &req.Nodes, 1, math.MaxInt)
	a.Int("vcpus", &req.VCPUs, 1, math.MaxInt)
	a.Int("iters", &req.Iterations, 1, math.MaxInt)
	a.Size("mem", &req.Memory)
	a.Func("place", func(v string) (err error) { req.Place, err = dvm.ParsePlacePolicy(v); return err })
	a.Int("dilate", &req.Dilation, 1, 255)
	a.Func("move", func(v string) (err error) { req.Move, err = dvm.ParseMovePolicy(v); return err })
	a.Func("devices", func(v string) (err error) { req.Devices, err = dvm.ParseDevicePolicy(v); return err })
	a.Func("balance", func(v string) (err error) { req.Balance, err = dvm.ParseBalancePolicy(v); return err })
	a.Flag("numa", &req.NUMA)
	a.Func("disk", func(v string) (err error) { req.Disks, err = parseDisks(v); return err })
	a.Func("net", func(v string) (err error) { req.Net, err = parseNet(v); return err })
	bootFileKeys(&a, &req.Boot)
	a.Func("module", func(v string) error { return parseModules(v, &req.Boot.Modules) })
	a.String("cmdline", &req.Cmdline)
	root := ""
	a.String("root", &root)
	a.Flag("firsttouch", &req.FirstTouch)
	a.Flag("walkwin", &req.WalkWindows)
	large := true
	a.Flag("large", &large)
	a.Int("moveafter", &req.MoveAfter, 0, dvm.MaxMoveAfter)
	a.Func("homes", func(v string) error {
		if _, err := dvm.ParseHomePolicy(v); err != nil {
			return err
		}
		req.Homes = v
		return nil
	})
	if err := a.Parse(args); err != nil {
		return req, err
	}
	req.SmallPages = !large
	if !a.Given("walkwin") {
		// An operating system's page walks write the accessed bits
		// of page tables that every CPU shares: without windows those
		// pages cross between the nodes at every exit (guest I/O from
		// a vCPU on another node than the devices was 15-30 times
		// slower, TestQEMUClusterLinuxGuestIO). The test guests walk
		// tables of their own, and keep them off unless asked.
		req.WalkWindows = req.Linux
	}
	if a.Given("root") {
		var err error
		if req.Root, err = parseRoot(root, len(req.Disks)); err != nil {
			return req, fmt.Errorf("%w: %v", shell.ErrUsage, err)
		}
	}
	return req, checkDistGuest(req)
}

// checkDistGuest refuses words that do not go with the guest asked for.
func checkDistGuest(req hv.DistStart) error {
	switch {
	case req.Multiboot && req.Boot.Kernel == "":
		return fmt.Errorf("%w: guest=multiboot needs kernel=http://SERVER/PATH", shell.ErrUsage)
	case req.Multiboot && (req.Disks != nil || req.Net != nil || req.Root != "" || req.Boot.Initrd != "" || req.NUMA):
		return fmt.Errorf("%w: disk=, net=, root=, initrd= and numa are for guest=linux", shell.ErrUsage)
	case !req.Multiboot && len(req.Boot.Modules) != 0:
		return fmt.Errorf("%w: module= is for guest=multiboot", shell.ErrUsage)
	case !req.Linux && req.Cmdline != "":
		return fmt.Errorf("%w: cmdline= is for guest=linux and guest=multiboot", shell.ErrUsage)
	}
	return nil
}

// st0 is the cluster id of the VM's node 0 (this node, which started it).
func st0(r DistRunner) int {
	if st, err := r.Status(); err == nil {
		return st.Self
	}
	return 0
}

// writeDistStatus prints a status: placement and rates, and with full
// also the vCPU table.
func writeDistStatus(w io.Writer, st *hv.DistStatus, full bool) {
	s := &st.Stats
	secs := st.Elapsed.Seconds()
	if secs <= 0 {
		secs = 1
	}
	state := st.Outcome
	if state == "" {
		state = "running"
	}
	fmt.Fprintf(w, "dvm %d on node %d (%d of %d in the VM): %s, %v\n", st.Spec.ID, st.Self, st.Index, st.Spec.Nodes, state, st.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  pages: %d in the VM, %d homed here, held here %d shared + %d modified\n",
		st.Spec.Pages, homedHere(st), s.Shared, s.Modified)
	if st.MaxTableFrames > 0 {
		gib := float64(st.Spec.Pages) * memory.PageSize / (1 << 30)
		fmt.Fprintf(w, "  share built in %v; nested page tables %s now, %s with every page mapped (%s per GiB of the VM)\n",
			st.Built.Round(time.Millisecond), memmap.FormatSize(uint64(st.TableFrames)*memory.PageSize),
			memmap.FormatSize(uint64(st.MaxTableFrames)*memory.PageSize), memmap.FormatSize(uint64(float64(st.MaxTableFrames)*memory.PageSize/gib)))
	}
	if lp := st.LargePages; st.Spec.SmallPages {
		fmt.Fprintf(w, "  large pages: off (large=off)\n")
	} else {
		fmt.Fprintf(w, "  large pages: %d of 2 MiB map the guest here (%s); %d promoted, %d split\n",
			lp.Large, memmap.FormatSize(lp.Large*2<<20), lp.Promotions, lp.Splits)
	}
	if st.Spec.MovesHomes() || s.Memory.HomesGained+s.Memory.HomesGiven > 0 {
		fmt.Fprintf(w, "  homes: %d moved here, %d moved away, %d requests passed on to a new home\n",
			s.Memory.HomesGained, s.Memory.HomesGiven, s.Memory.Forwards)
	}
	avg := time.Duration(0)
	if s.RemoteWaits > 0 {
		avg = s.WaitTime / time.Duration(s.RemoteWaits)
	}
	fmt.Fprintf(w, "  faults: %d (%d remote, %.1f/s), waited %d times, %v on average\n",
		s.Memory.Faults, s.Memory.RemoteFaults, float64(s.Memory.RemoteFaults)/secs, s.RemoteWaits, avg.Round(time.Microsecond))
	fmt.Fprintf(w, "  faults in the guest's page-table walks: %d (%d for write)\n", st.WalkFaults, st.WalkWrites)
	if st.Spec.WalkWindows {
		draining := ""
		if s.Draining {
			draining = "; upgrades outstanding now"
		}
		fmt.Fprintf(w, "  walk windows: %d opened, %d closed unchanged, %d changed (each an upgrade), %d not opened for want of a slot, %d conflicts%s\n",
			s.Memory.WindowsOpened, s.Memory.WindowsClean, s.Memory.WindowsChanged, s.Memory.WindowsFull, s.Memory.WindowConflicts, draining)
	}
	fmt.Fprintf(w, "  copies of pages homed elsewhere: %d held, %d evicted to make room (%d written back, %d dropped in all), %d faults found no frame\n",
		s.Copies, s.Memory.Reclaims, s.Memory.Writebacks, s.Memory.SilentEvicts, s.Memory.NoRoom)
	fmt.Fprintf(w, "  coherence: %d messages out (%d with a page), %d bytes out on the wire, %d messages in, %d bytes in, %d invalidations, %d rejected, %d of other VMs dropped\n",
		s.Memory.Messages, s.Memory.DataMessages, s.BytesOut, s.Received, s.BytesIn, s.Memory.Invalidations, s.Rejected, s.Stale)
	if s.Held > 0 {
		fmt.Fprintf(w, "  held: %d messages wait, the oldest for %v:", s.Held, s.HeldFor.Round(time.Millisecond))
		for _, m := range s.HeldFirst {
			fmt.Fprintf(w, " [%s %#x from node index %d, %v, %s]", m.What, m.GPA, m.From, m.For.Round(time.Millisecond), m.Why)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  vCPU migrations: %d out, %d in (%.2f/s), %d bytes out; policy move=%v devices=%v chose %d; balance=%v chose %d\n",
		s.Migration.MigrationsOut, s.Migration.MigrationsIn, float64(s.Migration.MigrationsOut+s.Migration.MigrationsIn)/secs, s.Migration.Bytes,
		st.Spec.Move, st.Spec.Devices, s.PolicyMoves, st.Spec.Balance, s.BalanceMoves)
	devAvg := time.Duration(0)
	if s.DeviceReads > 0 {
		devAvg = s.DeviceReadTime / time.Duration(s.DeviceReads)
	}
	fmt.Fprintf(w, "  devices: %d reads forwarded to the device node, %v on average; %d interrupts raised by devices here\n", s.DeviceReads, devAvg.Round(time.Microsecond), st.DeviceIRQs)
	if st.Guest == "linux" {
		fmt.Fprintf(w, "  guest clock: caught up with another node's %d times, %d TSC ticks in all; %d readings too far ahead refused; %d not sent to a node with a full window\n", st.ClockCatchUps, st.ClockSkipped, st.ClockRefused, st.ClockUnsent)
	}
	fmt.Fprintf(w, "  interrupts: %d IPIs sent from here (%.1f/s, %d to no vCPU), %d made pending here, %d forwarded; %d startup IPIs sent\n",
		st.IPIs, float64(st.IPIs)/secs, st.IPIsIgnored, s.Migration.Delivered, s.Migration.Forwarded, st.Startups)
	if st.SliceWatch.Watched {
		fmt.Fprint(w, "  ")
		writeSliceWatch(w, st.SliceWatch)
	}
	if !full {
		return
	}
	if len(st.HotPages) > 0 {
		fmt.Fprintf(w, "  pages waited for most (GPA x times):")
		for _, p := range st.HotPages {
			fmt.Fprintf(w, " %#x x%d", p.GPA, p.Waits)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  exits on this node: %s", strings.ReplaceAll(strings.TrimSuffix(st.Exits.String(), "\n"), "\n", "\n    "))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-5s %-5s %s\n", "VCPU", "NODE", "STATE")
	for _, v := range st.VCPUs {
		fmt.Fprintf(w, "  %-5d %-5d %s\n", v.ID, v.Node, v.State)
	}
}

// pageMapRow is the number of cells `pages map` prints on a line.
const pageMapRow = 64

// writePageMap prints the page map: one character per cell, M where this
// node holds a page of the cell Modified, s Shared, . none.
func writePageMap(w io.Writer, st *hv.DistStatus) {
	per := st.PagesPerCell
	fmt.Fprintf(w, "  page map (%d page(s) of 4 KiB per character; M modified here, s shared here, . not here):\n", per)
	for i := 0; i < len(st.PageMap); i += pageMapRow {
		row := make([]byte, 0, pageMapRow)
		for _, c := range st.PageMap[i:min(i+pageMapRow, len(st.PageMap))] {
			row = append(row, ".sM"[min(int(c), 2)])
		}
		fmt.Fprintf(w, "  0x%08x %s\n", uint64(i*per)*memory.PageSize, row)
	}
}

// homedHere counts the pages whose home is this node now: its share at
// the start, less what moved away (homes that follow their users, an
// evacuation), plus what moved here.
func homedHere(st *hv.DistStatus) int {
	if st.Spec.Nodes <= 0 || st.Index < 0 || st.Index >= st.Spec.Nodes {
		return 0
	}
	return st.Stats.Homes
}

// homeMoves says when the homes of spec move, for the line that says it
// started: nothing when they stay where they start.
func homeMoves(spec dvm.Spec) string {
	switch {
	case spec.FirstTouch && spec.MoveAfter > 0:
		return fmt.Sprintf(", homes moving to a page's first writer and to a node that asks for a page %d times in a row", spec.MoveAfter)
	case spec.FirstTouch:
		return ", homes moving to a page's first writer"
	case spec.MoveAfter > 0:
		return fmt.Sprintf(", homes moving to a node that asks for a page %d times in a row", spec.MoveAfter)
	}
	return ""
}

// walkWindows says, for the line that says it started, that the
// guest's page walks go on in walk windows (dvm.Spec.WalkWindows).
func walkWindows(spec dvm.Spec) string {
	if spec.WalkWindows {
		return ", page walks in walk windows"
	}
	return ""
}

// WithDistVCPUs extends a `vcpus` command (see [VCPUsCommand]) with the
// distributed VM: when one exists, `vcpus` also prints where each of its
// vCPUs runs, and `vcpus dvm` prints only that.
func WithDistVCPUs(base *shell.Command, r DistRunner) *shell.Command {
	if r == nil {
		return base
	}
	c := *base
	c.Usage = "[ID | dvm]"
	c.Help = "show VMs' vCPUs: state, core, exits/s; for the distributed VM, the node each runs on"
	c.Run = func(w io.Writer, args []string) error {
		st, dvmErr := r.Status()
		if len(args) == 1 && args[0] == "dvm" {
			if dvmErr != nil {
				return dvmErr
			}
			writeDistVCPUs(w, &st)
			return nil
		}
		err := base.Run(w, args)
		if dvmErr != nil || len(args) != 0 {
			return err
		}
		// A distributed VM exists: the local VMs' error (none) is not one.
		writeDistVCPUs(w, &st)
		return nil
	}
	return &c
}

// writeDistVCPUs prints the distributed VM's vCPU placement.
func writeDistVCPUs(w io.Writer, st *hv.DistStatus) {
	fmt.Fprintf(w, "dvm %d across %d nodes (node numbers are cluster ids)\nvcpu  node  state\n", st.Spec.ID, st.Spec.Nodes)
	for _, v := range st.VCPUs {
		here := ""
		if v.Here {
			here = " (this node)"
		}
		fmt.Fprintf(w, "%-5d %-5d %s%s\n", v.ID, v.Node, v.State, here)
	}
}

// WithNodeEvacuate extends the cluster's `node` command with
// `node evacuate N`: move the distributed VM's vCPUs off node N (a
// cluster id) and have it give back the page copies it does not home and
// hand its homes on, so that it can leave.
func WithNodeEvacuate(base *shell.Command, r DistRunner) *shell.Command {
	if r == nil {
		return base
	}
	c := *base
	c.Usage = strings.Replace(base.Usage, "leave", "leave [force]", 1) + " | evacuate N"
	c.Help = base.Help + "; move the distributed VM off node N (a node in a running distributed VM leaves only with force)"
	c.Run = func(w io.Writer, args []string) error {
		switch {
		case len(args) >= 1 && args[0] == "leave":
			force := false
			var a Args
			a.Flag("force", &force)
			if err := a.Parse(args[1:]); err != nil {
				return err
			}
			if !force {
				if err := leaveCheck(r); err != nil {
					return err
				}
			}
			return base.Run(w, args[:1])
		case len(args) == 0 || args[0] != "evacuate":
			return base.Run(w, args)
		case len(args) != 2:
			return fmt.Errorf("%w: want `node evacuate N`", shell.ErrUsage)
		}
		return evacuate(w, r, args[1])
	}
	return &c
}

// leaveCheck refuses to let this node leave the cluster while a
// distributed VM runs with a part of it here: vCPUs, or pages homed here
// (an evacuation hands them on, unless the node taking them has no
// room). Leaving would stop the VM on every node.
func leaveCheck(r DistRunner) error {
	st, err := r.Status()
	if err != nil || st.Outcome != "" {
		return nil // no VM here, or it has ended
	}
	vcpus := 0
	for _, v := range st.VCPUs {
		if v.Here {
			vcpus++
		}
	}
	homed := homedHere(&st)
	if vcpus == 0 && homed == 0 {
		return nil
	}
	return fmt.Errorf("this node is in distributed VM %d with %d vCPUs and %d pages homed here: leaving would stop the VM on every node; move the vCPUs and homes away with `node evacuate %d`, stop the VM with `dvm stop`, or leave anyway with `node leave force`",
		st.Spec.ID, vcpus, homed, st.Self)
}

// evacuate runs `dvm evacuate NODE` and `node evacuate NODE`.
func evacuate(w io.Writer, r DistRunner, node string) error {
	n, err := strconv.Atoi(node)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: evacuate: bad node %q", shell.ErrUsage, node)
	}
	moved, err := r.Evacuate(n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "node %d: moving %d vCPUs away; it then gives back the page copies it does not home and hands its homes on\n", n, moved)
	return nil
}
