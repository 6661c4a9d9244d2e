// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"
	"github.com/big-iron/big-iron/boot/memmap"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/big-iron/big-iron/hyperkernel/devices/acpi"
	"github.com/big-iron/big-iron/hyperkernel/dvm"
	"github.com/big-iron/big-iron/hyperkernel/exits"
	"github.com/big-iron/big-iron/hyperkernel/memory"
	"github.com/big-iron/big-iron/hyperkernel/shell"
	"github.com/big-iron/big-iron/hyperkernel/testguest"
)

// DistStart is what `dvm start` asks for.
type DistStart struct {
	Nodes      int // nodes taking part (0..Nodes-1); 0 means every member
	VCPUs      int // 0 means one per node
	Iterations int // counter iterations (ping-pong rounds) per vCPU
	// Guest is the payload: testguest.VariantCounter or
	// testguest.VariantPingPong (see DistGuest).
	Guest testguest.Variant
	// Linux runs the image's Linux guest instead, with Memory bytes of
	// RAM (0: DefaultGuestMemory) and its default command line, or
	// Cmdline.
	Linux   bool
	Memory  uint64
	Cmdline string
	// Place is where the vCPUs start (Linux only; test guests spread).
	Place dvm.PlacePolicy
	// Dilation is the Linux guest's time dilation (see dvm.Spec); 0 or 1
	// for none.
	Dilation int
	// Move and Devices are the VM's move and device policies (see
	// dvm.Spec).
	Move    dvm.MovePolicy
	Devices dvm.DevicePolicy
	// NUMA gives the Linux guest an SRAT and a SLIT (DistNUMA) instead
	// of letting it believe it is one uniform machine.
	NUMA bool
	// Homes names the Linux guest's home policy (dvm.ParseHomePolicy):
	// "" or "node0" (every page homed on the device node), or "striped"
	// (page p on node p mod n). Test guests are striped.
	Homes string
}

// RemoteDistance is the SLIT distance between two nodes of a
// distributed VM, against 10 within a node: as far as the table's scale
// goes, since a page from another node costs thousands of local
// accesses (Linux only compares distances: it keeps tasks and memory
// within a node when it can).
const RemoteDistance = 254

// DistNUMA is the topology a distributed Linux VM of vcpus vCPUs over
// nodes nodes shows its guest with numa=on: vCPU v in proximity domain
// v % nodes (the node place=spread starts it on), all of its memory
// (homed on node 0) in domain 0, and RemoteDistance between domains.
// vCPUs that migrate keep their domain: the tables are the guest's
// picture at boot.
func DistNUMA(vcpus, nodes int, memory uint64) *acpi.NUMA {
	n := &acpi.NUMA{CPUDomain: make([]uint32, vcpus), Memory: []acpi.MemoryAffinity{{Base: 0, Length: memory, Domain: 0}}}
	for v := range n.CPUDomain {
		n.CPUDomain[v] = uint32(v % nodes)
	}
	n.Distance = make([][]uint8, nodes)
	for i := range n.Distance {
		n.Distance[i] = make([]uint8, nodes)
		for j := range n.Distance[i] {
			n.Distance[i][j] = RemoteDistance
		}
		n.Distance[i][i] = 10
	}
	return n
}

// DistGuest returns the payload a distributed VM runs for a name:
// counter or pingpong.
func DistGuest(name string) (testguest.Variant, bool) {
	switch name {
	case "counter":
		return testguest.VariantCounter, true
	case "pingpong":
		return testguest.VariantPingPong, true
	}
	return 0, false
}

// DistVCPU is one row of `dvm stat`'s vCPU table.
type DistVCPU struct {
	ID    int
	Node  int  // where this node believes the vCPU runs
	Here  bool // it runs on this node
	State string
}

// DistStatus is this node's view of the distributed VM.
type DistStatus struct {
	Spec    dvm.Spec
	Self    int           // this node's cluster id
	Index   int           // its index among the VM's nodes (0..Nodes-1)
	Elapsed time.Duration // since this node created its share
	Stats   dvm.Stats
	VCPUs   []DistVCPU
	Outcome string // empty while running
	// Exits counts the VM exits of the vCPUs that ran on this node.
	Exits exits.ExitStats
	// IPIs counts the inter-processor interrupts sent by vCPUs on this
	// node, Startups their startup IPIs, IPIsIgnored those addressed to
	// no vCPU.
	IPIs, Startups, IPIsIgnored uint64
	// DeviceIRQs counts the interrupts devices on this node raised.
	DeviceIRQs uint64
	// PageMap is this node's page placement (dvm.Runtime.PageMap): each
	// cell covers PagesPerCell pages.
	PageMap      []memory.State
	PagesPerCell int
	// Guest is "linux" for an operating-system guest, empty for a test
	// guest; ClockCatchUps counts the times this node's guest clock
	// jumped forward to another node's, by ClockSkipped TSC ticks in all.
	Guest                       string
	ClockCatchUps, ClockSkipped uint64
	// HotPages are the pages whose faults here waited for other nodes
	// most often.
	HotPages []dvm.HotPage
}

