// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"fmt"
	"unsafe"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/frames"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// newSVM prepares AMD-V on this node: a host save area and a host state
// page per core, nested page tables for guest memory.
func newSVM(p *board.Platform, pool *frames.Pool, caps *svm.Capabilities) (*Hypervisor, error) {
	host := func(leaf, sub uint32) exits.CPUIDResult {
		a, b, c, d := p.CPUID(leaf, sub)
		return exits.CPUIDResult{EAX: a, EBX: b, ECX: c, EDX: d}
	}
	policy, err := exits.NewCPUIDPolicy(exits.CPUIDConfig{TSCKHz: uint32(p.TSCHz / 1000), VCPUs: 1}, host)
	if err != nil {
		return nil, fmt.Errorf("hv: %w", err)
	}
	maxPhys := uint(caps.PhysAddrBits)
	if maxPhys == 0 {
		maxPhys = 36
	}
	_, _, _, edx := p.CPUID(0x80000001, 0)
	_, _, ecx1, _ := p.CPUID(1, 0)
	h := &Hypervisor{
		tscDeadline: ecx1&cpuidTSCDeadline != 0,
		plat:        p,
		pool:        pool,
		cpuid:       policy,
		eptc:        ept.NPTCaps(maxPhys, edx&(1<<26) != 0, false),
		format:      ept.NPT,
		svmCaps:     caps,
		svmCores:    make(map[uint32]*coreSVM),
	}
	h.hostXCR0 = hostXCR0(h.hostCPUID)
	h.pku = h.hostXCR0 != 0 && hasPKU(h.hostCPUID)
	h.pks = hasPKS(h.hostCPUID)
	h.loadedMSRs = [numLoadedMSRs]bool{loadedTSCAux: true, loadedPKRS: h.pks}
	for _, c := range p.CPUs {
		if !c.Online {
			continue
		}
		hsave, err := h.zeroFrame()
		if err != nil {
			return nil, fmt.Errorf("hv: host save area: %w", err)
		}
		state, err := h.zeroFrame()
		if err != nil {
			return nil, fmt.Errorf("hv: host state page: %w", err)
		}
		h.svmCores[c.APICID] = &coreSVM{hsave: hsave, host: state}
	}
	h.startSliceWatch()
	for _, r := range p.Reserved {
		h.reserved = append(h.reserved, ept.Range{Start: r.Start, End: r.End()})
	}
	return h, nil
}

// GuestCmdline adds to a Linux guest's command line what this node's
// backend needs: on AMD-V, the TSC's rate (tsc_early_khz=), which Linux
// on an AMD processor would otherwise calibrate against a PIT the guest
// lacks (CPUID leaf 0x15, which gives it on VT-x, is Intel's), dilated
// as CPUID's rate is (LinuxConfig.Dilation); the ACPI PM timer is there
// as its clocksource. A rate the operator gave stays.
func (h *Hypervisor) GuestCmdline(cmdline string, dilation int) string {
	if h.svmCaps == nil {
		return cmdline
	}
	return withTSCRate(cmdline, h.plat.TSCHz, dilation)
}

// SVM returns the AMD-V capabilities where this node runs guests with
// AMD-V, nil on VT-x.
func (h *Hypervisor) SVM() *svm.Capabilities { return h.svmCaps }

// Guest PAT at power-on (AMD APM Vol. 2, 7.8.1), for the VMCB's G_PAT.
const powerOnPAT = 0x0007040600070406

// newSVMVCPU gives the test guest its vCPU on AMD-V: a VMCB in real mode
// at the payload's entry, with the permission maps (every port and MSR
// intercepted but EFER's reads and writes, which the handler keeps SVME
// set in, and FS/GS base, which VMLOAD and VMSAVE switch), and nested
// paging over the guest's tables.
func (t *testRun) newSVMVCPU() (*svmCPU, *exits.Dispatcher, error) {
	h := t.h
	pa, err := t.alloc()
	if err != nil {
		return nil, nil, fmt.Errorf("hv: VMCB: %w", err)
	}
	maps, err := h.svmPermissionMaps()
	if err != nil {
		return nil, nil, err
	}
	t.runs = append(t.runs, maps)
	cpu := newSVMCPU(h, pa, t.res)
	v := cpu.vmcb
	svmGuestVMCB(v, maps, testVPID, t.tab.EPTP())
	realModeVMCB(v, testguest.LoadAddress, testguest.StackTop)

	t.port = &debugPort{}
	bus := exits.NewIOBus()
	if err := bus.Register(testguest.DebugPort, 4, "test guest debug port", t.port); err != nil {
		return nil, nil, err
	}
	msrs := exits.NewMSRTable()
	if err := msrs.Register(svm.MSREFER, svm.MSREFER, "EFER", eferMSR{v}); err != nil {
		return nil, nil, err
	}
	return cpu, &exits.Dispatcher{CPUID: h.cpuid, IO: bus, MSR: msrs, APICID: 0}, nil
}

