// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/frames"
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/spinlock"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/testguest"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// Test-VM layout: guest RAM size, and the bound on exits before a guest
// that never finishes is stopped.
const (
	testGuestRAM = 4 << 20
	maxExits     = 200000
	testVPID     = 1
)

// Hypervisor runs VMs on this node.
type Hypervisor struct {
	plat  *board.Platform
	pool  *frames.Pool
	caps  *vmx.Capabilities
	cpuid *exits.CPUIDPolicy
	eptc  ept.Caps
	// preemption is the VMX-preemption timer value for about 1 ms.
	preemption uint64
	reserved   []ept.Range

	// cores holds each core's VMX state by APIC id. The map is built by
	// New and read-only after; a coreVMX is touched only by goroutines
	// pinned to its core.
	cores map[uint32]*coreVMX

	mu    sync.Mutex
	total exits.ExitStats
	runs  int
	// vms are the OS guests started so far; vmCount numbers them.
	vms     []*LinuxVM
	vmCount int
	// tss is the host TSS: tamago loads none, and VM exits need a
	// non-null host TR (Intel SDM Vol. 3C 27.2.3).
	tss [104]byte

	// On AMD-V (caps nil): the SVM capabilities, each core's SVM state
	// (read-only map after New) and the second-level table format.
	svmCaps  *svm.Capabilities
	svmCores map[uint32]*coreSVM
	format   ept.Format
	// watch is the slice watch, the second way back to a core running a
	// guest (nil on VT-x and where the board has no watchdog).
	watch *sliceWatch
	// tscDeadline: the LAPIC timer has TSC-deadline mode (AMD-V's
	// preemption, see setPreemptionTimer).
	tscDeadline bool
	// hostXCR0 is the XCR0 of every core that runs guests, set when it
	// first does (0: the CPU has no XSAVE; see hostXCR0).
	hostXCR0 uint64
	// pku says that the cores that run guests have CR4.PKE set and give
	// each vCPU its own PKRU, so that guests are offered protection keys
	// (AMD-V with XSAVE on a processor with PKU; not yet on VT-x).
	pku bool
	// pks says that guests get supervisor protection keys, each vCPU its
	// own IA32_PKRS loaded into the core it runs on (AMD-V on a
	// processor with PKS, as QEMU's emulator offers; not yet on VT-x).
	pks bool
	// loadedMSRs says which loaded MSRs (loadedmsrs.go) the cores have
	// and switch per vCPU: AMD-V only.
	loadedMSRs [numLoadedMSRs]bool
}

// New prepares VMX on this node. It fails where the CPU has no usable
// VMX or EPT, naming why.
func New(p *board.Platform, pool *frames.Pool) (*Hypervisor, error) {
	if len(p.CPUs) == 0 {
		return nil, errors.New("no CPU")
	}
	if !p.CPUs[0].VMX.Capable {
		caps := svm.ReadCapabilities(p.CPUID, p.ReadMSR)
		if ok, why := caps.Usable(); ok {
			return newSVM(p, pool, caps)
		} else if caps.SVM {
			return nil, fmt.Errorf("%s; AMD-V: %s", p.CPUs[0].VMX.Reason, why)
		}
		return nil, errors.New(p.CPUs[0].VMX.Reason)
	}
	caps, err := vmx.ReadCapabilities(vmx.HardwareMSRReader)
	if err != nil {
		return nil, fmt.Errorf("hv: %w", err)
	}
	host := func(leaf, sub uint32) exits.CPUIDResult {
		a, b, c, d := p.CPUID(leaf, sub)
		return exits.CPUIDResult{EAX: a, EBX: b, ECX: c, EDX: d}
	}
	policy, err := exits.NewCPUIDPolicy(exits.CPUIDConfig{TSCKHz: uint32(p.TSCHz / 1000), VCPUs: 1}, host)
	if err != nil {
		return nil, fmt.Errorf("hv: %w", err)
	}
	maxPhys := uint(36)
	if a, _, _, _ := p.CPUID(0x80000000, 0); a >= 0x80000008 {
		e, _, _, _ := p.CPUID(0x80000008, 0)
		maxPhys = uint(e & 0xff)
	}
	h := &Hypervisor{
		plat:  p,
		pool:  pool,
		caps:  caps,
		cpuid: policy,
		eptc:  ept.CapsFromMSR(uint64(caps.EPTVPID), maxPhys),
		cores: make(map[uint32]*coreVMX),
	}
	h.hostXCR0 = hostXCR0(h.hostCPUID)
	// VMXON regions are allocated up front: a core enters VMX operation
	// from a pinned goroutine, which must not block on the frame pool.
	for _, c := range p.CPUs {
		if !c.Online {
			continue
		}
		region, err := h.zeroFrame()
		if err != nil {
			return nil, fmt.Errorf("hv: VMXON region: %w", err)
		}
		h.cores[c.APICID] = &coreVMX{region: region}
	}
	// preemption timer: counts down by one each time TSC bit `rate` flips
	h.preemption = p.TSCHz / 1000 >> caps.Misc.PreemptionTimerRate
	if h.preemption == 0 || h.preemption > 0xffffffff {
		h.preemption = 0xffff
	}
	for _, r := range p.Reserved {
		h.reserved = append(h.reserved, ept.Range{Start: r.Start, End: r.End()})
	}
	return h, nil
}

