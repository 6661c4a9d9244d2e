// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"fmt"
	"time"

	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/vmm/devices/mmio"
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
	for m, name := range [numLoadedMSRs]string{"IA32_TSC_AUX", "IA32_PKRS"} {
		if !h.loadedMSRs[m] {
			continue
		}
		idx := loadedMSRIndex[m]
		if err := disp.MSR.Register(idx, idx, name, vmLoadedMSR{vm, loadedMSR(m)}); err != nil {
			return err
		}
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
		v.cpu = v.sv
		v.useDispatcher(disp, i)
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
	c.loadState(st)
	c.vmcb.SetIntercept(svm.InterceptCRWrite(4), true)
	v.tpr = vtprSync{}
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

// vmLoadedMSR is each vCPU's own value of a loaded MSR on AMD-V
// (loadedmsrs.go): IA32_TSC_AUX, which RDTSCP and RDPID read without an
// exit, or IA32_PKRS. RDMSR and WRMSR exit and reach the vCPU's copy;
// bits 63:32 are reserved (#GP).
type vmLoadedMSR struct {
	vm    *LinuxVM
	which loadedMSR
}

func (m vmLoadedMSR) ReadMSR(i int, _ uint32) (uint64, bool) {
	return m.vm.vcpus[i].sv.msrs[m.which], true
}

func (m vmLoadedMSR) WriteMSR(i int, _ uint32, val uint64) bool {
	return m.vm.vcpus[i].sv.msrs.write32(m.which, val)
}

// svmCRWrite4 is the exit code of an intercepted write of CR4, which
// reaches Other under reason svmUnhandled.
const svmCRWrite4 = uint64(svm.ExitCRWrite + 4)

// svmWriteCR4 emulates a MOV to CR4 (intercepted: AMD-V has no CR4 mask,
// and the guest must see only what its CPUID offers, an OSXSAVE it does
// not offer taking #GP). The source register comes from decode assists
// where the processor has them, else from the instruction, fetched
// through the guest's page tables and decoded. A change of a bit that
// invalidates translations flushes the guest's TLB at the next VMRUN.
func (v *linuxVCPU) svmWriteCR4() error {
	c := v.sv
	vm := c.vmcb
	rip := c.RIP()
	gpr, length := int(c.exit.CR.GPR), 0
	if !c.exit.CR.Decoded {
		code, mode, err := v.svmCode()
		if err != nil {
			return fmt.Errorf("MOV to CR4 at RIP %#x: %w", rip, err)
		}
		var cr int
		if cr, gpr, length, err = decodeMovToCR(code, mode); err != nil {
			return fmt.Errorf("MOV to CR4 at RIP %#x: %w", rip, err)
		}
		if cr != 4 {
			return fmt.Errorf("CR4 write exit at RIP %#x, where the instruction writes CR%d", rip, cr)
		}
	}
	if n := c.nextRIP(); n > rip && n-rip <= maxInstruction {
		length = int(n - rip)
	}
	val := vm.Read(svm.SaveRSP)
	if p := c.regs.Reg(vmx.GPR(gpr)); p != nil {
		val = *p
	}
	efer := vm.Read(svm.SaveEFER)
	longMode := efer&svm.EFERLMA != 0
	if cs := vm.ReadSegment(svm.SegCS); !longMode || cs.Attrib&(1<<9) == 0 {
		val &= 0xFFFFFFFF // a 32-bit operand outside 64-bit mode
	}
	old := vm.Read(svm.SaveCR4)
	if !cr4Write(v.cr4Allowed, old, val, longMode, vm.Read(svm.SaveCR3)) {
		v.injectGP()
		return nil
	}
	vm.Write(svm.SaveCR4, val)
	if (old^val)&cr4Flush != 0 {
		c.flushTLB()
	}
	c.Advance(uint32(length))
	return nil
}

// svmCode fetches the instruction at the guest's CS:RIP through its
// page tables in whatever paging mode it runs (fetchCode), and returns it
// with its decoding mode (16, 32 or 64 bits), the vCPU loaded again.
func (v *linuxVCPU) svmCode() ([]byte, int, error) {
	c := v.sv
	vm := c.vmcb
	efer := vm.Read(svm.SaveEFER)
	cs := vm.ReadSegment(svm.SegCS)
	mode, la := 16, cs.Base+c.RIP()
	switch {
	case efer&svm.EFERLMA != 0 && cs.Attrib&(1<<9) != 0:
		mode, la = 64, c.RIP()
	case cs.Attrib&(1<<10) != 0:
		mode = 32
	}
	if mode != 64 {
		la &= 0xFFFFFFFF
	}
	p := mmio.PagingOf(vm.Read(svm.SaveCR0), vm.Read(svm.SaveCR3), vm.Read(svm.SaveCR4), efer)
	var buf [maxInstruction]byte
	code, err := v.fetchCode(p, la, &buf)
	if lerr := c.Load(); err == nil {
		err = lerr
	}
	return code, mode, err
}
