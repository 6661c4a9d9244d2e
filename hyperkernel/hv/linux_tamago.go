// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/devices/acpi"
	"github.com/big-iron/big-iron/vmm/devices/debugexit"
	"github.com/big-iron/big-iron/vmm/devices/ioapic"
	"github.com/big-iron/big-iron/vmm/devices/lapic"
	"github.com/big-iron/big-iron/vmm/devices/mmio"
	"github.com/big-iron/big-iron/vmm/devices/pcmsr"
	"github.com/big-iron/big-iron/vmm/devices/pmtimer"
	"github.com/big-iron/big-iron/vmm/devices/rtc"
	"github.com/big-iron/big-iron/vmm/devices/uart"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/frames"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/spinlock"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// linuxVPIDBase is the first VPID of OS guests (the test guest uses 1).
const linuxVPIDBase = 16

// acpiBase is where the guest's ACPI tables go: the BIOS area of the
// legacy hole, reserved in the guest's E820 map.
const acpiBase = 0xE0000

// The guest's platform devices: COM1 on IRQ 4 (ISA IRQs are IOAPIC pins
// of the same number: the MADT has no overrides), the IOAPIC, the reset
// register.
const (
	com1Port       = 0x3F8
	com1IRQ        = 4
	ioapicID       = 0
	resetValue     = 0x06 // hard reset (bit 1) | reset (bit 2)
	maxInstruction = 15

	// virtio-mmio devices: windows in the MMIO hole, interrupts on
	// IOAPIC pins above the ISA ones.
	virtioBase       = 0xD0000000
	virtioBlockGSI   = 16
	virtioConsoleGSI = 17
	virtioNetGSI     = 18
	// virtioDiskGSI is the pin of the second disk, the others' above it.
	virtioDiskGSI = 19
	// MaxDisks is the most disks a guest has: the IOAPIC's pins above
	// the network card's.
	MaxDisks = 1 + 24 - virtioDiskGSI
	// RAMDiskSize is the size of the RAM disk behind the guest's
	// virtio block device (/dev/vda).
	RAMDiskSize = 8 << 20
)

// MSRs the guest owns outright: VMX switches EFER, FS/GS base and the
// SYSENTER MSRs through the VMCS; the SYSCALL MSRs and KERNEL_GS_BASE
// travel in the VM-entry MSR-load / VM-exit MSR-store list, so they
// follow the vCPU from core to core (Intel SDM Vol. 3C, 25.7.2 and
// 26.4 "Loading MSRs").
var (
	switchedMSRs = []uint32{
		0xC0000081, // IA32_STAR
		0xC0000082, // IA32_LSTAR
		0xC0000083, // IA32_CSTAR
		0xC0000084, // IA32_FMASK
		0xC0000102, // IA32_KERNEL_GS_BASE
	}
	passedMSRs = []uint32{
		0xC0000080,          // IA32_EFER
		0xC0000100,          // IA32_FS_BASE
		0xC0000101,          // IA32_GS_BASE
		0x174, 0x175, 0x176, // IA32_SYSENTER_CS/ESP/EIP
	}
)

// guestBacking gives guest RAM its host frames.
type guestBacking struct{ h *Hypervisor }

func (b guestBacking) AllocFrame() (uint64, error) { return b.h.zeroFrame() }
func (b guestBacking) FreeFrame(hpa uint64)        { b.h.pool.FreeFrame(hpa) }
func (b guestBacking) FreeRun(hpa uint64)          { b.h.pool.FreeRun(hpa) }

// AllocRun returns a zeroed 2 MiB run of frames.
func (b guestBacking) AllocRun() (uint64, error) {
	f, err := b.h.pool.AllocRun()
	return zeroed(f, frames.RunSize, err)
}

// AllocHugeRun returns a zeroed 1 GiB huge run of frames.
func (b guestBacking) AllocHugeRun() (uint64, error) {
	f, err := b.h.pool.AllocHugeRun()
	return zeroed(f, frames.HugeRunSize, err)
}

func (b guestBacking) Frame(hpa uint64) *[guestmem.PageSize]byte {
	return (*[guestmem.PageSize]byte)(unsafe.Pointer(&physBytes(hpa, 1)[0]))
}

// LinuxVM is an operating-system guest running on this node.
type LinuxVM struct {
	h       *Hypervisor
	id      int
	cfg     LinuxConfig
	ram     *guestmem.RAM       // nil in a distributed VM
	split   guestmem.Split      // where its RAM is
	mem     devices.GuestMemory // guest memory as devices see it
	tab     *ept.Table
	dist    *linuxDist // set in a distributed VM's share
	apics   *lapic.Bus
	ioBus   *exits.IOBus
	ctl     vmx.Controls
	vpids   []uint16
	console *ConsoleLog
	started time.Time
	com1    *uart.UART
	mmio    mmio.Bus
	vcpus   []*linuxVCPU

	stop    atomic.Bool
	wg      sync.WaitGroup
	freed   chan struct{} // closed once free has run (VMs of BootLinux)
	mu      spinlock.Lock
	outcome string
	// exited and exitCode: the guest ended through the debug-exit port.
	exited   bool
	exitCode uint32
	// retired: this is what is left of an ended VM (see retire).
	retired bool
	stats   exits.ExitStats
	owned   []uint64 // frames for VMCSs, bitmaps, MSR lists
	svmMaps uint64   // on AMD-V: the permission maps (a 2 MiB run)
	// devStop stops the virtio devices' workers (closed by free).
	devStop chan struct{}
	// virtio are the VM's virtio-mmio devices, in the order the guest
	// finds them in its ACPI tables.
	virtio []virtioSlot
	// net is the network card's backend, nil without one; blocks the
	// disks', vda first.
	net    *virtio.Net
	blocks []*virtio.Block
	disks  []virtio.Disk // behind blocks
	// setup is how long newLinux took; tables how many frames the
	// VM's EPT took then.
	setup  time.Duration
	tables int
}

// Console returns the guest's console output.
func (vm *LinuxVM) Console() *ConsoleLog { return vm.console }

// VCPUs describes the VM's virtual processors.
func (vm *LinuxVM) VCPUs() []VCPUInfo {
	out := make([]VCPUInfo, len(vm.vcpus))
	for i, v := range vm.vcpus {
		out[i] = VCPUInfo{Index: i, APICID: uint32(i), State: VCPUState(v.state.Load()), Core: v.loop.Core(), Exits: v.loop.Count()}
		if v.apic != nil {
			st := v.apic.State()
			out[i].InService, out[i].Requested = st.ISR, st.IRR
		}
	}
	return out
}

// Input types p on the guest's console (COM1) and returns how many bytes
// its receive buffer took.
func (vm *LinuxVM) Input(p []byte) int {
	if vm.com1 == nil { // ended
		return 0
	}
	return vm.com1.Input(p)
}