// DistRunner runs distributed VMs: implemented by the bare-metal Dist.
type DistRunner interface {
	// Start creates and starts a VM, writing one line per step to
	// progress.
	Start(req DistStart, progress io.Writer) (dvm.Spec, error)
	Status() (DistStatus, error)
	Peek(gpa uint64) (uint32, error)
	Migrate(vcpu, node int) error
	// Evacuate moves every vCPU off a node and has it give back the page
	// copies it does not home; it returns the vCPUs it moved.
	Evacuate(node int) (int, error)
	Stop() error
}

// DistCommands returns the shell commands of distributed VMs: `dvm`,
// `pages` and `migrate`. A nil runner makes them say why (unavailable).
func DistCommands(r DistRunner, unavailable string) []*shell.Command {
	need := func(w io.Writer) bool {
		if r == nil {
			fmt.Fprintf(w, "distributed VMs unavailable: %s\n", unavailable)
			return false
		}
		return true
	}
	return []*shell.Command{
		{
			Name:  "dvm",
			Usage: "dvm start [guest=counter|pingpong|linux] [nodes=N] [vcpus=N] [iters=N] [mem=SIZE] [place=spread|node0] [dilate=N] [move=pull|hysteresis|always] [devices=forward|move] [numa=on] [homes=node0|striped] | stat | peek GPA | evacuate NODE | stop",
			Help:  "run a guest (Linux, or a test guest: shared counter, IPI ping-pong) as one VM across cluster nodes",
			Run: func(w io.Writer, args []string) error {
				if len(args) == 0 {
					return fmt.Errorf("%w: dvm needs a subcommand: start, stat, peek or stop", shell.ErrUsage)
				}
				switch args[0] {
				case "start":
					req := DistStart{Iterations: testguest.DefaultCounterIterations, Guest: testguest.VariantCounter}
					for _, a := range args[1:] {
						k, v, ok := strings.Cut(a, "=")
						if k == "guest" && v == "linux" {
							req.Linux = true
							continue
						}
						if k == "guest" {
							g, known := DistGuest(v)
							if !known {
								return fmt.Errorf("%w: dvm start: unknown guest %q (counter, pingpong or linux)", shell.ErrUsage, v)
							}
							req.Guest = g
							continue
						}
						if named, err := req.setChoice(k, v); named {
							if err != nil {
								return err
							}
							continue
						}
						if k == "dilate" {
							n, err := strconv.Atoi(v)
							if err != nil || n < 1 || n > 255 {
								return fmt.Errorf("%w: dvm start: dilate=%q: want 1 to 255", shell.ErrUsage, v)
							}
							req.Dilation = n
							continue
						}
						if k == "mem" {
							n, err := ParseSize(v)
							if err != nil {
								return err
							}
							req.Memory = n
							continue
						}
						n, err := strconv.Atoi(v)
						if !ok || err != nil || n < 1 {
							return fmt.Errorf("%w: dvm start: bad argument %q (want key=positive number)", shell.ErrUsage, a)
						}
						switch k {
						case "nodes":
							req.Nodes = n
						case "vcpus":
							req.VCPUs = n
						case "iters":
							req.Iterations = n
						default:
							return fmt.Errorf("%w: dvm start: unknown argument %q", shell.ErrUsage, k)
						}
					}
					if !need(w) {
						return nil
					}
					spec, err := r.Start(req, w)
					if err != nil {
						return err
					}
					if req.Linux {
						topology := ""
						if req.NUMA {
							topology = ", an SRAT and a SLIT"
						}
						homes := fmt.Sprintf("pages homed on node %d", st0(r))
						if spec.Homes == dvm.HomesStriped {
							homes = "pages striped over the nodes"
						}
						fmt.Fprintf(w, "dvm %d: Linux, %d vCPUs on %d nodes, %d MiB (%s, vCPUs placed %v, time dilation %d%s): started; `console` attaches on this node\n",
							spec.ID, spec.VCPUs, spec.Nodes, spec.Pages*4096>>20, homes, spec.Place, max(spec.Dilation, 1), topology)
						return nil
					}
					fmt.Fprintf(w, "dvm %d: %v guest, %d vCPUs on %d nodes, %d MiB, %d iterations per vCPU: started\n",
						spec.ID, req.Guest, spec.VCPUs, spec.Nodes, spec.Pages*4096>>20, spec.Arg)
					return nil
				case "stat":
					if len(args) != 1 {
						return fmt.Errorf("%w: dvm stat takes no arguments", shell.ErrUsage)
					}
					if !need(w) {
						return nil
					}
					st, err := r.Status()
					if err != nil {
						return err
					}
					writeDistStatus(w, &st, true)
					return nil
				case "peek":
					if len(args) != 2 {
						return fmt.Errorf("%w: dvm peek needs a guest-physical address", shell.ErrUsage)
					}
					gpa, err := strconv.ParseUint(args[1], 0, 64)
					if err != nil || gpa%4 != 0 {
						return fmt.Errorf("%w: dvm peek: bad address %q (want a 4-byte aligned number)", shell.ErrUsage, args[1])
					}
					if !need(w) {
						return nil
					}
					v, err := r.Peek(gpa)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "%#x: %d (%#x)\n", gpa, v, v)
					return nil
				case "evacuate":
					if len(args) != 2 {
						return fmt.Errorf("%w: dvm evacuate needs a node", shell.ErrUsage)
					}
					if !need(w) {
						return nil
					}
					return evacuate(w, r, args[1])
				case "stop":
					if !need(w) {
						return nil
					}
					return r.Stop()
				}
				return fmt.Errorf("%w: dvm: unknown subcommand %q", shell.ErrUsage, args[0])
			},
		},
		{
			Name:  "pages",
			Usage: "pages [map]",
			Help:  "page placement and remote-fault rates of the distributed VM on this node; map: which pages it holds",
			Run: func(w io.Writer, args []string) error {
				if len(args) > 1 || len(args) == 1 && args[0] != "map" {
					return fmt.Errorf("%w: want `pages` or `pages map`", shell.ErrUsage)
				}
				if !need(w) {
					return nil
				}
				st, err := r.Status()
				if err != nil {
					return err
				}
				writeDistStatus(w, &st, false)
				if len(args) == 1 {
					writePageMap(w, &st)
				}
				return nil
			},
		},
		{
			Name:  "migrate",
			Usage: "migrate VCPU NODE",
			Help:  "move a vCPU of the distributed VM to another node while it runs",
			Run: func(w io.Writer, args []string) error {
				if len(args) != 2 {
					return fmt.Errorf("%w: migrate needs a vCPU and a node", shell.ErrUsage)
				}
				v, err1 := strconv.Atoi(args[0])
				n, err2 := strconv.Atoi(args[1])
				if err1 != nil || err2 != nil || v < 0 || n < 0 {
					return fmt.Errorf("%w: migrate: bad vCPU %q or node %q", shell.ErrUsage, args[0], args[1])
				}
				if !need(w) {
					return nil
				}
				if err := r.Migrate(v, n); err != nil {
					return err
				}
				fmt.Fprintf(w, "vCPU %d: moving to node %d at its next exit\n", v, n)
				return nil
			},
		},
	}
}

