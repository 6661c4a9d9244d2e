// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/devices/acpi"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/frames"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/spinlock"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// LinuxConfig describes an operating-system guest to boot.
type LinuxConfig struct {
	// Name identifies the VM in `vm list`.
	Name string
	// VCPUs is the number of virtual processors; Memory the RAM in bytes.
	VCPUs  int
	Memory uint64
	// Load places the kernel, its boot data and page tables into guest
	// memory laid out as layout says, telling the kernel that the ACPI
	// RSDP is at rsdp, and returns where and how the boot processor
	// starts.
	Load func(mem devices.GuestMemory, layout memmap.Map, rsdp uint64) (Entry, error)
	// XAPIC starts the local APICs in xAPIC mode, as a PC powers on
	// (registers in the page at 0xFEE00000, x2APIC mode a guest's
	// choice); otherwise they start in x2APIC mode, as firmware may
	// leave them for Linux.
	XAPIC bool
	// DebugExit gives the guest QEMU's isa-debug-exit port (0xF4): a
	// write ends the VM with the value as its exit code (Info's
	// ExitCode), as test suites written for QEMU expect.
	DebugExit bool
	// Dilation, if above 1, tells the guest that its TSC runs Dilation
	// times faster than it does (CPUID's TSC frequency): its clock and
	// timers run that much slower against the outside (see dvm.Spec).
	Dilation int
	// NUMA, if set, gives the guest an SRAT and a SLIT describing its
	// node topology; nil: it believes it is one uniform machine.
	NUMA *acpi.NUMA
	// Net, if set, is the port the guest's virtio network card is
	// bridged onto (a station on the node's NIC): the card has its MAC
	// and MTU, sends through it and receives what it delivers.
	Net link.Link
	// Disks back the guest's virtio block devices, vda first (at most
	// MaxDisks); none: one RAM disk of RAMDiskSize.
	Disks []virtio.Disk
	// Open, if set, is called on the node with the VM's devices before
	// they are made: it opens what Disks and Net name (network disks, a
	// station on the NIC) and appends to Release what gives them back.
	// If it fails, the VM is not made and Release is called.
	Open func(cfg *LinuxConfig) error
	// Release is called once the VM is freed, its devices stopped: it
	// returns what the caller lent the VM (a station, network disks).
	Release []func()
}

// DiskSpec says what backs one of a guest's disks: a RAM disk of RAM
// bytes, or (RAM zero) the export Export of the NBD server Server.
type DiskSpec struct {
	RAM    uint64
	Server netip.AddrPort
	Export string
}

// String formats d as the console's disk= reads it: ram:SIZE or
// nbd://ADDRESS:PORT/EXPORT.
func (d DiskSpec) String() string {
	if d.RAM != 0 {
		return "ram:" + sizeString(d.RAM)
	}
	return fmt.Sprintf("nbd://%v/%s", d.Server, d.Export)
}

// sizeString formats n bytes in the largest whole unit: 64M, 2G, 512.
func sizeString(n uint64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatUint(n, 10)
}

// NetSpec describes a guest's network card, bridged onto its node's NIC.
// A zero MAC lets the node choose one.
type NetSpec struct {
	MAC link.MAC
}

// BootFiles names a guest's kernel and initramfs on an HTTP server
// (http://ADDRESS[:PORT]/PATH); empty: the ones the image carries. A
// kernel from the network boots with Initrd or none, never with the
// image's initramfs (whose modules are for the image's kernel).
type BootFiles struct {
	Kernel, Initrd string
	// Modules are a Multiboot guest's boot modules, in order.
	Modules []string
}

// Empty reports whether b names no file: the image's own are wanted.
func (b BootFiles) Empty() bool {
	return b.Kernel == "" && b.Initrd == "" && len(b.Modules) == 0
}