// Info describes the VM.
func (vm *LinuxVM) Info() VMInfo {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := vm.outcome
	st := vm.stats
	if out == "" {
		out = "running"
		for _, v := range vm.vcpus {
			st.Add(&v.published)
		}
	}
	return VMInfo{ID: vm.id, Name: vm.cfg.Name, VCPUs: vm.cfg.VCPUs, Memory: vm.cfg.Memory, Started: vm.started, Outcome: out, Exits: st,
		DebugExit: vm.exited, ExitCode: vm.exitCode, Setup: vm.setup, Tables: uint64(vm.tables) * frames.Size}
}

// debugExit ends the VM for a write of code to the debug-exit port.
func (vm *LinuxVM) debugExit(code uint32) {
	vm.mu.Lock()
	if vm.outcome == "" {
		vm.exited, vm.exitCode = true, code
	}
	vm.mu.Unlock()
	vm.end(fmt.Sprintf("debug-exit code %d (QEMU's status %d)", code, debugexit.Status(code)))
}

// end records why the VM stopped (the first reason wins) and stops every
// vCPU.
func (vm *LinuxVM) end(why string) {
	vm.mu.Lock()
	first := vm.outcome == ""
	if first {
		vm.outcome = why
	}
	vm.mu.Unlock()
	vm.stop.Store(true)
	if d := vm.dist; d != nil && first {
		fmt.Fprintf(d.share.d.notices, "dvm %d: %s stopped on this node: %s\n", d.share.spec.ID, osName(vm.cfg.Name), why)
	}
}

// Stop stops the VM and waits for its vCPUs, then for its memory and
// devices to be freed: once it returns, its disks' connections are
// closed and its network card's MAC is free for the next VM.
func (vm *LinuxVM) Stop() {
	vm.end("stopped by the operator")
	vm.wg.Wait()
	if vm.freed != nil {
		<-vm.freed
	}
}

func (vm *LinuxVM) alloc() (uint64, error) {
	f, err := vm.h.zeroFrame()
	if err == nil {
		vm.owned = append(vm.owned, f)
	}
	return f, err
}

func (vm *LinuxVM) free() {
	if vm.devStop != nil {
		close(vm.devStop)
		vm.devStop = nil
	}
	if vm.net != nil {
		vm.cfg.Net.SetReceiver(nil)
	}
	for _, f := range vm.cfg.Release {
		f()
	}
	vm.cfg.Release = nil
	for _, f := range vm.owned {
		vm.h.pool.FreeFrame(f)
	}
	vm.owned = nil
	if vm.svmMaps != 0 {
		vm.h.pool.FreeRun(vm.svmMaps)
		vm.svmMaps = 0
	}
	if vm.tab != nil && vm.dist == nil {
		vm.tab.Destroy() // a distributed VM's belongs to its share
	}
	if vm.ram != nil {
		vm.ram.Free()
	}
}

// BootLinux builds a VM from cfg and starts its boot processor. It
// returns once the guest runs; the VM lives until it stops itself or
// Stop is called.
func (h *Hypervisor) BootLinux(cfg LinuxConfig) (*LinuxVM, error) {
	vm, err := h.newLinux(cfg, nil)
	if err != nil {
		return nil, err
	}
	for i := range vm.vcpus {
		vm.startVCPU(i)
	}
	vm.freeWhenDone()
	h.mu.Lock()
	h.vms = append(h.vms, vm)
	h.mu.Unlock()
	return vm, nil
}

// newLinux builds a VM from cfg, its vCPUs not yet started. With dist it
// is this node's share of a distributed VM: guest memory is the
// coherence engine's (dist's EPT, accesses through its runtime), and only
// the node that hosts the devices has devices and loads the guest (with
// load, once the other nodes have joined); the other nodes forward
// device accesses there.
//
// On error it returns every frame it took. (The VM is a local, not the
// named result: `return nil, err` would clear a named one before the
// deferred clean-up reads it.)
func (h *Hypervisor) newLinux(cfg LinuxConfig, dist *linuxDist) (_ *LinuxVM, err error) {
	if err := validateLinuxConfig(&cfg, dist == nil || dist.devices); err != nil {
		return nil, err
	}
	if err := checkAddressWidth(cfg.Memory, h.eptc.MaxPhysAddr); err != nil {
		return nil, err
	}
	if dist == nil {
		inUse, total := h.pool.Stats()
		if err := checkRoom(cfg.Memory, cfg.VCPUs, inUse, total); err != nil {
			return nil, err
		}
	}
	h.mu.Lock()
	h.vmCount++
	id := h.vmCount
	h.mu.Unlock()
	vm := &LinuxVM{h: h, id: id, cfg: cfg, split: guestmem.NewSplit(cfg.Memory), console: NewConsoleLog(64 << 10), started: time.Now(), dist: dist}
	defer func() {
		if err != nil {
			vm.free()
		}
	}()
	if dist == nil {
		if err := vm.backRAM(); err != nil {
			return nil, err
		}
	} else {
		vm.tab, vm.mem = dist.tab, dvmGuestMemory{rt: dist.rt, split: vm.split}
	}
	vm.vcpus = make([]*linuxVCPU, cfg.VCPUs)
	for i := range vm.vcpus {
		vm.vcpus[i] = &linuxVCPU{vm: vm, index: i, res: &Result{}, kick: make(chan struct{}, 1)}
	}
	vm.apics = lapic.NewBus(cfg.VCPUs, vm.guestTSC, func(i int) lapic.Events { return vcpuEvents{vm.vcpus[i]} })
	vm.apics.SetMaxPhysAddr(uint(h.eptc.MaxPhysAddr))
	if cfg.XAPIC {
		vm.apics.PowerOn(lapic.ModeXAPIC)
	}
	if err := vm.platform(); err != nil {
		return nil, err
	}
	disp, err := vm.exitHandlers()
	if err != nil {
		return nil, err
	}
	if h.svmCaps != nil {
		err = vm.newSVMVCPUs(disp)
	} else {
		err = vm.newVCPUs(disp)
	}
	if err != nil {
		return nil, err
	}
	if dist == nil {
		if err := vm.load(); err != nil {
			return nil, err
		}
	}
	vm.setup, vm.tables = time.Since(vm.started), vm.tab.Tables()
	return vm, nil
}

// platform gives the VM its port bus and its devices, or on a node of a
// distributed VM without the devices, forwarding to the node with them.
func (vm *LinuxVM) platform() error {
	vm.ioBus = exits.NewIOBus()
	d := vm.dist
	if d == nil || d.devices {
		if open := vm.cfg.Open; open != nil {
			if err := open(&vm.cfg); err != nil {
				return err
			}
		}
		if err := vm.addDevices(vm.apics, vm.ioBus); err != nil {
			return err
		}
	} else {
		// Every port and every device window is on the device node.
		if err := vm.ioBus.Register(0, 0xFFFF, "forwarded to the device node", &d.ports); err != nil {
			return err
		}
		vm.apics.SetEOIHandler(d.forwardEOI)
	}
	if d != nil {
		vm.apics.SetRemote(d)
	}
	return nil
}

