// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/vmm/devices/acpi"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/testguest"
	"github.com/big-iron/big-iron/vmm/vmx"
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
	// Move, Devices and Balance are the VM's move, device and balance
	// policies (see dvm.Spec).
	Move    dvm.MovePolicy
	Devices dvm.DevicePolicy
	Balance dvm.BalancePolicy
	// NUMA gives the Linux guest an SRAT and a SLIT (DistNUMA) instead
	// of letting it believe it is one uniform machine.
	NUMA bool
	// Disks and Net are the Linux guest's disks and network card (see
	// LinuxRequest), on the device node.
	Disks []DiskSpec
	Net   *NetSpec
	// Root is the disk with the guest's own root file system (see
	// LinuxRequest).
	Root string
	// Boot names the kernel and initramfs to fetch (see LinuxRequest).
	Boot BootFiles
	// Multiboot (with Linux) runs a Multiboot 1 kernel (Boot.Kernel and
	// Boot.Modules) instead of Linux, its APICs powering on in xAPIC mode
	// on every node (see LinuxRequest.Multiboot).
	Multiboot bool
	// Homes names the Linux guest's home policy (dvm.ParseHomePolicy):
	// "" or "node0" (every page homed on the device node), "striped"
	// (page p on node p mod n), or "fill" (ranges sized by each node's
	// room, for a guest larger than any one node). Test guests are
	// striped.
	Homes string
	// FirstTouch and MoveAfter move a page's home to the node that uses
	// it (see dvm.Spec): to the first node that writes it, and to a
	// node that made MoveAfter requests for it in a row (0: never).
	FirstTouch bool
	MoveAfter  int
	// WalkWindows lets the guest's page walks that fault for write on a
	// page this node holds Shared go on in walk windows (dvm.Spec).
	WalkWindows bool
	// SmallPages maps the guest with 4 KiB pages only, without the 2
	// MiB pages a node uses for ranges it holds whole (dvm.Spec).
	SmallPages bool
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
// (homed on node 0; each range of guestmem.NewSplit(memory)) in domain
// 0, and RemoteDistance between domains.
// vCPUs that migrate keep their domain: the tables are the guest's
// picture at boot.
func DistNUMA(vcpus, nodes int, memory uint64) *acpi.NUMA {
	n := &acpi.NUMA{CPUDomain: make([]uint32, vcpus)}
	for _, r := range guestmem.NewSplit(memory).Ranges() {
		n.Memory = append(n.Memory, acpi.MemoryAffinity{Base: r.Start, Length: r.Size, Domain: 0})
	}
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

// numaAlign is where a proximity domain's memory begins and ends under
// homes=fill, where it can: Linux keeps its memory map in sections of
// 128 MiB (x86-64's SECTION_SIZE_BITS), and a section is best within
// one node.
const numaAlign = 128 << 20

// DistNUMAFill is the topology of a distributed Linux VM whose pages are
// homed by ranges (homes=fill, node i the shares[i] pages after node
// i-1's), with its RAM where split puts it: vCPU v in proximity domain v
// % len(shares), as in DistNUMA, and domain i's memory node i's range,
// its inner ends moved to the nearest numaAlign boundary (kept where
// they are if moving one would empty a domain). Linux then gives a task
// on a vCPU memory its node homes (page cache, stacks, page tables,
// slabs), where with one domain it took what its allocator had, most
// of it last written on another node. A domain's range that crosses the
// MMIO hole is given as its two parts.
func DistNUMAFill(vcpus int, split guestmem.Split, shares []uint32) *acpi.NUMA {
	nodes := len(shares)
	n := DistNUMA(vcpus, nodes, split.Size())
	n.Memory = n.Memory[:0]
	// ends[i] is the index byte (the RAM numbered without the hole, as
	// Split numbers pages) where domain i ends.
	ends := make([]uint64, nodes)
	var pages uint64
	for i, sh := range shares {
		pages += uint64(sh)
		ends[i] = pages * guestmem.PageSize
	}
	ends[nodes-1] = split.Size()
	var lo uint64
	for i := range ends {
		if i < nodes-1 {
			if r := (ends[i] + numaAlign/2) / numaAlign * numaAlign; r > lo && r < ends[i+1] {
				ends[i] = r
			}
		}
		hi := ends[i]
		if hi == lo {
			continue // a node with no share: a domain of CPUs only
		}
		if lo < split.Low {
			top := min(hi, split.Low)
			n.Memory = append(n.Memory, acpi.MemoryAffinity{Base: lo, Length: top - lo, Domain: uint32(i)})
		}
		if hi > split.Low {
			from := max(lo, split.Low)
			n.Memory = append(n.Memory, acpi.MemoryAffinity{Base: guestmem.HighBase + from - split.Low, Length: hi - from, Domain: uint32(i)})
		}
		lo = hi
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
	// SliceWatch is this node's slice watch (all its VMs').
	SliceWatch SliceWatchStatus
	// WalkFaults counts the faults here during the guest's own
	// page-table walks (the page held a guest page table), WalkWrites
	// those that asked for write access. Under EPT a walk writes a
	// page table only to set an accessed or dirty bit; under nested
	// paging AMD's processors and QEMU's TCG (7.2) ask for write access
	// to every guest page table they walk (README, introduction), so there
	// guest page tables move like written pages: at every TLB miss on
	// hardware, after every exit in QEMU, which flushes its TLB at VMRUN.
	WalkFaults, WalkWrites uint64
	// PageMap is this node's page placement (dvm.Runtime.PageMap): each
	// cell covers PagesPerCell pages.
	PageMap      []memory.State
	PagesPerCell int
	// Guest is "linux" for an operating-system guest, empty for a test
	// guest; ClockCatchUps counts the times this node's guest clock
	// jumped forward to another node's, by ClockSkipped TSC ticks in all;
	// ClockRefused the readings too far ahead to follow alone.
	Guest                                     string
	ClockCatchUps, ClockSkipped, ClockRefused uint64
	// ClockUnsent counts the clock messages this node did not send
	// because the receiver's window was full (a later one went instead).
	ClockUnsent uint64
	// HotPages are the pages whose faults here waited for other nodes
	// most often.
	HotPages []dvm.HotPage
	// Built is how long this node took to create its share (its
	// runtime, second-level page tables, VMCSs; with a Linux guest its
	// devices and the guest's image on the device node). TableFrames
	// are the frames its second-level page tables take now (they fill
	// in as pages are mapped here, 4 KiB at a time), MaxTableFrames
	// what they take with every page mapped (distFixedFrames counts
	// them so).
	Built                       time.Duration
	TableFrames, MaxTableFrames int
	// LargePages is what this node did with 2 MiB pages: how many map
	// the guest now, and how often a range was promoted or split.
	LargePages ept.PageMapStats
}

// EPT-violation exit qualification bits (Intel SDM Vol. 3C, 28.3.3.2,
// Table 28-7), which the AMD-V backend fills from EXITINFO1 too: the
// guest linear address is valid, and then whether the access was to the
// final translation (set) or to one of the guest's page-table entries.
const (
	eptLinearValid = 1 << 7
	eptFinal       = 1 << 8
)

// inWalk reports whether an EPT violation with qualification q was an
// access of the guest's own page walk to one of its page-table entries.
func inWalk(q uint64) bool { return q&eptLinearValid != 0 && q&eptFinal == 0 }

// deviceStore reports whether exit e, decoded into a, may be a device
// store emulated here, which vCPUs on other nodes could then learn of:
// a port write (OUT; Intel SDM Vol. 3C, Table 28-5, bit 3 set for IN),
// or a write that is not the guest's page walk's and faulted on the
// second-level tables (MMIO; or RAM, which the runtime serves). Before
// one, a distributed VM's changed walk windows are published. Reads
// (a timer's port, say, read thousands of times a second) are not.
func deviceStore(e *exits.Exit, a *exits.Action) bool {
	switch {
	case a.Reason == vmx.ExitIOInstruction:
		return e.Qualification&(1<<3) == 0
	case a.Kind == exits.ActionEPTViolation:
		return e.Qualification&2 != 0 && !inWalk(e.Qualification)
	}
	return false
}

// checkDistMemory refuses RAM of memory bytes for a distributed Linux
// VM: a multiple of the page size, from guestmem.MinSize to
// dvm.MaxPages pages (laid out as guestmem.NewSplit says: what does not
// fit below the MMIO hole goes above 4 GiB).
func checkDistMemory(memory uint64) error {
	const page = guestmem.PageSize
	if memory%page != 0 || memory < guestmem.MinSize || memory > dvm.MaxPages*page {
		return fmt.Errorf("dvm: %s of RAM: want a multiple of 4 KiB from %s to %s",
			memmap.FormatSize(memory), memmap.FormatSize(guestmem.MinSize), memmap.FormatSize(dvm.MaxPages*page))
	}
	return nil
}

// distSlackFrames is what distFixedFrames adds to its estimate for what
// it does not count one by one: AMD-V's I/O and MSR permission maps (a
// 2 MiB run), the upper levels of the second-level tables, a Linux
// guest's device buffers (4 MiB). The copies never take it: it keeps
// the pool from running dry under the frames a share takes as it runs.
const distSlackFrames = 1024

// distFixedFrames is what this node's share of spec takes besides the
// pages it homes and its copies of others: bitmaps and VMCSs,
// second-level page tables over the whole guest (Spec.Split), and
// distSlackFrames.
func distFixedFrames(spec dvm.Spec) int {
	return controlFrames(spec.VCPUs) + int(eptFrames(spec.Split())) + distSlackFrames
}

// distRoom returns how many pages of a VM shaped as spec this node, inUse
// of total frames for guests taken, can home (dvm.Host.Room): its free
// frames less the share's fixed cost and dvm.MinCopyFrames, kept for
// copies of the pages other nodes home.
func distRoom(spec dvm.Spec, inUse, total int) int {
	return max(total-inUse-distFixedFrames(spec)-dvm.MinCopyFrames, 0)
}

// distHomeRoom returns how many pages beyond its share this node may
// come to home (dvm.Config.HomeRoom), when spec moves homes on use or
// when it takes the homes of a node evacuated, inUse of total frames for
// guests taken: its room (distRoom) less the pages it homes from the
// start. Each page it comes to home takes a frame it would otherwise
// keep for a copy; when the pool runs short, the engine evicts copies.
func distHomeRoom(spec dvm.Spec, self memory.NodeID, inUse, total int) int {
	if int(self) >= spec.Nodes {
		return 0
	}
	return max(distRoom(spec, inUse, total)-spec.Homed()[self], 0)
}

// distVirt is the virtualization backend a node tells with its room
// (dvm.Host.Virt): AMD-V with nested paging when the hypervisor runs on
// SVM, otherwise VT-x with EPT.
func distVirt(amdv bool) dvm.Virt {
	if amdv {
		return dvm.VirtAMDV
	}
	return dvm.VirtVTx
}

// distCopyBudget bounds the frames this node's share of spec takes for
// copies of pages other nodes home (dvm.Config.CopyFrames): whatever its
// homed pages and fixed cost leave of its free frames, at least
// dvm.MinCopyFrames (checkDistRoom made sure there are that many). When
// the frame pool runs short before (other guests took frames), the
// coherence engine evicts copies rather than failing the fault.
func distCopyBudget(spec dvm.Spec, self memory.NodeID, inUse, total int) int {
	return dvm.CopyBudget(total-inUse-distFixedFrames(spec), spec.Homed()[self])
}

// checkDistRoom refuses this node's share of a distributed VM when the
// pages it homes (each needs a frame from the start), its page tables
// and dvm.MinCopyFrames for copies of other nodes' pages do not fit in
// the node's frames for guests, inUse of total taken. It says how much
// the VM asks of this node and what the node has. Copies beyond the
// minimum take frames as they are touched, and are evicted when the
// node runs short.
func checkDistRoom(spec dvm.Spec, self memory.NodeID, inUse, total int) error {
	if int(self) >= spec.Nodes {
		return fmt.Errorf("dvm: node %d is not in a VM of %d nodes", self, spec.Nodes)
	}
	homed := spec.Homed()[self]
	if homed > distRoom(spec, inUse, total) {
		const page = 4 << 10
		free := total - inUse
		return fmt.Errorf("dvm: this node would home %d of the VM's %d pages (%s of %s) and has %s free for guests (%s of %s in use), of which it needs %s for page tables and VMCSs and keeps %s for copies of pages it does not home: give the VM less memory, more nodes, or homes=fill",
			homed, spec.Pages, memmap.FormatSize(uint64(homed)*page), memmap.FormatSize(uint64(spec.Pages)*page),
			memmap.FormatSize(uint64(max(free, 0))*page), memmap.FormatSize(uint64(inUse)*page), memmap.FormatSize(uint64(total)*page),
			memmap.FormatSize(uint64(distFixedFrames(spec))*page), memmap.FormatSize(dvm.MinCopyFrames*page))
	}
	return nil
}

// clusterNamed returns err with the dvm.StopError it wraps, if any,
// described with cluster node ids (name) instead of the VM's node
// indexes, for the operator; errors.As still finds the StopError.
func clusterNamed(err error, name func(memory.NodeID) uint32) error {
	var se *dvm.StopError
	if !errors.As(err, &se) {
		return err
	}
	return namedError{text: strings.Replace(err.Error(), se.Error(), se.Describe(name), 1), err: err}
}

// namedError is an error re-described for the operator.
type namedError struct {
	text string
	err  error
}

func (e namedError) Error() string { return e.text }
func (e namedError) Unwrap() error { return e.err }
