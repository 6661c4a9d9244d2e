// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"encoding/binary"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// VM-entry interruption information and RFLAGS bits (Intel SDM Vol. 3C,
// 25.8.3 "VM-Entry Controls for Event Injection"; Vol. 1, 3.4.3).
const (
	intrValid      = 1 << 31
	intrErrorValid = 1 << 11
	rflagsIF       = 1 << 9
	// blocking by STI or MOV SS, and by NMI (Vol. 3C, 25.4.2, Table
	// 25-3)
	blockingSTIorSS = 3
	blockingNMI     = 1 << 3
)

// vmxCPU is a vCPU on VT-x, the runloop.CPU of every guest: its VMCS
// (where it is current), its registers in memory, and the VM-execution
// state the loop changes, cached so that unchanged fields are not
// written again.
type vmxCPU struct {
	vc   loadedVMCS
	regs vmx.GuestRegs
	h    *Hypervisor
	// proc is the primary processor-based controls as last written;
	// tscOffset the TSC offset (^0: not yet written).
	proc      uint64
	tscOffset uint64
	// intrWindow and nmiWindow are what the loop asked for (see
	// vmxWindows); vnmi: the guest runs with virtual NMIs.
	intrWindow, nmiWindow, vnmi bool
	// injecting: an event is in the VM-entry interruption field for the
	// next entry. interrupted is the event whose delivery the latest
	// exit cut short (IDT-vectoring information).
	injecting      bool
	interrupted    runloop.Event
	hasInterrupted bool
	// apicID and bsp describe the vCPU in a saved state; msrList is the
	// frame of its VM-entry MSR-load / VM-exit MSR-store list (0: none),
	// whose values travel with it.
	apicID  uint32
	bsp     bool
	msrList uint64
}

// reset makes c a vCPU whose VMCS is written from setup at its first
// load, with VM-execution controls ctl.
func (c *vmxCPU) reset(vc loadedVMCS, ctl vmx.Controls) {
	c.vc = vc
	c.proc = uint64(ctl.Proc)
	c.vnmi = ctl.Pin&vmx.PinVirtualNMIs != 0
	c.tscOffset = ^uint64(0)
	c.injecting, c.hasInterrupted = false, false
	c.intrWindow, c.nmiWindow = false, false
}

var _ guestCPU = (*vmxCPU)(nil)

// guestCPU is a vCPU as device emulation sees it: the run loop's CPU, the
// guest's CR4 and privilege level (what CPUID and XSETBV follow), and its
// page tables and stack pointer (an emulated access fetches the
// instruction through CR3 and may push or pop).
type guestCPU interface {
	runloop.CPU
	GuestCR4() uint64
	CPL() int
	CR3() uint64
	RSP() uint64
	SetRSP(uint64)
}

// GuestCR4 is CR4 as the guest sees it: the bits the host owns (the
// guest/host mask) from the read shadow.
func (c *vmxCPU) GuestCR4() uint64 {
	mask := vmread(vmx.CR4GuestHostMask)
	return vmread(vmx.GuestCR4)&^mask | vmread(vmx.CR4ReadShadow)&mask
}

// CPL is the guest's privilege level, SS.DPL (SDM Vol. 3C, 25.4.1).
func (c *vmxCPU) CPL() int { return int(vmread(vmx.GuestSSAccessRights) >> 5 & 3) }

func (c *vmxCPU) CR3() uint64     { return vmread(vmx.GuestCR3) }
func (c *vmxCPU) RSP() uint64     { return vmread(vmx.GuestRSP) }
func (c *vmxCPU) SetRSP(v uint64) { vmx.VMWRITE(vmx.GuestRSP, v) }

func (c *vmxCPU) Load() error          { return c.vc.load() }
func (c *vmxCPU) Put()                 { c.vc.put() }
func (c *vmxCPU) Loaded() bool         { return c.vc.pinned }
func (c *vmxCPU) Core() int            { return int(c.vc.core) }
func (c *vmxCPU) Now() uint64          { return rdtsc() }
func (c *vmxCPU) Regs() *vmx.GuestRegs { return &c.regs }
func (c *vmxCPU) RIP() uint64          { return vmread(vmx.GuestRIP) }
func (c *vmxCPU) Advance(n uint32)     { advance(n) }
func (c *vmxCPU) Injecting() bool      { return c.injecting }

