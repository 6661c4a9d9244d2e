// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/spinlock"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// coreSVM is one core's AMD-V state: SVM enabled, its host save area
// (VM_HSAVE_PA) and the page where the host's hidden state waits while a
// guest runs (VMSAVE/VMLOAD).
type coreSVM struct {
	hsave, host uint64
	on          atomic.Bool
	// msrs are the loaded MSRs as a vCPU last loaded them.
	msrs coreMSRs
	// turn is what the slice watch knows of the core.
	turn coreTurn
}

// enableSVM turns SVM on for the calling core, to which the caller is
// pinned, unless it is on. It neither blocks nor allocates.
func (h *Hypervisor) enableSVM() (uint32, *coreSVM, error) {
	id := h.apicID()
	c := h.svmCores[id]
	if c == nil {
		return id, nil, fmt.Errorf("APIC id %d is not an online core of this node", id)
	}
	if !c.on.Load() {
		if h.plat.WakeVector == 0 {
			return id, nil, errNoWakeVector
		}
		if err := svm.Enable(c.hsave); err != nil {
			return id, nil, err
		}
		if h.hostXCR0 != 0 {
			vmx.EnableXSAVE(h.hostXCR0)
		}
		if h.pku {
			vmx.EnableProtectionKeys() // before VMRUN saves the host's CR4
		}
		setPreemptionTimer(h.plat.WakeVector, h.tscDeadline)
		c.on.Store(true)
	}
	return id, c, nil
}

// errNoWakeVector refuses AMD-V on a board with no wake vector for the
// slice timer.
var errNoWakeVector = errors.New("svm: the board has no wake vector for the time-slice timer")

// AMD-V has no preemption timer: a guest that runs without exiting would
// keep its core, and the goroutine pinned there would stall the Go
// runtime's stop-the-world. The core's local-APIC timer raises
// the board's wake vector, whose handler only acknowledges it
// (board.Platform.WakeVector), a time slice after each VMRUN: in
// TSC-deadline mode where the CPU has it (tamago's own alarms use that
// mode, and a core running a vCPU is not idle), or one-shot on its count
// (QEMU's TCG has no TSC deadline; tamago then never uses the timer). INTR is intercepted with V_INTR_MASKING, so the
// interrupt ends the guest's turn with an INTR exit whatever the guest's
// IF, and the host takes it once GIF is set again (Intel SDM Vol. 3A,
// 11.5.4 "APIC Timer"; AMD APM Vol. 2, 15.21.2).
//
// Without TSC deadline the timer is periodic, not one-shot: QEMU's TCG
// does not exit for a physical interrupt already pending at VMRUN, so a
// one-shot slice that expired between arming and VMRUN (the emulator's
// thread descheduled on a loaded host) was lost, and a guest spinning
// without exits (kvm-unit-tests' apic test waiting for an IPI) kept the
// core for good: the runtime's stop-the-world waited on it and the node
// stopped answering. The next period ends such a turn.
const (
	lapicBase        = 0xFEE00000
	lapicLVTTimer    = 0x320
	lapicInitCount   = 0x380
	lapicDivide      = 0x3E0
	divideBy1        = 0xB
	lvtTSCDeadline   = 2 << 17
	lvtPeriodic      = 1 << 17
	msrTSCDeadline   = 0x6E0
	cpuidTSCDeadline = 1 << 24 // CPUID.1:ECX
	// preemptCount is the period of the slice timer: 1 ms at QEMU's
	// 1 GHz APIC timer.
	preemptCount = 1000000
)

// The slice watch looks every watchPeriod (slicewatch.go).
const (
	watchPeriod    = 5 * time.Millisecond
	lapicICRLow    = 0x300
	lapicICRHigh   = 0x310
	icrNMI         = 4<<8 | 1<<14 // delivery mode NMI, level assert (Intel SDM Vol. 3A, 11.6.1)
	icrSendPending = 1 << 12      // delivery status
	maxICRSpin     = 1000
)

// startSliceWatch hands the slice watch of the node's cores to the
// board's watchdog, where it has one.
func (h *Hypervisor) startSliceWatch() {
	if h.plat.Watchdog == nil {
		return
	}
	var cores []watchedCore
	for id, c := range h.svmCores {
		cores = append(cores, watchedCore{apicID: id, turn: &c.turn})
	}
	slice := sliceTicks(h.plat.TSCHz, h.plat.LAPICTimerHz, preemptCount, h.tscDeadline)
	h.watch = newSliceWatch(watchLimit(h.plat.TSCHz, slice), cores)
	h.plat.Watchdog(watchPeriod, func() { h.watch.scan(rdtsc(), sendNMI) })
}