// exitHandlers returns the exit handlers the VM's vCPUs share (each gets
// a copy with its own index and statistics): its ports, its MSRs (the
// platform's and the LAPICs') and its CPUID.
func (vm *LinuxVM) exitHandlers() (exits.Dispatcher, error) {
	h, cfg := vm.h, &vm.cfg
	msrs := exits.NewMSRTable()
	plat, err := pcmsr.New(cfg.VCPUs, uint(h.eptc.MaxPhysAddr))
	if err != nil {
		return exits.Dispatcher{}, fmt.Errorf("hv: %w", err)
	}
	if err := plat.Register(msrs); err != nil {
		return exits.Dispatcher{}, err
	}
	if h.svmCaps != nil { // the guest sees the host's vendor: AuthenticAMD
		if err := plat.RegisterAMD(msrs); err != nil {
			return exits.Dispatcher{}, err
		}
	}
	if err := vm.apics.Register(msrs); err != nil {
		return exits.Dispatcher{}, err
	}
	cpuid, err := exits.NewCPUIDPolicy(exits.CPUIDConfig{
		TSCKHz: uint32(h.plat.TSCHz * uint64(max(cfg.Dilation, 1)) / 1000), VCPUs: uint32(cfg.VCPUs),
		EmulatedAPIC: true, FXSAVEOnly: h.hostXCR0 == 0, HideUnvirtualized: true, KVMCompatible: true,
		TSCAux: h.svmCaps != nil, // see vmTSCAux
		PKU:    h.pku,
		PKS:    h.pks,
	}, h.hostCPUID)
	if err != nil {
		return exits.Dispatcher{}, fmt.Errorf("hv: %w", err)
	}
	return exits.Dispatcher{CPUID: cpuid, IO: vm.ioBus, MSR: msrs}, nil
}

// newVCPUs gives every vCPU its VMCS, MSR list, registers and exit
// handlers now; the boot processor starts in long mode at the kernel's
// entry (load), the others wait for their startup IPI.
func (vm *LinuxVM) newVCPUs(disp exits.Dispatcher) error {
	h := vm.h
	common, err := h.commonFields(vm.alloc, append(append([]uint32(nil), passedMSRs...), switchedMSRs...))
	if err != nil {
		return err
	}
	vm.ctl, err = h.guestControls(vmx.Controls{Proc: vmx.ProcUseTSCOffsetting, Entry: vmx.EntryIA32eModeGuest})
	if err != nil {
		return err
	}
	ctl := vm.ctl
	vm.vpids = make([]uint16, len(vm.vcpus))
	for i, v := range vm.vcpus {
		v.apic = vm.apics.APIC(i)
		v.timer = time.NewTimer(time.Hour)
		v.sipi = make(chan uint8, 1)
		v.vx = vmxCPU{h: h, apicID: uint32(i), bsp: i == 0}
		v.cpu = &v.vx
		if vm.dist != nil {
			v.share = vm.dist.rt.Handle(migrate.VCPUID(i))
		}
		v.unrestricted = ctl.Proc2&vmx.Proc2UnrestrictedGuest != 0
		if ctl.Proc2&vmx.Proc2EnableVPID != 0 {
			vm.vpids[i] = uint16(linuxVPIDBase + vm.id*64 + i)
		}
		if v.msrList, err = vm.alloc(); err != nil {
			return err
		}
		v.vx.msrList = v.msrList
		list := physBytes(v.msrList, frames.Size)
		for j, m := range switchedMSRs {
			binary.LittleEndian.PutUint32(list[16*j:], m)
		}
		if v.vmcs, err = vm.alloc(); err != nil {
			return err
		}
		*(*uint32)(unsafe.Pointer(&physBytes(v.vmcs, 4)[0])) = h.caps.Basic.Revision
		v.common = append([]vmx.FieldValue{
			{Field: vmx.EntryMSRLoadAddr, Value: v.msrList},
			{Field: vmx.EntryMSRLoadCount, Value: uint64(len(switchedMSRs))},
			{Field: vmx.ExitMSRStoreAddr, Value: v.msrList},
			{Field: vmx.ExitMSRStoreCount, Value: uint64(len(switchedMSRs))},
		}, common...)
		v.useDispatcher(disp, i)
	}
	return nil
}

// useDispatcher gives vCPU i its copy of the VM's exit dispatcher, the
// CR4 bits the CPUID it answers offers, and an FPU area for the state
// components it offers, on either backend (v.cpu set).
func (v *linuxVCPU) useDispatcher(disp exits.Dispatcher, i int) {
	v.disp = disp
	v.disp.VCPU, v.disp.APICID = i, uint32(i)
	v.disp.APICEnabled = v.apicEnabled
	v.disp.CR4, v.disp.CPL = v.cpu.GuestCR4, v.cpu.CPL
	v.cr4Allowed = cr4Allowed(func(leaf, sub uint32) exits.CPUIDResult { return disp.CPUID.Lookup(leaf, sub, 0) })
	guestFPU(v.cpu.Regs(), disp.CPUID, v.vm.h.hostXCR0)
}

// ownMasks adds to g's guest/host masks (VT-x) the bits the hyperkernel
// owns beyond those VMX fixes: CR0.CD and NW (see guestOwnedCacheBits),
// and every CR4 bit the guest's CPUID does not offer, so that a MOV to
// CR4 setting one exits and takes #GP (crAccess), as on AMD-V.
func (v *linuxVCPU) ownMasks(g *vmx.GuestState) {
	g.CR0Mask |= guestOwnedCacheBits
	g.CR4Mask |= ^v.cr4Allowed
}

// backRAM gives a local VM its RAM and the EPT that maps it: 2 MiB runs
// of frames where the pool has them, mapped with large pages where the
// CPU has them (ept.Table.Map picks the page size per stretch). On error
// free returns what it took.
func (vm *LinuxVM) backRAM() error {
	h := vm.h
	var err error
	if vm.ram, err = guestmem.New(vm.cfg.Memory, guestBacking{h}); err != nil {
		return fmt.Errorf("hv: guest RAM: %w", err)
	}
	vm.mem = vm.ram
	vm.tab, err = ept.New(ept.Config{Mem: directMap{}, Alloc: framePool{h}, Invalidator: flushOnLoad{}, Caps: h.eptc, Reserved: h.reserved, Format: h.format})
	if err != nil {
		return fmt.Errorf("hv: EPT: %w", err)
	}
	return vm.ram.Extents(func(gpa, hpa, size uint64) error {
		if err := vm.tab.Map(gpa, hpa, size, ept.PermRWX, ept.WriteBack); err != nil {
			return fmt.Errorf("hv: mapping guest memory %#x-%#x: %w", gpa, gpa+size, err)
		}
		return nil
	})
}