// Enter enters the guest (VMLAUNCH the first time after a load, VMRESUME
// after) and reads the exit. An NMI that reached the core in guest mode
// (with "NMI exiting") reads as an external interrupt: it ends the time
// slice. The host sends NMIs only to wake parked cores, so none is meant
// for a core that runs a guest, and the guest must not see it.
func (c *vmxCPU) Enter(e *exits.Exit) error {
	err := vmx.Enter(&c.regs, c.vc.launched)
	c.injecting = false // the processor clears the field's valid bit
	if err != nil {
		return err
	}
	c.vc.launched = true
	e.Reason = vmread(vmx.VMCSExitReason)
	e.Qualification = vmread(vmx.VMCSExitQualification)
	e.InstructionLength = uint32(vmread(vmx.ExitInstructionLength))
	e.GuestPhysical = vmread(vmx.GuestPhysicalAddress)
	idt := vmread(vmx.IDTVectoringInfo)
	c.hasInterrupted = idt&intrValid != 0
	if c.hasInterrupted {
		// bit 12 is undefined in IDT-vectoring information (SDM Vol.
		// 3C, 28.2.4): not carried over
		code := uint32(0)
		if idt&intrErrorValid != 0 {
			code = uint32(vmread(vmx.IDTVectoringErrorCode))
		}
		c.interrupted, _ = runloop.EventFromInfo(uint32(idt)&^(1<<12), code)
		if c.interrupted.Type >= runloop.SoftwareInterrupt {
			c.interrupted.InstructionLength = e.InstructionLength
		}
	}
	if c.vnmi {
		c.exitNMIState(e)
	}
	return nil
}

// exitNMIState does what virtual NMIs ask after exit e: a host NMI
// becomes an external-interrupt exit (see Enter), and NMI blocking that a
// cut-short IRET had ended is set again, since the guest runs the IRET
// again (iretUnblockedNMIs).
func (c *vmxCPU) exitNMIState(e *exits.Exit) {
	reason := vmx.ExitReason(e.Reason & 0xffff)
	var info uint64
	if reason == vmx.ExitExceptionOrNMI {
		info = vmread(vmx.ExitInterruptionInfo)
		if hostNMI(info) {
			e.Reason = uint64(vmx.ExitExternalInterrupt)
		}
	}
	if iretUnblockedNMIs(reason, e.Qualification, info, c.hasInterrupted) {
		s := vmread(vmx.GuestInterruptibility)
		vmx.VMWRITE(vmx.GuestInterruptibility, s|blockingNMI)
	}
}

func (c *vmxCPU) Interrupted() (runloop.Event, bool) { return c.interrupted, c.hasInterrupted }

// Inject writes ev to the VM-entry event-injection fields (SDM Vol. 3C,
// 26.6 "Event Injection"), with RF set for a fault (runloop.Event.Fault).
func (c *vmxCPU) Inject(ev runloop.Event) {
	if ev.Fault() {
		if f := vmread(vmx.GuestRFLAGS); f&runloop.RFLAGSRF == 0 {
			vmx.VMWRITE(vmx.GuestRFLAGS, f|runloop.RFLAGSRF)
		}
	}
	vmx.VMWRITE(vmx.EntryInterruptionInfo, uint64(ev.Info()))
	if ev.HasErrorCode {
		vmx.VMWRITE(vmx.EntryExceptionErrorCode, uint64(ev.ErrorCode))
	}
	if ev.Type >= runloop.SoftwareInterrupt {
		vmx.VMWRITE(vmx.EntryInstructionLength, uint64(ev.InstructionLength))
	}
	c.injecting = true
}

func (c *vmxCPU) InterruptsEnabled() bool { return vmread(vmx.GuestRFLAGS)&rflagsIF != 0 }

func (c *vmxCPU) Interruptible() bool {
	return c.InterruptsEnabled() && vmread(vmx.GuestInterruptibility)&blockingSTIorSS == 0
}

