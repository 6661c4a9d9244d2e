// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/devices/ioapic"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// clockPeriod is how often a node of a distributed Linux VM tells the
// others its guest TSC.
const clockPeriod = 20 * time.Millisecond

// linuxDist is what an operating-system guest needs to span nodes: this
// node's share of the distributed VM (runtime, second-level tables), the
// vCPUs that run here, the interrupts and device accesses waiting to be
// sent, and the node's guest clock.
type linuxDist struct {
	share   *distVM
	rt      *dvm.Runtime
	tab     *ept.Table
	devices bool // this node hosts the devices (and loaded the guest)
	// here[i] is set while vCPU i runs (or waits for its startup IPI) on
	// this node.
	here [dvm.MaxVCPUs]atomic.Bool
	// clock is the node's guest TSC; clockUnsent counts the readings
	// not sent to a node whose window was full.
	clock       guestClock
	clockUnsent atomic.Uint64
	// ports records a port access of the vCPU in its exit handler, to
	// be forwarded once it has left its core (one vCPU of a node is in
	// an exit handler at a time: it holds the runtime's lock).
	ports portForwarder
	// out holds interrupts and EOIs for other nodes (see outQueue);
	// outSig wakes the forwarder.
	out    outQueue
	outSig chan struct{}
}

// Elsewhere implements lapic.Remote.
func (d *linuxDist) Elsewhere(i int) bool { return !d.here[i].Load() }

// Send implements lapic.Remote.
func (d *linuxDist) Send(i int, mode, vector uint8) {
	d.queue(outItem{vcpu: i, mode: mode, vector: vector})
}

// forwardEOI is the LAPICs' EOI handler on a node without the devices:
// interrupts that came from other nodes are delivered level-triggered,
// so their EOI comes here and goes to the IOAPIC on the device node
// (its EOI register; an EOI for a vector no pin waits on is ignored).
func (d *linuxDist) forwardEOI(vector uint8) { d.queue(outItem{eoi: true, vector: vector}) }

func (d *linuxDist) queue(it outItem) {
	if !d.out.push(it) {
		return
	}
	select {
	case d.outSig <- struct{}{}:
	default:
	}
}

func (d *linuxDist) outPending() bool { return d.out.pending() }

// flushLocked sends what waits in out. h holds the runtime's lock; the
// caller is not pinned.
func (d *linuxDist) flushLocked(h *dvm.Handle) error {
	items := d.out.take()
	defer d.out.done(items)
	var err error
	for _, it := range items {
		switch {
		case it.eoi:
			err = h.Forward(dvm.DeviceWrite{MMIO: true, Addr: ioapic.DefaultBase + ioapicEOIRegister, Size: 4, Value: uint64(it.vector)})
		case it.mode == deliveryFixed || it.mode == deliveryLowest:
			d.share.ipis.Add(1)
			if err = h.Interrupt(migrate.VCPUID(it.vcpu), it.vector); err == nil {
				d.share.kickVCPU(migrate.VCPUID(it.vcpu)) // in case it came back meanwhile
			}
		case it.mode == deliveryNMI:
			d.share.ipis.Add(1)
			if err = h.NMI(migrate.VCPUID(it.vcpu)); err == nil {
				d.share.kickVCPU(migrate.VCPUID(it.vcpu))
			}
		case it.mode == deliveryStartup:
			err = d.share.sendStartup(h, it.vcpu, it.vector)
		default:
			d.share.ipisIgnored.Add(1)
		}
		// INIT is not needed (an application processor waits for its
		// startup IPI from the start).
		if err != nil {
			break
		}
	}
	return err
}

// ioapicEOIRegister is the IOAPIC's EOI register (version 0x20 parts).
const ioapicEOIRegister = 0x40

// forward sends queued items while no vCPU of this node is in an exit
// handler to do it (they were queued by a device or the shell), until
// the VM stops.
func (d *linuxDist) forward(stop *atomic.Bool) {
	h := d.rt.Handle(dvm.NoVCPU)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for !stop.Load() {
		t.Reset(10 * time.Millisecond)
		select {
		case <-d.outSig:
		case <-t.C:
		}
		if !d.outPending() {
			continue
		}
		h.Lock()
		err := d.flushLocked(h)
		h.Unlock()
		if err != nil {
			d.share.end(fmt.Sprintf("forwarding interrupts: %v", err))
			return
		}
	}
}