// load writes the guest's ACPI tables and has cfg.Load place the kernel
// and its boot data into guest memory, then gives the boot processor
// its entry state. A local VM loads as it is built; the device node of a
// distributed VM once the other nodes have joined, since pages homed on
// them are written through the coherence protocol.
func (vm *LinuxVM) load() error {
	h, cfg := vm.h, &vm.cfg
	ids := make([]uint32, cfg.VCPUs)
	for i := range ids {
		ids[i] = uint32(i)
	}
	tables, err := acpi.Build(acpiBase, acpi.Config{
		APICIDs:   ids,
		IOAPICs:   []acpi.IOAPIC{{ID: ioapicID, Address: ioapic.DefaultBase}},
		ResetPort: portResetControl, ResetValue: resetValue, PMTimerPort: vm.pmTimerPort(),
		Serial: []acpi.SerialPort{{Port: com1Port, GSI: com1IRQ, UID: 1}},
		Virtio: vm.acpiVirtio(),
		NUMA:   cfg.NUMA,
	})
	if err != nil {
		return fmt.Errorf("hv: %w", err)
	}
	if err := vm.mem.WriteAt(tables.Bytes, tables.Base); err != nil {
		return fmt.Errorf("hv: ACPI tables: %w", err)
	}
	entry, err := cfg.Load(vm.mem, guestmem.Layout(cfg.Memory), tables.RSDP)
	if err != nil {
		return fmt.Errorf("hv: loading the guest: %w", err)
	}
	bsp := vm.vcpus[0]
	if h.svmCaps != nil {
		var st vcpu.State
		if err := entryVCPU(entry, &st); err != nil {
			return err
		}
		return bsp.startSVM(&st)
	}
	regs := bsp.cpu.Regs()
	regs.RAX, regs.RBX, regs.RSI = entry.RAX, entry.RBX, entry.RSI
	var g vmx.GuestState
	if entry.Flat32 {
		g, err = Flat32State(h.caps, vm.ctl, vm.tab.EPTP(), vm.vpids[0], entry)
	} else {
		g, err = LongModeState(h.caps, vm.ctl, vm.tab.EPTP(), vm.vpids[0], entry.Long)
	}
	if err != nil {
		return err
	}
	if bad := h.caps.CheckGuestState(&g, uint8(h.eptc.MaxPhysAddr)); len(bad) > 0 {
		return fmt.Errorf("hv: the boot processor's state would fail VM entry: %v", bad[0])
	}
	bsp.ownMasks(&g)
	bsp.setState(&g)
	return nil
}

// pmTimerPort is the port of the guest's ACPI PM timer, 0 for none. Only
// guests on AMD-V have one: Linux on an AMD processor calibrates its TSC
// against the PIT, HPET or PM timer (CPUID leaf 0x15, from which it reads
// the TSC's rate on Intel, is Intel's), and the VT-x guests keep the
// clocks they were tested with.
func (vm *LinuxVM) pmTimerPort() uint16 {
	if vm.h.svmCaps == nil {
		return 0
	}
	return linuxPMTimerPort
}

// linuxPMTimerPort is where a guest's PM timer is (QEMU's q35 uses it too).
const linuxPMTimerPort = 0x608

// addDevices gives the VM its devices: COM1, the IOAPIC, the reset
// register, the RTC, the virtio block device and console.
func (vm *LinuxVM) addDevices(apics *lapic.Bus, bus *exits.IOBus) error {
	io := ioapic.New(ioapicID, apics)
	apics.SetEOIHandler(io.EOI)
	if err := vm.mmio.Register(ioapic.DefaultBase, ioapic.WindowSize, "IOAPIC", io); err != nil {
		return err
	}
	vm.com1 = uart.New(vm.console, func(level bool) { io.SetIRQ(com1IRQ, level) })
	if err := vm.addVirtio(io); err != nil {
		return err
	}
	if err := bus.Register(com1Port, uart.Ports, "COM1 (16550A)", vm.com1); err != nil {
		return err
	}
	if err := bus.Register(rtc.PortIndex, 2, "RTC/CMOS", rtc.New(time.Now)); err != nil {
		return err
	}
	if p := vm.pmTimerPort(); p != 0 {
		hz := vm.h.plat.TSCHz * uint64(max(vm.cfg.Dilation, 1))
		if err := bus.Register(p, 4, "ACPI PM timer", pmtimer.New(vm.guestTSC, hz)); err != nil {
			return err
		}
	}
	if vm.cfg.DebugExit {
		if err := bus.Register(debugexit.Port, debugexit.Ports, "debug exit", debugexit.New(vm.debugExit)); err != nil {
			return err
		}
	}
	reset := resetControl{reset: func() { vm.end("the guest reset the machine") }}
	for _, p := range []uint16{portResetControl, portI8042Data, portI8042Command} {
		if err := bus.Register(p, 1, "reset", reset); err != nil {
			return err
		}
	}
	return nil
}

// startVCPU starts vCPU i: the boot processor runs, an application
// processor waits for its startup IPI.
func (vm *LinuxVM) startVCPU(i int) {
	v := vm.vcpus[i]
	vm.wg.Add(1)
	go func() {
		defer vm.wg.Done()
		if i == 0 || v.waitStartup(vm.ctl, vm.vpids[i]) {
			v.run()
		}
	}()
}

// freeWhenDone frees the VM's memory once every vCPU has stopped.
func (vm *LinuxVM) freeWhenDone() {
	vm.freed = make(chan struct{})
	go func() {
		vm.wg.Wait()
		vm.free()
		close(vm.freed)
		vm.h.retire(vm)
	}()
}

// maxEndedVMs bounds the ended VMs a node keeps for `vm list` and
// `console`: each keeps its console log.
const maxEndedVMs = 64

// retire replaces a freed VM in the node's list by what `vm list` and
// `console` still show of it (ended), so that nothing else of it (its
// devices, RAM disks, the kernel it was loaded from) stays reachable,
// and forgets the oldest ended VMs beyond maxEndedVMs. A node that ran
// VM after VM kept each one's RAM disk and boot files in its heap until
// it ran out of memory.
func (h *Hypervisor) retire(vm *LinuxVM) {
	done := vm.ended()
	h.mu.Lock()
	defer h.mu.Unlock()
	ended := 0
	for i := len(h.vms) - 1; i >= 0; i-- {
		switch v := h.vms[i]; {
		case v == vm:
			h.vms[i] = done
			ended++
		case v.retired:
			ended++
			if ended > maxEndedVMs {
				h.vms = append(h.vms[:i], h.vms[i+1:]...)
			}
		}
	}
}

// ended returns what is left of a freed VM: its description, outcome
// and console log, no devices (Input types nowhere, Disks is empty).
func (vm *LinuxVM) ended() *LinuxVM {
	in := vm.Info()
	e := &LinuxVM{h: vm.h, id: vm.id, split: vm.split, console: vm.console, started: vm.started,
		outcome: in.Outcome, exited: in.DebugExit, exitCode: in.ExitCode, stats: in.Exits, setup: vm.setup, tables: vm.tables, retired: true}
	e.cfg.Name, e.cfg.VCPUs, e.cfg.Memory = vm.cfg.Name, vm.cfg.VCPUs, vm.cfg.Memory
	e.stop.Store(true)
	return e
}

// VMs returns the OS guests started on this node, running or not.
func (h *Hypervisor) VMs() []*LinuxVM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*LinuxVM(nil), h.vms...)
}

func (h *Hypervisor) hostCPUID(leaf, sub uint32) exits.CPUIDResult {
	a, b, c, d := h.plat.CPUID(leaf, sub)
	return exits.CPUIDResult{EAX: a, EBX: b, ECX: c, EDX: d}
}

