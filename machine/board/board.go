// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package board describes the machine a big-iron image runs on. Board
// packages (board/pc, board/microvm) fill in a Platform during early init;
// everything else in the image reads the machine from that one value and
// never touches board globals.
package board

import (
	"fmt"
	"io"
	"time"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// Platform is what the board found at boot.
type Platform struct {
	// Name is the board family ("pc", "microvm").
	Name string
	// Loader says how the image was started ("multiboot", "pvh").
	Loader string
	// CommandLine is the boot command line, if the loader gave one.
	CommandLine string

	// CPUs lists every core the firmware describes, BSP first.
	CPUs []CPU
	// TSCHz is the time-stamp counter frequency and TSCSource how it
	// was found.
	TSCHz     uint64
	TSCSource string
	// ExtraThreadRequests returns how many times the Go runtime asked for
	// a hardware thread beyond the cores, each refused and its work given
	// back to the scheduler; nil where the board has no such hook.
	ExtraThreadRequests func() uint64
	// WakeVector is an interrupt vector whose handler only acknowledges
	// the interrupt, for timers whose only job is to end a halt or a
	// guest's turn; 0 if the board has none.
	WakeVector uint8
	// LAPICTimerHz is the local-APIC timer's rate at divide by 1, as
	// measured against the TSC; 0 if unknown.
	LAPICTimerHz uint64
	// Watchdog, where the board has it, makes fn run about every
	// period from the runtime's own clock reads on whichever core makes
	// one: those go on while the runtime stops the world, when no
	// goroutine runs (see x86.clockWatch). One call runs at a time,
	// unless one stalls for a few periods: then another core runs fn
	// beside it. fn must be short and must not allocate, block, take a
	// lock or write a pointer. A later call replaces the earlier fn.
	Watchdog func(period time.Duration, fn func())

	// Memory is the physical memory map the loader reported, normalized.
	Memory memmap.Map
	// Reserved lists ranges the hyperkernel itself occupies.
	Reserved []Reservation

	// NICs lists the network controllers found.
	NICs []NIC

	// Notes holds non-fatal problems met during bring-up, one line each.
	Notes []string

	// Emulator says why the machine looks like an emulator or a virtual
	// machine (see EmulatorSign); empty on bare metal.
	Emulator string

	// ReadMSR reads a model-specific register on the BSP. Boards set it
	// to refuse the VMX capability MSRs where CPUID reports no VMX, since
	// reading a missing MSR faults.
	ReadMSR func(msr uint32) (uint64, error)

	// CPUID executes CPUID on the calling core.
	CPUID func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

	// Console is the operator's serial console.
	Console io.ReadWriter

	// Reboot resets the machine; Halt stops it.
	Reboot func()
	Halt   func()
}

// CPU is one logical processor.
type CPU struct {
	APICID uint32
	BSP    bool
	// Online is true once the core runs Go code (the BSP) or has parked
	// in the runtime's idle loop waiting for work (an AP).
	Online bool
	VMX    VMXSupport
}

// VMXSupport says whether a core can run VMX, and why not.
type VMXSupport struct {
	// Capable is true when CPUID reports VMX and IA32_FEATURE_CONTROL
	// allows VMXON outside SMX (or is unlocked, so we can allow it).
	Capable bool
	// Reason explains a false Capable, in words.
	Reason string
	// EPT is true when the VMX capability MSRs report EPT.
	EPT bool
}

// IA32_FEATURE_CONTROL bits, Intel SDM Vol. 4, Table 2-2 (MSR 3AH).
const (
	FeatureControlLock       = 1 << 0
	FeatureControlVMXInSMX   = 1 << 1
	FeatureControlVMXOutside = 1 << 2
	cpuid1ECXVMX             = 1 << 5
)

// VMXFromProbe decides VMX support from CPUID.1:ECX and IA32_FEATURE_CONTROL.
func VMXFromProbe(cpuid1ECX uint32, featureControl uint64) VMXSupport {
	switch {
	case cpuid1ECX&cpuid1ECXVMX == 0:
		return VMXSupport{Reason: "CPUID.1:ECX.VMX=0 (no VT-x on this CPU or emulator)"}
	case featureControl&FeatureControlLock != 0 && featureControl&FeatureControlVMXOutside == 0:
		return VMXSupport{Reason: "disabled by firmware (IA32_FEATURE_CONTROL locked without VMX)"}
	}
	return VMXSupport{Capable: true}
}

// Reservation is physical memory the hyperkernel itself occupies.
type Reservation struct {
	memmap.Range
	// Owner names the user ("hyperkernel image and Go heap").
	Owner string
}

// NIC is a network controller.
type NIC struct {
	// Kind is the driver family ("e1000", "e1000e", "virtio-net").
	Kind string
	// Where locates it ("pci 00:03.0", "virtio-mmio 0xfeb02e00").
	Where  string
	Vendor uint16
	Device uint16
	// PCI is true for a PCI function at Bus and Slot (function 0); MMIO
	// is the register base of a virtio-mmio device.
	PCI       bool
	Bus, Slot uint8
	MMIO      uint64
}

// OnlineCPUs counts the cores running.
func (p *Platform) OnlineCPUs() int {
	n := 0
	for _, c := range p.CPUs {
		if c.Online {
			n++
		}
	}
	return n
}

// Summary is the short hardware summary printed at boot.
func (p *Platform) Summary() string {
	vmx, ept := 0, 0
	for _, c := range p.CPUs {
		if c.VMX.Capable {
			vmx++
		}
		if c.VMX.EPT {
			ept++
		}
	}
	s := fmt.Sprintf("board %s (%s), %d/%d cores online, TSC %d kHz (%s)\n",
		p.Name, p.Loader, p.OnlineCPUs(), len(p.CPUs), p.TSCHz/1000, p.TSCSource)
	s += fmt.Sprintf("memory %s usable, %s free for guests\n",
		memmap.FormatSize(p.Memory.TotalUsable()), memmap.FormatSize(p.GuestMemory().TotalUsable()))
	vmxWord := "no"
	switch {
	case vmx == len(p.CPUs) && vmx > 0:
		vmxWord = "yes"
	case vmx > 0:
		vmxWord = fmt.Sprintf("%d of %d cores", vmx, len(p.CPUs))
	case len(p.CPUs) > 0:
		vmxWord = "no: " + p.CPUs[0].VMX.Reason
	}
	eptWord := "no"
	if ept > 0 {
		eptWord = "yes"
	}
	s += fmt.Sprintf("VMX %s, EPT %s\n", vmxWord, eptWord)
	if len(p.NICs) == 0 {
		s += "NICs none found\n"
	}
	for _, n := range p.NICs {
		s += fmt.Sprintf("NIC %s at %s (%04x:%04x)\n", n.Kind, n.Where, n.Vendor, n.Device)
	}
	for _, n := range p.Notes {
		s += "note: " + n + "\n"
	}
	return s
}

// GuestMemory is the usable memory outside the hyperkernel's reservations:
// what guests can be given.
func (p *Platform) GuestMemory() memmap.Map {
	ex := make([]memmap.Range, len(p.Reserved))
	for i, r := range p.Reserved {
		ex[i] = r.Range
	}
	return p.Memory.Subtract(ex...)
}

// EmulatorSign says why a machine looks emulated: CPUID's hypervisor bit
// (leaf 1, ECX bit 31, which hypervisors set and processors leave
// clear), or ACPI tables made by the BIOS QEMU and Bochs share (OEM ID
// "BOCHS"). It returns "" for a machine with neither.
func EmulatorSign(leaf1ECX uint32, acpiOEM string) string {
	switch {
	case leaf1ECX&(1<<31) != 0:
		return "CPUID hypervisor bit"
	case acpiOEM == "BOCHS" || acpiOEM == "BXPC":
		return "ACPI OEM " + acpiOEM + " (QEMU or Bochs)"
	}
	return ""
}
