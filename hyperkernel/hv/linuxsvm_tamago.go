// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"fmt"
	"time"

	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// linuxSVMPassed are the MSRs an operating system reaches without an exit
// on AMD-V: those VMLOAD and VMSAVE switch with the VMCB (the FS/GS and
// kernel GS bases, the SYSCALL and SYSENTER MSRs; AMD APM Vol. 2, 15.5.2
// "VMSAVE and VMLOAD Instructions"). EFER is intercepted (vmEFER).
var linuxSVMPassed = []uint32{
	0xC0000100, 0xC0000101, 0xC0000102, // FS, GS, kernel GS base
	0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084, // STAR, LSTAR, CSTAR, SFMASK
	0x174, 0x175, 0x176, // SYSENTER_CS/ESP/EIP
}

// newSVMVCPUs gives every vCPU of an operating-system guest on AMD-V its
// VMCB and registers; the boot processor gets its state when the guest
// is loaded (load), the others at their startup IPI (waitStartup).
func (vm *LinuxVM) newSVMVCPUs(disp exits.Dispatcher) error {
	h := vm.h
	maps, err := h.svmPermissionMaps(linuxSVMPassed...)
	if err != nil {
		return err
	}
	vm.svmMaps = maps
	if err := disp.MSR.Register(svm.MSREFER, svm.MSREFER, "EFER", vmEFER{vm}); err != nil {
		return err
	}
	vm.vpids = make([]uint16, len(vm.vcpus))
	for i, v := range vm.vcpus {
		v.apic = vm.apics.APIC(i)
		v.timer = time.NewTimer(time.Hour)
		v.sipi = make(chan uint8, 1)
		if vm.dist != nil {
			v.share = vm.dist.rt.Handle(migrate.VCPUID(i))
		}
		frame, err := vm.alloc()
		if err != nil {
			return err
		}
		v.sv = newSVMCPU(h, frame, v.res)
		v.sv.apicID, v.sv.bsp = uint32(i), i == 0
		v.sv.regs.FPU, v.sv.regs.HostFPU = vmx.NewFXArea(), vmx.NewFXArea()
		v.cpu = v.sv
		v.disp = disp
		v.disp.VCPU, v.disp.APICID = i, uint32(i)
		v.disp.APICEnabled = v.apicEnabled
	}
	return nil
}

// startSVM makes st the vCPU's state at its next VMRUN: a fresh VMCB with
// what every guest's has (intercepts, permission maps, its ASID, nested
// paging over the VM's tables) and st loaded into it, refused if VMRUN
// would refuse it.
func (v *linuxVCPU) startSVM(st *vcpu.State) error {
	c := v.sv
	clear(c.vmcb.Bytes()[:])
	svmGuestVMCB(c.vmcb, v.vm.svmMaps, v.vm.h.asid(v.index), v.vm.tab.EPTP())
	loadVMCB(st, c.vmcb, &c.regs)
	c.injecting, c.hasInterrupted = false, false
	if bad := c.check(); len(bad) > 0 {
		return fmt.Errorf("its state would fail VMRUN: %v", bad[0])
	}
	v.started.Store(true)
	return nil
}

// vmEFER is the EFER of each vCPU of an OS guest on AMD-V (see eferMSR).
type vmEFER struct{ vm *LinuxVM }

func (m vmEFER) ReadMSR(i int, msr uint32) (uint64, bool) {
	return eferMSR{m.vm.vcpus[i].sv.vmcb}.ReadMSR(i, msr)
}

func (m vmEFER) WriteMSR(i int, msr uint32, val uint64) bool {
	return eferMSR{m.vm.vcpus[i].sv.vmcb}.WriteMSR(i, msr, val)
}