// linuxVCPU is one virtual processor of an OS guest.
type linuxVCPU struct {
	vm    *LinuxVM
	index int
	// cpu is the backend: &vx on VT-x, sv on AMD-V; loop runs it (its
	// exits, core and RIP are read by `vcpus` while it runs).
	cpu  guestCPU
	vx   vmxCPU
	sv   *svmCPU
	loop runloop.Loop
	// share is the vCPU's handle on a distributed VM's runtime (nil on
	// one node), held while the vCPU is in guest mode.
	share *dvm.Handle
	// cr4Allowed are the CR4 bits the guest may set (its CPUID's; see
	// svmWriteCR4 and vmxWriteCR4).
	cr4Allowed uint64
	// tpr syncs CR8 with the APIC's TPR on AMD-V (syncTPR).
	tpr vtprSync
	// nmi counts the NMIs sent to the vCPU (IPIs with NMI delivery)
	// that its loop has not yet latched (TakeNMIs).
	nmi          atomic.Int32
	disp         exits.Dispatcher
	res          *Result
	unrestricted bool

	apic *lapic.LAPIC
	// vmcs and msrList are the vCPU's frames; common the VMCS fields
	// every start writes (bitmaps, MSR lists).
	vmcs, msrList uint64
	common        []vmx.FieldValue
	// sipi carries the vector of the startup IPI that releases an
	// application processor; started is set once it runs.
	sipi    chan uint8
	started atomic.Bool
	// state is read by `vcpus` while the vCPU runs; published is its
	// exit statistics as of its last slice (under vm.mu).
	state     atomic.Int32
	published exits.ExitStats
	// kick wakes the vCPU from HLT when an interrupt becomes pending.
	kick  chan struct{}
	timer *time.Timer
	// moveTo is the node (plus one) the vCPU is to migrate to at its
	// next exit, 0 if none (distributed VMs).
	moveTo atomic.Int32
}

// guestTSC reads the guest's TSC on this node: the host's plus the
// node's offset (kept in step with the other nodes in a distributed VM).
func (vm *LinuxVM) guestTSC() uint64 {
	if vm.dist != nil {
		return vm.dist.clock.now(rdtsc())
	}
	return rdtsc()
}

// lockShare takes the distributed VM's runtime lock (see package dvm:
// held while the vCPU is in guest mode); unlockShare lets it go. Both do
// nothing in a VM of one node.
func (v *linuxVCPU) lockShare() {
	if v.share != nil {
		v.share.Lock()
	}
}

func (v *linuxVCPU) unlockShare() {
	if v.share != nil {
		v.share.Unlock()
	}
}

// Yield lets go of the runtime lock for a moment, the vCPU off its core
// (runloop.Guest).
func (v *linuxVCPU) Yield() {
	v.publish()
	v.unlockShare()
	runtime.Gosched()
	v.lockShare()
}

// vcpuEvents passes a LAPIC's events to its vCPU.
type vcpuEvents struct{ v *linuxVCPU }

func (e vcpuEvents) Kick() {
	select {
	case e.v.kick <- struct{}{}:
	default:
	}
}

// INIT to a vCPU that waits for its startup IPI keeps it waiting; a
// running vCPU is not reset (Linux sends INIT only to processors it is
// about to start).
func (e vcpuEvents) INIT() {}

// Startup releases a waiting application processor at vector's page.
// A second SIPI (the protocol sends two) or one to a running vCPU is
// ignored, as the processor does outside wait-for-SIPI.
func (e vcpuEvents) Startup(vector uint8) {
	if e.v.started.Load() || e.v.sipi == nil {
		return
	}
	select {
	case e.v.sipi <- vector:
	default:
	}
}

// NMI sends the vCPU an NMI: its loop latches it at the next entry and
// injects it once the guest's NMIs are not blocked (runloop.NMIGuest),
// and a halted vCPU wakes for it whatever its RFLAGS.IF.
func (e vcpuEvents) NMI() {
	e.v.nmi.Add(1)
	e.Kick()
}

// TakeNMIs implements runloop.NMIGuest; the loop takes them with the
// vCPU when it moves.
func (v *linuxVCPU) TakeNMIs() int { return int(v.nmi.Swap(0)) }

// setState makes g the vCPU's state at its first VM entry.
func (v *linuxVCPU) setState(g *vmx.GuestState) {
	setup := append(g.Fields(), v.common...)
	v.vx.reset(loadedVMCS{h: v.vm.h, vmcs: v.vmcs, eptp: g.EPTP, vpid: g.VPID, exit: g.Controls.Exit, setup: setup, res: v.res}, g.Controls)
	v.started.Store(true)
}

// waitStartup parks an application processor until a startup IPI
// arrives, then gives it the real-mode state that vector says. It
// reports false if the VM stopped first.
func (v *linuxVCPU) waitStartup(ctl vmx.Controls, vpid uint16) bool {
	for !v.vm.stop.Load() {
		v.timer.Reset(10 * time.Millisecond)
		select {
		case vec := <-v.sipi:
			if v.sv != nil {
				var st vcpu.State
				startupVCPU(vec, uint32(v.index), &st)
				if err := v.startSVM(&st); err != nil {
					v.vm.end(fmt.Sprintf("vCPU %d: %v", v.index, err))
					return false
				}
				return true
			}
			g, err := StartupState(v.vm.h.caps, ctl, v.vm.tab.EPTP(), vpid, vec)
			if err == nil {
				if bad := v.vm.h.caps.CheckGuestState(&g, uint8(v.vm.h.eptc.MaxPhysAddr)); len(bad) > 0 {
					err = fmt.Errorf("startup state would fail VM entry: %v", bad[0])
				}
			}
			if err != nil {
				v.vm.end(fmt.Sprintf("vCPU %d: %v", v.index, err))
				return false
			}
			v.ownMasks(&g)
			v.setState(&g)
			return true
		case <-v.timer.C:
		}
	}
	return false
}

// publish makes the vCPU's exit statistics visible to `vm list`.
func (v *linuxVCPU) publish() {
	v.vm.mu.Lock()
	v.published = v.disp.Stats
	v.vm.mu.Unlock()
}

// halt waits, off the core, until an interrupt is pending for the vCPU
// (it executed HLT with interrupts enabled), the VM stops, or with
// interrupts disabled for ever (until the VM stops).
func (v *linuxVCPU) halt(interruptible bool) {
	v.cpu.Put()
	v.publish()
	v.state.Store(int32(VCPUHalted))
	defer v.state.Store(int32(VCPURunning))
	tsc := v.vm.h.plat.TSCHz
	d := v.vm.dist
	for !v.vm.stop.Load() {
		if d != nil {
			if err := v.serveShare(); err != nil || v.moveTo.Load() != 0 {
				return // the loop reports the error, or moves the vCPU
			}
		}
		if _, ok := v.apic.Pending(); ok && interruptible || v.nmi.Load() > 0 {
			return
		}
		wait := 10 * time.Millisecond
		if d := v.apic.Deadline(); d != 0 && interruptible {
			now := v.vm.guestTSC()
			if d <= now {
				continue
			}
			if ns := (d - now) * 1e9 / tsc; ns < uint64(wait) {
				wait = time.Duration(ns)
			}
		}
		v.timer.Reset(wait)
		v.unlockShare()
		select {
		case <-v.kick:
		case <-v.timer.C:
		}
		v.lockShare()
	}
}