// Capabilities returns the VMX capabilities of this node's CPU.
func (h *Hypervisor) Capabilities() *vmx.Capabilities { return h.caps }

// Stats returns the exits of all runs so far, and how many runs.
func (h *Hypervisor) Stats() (exits.ExitStats, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total, h.runs
}

// Frames returns the frames for guests in use and in all.
func (h *Hypervisor) Frames() (inUse, total int) { return h.pool.Stats() }

// FailFramesAfter makes every frame allocation after the next n fail
// until it is called with n < 0: fault injection, so that tests can drive
// every error path of creating a VM.
func (h *Hypervisor) FailFramesAfter(n int) { h.pool.FailAfter(n) }

// FailFramesPending returns how many frame allocations may still pass
// before injected failures start (0 once they have), or -1 if none are
// asked for.
func (h *Hypervisor) FailFramesPending() int { return h.pool.FailPending() }

// SliceWatch reports the node's slice watch (slicewatch.go).
func (h *Hypervisor) SliceWatch() SliceWatchStatus { return h.watch.status(h.plat.TSCHz) }

// SetSliceTimer turns the slice timer on or off: off, only the slice
// watch's NMIs end a guest's turn (fault injection, to test the watch).
// VT-x has no slice timer to turn off: its preemption timer is part of
// the VMCS.
func (h *Hypervisor) SetSliceTimer(on bool) error {
	if h.svmCaps == nil {
		return errors.New("VT-x ends a guest's turn with its preemption timer: there is no slice timer to turn off")
	}
	if h.watch == nil {
		return errors.New("the board has no watchdog to end a turn without the slice timer")
	}
	h.watch.timerOff.Store(!on)
	return nil
}

// NumCores returns how many cores can run VMs.
func (h *Hypervisor) NumCores() int { return len(h.cores) + len(h.svmCores) }

// coreVMX is one core's VMX operation state.
type coreVMX struct {
	region uint64      // VMXON region
	on     atomic.Bool // in VMX root operation
}

func (h *Hypervisor) apicID() uint32 {
	_, b, _, _ := h.plat.CPUID(1, 0)
	return b >> 24
}

// physBytes is the identity map view of a frame.
func physBytes(hpa uint64, n int) []byte {
	a := uintptr(hpa)
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&a))), n)
}

// zeroFrame allocates a zeroed frame.
func (h *Hypervisor) zeroFrame() (uint64, error) {
	f, err := h.pool.AllocFrame()
	return zeroed(f, frames.Size, err)
}

// zeroed clears the size bytes at f, which an allocation returned with
// err, unless err is set; it passes both on.
func zeroed(f uint64, size int, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	clear(physBytes(f, size))
	return f, nil
}

