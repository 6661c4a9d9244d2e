// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package hv runs this node's virtual machines: the built-in test guest,
// operating-system guests on this node, and this node's share of a
// distributed VM. It turns VMX on, core by core, builds VMCSs and EPT
// tables from the vmx and ept packages, and runs every vCPU in the one
// run loop (package runloop) through vmxCPU, its VT-x backend; what
// differs between guests are the loop's strategies: testRun (test guest),
// linuxVCPU (an OS guest, on one node or spanning several) and distVCPU (a
// test guest spanning nodes). A distributed VM's protocol and control
// plane are package dvm's; hv implements its dvm.Host and dvm.Share. The
// bare-metal parts build only for GOOS=tamago; the reporting types build
// everywhere.
package hv

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// Result is the outcome of one test-guest run.
type Result struct {
	Variant testguest.Variant
	// APICID is the core the guest first ran on; Cores lists every core
	// it ran on, in order of first use, and Migrations counts the times
	// its VMCS moved from one core to another.
	APICID     uint32
	Cores      []uint32
	Migrations int
	// Loads counts the times the VMCS was made current on a core.
	Loads int
	last  uint32 // core of the latest load
	// Outcome says how the guest ended: "halted", "triple fault",
	// "stopped: ..." (the VM was stopped for a reason given).
	Outcome string
	// Report is what the guest wrote to its debug port.
	Report testguest.Report
	// ReportErr is the guest report's verdict (nil: all stages, CPUID
	// and memory checksum as expected).
	ReportErr error
	// Exits counts exits by reason.
	Exits exits.ExitStats
	// PagesTouched counts guest pages backed on first touch.
	PagesTouched int
	// Elapsed is the wall time of the run; TSC the cycles.
	Elapsed time.Duration
	TSC     uint64
	// Allocs counts Go heap objects allocated while the VM ran (exit
	// loop, handlers and backing pages on touch).
	Allocs uint64
	// Diagnosis holds the failed VM-entry checks, if entry failed.
	Diagnosis []string
}

// noteCore records a load of the VM's VMCS on core id.
func (r *Result) noteCore(id uint32) {
	if r.Loads > 0 && id != r.last {
		r.Migrations++
	}
	r.last = id
	r.Loads++
	if len(r.Cores) == 0 {
		r.APICID = id
	}
	if !slices.Contains(r.Cores, id) {
		r.Cores = append(r.Cores, id)
	}
}

// String summarizes the result in a few lines.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "guest %s on core with APIC id %d: %s after %d exits, %v\n",
		r.Variant, r.APICID, r.Outcome, r.Exits.Total(), r.Elapsed.Round(time.Microsecond))
	if r.Loads > 0 {
		fmt.Fprintf(&b, "  ran on cores (APIC ids) %v: VMCS loaded %d times, moved between cores %d times\n",
			r.Cores, r.Loads, r.Migrations)
	}
	for _, d := range r.Diagnosis {
		fmt.Fprintf(&b, "  entry check failed: %s\n", d)
	}
	if len(r.Report.Stages) > 0 {
		fmt.Fprintf(&b, "  stages reached: %v\n", r.Report.Stages)
	}
	for _, leaf := range []uint32{0, 1} {
		if v, ok := r.Report.CPUID[leaf]; ok {
			fmt.Fprintf(&b, "  guest CPUID.%d: %08x %08x %08x %08x", leaf, v[0], v[1], v[2], v[3])
			if leaf == 0 {
				fmt.Fprintf(&b, " %q", vendor(v))
			}
			b.WriteString("\n")
		}
	}
	if r.Report.MemBytes != 0 {
		fmt.Fprintf(&b, "  memory test: %d bytes, checksum %#x (want %#x), %d pages backed on touch\n",
			r.Report.MemBytes, r.Report.MemChecksum, testguest.ExpectedMemChecksum(), r.PagesTouched)
	}
	if r.Loads > 0 {
		fmt.Fprintf(&b, "  heap allocations while running: %d (%d pages backed, %d exits)\n", r.Allocs, r.PagesTouched, r.Exits.Total())
	}
	if tpc := r.Report.TSCPerCPUID(); tpc != 0 {
		fmt.Fprintf(&b, "  CPUID exit round trip: %d TSC ticks (%d iterations)\n", tpc, r.Report.BenchIters)
	}
	if rep := &r.Report; rep.Counted {
		fmt.Fprintf(&b, "  counter: %d (%d vCPUs x %d iterations), %d TSC ticks on vCPU 0\n", rep.Counter, rep.CounterVCPUs, rep.CounterIters, rep.CounterTSC)
	}
	if r.ReportErr != nil {
		fmt.Fprintf(&b, "  guest report: %v\n", r.ReportErr)
	} else if r.Variant == testguest.VariantStandard || r.Variant == testguest.VariantCounter {
		b.WriteString("  guest report: ok\n")
	}
	return b.String()
}

func vendor(v [4]uint32) string {
	var s [12]byte
	for i, w := range []uint32{v[1], v[3], v[2]} {
		s[4*i], s[4*i+1], s[4*i+2], s[4*i+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return string(s[:])
}