// run runs the vCPU in the run loop until the VM stops, the vCPU moves
// to another node, or it fails (which stops the VM). In a distributed VM
// it holds the runtime's lock while the vCPU is in guest mode (see
// package dvm).
func (v *linuxVCPU) run() {
	vm := v.vm
	v.state.Store(int32(VCPURunning))
	v.loop.CPU, v.loop.Guest, v.loop.Exits = v.cpu, v, &v.disp
	// The preemption timer restarts at every entry, so a guest whose
	// exits come faster than its slice (polling a port, say) would keep
	// the goroutine pinned; the loop leaves the core after this slice.
	v.loop.Slice = vm.h.plat.TSCHz / 1000
	v.lockShare()
	err := v.loop.Run()
	v.unlockShare()
	if v.state.Load() != int32(VCPUMigrated) {
		v.state.Store(int32(VCPUStopped))
	}
	vm.mu.Lock()
	vm.stats.Add(&v.disp.Stats)
	v.published = exits.ExitStats{}
	vm.mu.Unlock()
	if err != nil {
		msg := err.Error()
		var entry *runloop.EntryError
		if errors.As(err, &entry) && entry.Err == nil {
			msg = fmt.Sprintf("%v: %v", err, entry.Diagnosis)
		}
		vm.end(fmt.Sprintf("vCPU %d: %s", v.index, msg))
	}
}

var _ runloop.Guest = (*linuxVCPU)(nil)

// Service stops the vCPU when the VM stops and, in a distributed VM,
// serves its share's messages (runloop.Guest).
func (v *linuxVCPU) Service(runloop.CPU) (runloop.Step, error) {
	if v.vm.stop.Load() {
		return runloop.Stop, nil
	}
	v.syncTPR()
	if v.vm.dist != nil {
		if err := v.serveShare(); err != nil {
			return runloop.Stop, err
		}
	}
	return runloop.Continue, nil
}

// syncTPR keeps CR8 and the APIC's TPR one register on AMD-V (vtprSync).
func (v *linuxVCPU) syncTPR() {
	if c := v.sv; c != nil {
		c.setVTPR(v.tpr.sync(c.vTPR(), v.apic))
	}
}

// Move returns the node the vCPU is asked to move to.
func (v *linuxVCPU) Move() (int, bool) {
	dst := v.moveTo.Load()
	return int(dst) - 1, dst != 0
}

// InterruptPending reports whether the vCPU's LAPIC has an interrupt to
// deliver.
func (v *linuxVCPU) InterruptPending() bool {
	_, ok := v.apic.Pending()
	return ok
}

// TakeInterrupt accepts the LAPIC's highest pending interrupt.
func (v *linuxVCPU) TakeInterrupt() (uint8, bool) {
	vec, ok := v.apic.Pending()
	if ok {
		v.apic.Accept(vec)
	}
	return vec, ok
}

// TSCOffset keeps a distributed VM's guest TSC in step across nodes,
// plus what the vCPU's own writes of its TSC moved it by.
func (v *linuxVCPU) TSCOffset() uint64 {
	adj := v.apic.TSCAdjust()
	if d := v.vm.dist; d != nil {
		return d.clock.offset.Load() + adj
	}
	return adj
}

// Resumed sends a port access to the device node by moving the vCPU
// there, when the VM's device policy says so; otherwise Service forwards
// it before the next entry.
func (v *linuxVCPU) Resumed(_ runloop.CPU, mayMove bool) (runloop.Step, error) {
	d := v.vm.dist
	if d == nil || !d.ports.pending() || !mayMove {
		return runloop.Continue, nil
	}
	dst, ok := v.share.DeviceMove()
	if !ok {
		return runloop.Continue, nil
	}
	d.ports.read, d.ports.write = false, false
	v.moveTo.Store(int32(dst) + 1)
	return runloop.Retry, nil
}

// Fault serves an access the EPT refused: in a distributed VM a page this
// node does not hold as the access needs is fetched, or by the VM's move
// policy the access runs where the page is; anything else is a device.
func (v *linuxVCPU) Fault(c runloop.CPU, e *exits.Exit, mayMove bool) (runloop.Step, error) {
	d, gpa := v.vm.dist, e.GuestPhysical
	if _, ram := v.vm.split.Index(gpa); d != nil && ram {
		write := e.Qualification&2 != 0
		d.share.countWalk(e.Qualification)
		if write && d.share.spec.WalkWindows && inWalk(e.Qualification) {
			c.Put()
			return runloop.Continue, v.share.WalkFault(gpa)
		}
		if mayMove {
			if dst, ok := v.share.Place(gpa, write); ok {
				v.moveTo.Store(int32(dst) + 1)
				return runloop.Continue, nil
			}
		}
		c.Put()
		return runloop.Continue, v.share.Fault(gpa, write)
	}
	if d != nil && !d.devices && mayMove && !v.ownAPICPage(gpa) {
		if dst, ok := v.share.DeviceMove(); ok {
			// The device access runs on the device node.
			v.moveTo.Store(int32(dst) + 1)
			return runloop.Continue, nil
		}
	}
	return runloop.Continue, v.mmioAccess(gpa)
}

// Exited tells a distributed VM's runtime that the vCPU ran (its walk
// windows may have changed), and publishes the changed ones, waiting
// for their upgrades, before a device store is emulated: a device shows
// its state to vCPUs on other nodes.
func (v *linuxVCPU) Exited(c runloop.CPU, e *exits.Exit, a *exits.Action) error {
	if v.share == nil {
		return nil
	}
	v.share.Ran()
	if !deviceStore(e, a) || !v.share.WindowsActive() {
		return nil
	}
	c.Put()
	return v.share.EndWindows()
}

// ownAPICPage reports whether gpa is in the vCPU's own APIC page, which
// is served where the vCPU runs. The page is the APIC's in every mode:
// while it is not decoded (x2APIC mode, disabled) it reads as all ones
// and takes no writes, as where nothing answers.
func (v *linuxVCPU) ownAPICPage(gpa uint64) bool {
	base, _ := v.apic.MMIOBase()
	return gpa&^(lapic.MMIOSize-1) == base
}

// apicEnabled reports whether the vCPU's APIC is globally enabled (CPUID
// shows the APIC only then).
func (v *linuxVCPU) apicEnabled() bool { return v.apic.Mode() != lapic.ModeDisabled }

// Halt waits for an interrupt (see halt).
func (v *linuxVCPU) Halt(_ runloop.CPU, interruptible bool) (runloop.Step, error) {
	v.halt(interruptible)
	return runloop.Continue, nil
}