// enableVMX puts the calling core, to which the caller is pinned, in VMX
// root operation (Intel SDM Vol. 3C 24.7 "Enabling and Entering VMX
// Operation") unless it already is. It neither blocks nor allocates.
func (h *Hypervisor) enableVMX() (uint32, error) {
	id := h.apicID()
	c := h.cores[id]
	if c == nil {
		return id, fmt.Errorf("APIC id %d is not an online core of this node", id)
	}
	if c.on.Load() {
		return id, nil
	}
	fc, write, err := vmx.FeatureControlForVMXON(vmx.ReadMSR(vmx.MSRFeatureControl))
	if err != nil {
		return id, err
	}
	if write {
		vmx.WriteMSR(vmx.MSRFeatureControl, fc)
	}
	vmx.WriteCR0(h.caps.VMXONCR0(vmx.ReadCR0()))
	vmx.WriteCR4(h.caps.VMXONCR4(vmx.ReadCR4()))
	if h.hostXCR0 != 0 {
		vmx.EnableXSAVE(h.hostXCR0) // before the VMCS takes the host's CR4
	}
	*(*uint32)(unsafe.Pointer(&physBytes(c.region, 4)[0])) = h.caps.Basic.Revision
	if err := vmx.VMXON(c.region); err != nil {
		return id, fmt.Errorf("VMXON on APIC id %d: %w", id, err)
	}
	c.on.Store(true)
	return id, nil
}

// framePool adapts the frame pool to the EPT allocator, zeroing frames.
type framePool struct{ h *Hypervisor }

func (f framePool) AllocFrame() (uint64, error) { return f.h.zeroFrame() }
func (f framePool) FreeFrame(hpa uint64)        { f.h.pool.FreeFrame(hpa) }

// directMap reaches table frames through the identity map.
type directMap struct{}

func (directMap) Frame(hpa uint64) *[ept.EntriesPerTable]uint64 {
	return (*[ept.EntriesPerTable]uint64)(unsafe.Pointer(&physBytes(hpa, 8)[0]))
}

// flushOnLoad is the EPT invalidator of a test VM: the tables change only
// while the VM's goroutine is unpinned (the VMCS cleared), and every load
// of the VMCS onto a core runs INVEPT, so nothing is left to do here. (An
// INVEPT now could run on a core outside VMX operation, where it is #UD.)
type flushOnLoad struct{}

func (flushOnLoad) InvalidateSingle(eptp uint64) {}
func (flushOnLoad) InvalidateGlobal()            {}

// debugPort collects what the test guest writes to its debug port.
type debugPort struct {
	dec    testguest.Decoder
	report testguest.Report
	err    error
}

func (d *debugPort) In(port uint16, size uint8) uint32 { return 0xffffffff }

func (d *debugPort) Out(port uint16, size uint8, v uint32) {
	rec, ok, err := d.dec.Feed(v)
	if err != nil && d.err == nil {
		d.err = err
	}
	if ok {
		d.report.Add(rec)
	}
}