// sendNMI sends an NMI to the core with APIC id id through the calling
// core's local APIC: both halves of the ICR with no call in between, so
// that no preemption point moves the goroutine to another core's APIC
// halfway (tamago preempts only at calls). It first lets an IPI this
// core sent just before leave (its delivery status idle, for a bounded
// spin): the watch may run inside tamago's own wait for that status. The
// NMI interrupts the guest there with an NMI exit; the hyperkernel
// takes it once GIF is set again, in tamago's NMI handler, which returns
// at once (Intel SDM Vol. 3A, 11.6.1; AMD APM Vol. 2, 15.9, 15.17).
func sendNMI(id uint32) {
	hi, lo := lapicReg(lapicICRHigh), lapicReg(lapicICRLow)
	for i := 0; *lo&icrSendPending != 0 && i < maxICRSpin; i++ {
	}
	*hi = id << 24
	*lo = icrNMI
}

func lapicReg(off uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&physBytes(lapicBase+off, 4)[0]))
}

// setPreemptionTimer puts the calling core's LAPIC timer on the wakeup
// vector, in TSC-deadline mode or periodic.
func setPreemptionTimer(vector uint8, deadline bool) {
	if deadline {
		*lapicReg(lapicLVTTimer) = uint32(vector) | lvtTSCDeadline
		return
	}
	*lapicReg(lapicDivide) = divideBy1
	*lapicReg(lapicLVTTimer) = uint32(vector) | lvtPeriodic
}

// armPreemption starts the calling core's slice timer; disarmPreemption
// stops it.
func (h *Hypervisor) armPreemption() {
	if h.watch != nil && h.watch.timerOff.Load() {
		return
	}
	if h.tscDeadline {
		vmx.WriteMSR(msrTSCDeadline, rdtsc()+h.plat.TSCHz/1000)
	} else {
		*lapicReg(lapicInitCount) = preemptCount
	}
}

func (h *Hypervisor) disarmPreemption() {
	if h.tscDeadline {
		vmx.WriteMSR(msrTSCDeadline, 0)
	} else {
		*lapicReg(lapicInitCount) = 0
	}
}

// svmCPU is a vCPU on AMD-V, the runloop.CPU of guests on AMD machines:
// its VMCB, its registers, and the core it runs on.
type svmCPU struct {
	h    *Hypervisor
	vmcb *svm.VMCB
	pa   uint64 // the VMCB's physical address
	regs vmx.GuestRegs
	res  *Result

	pinned bool
	core   *coreSVM
	id     uint32 // APIC id of the core of the latest load

	injecting      bool
	interrupted    runloop.Event
	hasInterrupted bool
	virq           virqInjection
	exit           svm.Exit
	nmi            nmiMask
	// badEvents counts events EVENTINJ could not encode.
	badEvents int
	// apicID and bsp describe the vCPU in a saved state.
	apicID uint32
	bsp    bool
	// msrs are the vCPU's IA32_TSC_AUX and IA32_PKRS (vmLoadedMSR).
	msrs vcpuMSRs
}

var _ guestCPU = (*svmCPU)(nil)

// newSVMCPU makes a vCPU whose VMCB is the zeroed frame at pa.
func newSVMCPU(h *Hypervisor, pa uint64, res *Result) *svmCPU {
	page := (*[svm.VMCBSize]byte)(unsafe.Pointer(&physBytes(pa, svm.VMCBSize)[0]))
	return &svmCPU{h: h, vmcb: svm.NewVMCB(page), pa: pa, res: res}
}

// Load pins the goroutine to its core and turns SVM on there. The next
// VMRUN flushes the TLB, as every VMCS load does on VT-x: the nested
// tables change only while the vCPU is off its core (a page fetched or
// taken away), and a vCPU that last ran on another core may find stale
// translations of its ASID here.
func (c *svmCPU) Load() error {
	if c.pinned {
		return nil
	}
	spinlock.Pin()
	c.pinned = true
	id, core, err := c.h.enableSVM()
	if err != nil {
		c.Put()
		return err
	}
	c.id, c.core = id, core
	c.flushTLB()
	c.res.noteCore(id)
	return nil
}

// flushTLB makes the next VMRUN flush the guest's translations: by ASID
// where the processor can, else all.
func (c *svmCPU) flushTLB() {
	flush := uint64(svm.TLBControlFlushAll)
	if c.h.svmCaps.Features.Has(svm.FeatFlushByAsid) {
		flush = svm.TLBControlFlushASID
	}
	c.vmcb.Write(svm.CtlTLBControl, flush)
}

func (c *svmCPU) Put() {
	if c.pinned {
		c.pinned = false
		spinlock.Unpin()
	}
}