// Other emulates control-register accesses.
func (v *linuxVCPU) Other(_ runloop.CPU, e *exits.Exit, a *exits.Action) (runloop.Step, error) {
	if v.sv != nil && e.Reason == svmUnhandled && e.Qualification == svmCRWrite4 {
		if err := v.svmWriteCR4(); err != nil {
			return runloop.Stop, err
		}
		return runloop.Continue, nil
	}
	if a.Reason != vmx.ExitCRAccess {
		return runloop.Stop, runloop.ErrUnhandled
	}
	if err := v.crAccess(e.Qualification, e.InstructionLength); err != nil {
		return runloop.Stop, fmt.Errorf("%v at RIP %#x", err, v.cpu.RIP())
	}
	return runloop.Continue, nil
}

// vmxWriteCR4 emulates a MOV of val to CR4 that changed a bit the host
// owns: checked as on AMD-V (cr4Write), then the guest sees val and the
// processor runs with VMX's fixed bits; a change of a bit that
// invalidates the TLB flushes the vCPU's translations, as the MOV would
// have. It reports whether the instruction retired (the caller moves RIP
// past it); not if it takes #GP, injected here.
func (v *linuxVCPU) vmxWriteCR4(val uint64) (retired bool, err error) {
	mask := vmread(vmx.CR4GuestHostMask)
	old := vmread(vmx.GuestCR4)&^mask | vmread(vmx.CR4ReadShadow)&mask
	longMode := vmread(vmx.VMCSEntryControls)&uint64(vmx.EntryIA32eModeGuest) != 0
	if !longMode {
		val &= 0xFFFFFFFF // a 32-bit operand
	}
	if !cr4Write(v.cr4Allowed, old, val, longMode, vmread(vmx.GuestCR3)) {
		v.injectGP()
		return false, nil
	}
	vmx.VMWRITE(vmx.CR4ReadShadow, val)
	vmx.VMWRITE(vmx.GuestCR4, v.vm.h.caps.GuestCR4(val))
	if vpid := v.vx.vc.vpid; (old^val)&cr4Flush != 0 && vpid != 0 {
		// Without VPIDs every entry and exit flushes; with them one
		// of the two INVVPID types is always there (SDM Vol. 3D, A.10).
		typ := vmx.InvVPIDAllContext
		if v.vm.h.caps.EPTVPID.Has(vmx.VPIDINVVPIDSingle) {
			typ = vmx.InvVPIDSingleContext
		}
		if err := vmx.INVVPID(typ, vpid, 0); err != nil {
			return false, fmt.Errorf("flushing the TLB after a CR4 write: %w", err)
		}
	}
	return true, nil
}

// guestOwnedCacheBits are CR0.CD and CR0.NW: the guest sees what it
// wrote (they are in the CR0 guest/host mask) but the processor keeps
// caching on, as KVM does with EPT: guest memory is ordinary write-back
// RAM, and an emulator's view of a cache-disabled guest is not one to
// trust (Bochs returned NW set after a CD-only write).
const guestOwnedCacheBits = vmx.CR0CD | vmx.CR0NW

// injectGP queues a #GP(0) for the next entry, the instruction not
// retired (SDM Vol. 3C, 26.6 "Event Injection").
func (v *linuxVCPU) injectGP() {
	v.cpu.Inject(runloop.Event{Vector: 13, Type: runloop.HardwareException, HasErrorCode: true})
}

// crAccess emulates a MOV to CR0/CR4 that touched a bit the host owns
// (the guest sees its value in the read shadow; the processor runs with
// the VMX-required bits forced), CLTS, and CR8 (the local APIC's task
// priority).
func (v *linuxVCPU) crAccess(q uint64, length uint32) error {
	a, err := vmx.DecodeCRAccess(q)
	if err != nil {
		return err
	}
	caps := v.vm.h.caps
	val := uint64(0)
	if a.Type == vmx.MovToCR {
		if a.Reg == vmx.RSP {
			val = vmread(vmx.GuestRSP)
		} else if p := v.cpu.Regs().Reg(a.Reg); p != nil {
			val = *p
		}
	}
	switch {
	case a.Type == vmx.MovToCR && a.CR == 0:
		if val&vmx.CR0NW != 0 && val&vmx.CR0CD == 0 || val>>32 != 0 {
			v.injectGP() // SDM Vol. 3A, 2.5 and 4.1.3: invalid combination
			return nil
		}
		vmx.VMWRITE(vmx.CR0ReadShadow, val)
		vmx.VMWRITE(vmx.GuestCR0, caps.GuestCR0(val&^guestOwnedCacheBits, v.unrestricted))
	case a.Type == vmx.MovToCR && a.CR == 4:
		if retired, err := v.vmxWriteCR4(val); !retired {
			return err // #GP injected, or the flush failed
		}
	case a.Type == vmx.CLTS:
		const ts = 1 << 3
		vmx.VMWRITE(vmx.CR0ReadShadow, vmread(vmx.CR0ReadShadow)&^ts)
		vmx.VMWRITE(vmx.GuestCR0, vmread(vmx.GuestCR0)&^ts)
	case a.CR == 8 && a.Type == vmx.MovToCR:
		if val>>4 != 0 {
			v.injectGP() // reserved bits (SDM Vol. 3A, 2.5)
			return nil
		}
		v.apic.SetCR8(uint8(val))
	case a.CR == 8 && a.Type == vmx.MovFromCR:
		if p := v.cpu.Regs().Reg(a.Reg); p != nil {
			*p = uint64(v.apic.CR8())
		}
	default:
		return fmt.Errorf("unemulated control-register access %+v", a)
	}
	advance(length & 0xF)
	return nil
}

// mmioAccess emulates the instruction that touched device memory at gpa:
// fetched at the guest's RIP through its page tables, decoded, performed
// against the device, RIP advanced past it. In a distributed VM the
// instruction is fetched through the coherence protocol, and the device
// is reached without the runtime's lock (it may read guest memory) on
// the node that hosts it, or by forwarding from the others.
func (v *linuxVCPU) mmioAccess(gpa uint64) error {
	d, c := v.vm.dist, v.cpu
	rip, cr3, rsp := c.RIP(), c.CR3(), c.RSP()
	var dev devices.MMIODevice
	var off uint64
	// The xAPIC page is each vCPU's own APIC, wherever the vCPU runs: a
	// distributed VM's vCPU reaches it here, not on the device node.
	local := v.ownAPICPage(gpa)
	if local {
		dev, off = v.apic, gpa&(lapic.MMIOSize-1)
	} else if d == nil || d.devices {
		var ok bool
		dev, off, ok = v.vm.mmio.Lookup(gpa)
		if !ok {
			return fmt.Errorf("access to %#x, outside RAM and every device (RIP %#x)", gpa, rip)
		}
	}
	var buf [maxInstruction]byte
	code, err := v.fetchCode(mmio.Paging{Mode: mmio.Paging4, CR3: cr3}, rip, &buf)
	if err != nil {
		return fmt.Errorf("device access at %#x: %w", gpa, err)
	}
	var n int
	switch {
	case d == nil || local:
		n, err = mmio.Emulate(code, dev, off, c.Regs(), &rsp)
		if err == nil {
			settle(dev, c.Put)
		}
	case d.devices:
		v.share.Unlock()
		n, err = mmio.Emulate(code, dev, off, c.Regs(), &rsp)
		if err == nil {
			settle(dev, nil) // fetchCode put the vCPU
		}
		v.share.Lock()
	default:
		fw := &distMMIO{h: v.share}
		n, err = mmio.Emulate(code, fw, gpa, c.Regs(), &rsp)
		if err == nil && fw.wrote && settlesForwarded(gpa) {
			fw.ReadMMIO(gpa, 4)
		}
		if err == nil {
			err = fw.err
		}
	}
	if err != nil {
		return fmt.Errorf("device access at %#x (RIP %#x): %w", gpa, rip, err)
	}
	if err := c.Load(); err != nil {
		return err
	}
	c.SetRSP(rsp)
	c.Advance(uint32(n))
	return nil
}