// RunTest runs a test guest to completion. The VM runs on whichever cores
// the Go scheduler gives its goroutine: between exits that must block (a
// guest page to allocate, the end of a time slice) the VMCS is cleared and
// the goroutine unpinned, and the next entry loads the VMCS on the core it
// then runs on, the way a hypervisor moves a vCPU between processors
// (Intel SDM Vol. 3C 25.11.1 "Software Use of Virtual-Machine Control
// Structures"). Goroutines are never locked to threads: tamago gives the
// runtime one thread per core, so a locked thread would leave the runtime
// wanting a thread it cannot have.
func (h *Hypervisor) RunTest(v testguest.Variant) (*Result, error) {
	t := &testRun{h: h, res: &Result{Variant: v}, variant: v, backed: make(map[uint64]uint64)}
	defer t.free()
	if err := t.load(); err != nil {
		return nil, err
	}
	preloaded := len(t.backed)
	var cpu runloop.CPU
	var disp *exits.Dispatcher
	var err error
	if h.svmCaps != nil {
		cpu, disp, err = t.newSVMVCPU()
	} else {
		cpu, disp, err = t.newVCPU()
	}
	if err != nil {
		return nil, err
	}
	loop := &runloop.Loop{CPU: cpu, Guest: t, Exits: disp, Slice: h.plat.TSCHz / 1000}

	res := t.res
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(allocs)
	allocsBefore := allocs[0].Value.Uint64()
	start, startTSC := time.Now(), rdtsc()
	err = loop.Run()
	res.Elapsed, res.TSC = time.Since(start), rdtsc()-startTSC
	metrics.Read(allocs)
	res.Allocs = allocs[0].Value.Uint64() - allocsBefore
	res.Exits = disp.Stats
	res.PagesTouched = len(t.backed) - preloaded
	res.Report = t.port.report
	h.mu.Lock()
	h.total.Add(&disp.Stats)
	h.runs++
	h.mu.Unlock()
	var entry *runloop.EntryError
	switch {
	case errors.Is(err, runloop.ErrTripleFault):
		res.Outcome = "triple fault (VM stopped, hyperkernel fine)"
	case errors.As(err, &entry):
		res.Outcome, res.Diagnosis = "stopped: "+err.Error(), entry.Diagnosis
	case err != nil:
		res.Outcome = "stopped: " + err.Error()
	}
	return res, nil
}

// alloc returns a zeroed frame that free gives back.
func (t *testRun) alloc() (uint64, error) {
	f, err := t.h.zeroFrame()
	if err == nil {
		t.owned = append(t.owned, f)
	}
	return f, err
}

func (t *testRun) free() {
	if t.tab != nil {
		t.tab.Destroy()
	}
	for _, f := range t.owned {
		t.h.pool.FreeFrame(f)
	}
	for _, r := range t.runs {
		t.h.pool.FreeRun(r)
	}
}

// back gives the guest page at gpa a frame, mapped in the EPT, if it has
// none yet, and returns the frame.
func (t *testRun) back(gpa uint64) (uint64, error) {
	gpa &^= frames.Size - 1
	if f, ok := t.backed[gpa]; ok {
		return f, nil
	}
	f, err := t.alloc()
	if err != nil {
		return 0, err
	}
	if err := t.tab.Map(gpa, f, frames.Size, ept.PermRWX, ept.WriteBack); err != nil {
		return 0, err
	}
	t.backed[gpa] = f
	return f, nil
}

// load builds the guest's EPT and copies its code (and the counter
// variant's parameters) in; the rest of its pages are backed on first
// touch.
func (t *testRun) load() error {
	h := t.h
	img, err := testguest.Build(t.variant)
	if err != nil {
		return err
	}
	t.tab, err = ept.New(ept.Config{Mem: directMap{}, Alloc: framePool{h}, Invalidator: flushOnLoad{}, Caps: h.eptc, Reserved: h.reserved, Format: h.format})
	if err != nil {
		return fmt.Errorf("hv: EPT: %w", err)
	}
	for off := 0; off < len(img.Bytes); off += frames.Size - int((testguest.LoadAddress+uint64(off))%frames.Size) {
		gpa := testguest.LoadAddress + uint64(off)
		f, err := t.back(gpa)
		if err != nil {
			return fmt.Errorf("hv: loading the guest: %w", err)
		}
		page := physBytes(f, frames.Size)
		copy(page[gpa%frames.Size:], img.Bytes[off:])
	}
	if t.variant == testguest.VariantCounter {
		f, err := t.back(testguest.ParamVCPUs)
		if err != nil {
			return fmt.Errorf("hv: loading the guest: %w", err)
		}
		page := physBytes(f, frames.Size)
		off := testguest.ParamVCPUs % frames.Size
		binary.LittleEndian.PutUint32(page[off:], 1)
		binary.LittleEndian.PutUint32(page[off+4:], testguest.DefaultCounterIterations)
	}
	return nil
}