// LinuxRequest is what the operator asks of the image's Linux guest, on
// one node (`vm boot linux`) or across nodes (`dvm start guest=linux`).
type LinuxRequest struct {
	// VCPUs is the number of processors; Memory the RAM in bytes.
	VCPUs  int
	Memory uint64
	// Cmdline is the kernel command line ("" for the image's default).
	Cmdline string
	// NUMA: the guest has an SRAT and a SLIT (its default command line
	// may differ).
	NUMA bool
	// Disks are the guest's disks in order (vda, vdb, ...); none: one RAM
	// disk of RAMDiskSize.
	Disks []DiskSpec
	// Net, if set, gives the guest a network card bridged onto the NIC
	// of the node with its devices.
	Net *NetSpec
	// Root, if set, is the disk holding the guest's own root file system
	// (its device node, /dev/vda for the first disk): the initramfs
	// mounts it and runs its init (bigiron.root= on the kernel command
	// line).
	Root string
	// Boot, if set, names the kernel and initramfs to fetch instead of
	// the image's.
	Boot BootFiles
	// Multiboot: the guest is not Linux but a Multiboot 1 kernel
	// (Boot.Kernel, with Boot.Modules and Cmdline), entered in 32-bit
	// protected mode on a PC whose local APICs power on in xAPIC mode,
	// with QEMU's debug-exit port.
	Multiboot bool
	// Dilation is the guest's time dilation (LinuxConfig.Dilation): a
	// TSC rate the backend puts on the command line is dilated too.
	Dilation int
}

// KernelCmdline is the guest kernel's command line r asks for: Cmdline,
// or def when it is empty, and bigiron.root= for Root.
func (r LinuxRequest) KernelCmdline(def string) string {
	c := r.Cmdline
	if c == "" {
		c = def
	}
	if r.Root != "" {
		c += " bigiron.root=" + r.Root
	}
	return c
}

// withTSCRate adds to cmdline the guest's TSC rate as the guest must
// believe it, tscHz times dilation (at least 1), in kHz as Linux's
// tsc_early_khz= takes it, unless cmdline gives a rate already.
func withTSCRate(cmdline string, tscHz uint64, dilation int) string {
	if strings.Contains(cmdline, "tsc_early_khz=") {
		return cmdline
	}
	return fmt.Sprintf("%s tsc_early_khz=%d", cmdline, tscHz*uint64(max(dilation, 1))/1000)
}

// OS guest defaults.
const (
	DefaultGuestMemory = 128 << 20
	DefaultGuestVCPUs  = 1
)

// VMInfo is a running or finished VM as `vm list` shows it.
type VMInfo struct {
	ID      int
	Name    string
	VCPUs   int
	Memory  uint64
	Started time.Time
	// Outcome is "running" or how it ended.
	Outcome string
	// DebugExit says the guest ended itself through the debug-exit port
	// (LinuxConfig.DebugExit) with ExitCode, the value it wrote (QEMU
	// would exit with status ExitCode<<1 | 1).
	DebugExit bool
	ExitCode  uint32
	Exits     exits.ExitStats
	// Setup is how long building the VM took (its RAM backed and
	// zeroed, its tables built, the guest loaded); Tables the bytes its
	// second-level page tables take.
	Setup  time.Duration
	Tables uint64
}

// SetupLine describes a VM's setup cost: time, and table memory in all
// and per GiB of guest RAM.
func (in VMInfo) SetupLine() string {
	perGiB := uint64(0)
	if in.Memory > 0 {
		perGiB = in.Tables * (1 << 30) / in.Memory
	}
	return fmt.Sprintf("built in %v; page tables %s (%s per GiB of RAM)", in.Setup.Round(time.Millisecond),
		memmap.FormatSize(in.Tables), memmap.FormatSize(perGiB))
}

// VCPUState is what a vCPU is doing.
type VCPUState int32

// vCPU states.
const (
	VCPUWaitSIPI VCPUState = iota // an application processor not yet started
	VCPURunning
	VCPUHalted
	VCPUStopped
	VCPUMigrated // left this node for another
)

