// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/frames"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// ErrNeedsVTx refuses what the AMD-V backend does not run yet.
var ErrNeedsVTx = errors.New("this runs on VT-x only so far: on AMD-V this node runs the test guests (vm run test)")

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
	h := &Hypervisor{
		plat:     p,
		pool:     pool,
		cpuid:    policy,
		eptc:     ept.NPTCaps(maxPhys, edx&(1<<26) != 0, false),
		format:   ept.NPT,
		svmCaps:  caps,
		svmCores: make(map[uint32]*coreSVM),
	}
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
	for _, r := range p.Reserved {
		h.reserved = append(h.reserved, ept.Range{Start: r.Start, End: r.End()})
	}
	return h, nil
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
	maps, err := h.pool.AllocRun() // the IOPM (12 KiB) and MSRPM (8 KiB) are contiguous
	if err != nil {
		return nil, nil, fmt.Errorf("hv: permission maps: %w", err)
	}
	t.runs = append(t.runs, maps)
	iopm, msrpm := maps, maps+svm.IOPMSize
	(*svm.IOPM)(unsafe.Pointer(&physBytes(iopm, svm.IOPMSize)[0])).InterceptAll()
	pm := (*svm.MSRPM)(unsafe.Pointer(&physBytes(msrpm, svm.MSRPMSize)[0]))
	pm.InterceptAll()
	for _, m := range []uint32{0xC0000100, 0xC0000101} { // FS, GS base
		if err := pm.PassMSR(m); err != nil {
			return nil, nil, err
		}
	}
	cpu := newSVMCPU(h, pa, t.res)
	v := cpu.vmcb
	for _, i := range []svm.Intercept{svm.InterceptINTR, svm.InterceptNMI, svm.InterceptShutdown, svm.InterceptCPUID,
		svm.InterceptHLT, svm.InterceptIOIOProt, svm.InterceptMSRProt, svm.InterceptVMRUN, svm.InterceptVMMCALL,
		svm.InterceptVMLOAD, svm.InterceptVMSAVE, svm.InterceptSTGI, svm.InterceptCLGI, svm.InterceptSKINIT,
		svm.InterceptINVLPGA} {
		v.SetIntercept(i, true)
	}
	v.Write(svm.CtlIOPMBase, iopm)
	v.Write(svm.CtlMSRPMBase, msrpm)
	v.Write(svm.CtlGuestASID, testVPID)
	v.Write(svm.CtlVIntr, svm.VIntrMasking) // host interrupts exit whatever the guest's IF
	v.Write(svm.CtlNestedCtl, svm.NestedCtlNP)
	v.Write(svm.CtlNCR3, t.tab.EPTP())
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