// StepTrap sets BS in the guest's pending debug exceptions where
// RFLAGS.TF is set: the processor then delivers the single-step #DB an
// instruction the hyperkernel carried out owes the guest, DR6.BS set,
// right after VM entry (SDM Vol. 3C, 25.4.2 Table 25-4 and 27.7.3).
func (c *vmxCPU) StepTrap() {
	if vmread(vmx.GuestRFLAGS)&rflagsTF == 0 {
		return
	}
	vmx.VMWRITE(vmx.GuestPendingDebugExceptions, vmread(vmx.GuestPendingDebugExceptions)|pendingDebugBS)
}

// pendingDebugBS is the BS bit of the pending debug exceptions field.
const pendingDebugBS = 1 << 14

// EndShadow clears blocking by STI and MOV SS (SDM Vol. 3C, 25.4.2).
func (c *vmxCPU) EndShadow() {
	if s := vmread(vmx.GuestInterruptibility); s&blockingSTIorSS != 0 {
		vmx.VMWRITE(vmx.GuestInterruptibility, s&^blockingSTIorSS)
	}
}

// SetInterruptWindow turns interrupt-window exiting on or off (SDM Vol.
// 3C, 25.6.2, Table 25-6).
func (c *vmxCPU) SetInterruptWindow(on bool) {
	c.intrWindow = on
	c.setWindow()
}

// NMIBlocked reads blocking by NMI, STI and MOV SS. The processor blocks
// the guest's NMIs from an injected NMI's delivery to the guest's IRET
// and keeps the state in the VMCS: as virtual-NMI blocking with the
// "virtual NMIs" control, as the core's own NMI blocking without it (SDM
// Vol. 3C, 25.4.2; 27.3 "Changes to Instruction Behavior in VMX Non-Root
// Operation").
func (c *vmxCPU) NMIBlocked() (blocked, handling bool) {
	s := vmread(vmx.GuestInterruptibility)
	return s&(blockingNMI|blockingSTIorSS) != 0, s&blockingNMI != 0
}

// SetNMIWindow asks for an exit when NMIs are unblocked: the NMI-window
// exit with virtual NMIs, the interrupt window without them or in an STI
// shadow (vmxWindows).
func (c *vmxCPU) SetNMIWindow(on bool) {
	c.nmiWindow = on
	c.setWindow()
}

func (c *vmxCPU) setWindow() {
	var interruptibility uint64
	if c.nmiWindow && c.vnmi {
		interruptibility = vmread(vmx.GuestInterruptibility)
	}
	p := vmxWindows(c.proc, c.intrWindow, c.nmiWindow, c.vnmi, interruptibility)
	if p != c.proc {
		c.proc = p
		vmx.VMWRITE(vmx.VMCSProcBasedControls, p)
	}
}

func (c *vmxCPU) SetTSCOffset(off uint64) {
	if off != c.tscOffset {
		vmx.VMWRITE(vmx.TSCOffset, off)
		c.tscOffset = off
	}
}

// Save reads the VMCS guest state, the registers, the x87/SSE state and
// the MSRs the entry/exit lists switch into st.
func (c *vmxCPU) Save(st *vcpu.State) error {
	gs, err := vmx.ReadGuestState(func(f vmx.Field) (uint64, error) { return vmx.VMREAD(f) })
	if err != nil {
		return err
	}
	SaveVCPU(&gs, &c.regs, c.apicID, c.bsp, st)
	if c.msrList != 0 {
		list := physBytes(c.msrList, 16*len(switchedMSRs))
		msr := func(i int) uint64 { return binary.LittleEndian.Uint64(list[16*i+8:]) }
		st.STAR, st.LSTAR, st.CSTAR, st.SFMASK, st.KernelGSBase = msr(0), msr(1), msr(2), msr(3), msr(4)
	}
	return nil
}

// Diagnose reads the guest state back and runs the software VM-entry
// checks on it.
func (c *vmxCPU) Diagnose() []string {
	g, err := vmx.ReadGuestState(func(f vmx.Field) (uint64, error) { return vmx.VMREAD(f) })
	if err != nil {
		return []string{"reading guest state: " + err.Error()}
	}
	var out []string
	for _, v := range c.h.caps.CheckGuestState(&g, uint8(c.h.eptc.MaxPhysAddr)) {
		out = append(out, v.String())
	}
	if len(out) == 0 {
		out = append(out, "no guest-state check failed in software")
	}
	return out
}