func (c *svmCPU) Loaded() bool         { return c.pinned }
func (c *svmCPU) Core() int            { return int(c.id) }
func (c *svmCPU) Now() uint64          { return rdtsc() }
func (c *svmCPU) Regs() *vmx.GuestRegs { return &c.regs }
func (c *svmCPU) RIP() uint64          { return c.vmcb.Read(svm.SaveRIP) }
func (c *svmCPU) Advance(n uint32) {
	if n != 0 {
		c.vmcb.Write(svm.SaveRIP, c.RIP()+uint64(n))
	}
}

// writeMSR is vmx.WriteMSR for coreMSRs.load.
func writeMSR(msr uint32, val uint64) { vmx.WriteMSR(vmx.MSR(msr), val) }

// Enter runs the guest until its next #VMEXIT and translates the exit.
func (c *svmCPU) Enter(e *exits.Exit) error {
	v := c.vmcb
	v.Write(svm.SaveRAX, c.regs.RAX)
	c.core.msrs.load(&c.msrs, &c.h.loadedMSRs, writeMSR)
	c.core.turn.begin(rdtsc())
	c.h.armPreemption()
	svm.Run(c.pa, c.core.host, &c.regs)
	c.h.disarmPreemption()
	c.core.turn.end()
	rip := v.Read(svm.SaveRIP)
	c.regs.RAX = v.Read(svm.SaveRAX)
	v.Write(svm.CtlTLBControl, svm.TLBControlNothing)
	c.injecting = false
	v.Write(svm.CtlEventInj, 0)
	cut, hasCut := svm.Event(v.Read(svm.CtlExitIntInfo)).Runloop()
	c.interrupted, c.hasInterrupted = c.virq.exited(v, cut, hasCut)
	code := svm.ExitCode(v.Read(svm.CtlExitCode))
	if own, trap := c.nmi.exited(v, code, rip); own {
		if trap {
			c.interrupted, c.hasInterrupted = runloop.Event{Vector: vectorDB, Type: runloop.HardwareException}, true
		}
		*e = exits.Exit{Reason: uint64(vmx.ExitNMIWindow)}
		return nil
	}
	x, err := svm.DecodeExit(code, v.Read(svm.CtlExitInfo1), v.Read(svm.CtlExitInfo2), c.h.svmCaps.Features.Has(svm.FeatDecodeAssists))
	if err != nil {
		*e = exits.Exit{Reason: svmUnhandled, Qualification: uint64(code)}
		return nil
	}
	c.exit = x
	exitFromSVM(&c.exit, rip, c.nextRIP(), e)
	return nil
}

// nextRIP is the next RIP the CPU saved at the exit, 0 without NRIP save.
func (c *svmCPU) nextRIP() uint64 {
	if !c.h.svmCaps.Features.Has(svm.FeatNRIPS) {
		return 0
	}
	return c.vmcb.Read(svm.CtlNRIP)
}

// Inject gives ev to the guest at the next VMRUN. An external interrupt
// goes in V_IRQ (see svm.SetVirtualInterrupt for why not EVENTINJ); the
// run loop injects one only when the guest can take it at once. Any
// other event goes in EVENTINJ (APM Vol. 2, 15.20); a software interrupt
// or exception first moves RIP past its instruction, since SVM delivers
// every event with the VMCB's RIP as the return address. An event
// EVENTINJ cannot encode is dropped and counted. A fault gets RF
// (runloop.Event.Fault).
func (c *svmCPU) Inject(ev runloop.Event) {
	if ev.Type == runloop.ExternalInterrupt {
		c.virq.inject(c.vmcb, ev.Vector)
		c.injecting = true
		return
	}
	inj, err := svm.FromRunloop(ev)
	if err != nil {
		c.badEvents++
		return
	}
	c.Advance(inj.AdvanceRIP)
	if ev.Fault() {
		c.vmcb.Write(svm.SaveRFLAGS, c.vmcb.Read(svm.SaveRFLAGS)|runloop.RFLAGSRF)
	}
	c.vmcb.Write(svm.CtlEventInj, uint64(inj.Event))
	c.injecting = true
	if ev.Type == runloop.NMI {
		c.nmi.delivered(c.vmcb)
	}
}

// StepTrap injects the single-step #DB an instruction the hyperkernel
// carried out owes a guest with RFLAGS.TF set, DR6.BS set as the
// processor sets it (AMD APM Vol. 2, 13.1.3.5). While the NMI mask steps
// the guest over an instruction, the TF is the mask's: the guest's own
// is the one it saved.
func (c *svmCPU) StepTrap() {
	tf := c.vmcb.Read(svm.SaveRFLAGS)&rflagsTF != 0
	if c.nmi.stepping {
		tf = c.nmi.guestTF
	}
	if !tf {
		return
	}
	c.vmcb.Write(svm.SaveDR6, c.vmcb.Read(svm.SaveDR6)|dr6BS)
	c.Inject(runloop.Event{Vector: vectorDB, Type: runloop.HardwareException})
}

