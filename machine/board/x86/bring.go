// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"fmt"
	"runtime/goos"

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/amd64/lapic"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/acpi"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/multiboot"
	"github.com/big-iron/big-iron/machine/boot/pvh"
)

// VMX capability MSRs used to report EPT (Intel SDM Vol. 3D, A.3.2, A.3.3).
const (
	msrVMXProcBasedCtls  = 0x482
	msrVMXProcBasedCtls2 = 0x48b
	procCtlsSecondary    = 1 << 31 // allowed-1 in the MSR's high half
	proc2CtlsEPT         = 1 << 1
)

// CalibrateTSC sets the CPU's timer from the best TSC frequency source and
// returns the frequency and the name of its source. Under KVM tamago's
// kvmclock-based value is exact; elsewhere the PIT is measured, since
// emulators report CPUID leaf 0x15 values unrelated to their TSC rate; CPUID
// leaf 0x15 is the fallback for machines without a PIT.
func CalibrateTSC(cpu *amd64.CPU) (uint64, string) {
	if cpu.Features().KVM && cpu.Freq() > 1 {
		return uint64(cpu.Freq()), "kvmclock"
	}
	hz, src := uint64(0), "none"
	if pit, err := TSCFromPIT(); err == nil {
		hz, src = pit, "PIT"
	} else if c := TSCFromCPUID(cpu.CPUID); c != 0 {
		hz, src = c, "CPUID.15H"
	}
	if hz != 0 {
		cpu.TimerMultiplier = 1e9 / float64(hz)
	}
	return hz, src
}

// Bring describes the machine after runtime start: boot information, CPUs
// from the ACPI MADT (starting every AP) and NICs.
func Bring(cpu *amd64.CPU, name string, tscHz uint64, tscSource string) *board.Platform {
	p := &board.Platform{
		Name:      name,
		TSCHz:     tscHz,
		TSCSource: tscSource,
		Reboot:    cpu.Reset,
		Halt: func() {
			// park every other core in wait-for-SIPI (INIT IPI to all
			// excluding self, Intel SDM Vol. 3A 11.6.1), then stop
			cpu.LAPIC.IPI(0, 0, lapic.ICR_DST_REST|lapic.ICR_DLV_INIT|1<<lapic.ICR_INIT)
			Halt()
		},
	}

	_, _, ecx, _ := cpu.CPUID(1, 0)
	var fc uint64
	if ecx&(1<<5) != 0 {
		fc = cpu.MSR(0x3a)
	}
	bsp := board.CPU{APICID: cpu.LAPIC.ID(), BSP: true, Online: true, VMX: board.VMXFromProbe(ecx, fc)}
	if bsp.VMX.Capable {
		proc := cpu.MSR(msrVMXProcBasedCtls)
		if proc>>32&procCtlsSecondary != 0 {
			bsp.VMX.EPT = cpu.MSR(msrVMXProcBasedCtls2)>>32&proc2CtlsEPT != 0
		}
	}
	p.CPUs = append(p.CPUs, bsp)
	p.CPUID = cpu.CPUID
	hasVMX := ecx&(1<<5) != 0
	p.ReadMSR = func(msr uint32) (uint64, error) {
		if msr >= 0x480 && msr <= 0x491 && !hasVMX {
			return 0, fmt.Errorf("MSR %#x: CPUID reports no VMX", msr)
		}
		return cpu.MSR(uint64(msr)), nil
	}

	rsdp := readBootInfo(p)
	startCPUs(p, cpu, rsdp)

	if tscHz == 0 {
		p.Notes = append(p.Notes, "TSC frequency unknown: time runs at one nanosecond per TSC tick")
	}
	return p
}

// readBootInfo fills in the loader, command line and memory map from the
// Multiboot information or the PVH start info, and reserves what the
// hyperkernel occupies. It returns the ACPI RSDP address if the loader gave
// one (PVH does).
func readBootInfo(p *board.Platform) (rsdp uint64) {
	h := BootHandoff()
	switch {
	case h.EAX == MultibootMagic:
		p.Loader = "multiboot"
		info, err := multiboot.ParseInfo(ReadPhys, uint64(h.EBX))
		if err != nil {
			p.Notes = append(p.Notes, fmt.Sprintf("multiboot information unreadable: %v", err))
			return 0
		}
		p.CommandLine = info.Cmdline
		if p.CommandLine == "" {
			if c, err := FwCfgCmdline(); err == nil {
				p.CommandLine = c
			}
		}
		p.Memory = info.MemoryMap.Normalize()
		if info.BootLoaderName != "" {
			p.Loader += " (" + info.BootLoaderName + ")"
		}
	default:
		p.Loader = "pvh"
		si, err := pvh.ParseStartInfo(ReadPhys, uint64(h.EBX))
		if err != nil {
			p.Notes = append(p.Notes, fmt.Sprintf("PVH start info unreadable: %v", err))
			return 0
		}
		p.CommandLine = si.Cmdline
		p.Memory = si.MemoryMap.Normalize()
		rsdp = si.RSDP
	}
	p.Reserved = append(p.Reserved,
		board.Reservation{Range: memmap.Range{Start: 0, Size: 1 << 20}, Owner: "real-mode area, boot page tables, AP trampoline"},
		board.Reservation{Range: memmap.Range{Start: uint64(goos.RamStart), Size: uint64(goos.RamSize)}, Owner: "hyperkernel image, Go heap and stacks"},
	)
	if len(p.Memory) == 0 {
		if m, err := FwCfgE820(); err == nil {
			p.Memory = m.Normalize()
			p.Loader += ", memory map from fw_cfg"
		} else {
			p.Notes = append(p.Notes, fmt.Sprintf("the boot loader gave no memory map (and %v)", err))
		}
	}
	return rsdp
}