// tick tells the other nodes this node's guest TSC every clockPeriod,
// until the VM stops.
func (d *linuxDist) tick(stop *atomic.Bool) {
	said := "" // the last error told: each is told once, not every tick
	for !stop.Load() {
		// A node whose window is full (pages in flight) is skipped:
		// the next tick carries a later time. Waiting for room held
		// this loop up to 5 s and put a notice in the guest's console.
		c := dvm.Control{Op: dvm.OpClock, Time: d.clock.now(rdtsc())}
		unsent, err := d.share.d.plane.BroadcastLatest(d.share, c)
		d.clockUnsent.Add(uint64(unsent))
		switch {
		case err == nil:
			said = ""
		case !stop.Load() && err.Error() != said:
			said = err.Error()
			fmt.Fprintf(d.share.d.notices, "dvm %d: clock: %v\n", d.share.spec.ID, err)
		}
		time.Sleep(clockPeriod)
	}
}

// maxClockJump is the furthest another node's guest clock may be ahead
// for this one to follow it in one step.
const maxClockJump = 10 * time.Second

// observeClock takes another node's guest TSC t (see guestClock.observe).
func (d *linuxDist) observeClock(t uint64) {
	hz := d.share.d.h.plat.TSCHz
	d.clock.observe(t, rdtsc(), hz*uint64(maxClockJump/time.Second))
}

// forwardPort sends the port access the exit handler recorded to the
// device node, waiting for a read's value. The VMCS is loaded again on
// return.
func (v *linuxVCPU) forwardPort() error {
	d := v.vm.dist
	p := &d.ports
	read, write := p.read, p.write
	p.read, p.write = false, false
	v.cpu.Put()
	if write {
		if err := v.share.Forward(dvm.DeviceWrite{VCPU: migrate.VCPUID(v.index), Addr: uint64(p.port), Size: p.size, Value: uint64(p.value)}); err != nil {
			return err
		}
	}
	if read {
		val, err := v.share.ReadDevice(false, uint64(p.port), p.size)
		if err != nil {
			return err
		}
		setIn(&v.cpu.Regs().RAX, p.size, uint32(val))
	}
	return nil
}

// serveShare runs before every entry of a vCPU of a distributed VM, and
// while it is halted, with the runtime's lock: it forwards the port
// access the latest exit recorded, serves the messages that arrived,
// sends what waits in out, and moves interrupts made pending here by
// other nodes into the vCPU's LAPIC (and their NMIs to its loop). It may
// leave the core.
func (v *linuxVCPU) serveShare() error {
	d := v.vm.dist
	if d.ports.pending() {
		if err := v.forwardPort(); err != nil {
			return err
		}
	}
	if d.rt.Pending() {
		v.cpu.Put() // serving may send
		if err := v.share.Serve(); err != nil {
			return err
		}
	} else if err := v.share.Err(); err != nil {
		return err
	}
	if err := d.share.perm.err; err != nil {
		return err
	}
	if d.outPending() {
		v.cpu.Put()
		if err := d.flushLocked(v.share); err != nil {
			return err
		}
	}
	if n := v.share.TakeNMIs(); n > 0 {
		v.nmi.Add(int32(n))
	}
	for {
		vec, ok := v.share.TakeInterrupt()
		if !ok {
			return nil
		}
		// Level-triggered, so that its EOI reaches the device node's
		// IOAPIC if a device sent it (see forwardEOI).
		v.apic.Deliver(vec, true)
	}
}

// Depart sends the vCPU, its state saved in st by the loop, to node dst
// with its LAPIC and reports whether it left (runloop.Guest). The caller
// holds the runtime's lock.
func (v *linuxVCPU) Depart(dst int, st *vcpu.State) (bool, error) {
	d := v.vm.dist
	v.moveTo.Store(0)
	st.LAPIC, st.TSCDeadline = v.apic.Save()
	st.TSCOffset = v.apic.TSCAdjust()
	if err := st.Validate(); err != nil {
		// The receiver would refuse it: the vCPU stays.
		fmt.Fprintf(d.share.d.notices, "dvm %d: vCPU %d stays on this node: its state would not travel: %v\n", d.share.spec.ID, v.index, err)
		return false, nil
	}
	d.here[v.index].Store(false)
	if err := v.share.Depart(memory.NodeID(dst), st); err != nil {
		d.here[v.index].Store(true)
		return false, fmt.Errorf("migrating: %w", err)
	}
	// Interrupts that were pending in the LAPIC travelled in its IRR.
	v.state.Store(int32(VCPUMigrated))
	return true, nil
}