// newVCPU gives the guest its vCPU: a VMCS whose first load writes the
// initial state and the exit bitmaps, and the exit handlers of its debug
// port.
func (t *testRun) newVCPU() (*vmxCPU, *exits.Dispatcher, error) {
	h := t.h
	vmcs, err := t.alloc()
	if err != nil {
		return nil, nil, fmt.Errorf("hv: VMCS: %w", err)
	}
	*(*uint32)(unsafe.Pointer(&physBytes(vmcs, 4)[0])) = h.caps.Basic.Revision
	common, err := h.commonFields(t.alloc, testPassedMSRs)
	if err != nil {
		return nil, nil, err
	}
	ctl, err := h.guestControls(vmx.Controls{})
	if err != nil {
		return nil, nil, err
	}
	vpid := uint16(0)
	if ctl.Proc2&vmx.Proc2EnableVPID != 0 {
		vpid = testVPID
	}
	g, err := testguest.InitialState(h.caps, ctl, t.tab.EPTP(), vpid)
	if err != nil {
		return nil, nil, err
	}
	t.port = &debugPort{}
	bus := exits.NewIOBus()
	if err := bus.Register(testguest.DebugPort, 4, "test guest debug port", t.port); err != nil {
		return nil, nil, err
	}
	cpu := &vmxCPU{h: h}
	setup := append(g.Fields(), common...)
	cpu.reset(loadedVMCS{h: h, vmcs: vmcs, eptp: t.tab.EPTP(), vpid: vpid, exit: ctl.Exit, setup: setup, res: t.res}, ctl)
	cpu.tscOffset = 0 // no TSC offsetting
	return cpu, &exits.Dispatcher{CPUID: h.cpuid, IO: bus, MSR: exits.NewMSRTable(), APICID: 0}, nil
}

// testPassedMSRs are the MSRs a test guest reaches without an exit: EFER
// and the FS/GS bases, which the VMCS switches.
var testPassedMSRs = []uint32{
	0xc0000080, // IA32_EFER
	0xc0000100, // IA32_FS_BASE
	0xc0000101, // IA32_GS_BASE
}

// guestControls are the VM-execution controls of every guest, plus
// extra: the preemption timer and external interrupts bring the core
// back, HLT, ports and MSRs exit (by the bitmaps), EPT with unrestricted
// guests (real mode runs as it is), EFER switched; VPIDs and virtual
// NMIs where the CPU has them.
func (h *Hypervisor) guestControls(extra vmx.Controls) (vmx.Controls, error) {
	required := vmx.Controls{
		Pin:   vmx.PinPreemptionTimer | vmx.PinExternalInterruptExiting | h.caps.VirtualNMIs().Pin | extra.Pin,
		Proc:  vmx.ProcHLTExiting | vmx.ProcUseIOBitmaps | vmx.ProcUseMSRBitmaps | vmx.ProcActivateSecondary | extra.Proc,
		Proc2: vmx.Proc2EnableEPT | vmx.Proc2UnrestrictedGuest | extra.Proc2,
		Exit:  vmx.ExitHostAddressSpaceSize | vmx.ExitSaveEFER | vmx.ExitLoadEFER | extra.Exit,
		Entry: vmx.EntryLoadEFER | extra.Entry,
	}
	ctl, err := h.caps.ComputeControls(required, vmx.Controls{Proc2: vmx.Proc2EnableVPID})
	if err != nil {
		return ctl, fmt.Errorf("hv: %w", err)
	}
	return ctl, nil
}