func (s VCPUState) String() string {
	switch s {
	case VCPUWaitSIPI:
		return "wait-for-SIPI"
	case VCPURunning:
		return "running"
	case VCPUHalted:
		return "halted"
	case VCPUStopped:
		return "stopped"
	case VCPUMigrated:
		return "migrated away"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// VCPUInfo is one vCPU as the `vcpus` command shows it.
type VCPUInfo struct {
	Index  int
	APICID uint32
	State  VCPUState
	// Core is the APIC id of the physical core it runs (or last ran) on;
	// -1 before it first ran.
	Core  int
	Exits uint64
	// InService and Requested are its local APIC's ISR and IRR: an
	// interrupt in service that the guest never ends holds back every
	// vector of its priority class and below.
	InService, Requested vcpu.Vec256
}

// ConsoleLog keeps the latest output of a guest's console: a bounded
// buffer that never blocks the vCPU writing it (the oldest bytes go).
type ConsoleLog struct {
	mu      spinlock.Lock
	buf     []byte
	max     int
	dropped uint64
	written uint64
}

// NewConsoleLog returns a log keeping the last max bytes.
func NewConsoleLog(max int) *ConsoleLog { return &ConsoleLog{buf: make([]byte, 0, max), max: max} }

// Write appends p; it does not allocate. It implements io.Writer.
func (c *ConsoleLog) Write(p []byte) (int, error) {
	for _, b := range p {
		c.WriteByte(b)
	}
	return len(p), nil
}

// WriteByte appends one byte; it does not allocate.
func (c *ConsoleLog) WriteByte(b byte) error {
	c.mu.Lock()
	if len(c.buf) == c.max {
		n := copy(c.buf, c.buf[c.max/4:])
		c.dropped += uint64(c.max - n)
		c.buf = c.buf[:n]
	}
	c.buf = append(c.buf, b)
	c.written++
	c.mu.Unlock()
	return nil
}

// Since returns the bytes written after the first `from` bytes ever
// written (as far as they are still kept) and the count to pass next time.
// The copy is allocated outside the lock: an allocation may start a
// garbage collection, whose stop-the-world would wait for a vCPU core
// spinning on this lock.
func (c *ConsoleLog) Since(from uint64) ([]byte, uint64) {
	c.mu.Lock()
	n := c.written - max(from, c.written-uint64(len(c.buf)))
	if from > c.written {
		n = 0
	}
	c.mu.Unlock()
	out := make([]byte, n+256) // room for what arrives meanwhile
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.written - uint64(len(c.buf)) // count of the oldest byte kept
	if from < first {
		from = first
	}
	if from > c.written {
		from = c.written
	}
	k := copy(out, c.buf[from-first:])
	return out[:k], from + uint64(k)
}

// resetControl is the machine's reset: the PCI reset control register at
// 0xCF9 (a write with bit 2 set, as the FADT reset register says) and
// the i8042's "pulse reset line" command 0xFE on port 0x64, the two ways
// Linux reboots a PC. The i8042 has no keyboard: its status reads empty
// buffers and its data port 0.
type resetControl struct {
	reset func()
}

// Ports of resetControl.
const (
	portResetControl = 0xCF9
	portI8042Data    = 0x60
	portI8042Command = 0x64

	resetControlReset = 1 << 2
	i8042PulseReset   = 0xFE
)

func (r resetControl) In(port uint16, size uint8) uint32 { return 0 }

func (r resetControl) Out(port uint16, size uint8, v uint32) {
	switch {
	case port == portResetControl && v&resetControlReset != 0,
		port == portI8042Command && uint8(v) == i8042PulseReset:
		r.reset()
	}
}

// validateLinuxConfig checks a configuration before any memory is taken;
// loads says the node loads the guest (only a distributed VM's node 0
// does, of its nodes).
func validateLinuxConfig(cfg *LinuxConfig, loads bool) error {
	if cfg.VCPUs < 1 || cfg.VCPUs > 64 {
		return fmt.Errorf("hv: %d vCPUs: want 1 to 64", cfg.VCPUs)
	}
	if loads && cfg.Load == nil {
		return fmt.Errorf("hv: no guest image to load")
	}
	if cfg.Name == "" {
		cfg.Name = "linux"
	}
	return nil
}

// linuxFrames is how many host frames a Linux VM with memory bytes of RAM
// and vcpus vCPUs takes on one node: a frame per guest page, the EPT
// tables that map them with 4 KiB pages (eptFrames), the two I/O bitmaps
// and the MSR bitmap, and per vCPU its VMCS and MSR list.
func linuxFrames(memory uint64, vcpus int) int {
	const page = frames.Size
	ram := (memory + page - 1) / page
	return int(ram+eptFrames(guestmem.NewSplit(memory))) + controlFrames(vcpus)
}

// controlFrames is what a VM of vcpus vCPUs takes besides its RAM and
// tables: the two I/O bitmaps and the MSR bitmap, and per vCPU its VMCS
// and MSR list.
func controlFrames(vcpus int) int { return 3 + 2*vcpus }

// eptFrames is how many table frames map RAM laid out as s with 4 KiB
// pages: per range a page table for each 2 MiB and a directory for each
// GiB it reaches into, a PDPT per 512 GiB of guest-physical space (at
// least one), and the PML4.
func eptFrames(s guestmem.Split) uint64 {
	const (
		pt   = 2 << 20
		pd   = 1 << 30
		pdpt = 512 << 30
	)
	n := 1 + max((s.End()+pdpt-1)/pdpt, 1)
	for _, r := range s.Ranges() {
		n += spanned(r, pt) + spanned(r, pd)
	}
	return n
}

// spanned is how many aligned blocks of unit bytes r reaches into.
func spanned(r guestmem.Range, unit uint64) uint64 {
	if r.Size == 0 {
		return 0
	}
	return (r.Start+r.Size-1)/unit - r.Start/unit + 1
}

// checkAddressWidth refuses RAM of memory bytes whose top, laid out as
// guestmem.NewSplit says, is beyond what bits of guest-physical address
// (the processor's, CPUID 0x80000008, which the guest is shown) reach.
func checkAddressWidth(memory uint64, bits uint) error {
	s := guestmem.NewSplit(memory)
	if bits >= 64 || s.End() <= 1<<bits {
		return nil
	}
	return fmt.Errorf("hv: %s of guest RAM is %v, beyond the processor's %d-bit physical addresses", memmap.FormatSize(memory), s, bits)
}

// checkRoom refuses a Linux VM of memory bytes and vcpus vCPUs when the
// node's frame pool, inUse of total frames taken, cannot hold it, saying
// what the node can give.
func checkRoom(memory uint64, vcpus, inUse, total int) error {
	need, free := linuxFrames(memory, vcpus), total-inUse
	if need <= free {
		return nil
	}
	const page = frames.Size
	return fmt.Errorf("hv: %s of guest RAM (with %s of tables and VMCSs) does not fit: this node has %s free for guests (%s of %s in use); at most %s of RAM fits",
		memmap.FormatSize(memory), memmap.FormatSize(uint64(need)*page-memory), memmap.FormatSize(uint64(free)*page),
		memmap.FormatSize(uint64(inUse)*page), memmap.FormatSize(uint64(total)*page),
		memmap.FormatSize(maxLinuxMemory(vcpus, free)))
}

// maxLinuxMemory is the largest RAM, in whole MiB, of a Linux VM with
// vcpus vCPUs that free frames hold.
func maxLinuxMemory(vcpus, free int) uint64 {
	lo, hi := uint64(0), uint64(free)>>8+1 // MiB: hi never fits
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if linuxFrames(mid<<20, vcpus) <= free {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo << 20
}