// setChoice sets the field of r that the named-value argument key=v of
// `dvm start` chooses, and reports whether key is one of them.
func (r *DistStart) setChoice(key, v string) (bool, error) {
	var err error
	switch key {
	case "place":
		r.Place, err = dvm.ParsePlacePolicy(v)
	case "homes":
		_, err = dvm.ParseHomePolicy(v)
		r.Homes = v
	case "move":
		r.Move, err = dvm.ParseMovePolicy(v)
	case "devices":
		r.Devices, err = dvm.ParseDevicePolicy(v)
	case "numa":
		if v != "on" && v != "off" {
			err = fmt.Errorf("numa=%q: want on or off", v)
		}
		r.NUMA = v == "on"
	default:
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("%w: dvm start: %v", shell.ErrUsage, err)
	}
	return true, nil
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
func writeDistStatus(w io.Writer, st *DistStatus, full bool) {
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
	avg := time.Duration(0)
	if s.RemoteWaits > 0 {
		avg = s.WaitTime / time.Duration(s.RemoteWaits)
	}
	fmt.Fprintf(w, "  faults: %d (%d remote, %.1f/s), waited %d times, %v on average\n",
		s.Memory.Faults, s.Memory.RemoteFaults, float64(s.Memory.RemoteFaults)/secs, s.RemoteWaits, avg.Round(time.Microsecond))
	fmt.Fprintf(w, "  coherence: %d messages out (%d with a page), %d bytes out on the wire, %d messages in, %d bytes in, %d invalidations, %d rejected, %d of other VMs dropped\n",
		s.Memory.Messages, s.Memory.DataMessages, s.BytesOut, s.Received, s.BytesIn, s.Memory.Invalidations, s.Rejected, s.Stale)
	fmt.Fprintf(w, "  vCPU migrations: %d out, %d in (%.2f/s), %d bytes out; policy move=%v devices=%v chose %d\n",
		s.Migration.MigrationsOut, s.Migration.MigrationsIn, float64(s.Migration.MigrationsOut+s.Migration.MigrationsIn)/secs, s.Migration.Bytes,
		st.Spec.Move, st.Spec.Devices, s.PolicyMoves)
	devAvg := time.Duration(0)
	if s.DeviceReads > 0 {
		devAvg = s.DeviceReadTime / time.Duration(s.DeviceReads)
	}
	fmt.Fprintf(w, "  devices: %d reads forwarded to the device node, %v on average; %d interrupts raised by devices here\n", s.DeviceReads, devAvg.Round(time.Microsecond), st.DeviceIRQs)
	if st.Guest == "linux" {
		fmt.Fprintf(w, "  guest clock: caught up with another node's %d times, %d TSC ticks in all\n", st.ClockCatchUps, st.ClockSkipped)
	}
	fmt.Fprintf(w, "  interrupts: %d IPIs sent from here (%.1f/s, %d to no vCPU), %d made pending here, %d forwarded; %d startup IPIs sent\n",
		st.IPIs, float64(st.IPIs)/secs, st.IPIsIgnored, s.Migration.Delivered, s.Migration.Forwarded, st.Startups)
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
func writePageMap(w io.Writer, st *DistStatus) {
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

// homedHere counts the pages whose home is this node under striping.
func homedHere(st *DistStatus) int {
	n := st.Spec.Nodes
	if n <= 0 {
		return 0
	}
	if st.Spec.Homes == dvm.HomesDeviceNode {
		if st.Index == 0 {
			return st.Spec.Pages
		}
		return 0
	}
	c := st.Spec.Pages / n
	if st.Index < st.Spec.Pages%n {
		c++
	}
	return c
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
func writeDistVCPUs(w io.Writer, st *DistStatus) {
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
// cluster id) and have it give back the page copies it does not home, so
// that it can leave.
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
			if len(args) == 2 && args[1] == "force" {
				return base.Run(w, args[:1])
			}
			if len(args) != 1 {
				return fmt.Errorf("%w: want `node leave` or `node leave force`", shell.ErrUsage)
			}
			if err := leaveCheck(r); err != nil {
				return err
			}
			return base.Run(w, args)
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
// (homes do not move yet, so evacuating leaves those). Leaving would stop
// the VM on every node.
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
	homed := 0
	home := st.Spec.Homes.Home(st.Spec.Nodes)
	for p := range st.Spec.Pages {
		if int(home(uint64(p))) == st.Index {
			homed++
		}
	}
	if vcpus == 0 && homed == 0 {
		return nil
	}
	return fmt.Errorf("this node is in distributed VM %d with %d vCPUs and %d pages homed here: leaving would stop the VM on every node; move the vCPUs with `node evacuate %d` (homes stay), stop the VM with `dvm stop`, or leave anyway with `node leave force`",
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
	fmt.Fprintf(w, "node %d: moving %d vCPUs away; it then gives back the page copies it does not home\n", n, moved)
	return nil
}

// checkDistRoom refuses this node's share of a distributed VM when the
// pages it homes (each needs a frame from the start) and its page
// tables do not fit in the node's frames for guests, inUse of total
// taken. It says how much the VM asks of this node and what the node has;
// copies of other nodes' pages need frames later, as they are touched.
func checkDistRoom(spec dvm.Spec, self memory.NodeID, inUse, total int) error {
	home := spec.Homes.Home(spec.Nodes)
	homed := 0
	for p := range spec.Pages {
		if home(uint64(p)) == self {
			homed++
		}
	}
	need := homed + linuxFrames(0, spec.VCPUs) + (spec.Pages+511)/512 // homed pages, bitmaps and VMCSs, page tables
	if free := total - inUse; need > free {
		const page = 4 << 10
		return fmt.Errorf("dvm: this node would home %d of the VM's %d pages (%s of %s) and has %s free for guests (%s of %s in use): give the VM less memory, more nodes, or homes=striped",
			homed, spec.Pages, memmap.FormatSize(uint64(homed)*page), memmap.FormatSize(uint64(spec.Pages)*page),
			memmap.FormatSize(uint64(free)*page), memmap.FormatSize(uint64(inUse)*page), memmap.FormatSize(uint64(total)*page))
	}
	return nil
}