func (c *svmCPU) Injecting() bool                    { return c.injecting }
func (c *svmCPU) Interrupted() (runloop.Event, bool) { return c.interrupted, c.hasInterrupted }

func (c *svmCPU) InterruptsEnabled() bool { return c.vmcb.Read(svm.SaveRFLAGS)&rflagsIF != 0 }

func (c *svmCPU) Interruptible() bool {
	return c.InterruptsEnabled() && c.vmcb.Read(svm.CtlInterruptShadow)&svm.InterruptShadow == 0
}

func (c *svmCPU) EndShadow() {
	if s := c.vmcb.Read(svm.CtlInterruptShadow); s&svm.InterruptShadow != 0 {
		c.vmcb.Write(svm.CtlInterruptShadow, s&^svm.InterruptShadow)
	}
}

// SetInterruptWindow asks for a VINTR exit when the guest can take an
// interrupt (see virqInjection).
func (c *svmCPU) SetInterruptWindow(on bool) { c.virq.window(c.vmcb, on) }

// vTPR and setVTPR read and write the guest's CR8 as AMD-V keeps it,
// V_TPR (APM Vol. 2, 15.21.2).
func (c *svmCPU) vTPR() uint8 { return uint8(c.vmcb.Read(svm.CtlVIntr) & 0xF) }
func (c *svmCPU) setVTPR(v uint8) {
	x := c.vmcb.Read(svm.CtlVIntr)
	if uint8(x&0xF) != v {
		c.vmcb.Write(svm.CtlVIntr, x&^0xF|uint64(v&0xF))
	}
}

// NMIBlocked and SetNMIWindow: see nmiMask.
func (c *svmCPU) NMIBlocked() (blocked, handling bool) {
	return c.nmi.masked || c.vmcb.Read(svm.CtlInterruptShadow)&svm.InterruptShadow != 0, c.nmi.masked
}
func (c *svmCPU) SetNMIWindow(on bool) { c.nmi.window(c.vmcb, on) }

func (c *svmCPU) SetTSCOffset(off uint64) { c.vmcb.Write(svm.CtlTSCOffset, off) }

// loadState makes st the vCPU's state, its NMI blocking included.
func (c *svmCPU) loadState(st *vcpu.State) {
	loadVMCB(st, c.vmcb, &c.regs)
	c.msrs.fromState(st)
	c.nmi = nmiMask{}
	if st.Events.Interruptibility&vcpu.BlockingByNMI != 0 {
		c.nmi.delivered(c.vmcb)
	}
}

// Save writes the vCPU's state, for migration.
func (c *svmCPU) Save(st *vcpu.State) error {
	saveVMCB(c.vmcb, &c.regs, c.apicID, c.bsp, st)
	if c.nmi.masked {
		st.Events.Interruptibility |= vcpu.BlockingByNMI
	}
	c.msrs.save(st)
	return nil
}

// GuestCR4 is the guest's CR4 (the VMCB holds it as the guest sees it).
func (c *svmCPU) GuestCR4() uint64 { return c.vmcb.Read(svm.SaveCR4) }

// CPL is the VMCB's current privilege level (APM Vol. 2, 15.5.1).
func (c *svmCPU) CPL() int { return int(c.vmcb.Read(svm.SaveCPL) & 3) }

// CR3, RSP and SetRSP give device emulation the guest's page tables and
// stack (guestCPU).
func (c *svmCPU) CR3() uint64     { return c.vmcb.Read(svm.SaveCR3) }
func (c *svmCPU) RSP() uint64     { return c.vmcb.Read(svm.SaveRSP) }
func (c *svmCPU) SetRSP(v uint64) { c.vmcb.Write(svm.SaveRSP, v) }

// check runs the software VMRUN checks on the VMCB.
func (c *svmCPU) check() []svm.Violation {
	st := svm.RunStateOf(c.vmcb)
	proc := svm.Processor{PhysAddrBits: c.h.svmCaps.PhysAddrBits, LongMode: true, NP: true,
		CR4Allowed: svm.DefaultCR4Allowed, EFERAllowed: svm.DefaultEFERAllowed}
	return svm.CheckVMRUN(&st, proc)
}

// Diagnose says in words which VMRUN checks the VMCB fails.
func (c *svmCPU) Diagnose() []string {
	var out []string
	for _, v := range c.check() {
		out = append(out, v.String())
	}
	if len(out) == 0 {
		out = append(out, "no VMRUN check failed in software")
	}
	return out
}