// arrive runs vCPU i, which arrived by migration with state st, on this
// node. It runs with the runtime's lock held and must not block.
func (vm *LinuxVM) arrive(i int, st *vcpu.State) error {
	v := vm.vcpus[i]
	h := vm.h
	if v.sv != nil {
		if err := v.startSVM(st); err != nil {
			return err
		}
		v.apic.Restore(st.LAPIC, st.TSCDeadline)
		v.apic.SetTSCAdjust(st.TSCOffset)
		v.nmi.Add(int32(st.Events.PendingNMIs))
		vm.dist.here[i].Store(true)
		vm.wg.Add(1)
		go func() {
			defer vm.wg.Done()
			v.run()
		}()
		return nil
	}
	g, err := StartupState(h.caps, vm.ctl, vm.tab.EPTP(), vm.vpids[i], 0)
	if err != nil {
		return err
	}
	LoadVCPU(h.caps, st, &g, &v.vx.regs)
	v.ownMasks(&g)
	g.CR0 = h.caps.GuestCR0(st.CR0&^guestOwnedCacheBits, v.unrestricted)
	list := physBytes(v.msrList, 16*len(switchedMSRs))
	for j, val := range []uint64{st.STAR, st.LSTAR, st.CSTAR, st.SFMASK, st.KernelGSBase} {
		binary.LittleEndian.PutUint64(list[16*j+8:], val)
	}
	if bad := h.caps.CheckGuestState(&g, uint8(h.eptc.MaxPhysAddr)); len(bad) > 0 {
		return fmt.Errorf("arrived state would fail VM entry: %v", bad[0])
	}
	v.apic.Restore(st.LAPIC, st.TSCDeadline)
	v.apic.SetTSCAdjust(st.TSCOffset)
	v.nmi.Add(int32(st.Events.PendingNMIs))
	v.setState(&g)
	vm.dist.here[i].Store(true)
	vm.wg.Add(1)
	go func() {
		defer vm.wg.Done()
		v.run()
	}()
	return nil
}

// forwardedRead performs a device read that a vCPU on another node
// forwarded (on the node with the devices): a port on the I/O bus, or a
// device window; nothing answers all ones, as on an ISA bus.
func (vm *LinuxVM) forwardedRead(d dvm.DeviceRead) uint64 {
	if !d.MMIO {
		return uint64(vm.ioBus.In(uint16(d.Addr), d.Size))
	}
	if dev, off, ok := vm.mmio.Lookup(d.Addr); ok {
		return dev.ReadMMIO(off, int(d.Size))
	}
	return ^uint64(0)
}

// forwardedWrite performs a forwarded device write; a write nothing
// decodes is dropped. It runs on the runtime's device goroutine
// (dvm.Config.DevicesUnlocked), which performs the forwarded accesses in
// order: a write that left work under way (devices.Settler) is settled
// before the next access, so that a vCPU that reads the device back
// (settlesForwarded) sees the write done.
func (vm *LinuxVM) forwardedWrite(d dvm.DeviceWrite) {
	if !d.MMIO {
		vm.ioBus.Out(uint16(d.Addr), d.Size, uint32(d.Value))
	} else if dev, off, ok := vm.mmio.Lookup(d.Addr); ok {
		dev.WriteMMIO(off, int(d.Size), d.Value)
		settle(dev, nil)
	}
}

// dvmGuestMemory is a distributed VM's memory as devices and the guest
// loader see it: every access goes through the coherence protocol. The
// caller must not hold the runtime's lock.
type dvmGuestMemory struct {
	rt    *dvm.Runtime
	split guestmem.Split
}

func (m dvmGuestMemory) check(p []byte, gpa uint64) error {
	if !m.split.Contains(gpa, uint64(len(p))) {
		return fmt.Errorf("%w: %d bytes at %#x, RAM is %v", devices.ErrBadAddress, len(p), gpa, m.split)
	}
	return nil
}

func (m dvmGuestMemory) ReadAt(p []byte, gpa uint64) error {
	if err := m.check(p, gpa); err != nil {
		return err
	}
	return m.rt.Read(gpa, p)
}

// Prefetch implements devices.Prefetcher: the runtime asks other nodes
// for the pages at once.
func (m dvmGuestMemory) Prefetch(gpa, n uint64, write bool) {
	if m.split.Contains(gpa, n) {
		m.rt.Prefetch(gpa, n, write)
	}
}

func (m dvmGuestMemory) WriteAt(p []byte, gpa uint64) error {
	if err := m.check(p, gpa); err != nil {
		return err
	}
	return m.rt.Write(gpa, p)
}
