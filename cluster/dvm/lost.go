// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"strings"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// NodeLostError stops a VM on this node when another of its nodes is
// gone (silent past the cluster's failure timeout, or removed): the VM
// cannot go on without the pages and vCPUs that node had, so every node
// that notices stops its share. It says what went with the node, as far
// as this node knows.
type NodeLostError struct {
	// Node is the lost node's index in the VM; Why how it was found lost.
	Node memory.NodeID
	Why  string
	// HomedPages is how many of the VM's pages the lost node homed.
	HomedPages int
	// OnlyCopies is how many pages homed on this node the lost node held
	// the only (modified) copy of.
	OnlyCopies int
	// VCPUs are the vCPUs that ran on the lost node.
	VCPUs []migrate.VCPUID
}

// Error describes the loss with VM node indexes.
func (e *NodeLostError) Error() string {
	return e.Describe(func(n memory.NodeID) uint32 { return uint32(n) })
}

// Describe describes the loss, naming nodes by name(index): the cluster's
// node ids, in the shell.
func (e *NodeLostError) Describe(name func(memory.NodeID) uint32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %d lost (%s): the VM stops; with it went %d pages it homed, the only copy of %d pages homed here, ",
		name(e.Node), e.Why, e.HomedPages, e.OnlyCopies)
	switch len(e.VCPUs) {
	case 0:
		b.WriteString("no vCPU")
	default:
		fmt.Fprintf(&b, "vCPU %v", e.VCPUs)
	}
	return b.String()
}

// NodeFailed stops the VM on this node because node n is gone (why says
// how that was found) and returns what went with it. Every waiter, for a
// page, a device read or a migration, wakes at once and returns the
// error, which Err reports from then on; messages still arriving are
// dropped. It does not wait behind a vCPU that holds the lock while it
// sends: the waiters are released first. Only the first stop counts:
// later calls, calls once the VM stopped otherwise (Halt, Close), and
// calls for a node outside the VM or this node itself return nil.
//
// The VM's other nodes are not told: Plane.NodeLost, which calls it,
// tells them.
func (r *Runtime) NodeFailed(n memory.NodeID, why string) *NodeLostError {
	if int(n) >= r.cfg.Spec.Nodes || n == r.cfg.Self || r.isClosed() {
		return nil
	}
	e := &NodeLostError{Node: n, Why: why}
	cause := &haltCause{e}
	if !r.halt.CompareAndSwap(nil, cause) {
		return nil
	}
	r.wake()
	// Waiters woke with e and may be reading it: the counts, which need
	// the lock, go into a copy that replaces it as the reason.
	r.mu.Lock()
	defer r.mu.Unlock()
	counted := *e
	counted.Count(r.eng, r.mig, r.cfg.Spec.Pages, r.cfg.Spec.VCPUs)
	r.halt.CompareAndSwap(cause, &haltCause{&counted})
	r.fail(&counted)
	return &counted
}

// haltCause is why the VM stopped, set without the lock.
type haltCause struct{ err error }

// Halt stops the VM on this node because another node of it said it
// stopped (e, from an OpStop): every waiter wakes at once and returns e,
// which Err reports from then on, and messages still arriving are
// dropped. It takes neither the Runtime's lock nor sends, so the
// receive path may call it. It reports whether it stopped the VM: false
// if the VM had stopped already.
func (r *Runtime) Halt(e *StopError) bool {
	if r.isClosed() {
		return false
	}
	return r.stopNow(e)
}

// stopNow records err as the reason the VM stopped, if it is the first,
// and wakes every waiter. It reports whether err was the first.
func (r *Runtime) stopNow(err error) bool {
	if !r.halt.CompareAndSwap(nil, &haltCause{err}) {
		return false
	}
	r.wake()
	return true
}

// wake wakes every waiter, to find the VM stopped.
func (r *Runtime) wake() {
	r.qmu.Lock()
	r.cond.Broadcast()
	r.qmu.Unlock()
}

// halted returns why the VM stopped, as set without the lock (nil if
// it has not).
func (r *Runtime) halted() error {
	if c := r.halt.Load(); c != nil {
		return c.err
	}
	return nil
}

// isClosed reports whether Close has run.
func (r *Runtime) isClosed() bool {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.closed
}

// Count sets HomedPages, OnlyCopies and VCPUs for the loss of e.Node as
// the node running eng and mig sees it, in a VM of pages pages and vcpus
// vCPUs: the pages whose home is e.Node, the pages homed at eng's node
// whose directory names e.Node as owner, and the vCPUs eng's node last
// knew to be at e.Node. It is what NodeFailed reports; the simulator
// (package sim) calls it too, to check it against what was really lost.
// The caller holds whatever lock guards eng and mig.
func (e *NodeLostError) Count(eng *memory.Engine, mig *migrate.Migrator, pages, vcpus int) {
	e.HomedPages, e.OnlyCopies, e.VCPUs = 0, 0, e.VCPUs[:0]
	for p := 0; p < pages; p++ {
		gpa := uint64(p) * memory.PageSize
		if eng.Home(gpa) == e.Node {
			e.HomedPages++
		}
		if owner, _, _, ok := eng.Directory(gpa); ok && owner == e.Node {
			e.OnlyCopies++
		}
	}
	for v := range vcpus {
		if at, _ := mig.Location(migrate.VCPUID(v)); at == e.Node {
			e.VCPUs = append(e.VCPUs, migrate.VCPUID(v))
		}
	}
}

// stoppedLocked returns the error that stopped the VM on this node: the
// first fatal error, or a stop set without the lock (a lost node, a
// node that said it stopped) not yet recorded as one. The caller holds
// the lock.
func (r *Runtime) stoppedLocked() error {
	if r.err != nil {
		return r.err
	}
	return r.halted()
}

// StopError stops a VM on this node because another of its nodes stopped
// its own share and said so (OpStop): the operator stopped the VM there,
// or that node found a node of the VM lost. It matches ErrStopped.
type StopError struct {
	// By is the node that stopped and told this one.
	By memory.NodeID
	// Lost is the node By found lost; memory.NoNode if the VM was
	// stopped by the operator (or for a reason this node does not know).
	Lost memory.NodeID
	// NotCreated is set when By could not build its share at all.
	NotCreated bool
}

// Error describes the stop with VM node indexes.
func (e *StopError) Error() string {
	return e.Describe(func(n memory.NodeID) uint32 { return uint32(n) })
}

// Describe describes the stop, naming nodes by name(index): the
// cluster's node ids, in the shell.
func (e *StopError) Describe(name func(memory.NodeID) uint32) string {
	if e.NotCreated {
		return fmt.Sprintf("stopped: node %d could not build its share of the VM (its console says why)", name(e.By))
	}
	if e.Lost == memory.NoNode {
		return fmt.Sprintf("stopped by node %d", name(e.By))
	}
	return fmt.Sprintf("stopped: node %d lost (reported by node %d)", name(e.Lost), name(e.By))
}

// Is reports whether target is ErrStopped.
func (e *StopError) Is(target error) bool { return target == ErrStopped }