// commonFields allocates a guest's exit bitmaps with alloc and returns
// the VMCS fields every one of its vCPUs shares: every port exits (the
// I/O bitmaps are all ones, so the guest never reaches host devices),
// every MSR but passed exits, no exception exits, and the preemption
// timer's slice.
func (h *Hypervisor) commonFields(alloc func() (uint64, error), passed []uint32) ([]vmx.FieldValue, error) {
	var bitmaps [3]uint64 // I/O A, I/O B, MSR
	for i := range bitmaps {
		f, err := alloc()
		if err != nil {
			return nil, fmt.Errorf("hv: exit bitmaps: %w", err)
		}
		b := physBytes(f, frames.Size)
		for j := range b {
			b[j] = 0xff
		}
		bitmaps[i] = f
	}
	for _, m := range passed {
		passMSR(physBytes(bitmaps[2], frames.Size), m)
	}
	return []vmx.FieldValue{
		{Field: vmx.IOBitmapA, Value: bitmaps[0]},
		{Field: vmx.IOBitmapB, Value: bitmaps[1]},
		{Field: vmx.MSRBitmap, Value: bitmaps[2]},
		{Field: vmx.ExceptionBitmap, Value: 0},
		{Field: vmx.PreemptionTimerValue, Value: h.preemption},
	}, nil
}

// testRun is what the built-in test guest does differently in the run
// loop: its pages are backed on first touch, HLT ends it, and the loop
// stops it after maxExits exits.
type testRun struct {
	h       *Hypervisor
	res     *Result
	port    *debugPort
	variant testguest.Variant
	tab     *ept.Table
	// backed maps the guest pages backed so far to their frames; owned
	// is every frame the VM took.
	backed map[uint64]uint64
	owned  []uint64
	runs   []uint64 // 2 MiB runs (AMD-V permission maps)
	exits  int
}

func (t *testRun) Service(runloop.CPU) (runloop.Step, error) {
	if t.exits == maxExits {
		t.res.Outcome = fmt.Sprintf("stopped: no end after %d exits", t.exits)
		return runloop.Stop, nil
	}
	t.exits++
	return runloop.Continue, nil
}

func (t *testRun) Move() (int, bool)                               { return 0, false }
func (t *testRun) Depart(int, *vcpu.State) (bool, error)           { return false, nil }
func (t *testRun) InterruptPending() bool                          { return false }
func (t *testRun) TakeInterrupt() (uint8, bool)                    { return 0, false }
func (t *testRun) TSCOffset() uint64                               { return 0 }
func (t *testRun) Resumed(runloop.CPU, bool) (runloop.Step, error) { return runloop.Continue, nil }
func (t *testRun) Yield()                                          { runtime.Gosched() }

// Fault backs the guest page at the faulting address.
func (t *testRun) Fault(c runloop.CPU, e *exits.Exit, _ bool) (runloop.Step, error) {
	gpa := e.GuestPhysical
	if gpa >= testGuestRAM {
		return runloop.Stop, fmt.Errorf("guest accessed %#x, outside its %d MiB of RAM (EPT violation)", gpa, testGuestRAM>>20)
	}
	c.Put() // allocating may block
	if _, err := t.back(gpa); err != nil {
		return runloop.Stop, fmt.Errorf("backing guest page %#x: %w", gpa, err)
	}
	return runloop.Continue, nil
}

// Halt ends the guest: the report it wrote is checked.
func (t *testRun) Halt(runloop.CPU, bool) (runloop.Step, error) {
	res := t.res
	res.Outcome = "halted"
	res.ReportErr = t.port.err
	if res.ReportErr == nil && t.variant == testguest.VariantStandard {
		res.ReportErr = t.port.report.Check()
	}
	if res.ReportErr == nil && t.variant == testguest.VariantCounter {
		res.ReportErr = t.port.report.CheckCounter()
	}
	return runloop.Stop, nil
}

func (t *testRun) Other(c runloop.CPU, e *exits.Exit, a *exits.Action) (runloop.Step, error) {
	if a.Reason == vmx.ExitEPTMisconfig {
		return runloop.Stop, fmt.Errorf("EPT misconfiguration at %#x: %v", e.GuestPhysical, t.tab.Diagnose(e.GuestPhysical))
	}
	return runloop.Stop, runloop.ErrUnhandled
}

// loadedVMCS tracks where a VM's VMCS is current.
type loadedVMCS struct {
	h        *Hypervisor
	vmcs     uint64
	eptp     uint64
	vpid     uint16
	exit     vmx.ExitControls
	setup    []vmx.FieldValue // written at the first load
	res      *Result
	pinned   bool
	launched bool
	// core is the APIC id of the core the VMCS was last loaded on.
	core    uint32
	written bool
}