// settle completes a write to dev that left work under way
// (devices.Settler: a virtio reset overtaking its worker's round): if
// dev is unsettled, the vCPU leaves the core (put, unless it is off it
// already) and waits for that work to end.
func settle(dev devices.MMIODevice, put func()) {
	s, ok := dev.(devices.Settler)
	if !ok || !s.Unsettled() {
		return
	}
	if put != nil {
		put()
	}
	s.Settle()
}

// maxVirtio is the most virtio devices a guest has: its disks, the
// console and the network card.
const maxVirtio = MaxDisks + 2

// settlesForwarded reports whether a vCPU that forwarded a write to gpa
// to the device node waits for the write to be done before it goes on:
// a virtio device's status register, where writing 0 resets the device,
// after which the driver frees the rings (devices.Settler). The vCPU
// then reads the register back, as a driver that flushes a posted write
// does: the device node performs each node's forwarded accesses in
// order and settles each write before the next, so the read's answer
// comes once the reset has settled. (A queue's QueueReady written 0 is
// read back by Linux's driver itself.)
func settlesForwarded(gpa uint64) bool {
	if gpa < virtioBase || gpa >= virtioBase+maxVirtio*virtio.WindowSize {
		return false
	}
	return (gpa-virtioBase)%virtio.WindowSize == spec.RegStatus
}

// fetchCode reads the instruction at linear address la through the
// guest's paging p. In a distributed VM the bytes come through the
// coherence protocol, off the core: the vCPU is put, and the caller
// loads it again.
func (v *linuxVCPU) fetchCode(p mmio.Paging, la uint64, buf *[maxInstruction]byte) ([]byte, error) {
	if v.vm.dist == nil {
		return p.Fetch(v.vm.ram, la, buf)
	}
	v.cpu.Put()
	return p.Fetch(distMemory{v.share}, la, buf)
}

// virtioSlot is one of a VM's virtio-mmio devices: its register window
// and IOAPIC pin.
type virtioSlot struct {
	base uint32
	gsi  int
	name string
	dev  *virtio.Device
}

// addVirtio gives the VM its virtio devices: the disk (a RAM disk unless
// cfg.Disks says otherwise), the console, the network card where cfg.Net
// asks for one, the other disks; their windows follow one another from
// virtioBase. Their rings are served by their workers, off the vCPUs: a
// vCPU's notify only marks the queue (it runs pinned, and a distributed
// VM's ring may be on another node).
func (vm *LinuxVM) addVirtio(io *ioapic.IOAPIC) error {
	add := func(be virtio.Backend, gsi int, name string) (*virtio.Device, error) {
		d := virtio.NewDevice(be, vm.mem, func(level bool) { io.SetIRQ(gsi, level) })
		base := uint32(virtioBase + len(vm.virtio)*virtio.WindowSize)
		if err := vm.mmio.Register(uint64(base), virtio.WindowSize, name, d); err != nil {
			return nil, err
		}
		vm.virtio = append(vm.virtio, virtioSlot{base: base, gsi: gsi, name: name, dev: d})
		return d, nil
	}
	disks := vm.cfg.Disks
	if len(disks) == 0 {
		disks = []virtio.Disk{virtio.NewMemDisk(make([]byte, RAMDiskSize), virtio.MemDiskOptions{})}
	}
	if len(disks) > MaxDisks {
		return fmt.Errorf("hv: %d disks: a guest has at most %d", len(disks), MaxDisks)
	}
	// A disk that completes later than it is submitted (a network block
	// device) wakes its device's worker through Attach.
	addDisk := func(i int, gsi int) error {
		b, err := virtio.NewBlock(disks[i], fmt.Sprintf("big-iron-disk%d", i))
		if err != nil {
			return fmt.Errorf("hv: disk %d: %w", i, err)
		}
		d, err := add(b, gsi, fmt.Sprintf("virtio-blk %d", i))
		if err == nil {
			b.Attach(d)
			vm.blocks = append(vm.blocks, b)
			vm.disks = append(vm.disks, disks[i])
		}
		return err
	}
	if err := addDisk(0, virtioBlockGSI); err != nil {
		return err
	}
	hvc := virtio.NewConsole(vm.console) // hvc0: the same log as COM1
	d, err := add(hvc, virtioConsoleGSI, "virtio-console")
	if err != nil {
		return err
	}
	hvc.Attach(d)
	if vm.cfg.Net != nil {
		n, err := virtio.NewNet(virtio.NetConfig{MAC: vm.cfg.Net.MAC(), MTU: vm.cfg.Net.MTU(), Uplink: vm.cfg.Net})
		if err != nil {
			return fmt.Errorf("hv: the guest's network card: %w", err)
		}
		d, err := add(n, virtioNetGSI, "virtio-net")
		if err != nil {
			return err
		}
		n.Attach(d)
		vm.net = n
		vm.cfg.Net.SetReceiver(func(frame []byte) { n.Deliver(frame) })
	}
	for i := 1; i < len(disks); i++ {
		if err := addDisk(i, virtioDiskGSI+i-1); err != nil {
			return err
		}
	}
	vm.devStop = make(chan struct{})
	for _, s := range vm.virtio {
		go s.dev.Run(vm.devStop)
	}
	return nil
}

// acpiVirtio describes the VM's virtio devices to its ACPI tables.
func (vm *LinuxVM) acpiVirtio() []acpi.VirtioMMIO {
	out := make([]acpi.VirtioMMIO, len(vm.virtio))
	for i, s := range vm.virtio {
		out[i] = acpi.VirtioMMIO{Base: s.base, Size: virtio.WindowSize, GSI: uint32(s.gsi)}
	}
	return out
}

// DiskState is one of a VM's disks and what its device did.
type DiskState struct {
	Disk  virtio.Disk
	Stats virtio.BlockStats
}

// Disks returns the VM's disks, vda first (none on a node of a
// distributed VM without its devices).
func (vm *LinuxVM) Disks() []DiskState {
	out := make([]DiskState, len(vm.blocks))
	for i, b := range vm.blocks {
		out[i] = DiskState{Disk: vm.disks[i], Stats: b.Stats()}
	}
	return out
}

// NetStatus returns the VM's network card's counters, and false without
// one.
func (vm *LinuxVM) NetStatus() (virtio.NetStatus, bool) {
	if vm.net == nil {
		return virtio.NetStatus{}, false
	}
	return vm.net.Status(), true
}
