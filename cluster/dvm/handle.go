// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// NoVCPU is the vCPU of a Handle held by something other than a vCPU
// loop (a forwarding goroutine, the control plane, the shell).
const NoVCPU migrate.VCPUID = 0xFF

// Handle is how code outside this package uses the operations that need
// the Runtime's lock (see the package comment): a vCPU loop gets one for
// its vCPU with [Runtime.Handle] and holds it locked while its vCPU is in
// guest mode; anything else that must act under the lock takes one for
// NoVCPU. Every method but Lock, Unlock and Held panics unless this
// handle holds the lock, so a forgotten Lock shows at its first use
// instead of as a race, and nobody outside the package takes the lock
// without a handle. A Handle belongs to one goroutine.
//
// The methods that send on the transport (Serve, Fault, Forward,
// ReadDevice, Read, Depart, Interrupt) may block: the caller must not be
// pinned to its core when it calls them.
type Handle struct {
	r    *Runtime
	v    migrate.VCPUID
	held bool
}

// Handle returns a handle for vCPU v (NoVCPU for another holder).
func (r *Runtime) Handle(v migrate.VCPUID) *Handle { return &Handle{r: r, v: v} }

// Lock takes the Runtime's lock and serves the messages waiting. The
// caller must not be pinned.
func (h *Handle) Lock() {
	if h.held {
		panic("dvm: Handle.Lock: already held")
	}
	h.r.lock()
	h.held = true
}

// Unlock lets go of the lock.
func (h *Handle) Unlock() {
	h.must()
	h.held = false
	h.r.unlock()
}

// VCPU is the handle's vCPU (NoVCPU for other holders).
func (h *Handle) VCPU() migrate.VCPUID { return h.v }

// Held reports whether the handle holds the lock.
func (h *Handle) Held() bool { return h.held }

func (h *Handle) must() {
	if !h.held {
		panic("dvm: Handle used without its lock")
	}
}

// Serve serves the messages that arrived (it may send replies) and
// returns the error that stopped the VM on this node, if any.
func (h *Handle) Serve() error {
	h.must()
	h.r.serveLocked()
	return h.r.errLocked()
}

// Err returns the error that stopped the VM on this node, if any.
func (h *Handle) Err() error {
	h.must()
	return h.r.errLocked()
}

// Fault resolves an EPT violation of this node's vCPU at gpa: it fetches
// the page, or the access it needs, from the node that has it, and waits
// (letting go of the lock meanwhile).
func (h *Handle) Fault(gpa uint64, write bool) error {
	h.must()
	return h.r.faultLocked(h.v, gpa, write)
}

// Place asks the VM's move policy whether the handle's vCPU, faulting on
// gpa, should move to the page instead of fetching it, and where.
func (h *Handle) Place(gpa uint64, write bool) (memory.NodeID, bool) {
	h.must()
	return h.r.placeLocked(h.v, gpa, write)
}

// DeviceMove reports whether the handle's vCPU should move to the device
// node for a device access (Spec.Devices), and which node that is.
func (h *Handle) DeviceMove() (memory.NodeID, bool) {
	h.must()
	return h.r.deviceMoveLocked()
}

// Forward sends a device write to the device node.
func (h *Handle) Forward(d DeviceWrite) error {
	h.must()
	return h.r.forwardLocked(d)
}

// ReadDevice performs a device read of the handle's vCPU on the device
// node and waits for its value.
func (h *Handle) ReadDevice(mmio bool, addr uint64, size uint8) (uint64, error) {
	h.must()
	return h.r.readDeviceLocked(h.v, mmio, addr, size)
}

// Read copies guest memory at gpa into b through the coherence protocol.
func (h *Handle) Read(gpa uint64, b []byte) error {
	h.must()
	return h.r.readLocked(gpa, b)
}

// Depart sends the handle's vCPU, whose state is st, to node dst.
func (h *Handle) Depart(dst memory.NodeID, st *vcpu.State) error {
	h.must()
	return h.r.departLocked(h.v, dst, st)
}

// Interrupt raises vector on vCPU v wherever it runs.
func (h *Handle) Interrupt(v migrate.VCPUID, vector uint8) error {
	h.must()
	return h.r.interruptLocked(v, vector)
}

// NMI sends vCPU v an NMI wherever it runs.
func (h *Handle) NMI(v migrate.VCPUID) error {
	h.must()
	return h.r.nmiLocked(v)
}

// TakeNMIs removes and returns the count of NMIs that other nodes sent
// the handle's vCPU, or that travelled with it, for its loop to deliver.
func (h *Handle) TakeNMIs() int {
	h.must()
	return h.r.takeNMIsLocked(h.v)
}

// InterruptPending reports whether an interrupt from another node waits
// for the handle's vCPU.
func (h *Handle) InterruptPending() bool {
	h.must()
	return h.r.interruptPendingLocked(h.v)
}

// TakeInterrupt removes the highest interrupt waiting for the handle's
// vCPU and returns its vector.
func (h *Handle) TakeInterrupt() (uint8, bool) {
	h.must()
	return h.r.takeInterruptLocked(h.v)
}

// Location returns the node vCPU v runs on, as this node knows it.
func (h *Handle) Location(v migrate.VCPUID) memory.NodeID {
	h.must()
	return h.r.locationLocked(v)
}

// Hosts reports whether vCPU v runs on this node.
func (h *Handle) Hosts(v migrate.VCPUID) bool {
	h.must()
	return h.r.hostsLocked(v)
}

// WalkFault resolves a write fault of the handle's vCPU's page walk at
// gpa (Spec.WalkWindows): by a walk window where it can, else as Fault.
// It may send and wait, letting go of the lock meanwhile.
func (h *Handle) WalkFault(gpa uint64) error {
	h.must()
	return h.r.walkFaultLocked(h.v, gpa)
}

// WindowsActive reports whether walk windows are open, or changed ones
// await their grants: cheap, for the vCPU loop to ask at every exit.
func (h *Handle) WindowsActive() bool {
	h.must()
	return h.r.eng.WindowsOpen() > 0 || h.r.eng.Draining()
}

// Ran tells the runtime that the handle's vCPU has just run in guest
// mode: the open walk windows may have changed, and are compared with
// their twins before the next message (without a run in between, a
// comparison would find nothing new). The vCPU loop calls it at every
// exit.
func (h *Handle) Ran() {
	h.must()
	h.r.windowsTouched = h.r.eng.WindowsOpen() > 0
}

// EndWindows ends the walk windows that changed and waits for their
// upgrades, as the vCPU loop must before it emulates a device access
// (another node may learn of it). It may send and wait.
func (h *Handle) EndWindows() error {
	h.must()
	h.r.quiesceLocked()
	return h.r.errLocked()
}