// load pins the calling goroutine to its core, enters VMX operation there
// if needed, and makes the VMCS current with this core's host state. TLB
// entries cached for the VM's EPTP and VPID are flushed: the tables may
// have changed, and frames and VPIDs are reused between VMs (Intel SDM
// Vol. 3C 29.4.3.1 "Operations that Invalidate Cached Mappings").
func (l *loadedVMCS) load() error {
	if l.pinned {
		return nil
	}
	spinlock.Pin()
	l.pinned = true
	id, err := l.h.enableVMX()
	if err != nil {
		l.unpin()
		return err
	}
	l.core = uint32(id)
	if err := vmx.VMPTRLD(l.vmcs); err != nil {
		l.unpin()
		return fmt.Errorf("VMPTRLD on APIC id %d: %w", id, err)
	}
	if !l.written {
		// VMCLEAR initialized the region; the fields go in once.
		for _, w := range l.setup {
			if err := vmx.VMWRITE(w.Field, w.Value); err != nil {
				l.put()
				return fmt.Errorf("VMWRITE %v=%#x: %w", w.Field, w.Value, err)
			}
		}
		l.written = true
	}
	host := vmx.CurrentHostState()
	host.TR = 0x18 // not loaded by tamago; VM exit loads it from here
	host.TRBase = uint64(uintptr(unsafe.Pointer(&l.h.tss[0])))
	for _, w := range host.Fields(l.exit) {
		if err := vmx.VMWRITE(w.Field, w.Value); err != nil {
			l.put()
			return fmt.Errorf("VMWRITE host %v=%#x: %w", w.Field, w.Value, err)
		}
	}
	if l.h.eptc.InvEPTSingle {
		err = vmx.INVEPT(vmx.InvEPTSingleContext, l.eptp)
	} else {
		err = vmx.INVEPT(vmx.InvEPTAllContext, 0)
	}
	if err == nil && l.vpid != 0 {
		if err = vmx.INVVPID(vmx.InvVPIDSingleContext, l.vpid, 0); err != nil {
			err = vmx.INVVPID(vmx.InvVPIDAllContext, 0, 0)
		}
	}
	if err != nil {
		l.put()
		return fmt.Errorf("invalidating cached mappings on APIC id %d: %w", id, err)
	}
	l.res.noteCore(id)
	return nil
}

// put clears the VMCS (writing its state back to memory, so that any core
// may load it next) and unpins the goroutine.
func (l *loadedVMCS) put() {
	if !l.pinned {
		return
	}
	vmx.VMCLEAR(l.vmcs)
	l.launched = false // VMCLEAR sets the launch state to clear
	l.unpin()
}

func (l *loadedVMCS) unpin() {
	l.pinned = false
	spinlock.Unpin()
}

func vmread(f vmx.Field) uint64 {
	v, _ := vmx.VMREAD(f)
	return v
}

func advance(n uint32) {
	if n != 0 {
		vmx.VMWRITE(vmx.GuestRIP, vmread(vmx.GuestRIP)+uint64(n))
	}
}

// passMSR clears an MSR's read and write bits in an MSR bitmap (Intel SDM
// Vol. 3C 25.6.9): reads low 0x000, reads high 0x400, writes low 0x800,
// writes high 0xc00; low MSRs 0-0x1fff, high 0xc0000000-0xc0001fff.
func passMSR(bitmap []byte, msr uint32) {
	base := 0
	if msr >= 0xc0000000 {
		base = 0x400
		msr -= 0xc0000000
	}
	if msr > 0x1fff {
		return
	}
	bitmap[base+int(msr/8)] &^= 1 << (msr % 8)
	bitmap[0x800+base+int(msr/8)] &^= 1 << (msr % 8)
}

// ErrNoVMX is returned by commands on nodes without VMX.
var ErrNoVMX = errors.New("VMX is not available on this node")

// rdtsc reads the time-stamp counter.
func rdtsc() uint64
