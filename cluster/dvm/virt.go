// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"math"
	"strings"

	"github.com/big-iron/big-iron/cluster/memory"
)

// Virt is a node's hardware virtualization backend. The state a vCPU
// carries between nodes (vcpu.State) does not depend on it, but the
// nodes of one VM all use one: a guest sees the processor's CPUID,
// features and timing, which must not change when a vCPU migrates, and
// each backend is tested on its own. A node says which it uses in its
// answer to a room query (OpRoomReply), and Fit refuses a VM whose nodes
// differ.
type Virt uint8

// Virtualization backends.
const (
	// VirtUnknown is what a node that does not say answers (a
	// hyperkernel older than the field).
	VirtUnknown Virt = 0
	// VirtVTx is Intel VT-x with EPT.
	VirtVTx Virt = 1
	// VirtAMDV is AMD-V (SVM) with nested paging.
	VirtAMDV Virt = 2
)

// String names the backend as the shell does.
func (v Virt) String() string {
	switch v {
	case VirtUnknown:
		return "unknown"
	case VirtVTx:
		return "VT-x"
	case VirtAMDV:
		return "AMD-V"
	}
	return fmt.Sprintf("Virt(%d)", uint8(v))
}

// NodeRoom is one node's answer to a room query: how many of a VM's
// pages it can home (Host.Room) and its virtualization (Host.Virt).
type NodeRoom struct {
	Pages int
	Virt  Virt
	Cores int
}

// VirtError is the refusal of a VM whose nodes use different
// virtualization backends.
type VirtError struct {
	// Virts are the nodes' backends and Names their cluster ids, by VM
	// node index.
	Virts []Virt
	Names []uint32
}

// Error names each node's backend.
func (e *VirtError) Error() string {
	var b strings.Builder
	b.WriteString("dvm: nodes use different virtualization: ")
	for i, v := range e.Virts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "node %d %v", e.Names[i], v)
	}
	b.WriteString("; a VM's nodes must all use one")
	return b.String()
}

// CheckVirt checks that the nodes of a VM, answering rooms (by node
// index), all use one virtualization backend; names gives a node's
// cluster id for the refusal, a *VirtError. A node that does not say
// (VirtUnknown) is not counted: it may use either.
func CheckVirt(rooms []NodeRoom, names func(memory.NodeID) uint32) error {
	first := VirtUnknown
	mixed := false
	for _, r := range rooms {
		switch {
		case r.Virt == VirtUnknown:
		case first == VirtUnknown:
			first = r.Virt
		case r.Virt != first:
			mixed = true
		}
	}
	if !mixed {
		return nil
	}
	e := &VirtError{Virts: make([]Virt, len(rooms)), Names: make([]uint32, len(rooms))}
	for i, r := range rooms {
		e.Virts[i], e.Names[i] = r.Virt, names(memory.NodeID(i))
	}
	return e
}

// Fit checks that the nodes of the VM spec describes, answering rooms
// (Plane.Rooms), can run it: they all use one virtualization backend
// (CheckVirt) and can home its pages (FitHomes, which with HomesFill
// sizes spec.Shares). It sets spec.Cores to the nodes' cores.
func Fit(spec *Spec, rooms []NodeRoom, names func(memory.NodeID) uint32) error {
	if err := CheckVirt(rooms, names); err != nil {
		return err
	}
	for i, r := range rooms[:min(len(rooms), len(spec.Cores))] {
		spec.Cores[i] = uint8(min(max(r.Cores, 0), math.MaxUint8))
	}
	return FitHomes(spec, roomPages(rooms), names)
}

// roomPages returns the pages each node can home.
func roomPages(rooms []NodeRoom) []int {
	pages := make([]int, len(rooms))
	for i, r := range rooms {
		pages[i] = r.Pages
	}
	return pages
}
