package dvm

import (
	"encoding/binary"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// Walk windows (Spec.WalkWindows; see memory.Engine.OpenWindow).
//
// Before the runtime serves a message or sends one it ends the windows
// that changed (closeLocked); before a message that could tell another
// node of a later store (an IPI, a device access, a migration) it also
// waits for their upgrades (quiesceLocked), and so does the vCPU loop
// before it emulates a device access (Handle.EndWindows). Unchanged
// windows hold no store and stay open. While upgrades are outstanding
// (the engine drains), the changes stand where a store buffer would:
// this node keeps the messages whose answers would show another node a
// later store of its vCPUs (revealsLocked) and answers the rest, the
// invalidations the upgrades wait for among them.

// closeLocked ends the walk windows that changed, sending their
// upgrades. The caller holds the lock and is not pinned.
func (r *Runtime) closeLocked() {
	if !r.windowsTouched {
		return // no vCPU ran since the last comparison
	}
	r.windowsTouched = false
	_, err := r.eng.FlushWindows(r.out)
	if err = r.flushEngine(err); err != nil {
		r.fail(err)
	}
}

// quiesceLocked ends the walk windows that changed and waits until their
// upgrades are granted (or the VM stops): what must come before any
// message that could tell another node of a later store. The caller
// holds the lock and is not pinned.
func (r *Runtime) quiesceLocked() {
	r.closeLocked()
	for r.eng.Draining() && r.stoppedLocked() == nil {
		r.awaitLocked(r.generation())
	}
}

// walkFaultLocked resolves a write fault of vCPU v's page walk at gpa:
// by a walk window on this node's Shared copy when it can open one,
// else by fetching a Shared copy and opening one on it, else as an
// ordinary write fault. The caller holds the lock and is not pinned.
func (r *Runtime) walkFaultLocked(v migrate.VCPUID, gpa uint64) error {
	a, err := r.addr(gpa)
	if err != nil {
		return err
	}
	if r.eng.OpenWindow(a) {
		r.windowsTouched = true
		return nil
	}
	if err := r.faultLocked(v, gpa, false); err != nil {
		return err
	}
	if r.eng.OpenWindow(a) {
		r.windowsTouched = true
		return nil
	}
	return r.faultLocked(v, gpa, true)
}

// revealsLocked reports whether answering message b now could show its
// sender a store of this node's vCPUs made after a draining window's
// changes: a fetch of a page this node owns, a request for a page this
// node homes and may write, anything for the devices. The caller holds
// the lock; it asks only while the engine drains.
func (r *Runtime) revealsLocked(b []byte) bool {
	if len(b) < memory.MessageHeaderSize || b[0] != memory.MessageMagic {
		return len(b) > 0 && (b[0] == DeviceMagic || b[0] == DeviceReadMagic)
	}
	switch memory.Kind(b[1]) {
	case memory.KindFetch, memory.KindFetchInv:
		return true
	case memory.KindReadReq, memory.KindWriteReq:
		a := binary.LittleEndian.Uint64(b[8:])
		return r.eng.Home(a) == r.cfg.Self && r.eng.State(a) == memory.Modified
	}
	return false
}