// svmPermissionMaps returns a 2 MiB run holding a guest's I/O permission
// map (12 KiB) and, after it, its MSR permission map (8 KiB): every port
// and MSR intercepted but the FS and GS bases, which VMLOAD and VMSAVE
// switch (AMD APM Vol. 2, 15.10.1, 15.11). Give it back with FreeRun.
func (h *Hypervisor) svmPermissionMaps(pass ...uint32) (uint64, error) {
	maps, err := h.pool.AllocRun()
	if err != nil {
		return 0, fmt.Errorf("hv: permission maps: %w", err)
	}
	(*svm.IOPM)(unsafe.Pointer(&physBytes(maps, svm.IOPMSize)[0])).InterceptAll()
	pm := (*svm.MSRPM)(unsafe.Pointer(&physBytes(maps+svm.IOPMSize, svm.MSRPMSize)[0]))
	pm.InterceptAll()
	for _, m := range append([]uint32{0xC0000100, 0xC0000101}, pass...) { // FS, GS base and pass
		if err := pm.PassMSR(m); err != nil {
			h.pool.FreeRun(maps)
			return 0, err
		}
	}
	return maps, nil
}

// svmGuestVMCB writes what every guest's VMCB has: the intercepts the
// VT-x side has (CPUID, HLT, XSETBV, ports and MSRs through the
// permission maps at maps, physical INTR and NMI, shutdown) and every SVM
// instruction (the dispatcher makes them #UD), host interrupts exiting
// whatever the guest's IF, ASID asid, nested paging from ncr3.
func svmGuestVMCB(v *svm.VMCB, maps uint64, asid uint32, ncr3 uint64) {
	for _, i := range []svm.Intercept{svm.InterceptINTR, svm.InterceptNMI, svm.InterceptShutdown, svm.InterceptCPUID,
		svm.InterceptHLT, svm.InterceptIOIOProt, svm.InterceptMSRProt, svm.InterceptVMRUN, svm.InterceptVMMCALL,
		svm.InterceptVMLOAD, svm.InterceptVMSAVE, svm.InterceptSTGI, svm.InterceptCLGI, svm.InterceptSKINIT,
		svm.InterceptINVLPGA, svm.InterceptXSETBV} {
		v.SetIntercept(i, true)
	}
	v.Write(svm.CtlIOPMBase, maps)
	v.Write(svm.CtlMSRPMBase, maps+svm.IOPMSize)
	v.Write(svm.CtlGuestASID, uint64(asid))
	v.Write(svm.CtlVIntr, svm.VIntrMasking)
	v.Write(svm.CtlNestedCtl, svm.NestedCtlNP)
	v.Write(svm.CtlNCR3, ncr3)
}

// asid is the ASID of a guest's vCPU n: 1 up to the CPU's last (ASID 0
// is the host's). Guests may share one: every VMRUN after a Load flushes
// the TLB of its ASID (or all), as nested tables change only off the core.
func (h *Hypervisor) asid(n int) uint32 {
	if h.svmCaps.ASIDs < 2 {
		return 1
	}
	return 1 + uint32(n)%(h.svmCaps.ASIDs-1)
}

// realModeVMCB gives a VMCB the state of a processor after reset in real
// mode at 0:rip (segments as after RESET, APM Vol. 2, 14.1.3), with
// EFER.SVME, which VMRUN requires of a guest (15.5.1).
func realModeVMCB(v *svm.VMCB, rip, rsp uint64) {
	data := svm.Segment{Attrib: 0x93, Limit: 0xFFFF}
	for _, s := range []svm.Seg{svm.SegSS, svm.SegDS, svm.SegES, svm.SegFS, svm.SegGS} {
		v.WriteSegment(s, data)
	}
	v.WriteSegment(svm.SegCS, svm.Segment{Attrib: 0x9B, Limit: 0xFFFF})
	v.WriteSegment(svm.SegLDTR, svm.Segment{Attrib: 0x82, Limit: 0xFFFF})
	v.WriteSegment(svm.SegTR, svm.Segment{Attrib: 0x8B, Limit: 0xFFFF})
	v.WriteSegment(svm.SegGDTR, svm.Segment{Limit: 0xFFFF})
	v.WriteSegment(svm.SegIDTR, svm.Segment{Limit: 0xFFFF})
	v.Write(svm.SaveEFER, svm.EFERSVME)
	v.Write(svm.SaveCR0, 1<<4) // ET
	v.Write(svm.SaveDR6, 0xFFFF0FF0)
	v.Write(svm.SaveDR7, 0x400)
	v.Write(svm.SaveRFLAGS, 2)
	v.Write(svm.SaveRIP, rip)
	v.Write(svm.SaveRSP, rsp)
	v.Write(svm.SaveGPAT, powerOnPAT)
}

// eferMSR is the guest's EFER: the VMCB's, whose SVME bit VMRUN needs and
// the guest never sees.
type eferMSR struct{ v *svm.VMCB }

func (m eferMSR) ReadMSR(int, uint32) (uint64, bool) {
	return m.v.Read(svm.SaveEFER) &^ svm.EFERSVME, true
}

func (m eferMSR) WriteMSR(_ int, _ uint32, val uint64) bool {
	m.v.Write(svm.SaveEFER, val|svm.EFERSVME)
	return true
}