// startCPUs lists the cores of the ACPI MADT and starts every enabled AP.
// Without a MADT only the BSP runs.
func startCPUs(p *board.Platform, cpu *amd64.CPU, rsdpAddr uint64) {
	var (
		rsdp acpi.RSDP
		err  error
	)
	_, _, leaf1ECX, _ := p.CPUID(1, 0)
	p.Emulator = board.EmulatorSign(leaf1ECX, "")
	defer func() { p.Emulator = board.EmulatorSign(leaf1ECX, rsdp.OEMID) }()
	if rsdpAddr != 0 {
		rsdp, err = acpi.ReadRSDP(ReadPhys, rsdpAddr)
	} else {
		rsdp, err = acpi.FindRSDP(ReadPhys)
		if err != nil {
			// A UEFI machine keeps it in its ACPI memory instead.
			var acpiMem []memmap.Range
			for _, r := range p.Memory {
				if r.Type == memmap.ACPIReclaimable || r.Type == memmap.ACPINVS {
					acpiMem = append(acpiMem, memmap.Range{Start: r.Start, Size: r.Size})
				}
			}
			if found, err2 := acpi.FindRSDPInRegions(ReadPhys, acpiMem); err2 == nil {
				rsdp, err = found, nil
			} else {
				err = fmt.Errorf("%v; %v", err, err2)
			}
		}
	}
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("no ACPI tables, running on the BSP only: %v", err))
		return
	}
	tables, err := acpi.Load(ReadPhys, rsdp)
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("ACPI tables unreadable, running on the BSP only: %v", err))
		return
	}
	recalibrate(p, cpu, tables)

	madt, err := tables.MADT()
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("ACPI MADT unusable, running on the BSP only: %v", err))
		return
	}

	bsp := &p.CPUs[0]
	var aps []uint32
	for _, c := range madt.CPUs() {
		if c.APICID == bsp.APICID {
			continue
		}
		if !c.Enabled {
			continue
		}
		if c.APICID > 0xfe {
			p.Notes = append(p.Notes, fmt.Sprintf("CPU with x2APIC id %d not started: xAPIC mode only", c.APICID))
			continue
		}
		aps = append(aps, c.APICID)
		p.CPUs = append(p.CPUs, board.CPU{APICID: c.APICID})
	}

	smp, err := StartAPs(cpu.LAPIC, aps)
	if err != nil {
		p.Notes = append(p.Notes, err.Error())
	}
	p.ExtraThreadRequests = smp.ExtraThreadRequests
	for _, pr := range smp.Probes() {
		for i := range p.CPUs {
			if p.CPUs[i].APICID == pr.APICID && !p.CPUs[i].BSP {
				c := &p.CPUs[i]
				c.Online = true
				c.VMX = board.VMXFromProbe(pr.CPUID1ECX, pr.FeatureControl)
				// EPT is reported from the BSP's capability MSRs: cores
				// of one machine share them
				c.VMX.EPT = c.VMX.Capable && bsp.VMX.EPT
			}
		}
	}
}

// recalibrate measures the TSC against the ACPI PM timer the FADT names,
// which survives delayed polls better than the PIT used at early boot, and
// adopts the result without letting time step backwards.
func recalibrate(p *board.Platform, cpu *amd64.CPU, tables *acpi.Tables) {
	if p.TSCSource == "kvmclock" {
		return
	}
	_, fadt, err := tables.Find("FACP", 0)
	if err != nil {
		return
	}
	port := PMTimerPort(fadt)
	if port == 0 {
		return
	}
	hz, err := TSCFromPMTimer(port)
	if err != nil {
		p.Notes = append(p.Notes, err.Error())
		return
	}
	now := cpu.GetTime()
	cpu.TimerMultiplier = 1e9 / float64(hz)
	cpu.SetTime(now)
	p.TSCHz, p.TSCSource = hz, fmt.Sprintf("ACPI PM timer, port %#x", port)
}
