// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/vmm/devices/acpi"
	"github.com/big-iron/big-iron/vmm/guestmem"
)

func TestDistNUMA(t *testing.T) {
	n := DistNUMA(3, 2, 128<<20)
	if fmt.Sprint(n.CPUDomain) != "[0 1 0]" || len(n.Memory) != 1 || n.Memory[0] != (acpi.MemoryAffinity{Length: 128 << 20}) {
		t.Errorf("DistNUMA(3, 2) = %+v", n)
	}
	if fmt.Sprint(n.Distance) != fmt.Sprintf("[[10 %d] [%d 10]]", RemoteDistance, RemoteDistance) {
		t.Errorf("distances %v", n.Distance)
	}
	// The tables accept it.
	if _, err := acpi.Build(0xE0000, acpi.Config{APICIDs: []uint32{0, 1, 2}, NUMA: n}); err != nil {
		t.Error(err)
	}
}

// TestDistNUMAAboveTheHole: the SRAT of a VM with RAM above 4 GiB gives
// both ranges, not the MMIO hole, to domain 0.
func TestDistNUMAAboveTheHole(t *testing.T) {
	n := DistNUMA(2, 2, 4<<30)
	want := []acpi.MemoryAffinity{{Base: 0, Length: 3 << 30}, {Base: 4 << 30, Length: 1 << 30}}
	if fmt.Sprint(n.Memory) != fmt.Sprint(want) {
		t.Errorf("memory affinity %+v, want %+v", n.Memory, want)
	}
	if _, err := acpi.Build(0xE0000, acpi.Config{APICIDs: []uint32{0, 1}, NUMA: n}); err != nil {
		t.Error(err)
	}
}

// TestDistNUMAFill: with homes=fill each node's range is its domain's
// memory, its inner ends on the nearest 128 MiB boundary, a range across
// the MMIO hole in two parts, and a node with no share a domain of CPUs
// only; the tables accept each.
func TestDistNUMAFill(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name   string
		mem    uint64
		shares []uint32
		want   []acpi.MemoryAffinity
	}{
		{"even", 2560 * mib, []uint32{327680, 327680}, []acpi.MemoryAffinity{
			{Base: 0, Length: 1280 * mib, Domain: 0}, {Base: 1280 * mib, Length: 1280 * mib, Domain: 1}}},
		// 300000 pages end at 1171.875 MiB: 1152 MiB is nearer than 1280.
		{"rounded", 2560 * mib, []uint32{300000, 355360}, []acpi.MemoryAffinity{
			{Base: 0, Length: 1152 * mib, Domain: 0}, {Base: 1152 * mib, Length: 1408 * mib, Domain: 1}}},
		// Ends at 1365.3 and 2730.7 MiB: 1408 and 2688; the last domain
		// runs on above 4 GiB.
		{"three across the hole", 4096 * mib, []uint32{349525, 349525, 349526}, []acpi.MemoryAffinity{
			{Base: 0, Length: 1408 * mib, Domain: 0}, {Base: 1408 * mib, Length: 1280 * mib, Domain: 1},
			{Base: 2688 * mib, Length: 384 * mib, Domain: 2}, {Base: 4096 * mib, Length: 1024 * mib, Domain: 2}}},
		// A share smaller than the alignment keeps its own ends.
		{"small share", 512 * mib, []uint32{4096, 126976}, []acpi.MemoryAffinity{
			{Base: 0, Length: 16 * mib, Domain: 0}, {Base: 16 * mib, Length: 496 * mib, Domain: 1}}},
		{"no share", 256 * mib, []uint32{65536, 0}, []acpi.MemoryAffinity{
			{Base: 0, Length: 256 * mib, Domain: 0}}},
	} {
		n := DistNUMAFill(len(tc.shares), guestmem.NewSplit(tc.mem), tc.shares)
		if fmt.Sprint(n.Memory) != fmt.Sprint(tc.want) {
			t.Errorf("%s: memory affinity\n%+v, want\n%+v", tc.name, n.Memory, tc.want)
		}
		var sum uint64
		for _, m := range n.Memory {
			sum += m.Length
		}
		if sum != tc.mem {
			t.Errorf("%s: domains hold %d bytes of %d", tc.name, sum, tc.mem)
		}
		if len(n.CPUDomain) != len(tc.shares) || n.CPUDomain[len(tc.shares)-1] != uint32(len(tc.shares)-1) {
			t.Errorf("%s: CPU domains %v", tc.name, n.CPUDomain)
		}
		ids := make([]uint32, len(tc.shares))
		for i := range ids {
			ids[i] = uint32(i)
		}
		if _, err := acpi.Build(0xE0000, acpi.Config{APICIDs: ids, NUMA: n}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestCheckDistMemory: a distributed Linux VM takes up to dvm.MaxPages
// of RAM, the last GiB of it above 4 GiB, in whole pages.
func TestCheckDistMemory(t *testing.T) {
	for _, mem := range []uint64{16 << 20, 3 << 30, 3<<30 + 4096, 4 << 30} {
		if err := checkDistMemory(mem); err != nil {
			t.Errorf("%#x: %v", mem, err)
		}
	}
	for _, mem := range []uint64{0, 8 << 20, 1<<30 + 1, 4<<30 + 4096, 5 << 30} {
		if err := checkDistMemory(mem); err == nil {
			t.Errorf("%#x accepted", mem)
		}
	}
	if err := checkDistMemory(5 << 30); err == nil || err.Error() != "dvm: 5 GiB of RAM: want a multiple of 4 KiB from 16 MiB to 4 GiB" {
		t.Errorf("5 GiB: %v", err)
	}
	// The fixed cost of a share covers the tables of both ranges.
	spec := dvm.Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: dvm.MaxPages}
	if got, want := distFixedFrames(spec), controlFrames(2)+1536+512+3+1+1+1+distSlackFrames; got != want {
		t.Errorf("distFixedFrames(4 GiB) = %d, want %d", got, want)
	}
}

// TestDistVirt: a node tells AMD-V when it runs on SVM, VT-x otherwise,
// and a VM over one of each is refused.
func TestDistVirt(t *testing.T) {
	if distVirt(true) != dvm.VirtAMDV || distVirt(false) != dvm.VirtVTx {
		t.Fatalf("distVirt: %v, %v", distVirt(true), distVirt(false))
	}
	spec := dvm.Spec{ID: 3, Nodes: 2, VCPUs: 2, Pages: 1024}
	rooms := []dvm.NodeRoom{{Pages: 1024, Virt: distVirt(false)}, {Pages: 1024, Virt: distVirt(true)}}
	err := dvm.Fit(&spec, rooms, func(n memory.NodeID) uint32 { return uint32(n) + 1 })
	if err == nil || err.Error() != "dvm: nodes use different virtualization: node 1 VT-x, node 2 AMD-V; a VM's nodes must all use one" {
		t.Errorf("a VT-x and an AMD-V node: %v", err)
	}
}

// TestCheckDistRoom: a distributed VM whose pages homed on a node do not
// fit in that node's frames is refused there with the figures (issue 23:
// a node learnt it only when the engine ran out of frames).
func TestCheckDistRoom(t *testing.T) {
	spec := dvm.Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: 1 << 19, Homes: dvm.HomesDeviceNode} // 2 GiB, all on node 0
	const total = 1 << 18                                                                   // 1 GiB of frames
	err := checkDistRoom(spec, 0, 100, total)
	if err == nil || !strings.Contains(err.Error(), "home 524288 of the VM's 524288 pages (2 GiB of 2 GiB)") || !strings.Contains(err.Error(), "keeps 16 MiB for copies") || !strings.Contains(err.Error(), "homes=fill") {
		t.Errorf("2 GiB homed on a 1 GiB node: %v", err)
	}
	if err := checkDistRoom(spec, 1, 100, total); err != nil {
		t.Errorf("node 1 homes nothing: %v", err)
	}
	spec.Pages, spec.Homes = 3<<17, dvm.HomesStriped // 1.5 GiB striped: 768 MiB each
	if err := checkDistRoom(spec, 1, 100, total); err != nil {
		t.Errorf("half of 1.5 GiB on a 1 GiB node: %v", err)
	}
	if err := checkDistRoom(spec, 1, total/2, total); err == nil {
		t.Error("768 MiB homed on a node with 512 MiB free fits")
	}
}

// TestDistRoomAndBudget: the acceptance shape of issue 23, a 2.5 GiB
// guest over two nodes with 2 GiB each: neither can home it, homes=fill
// splits it by room, each node then keeps the rest of its frames for
// copies, and homes=node0 is refused with the figures.
func TestDistRoomAndBudget(t *testing.T) {
	const total, inUse = 1 << 19, 1 << 14 // frames: 2 GiB, 64 MiB taken
	// A 2.5 GiB guest.
	spec := dvm.Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: 5 << 17, Homes: dvm.HomesFill}
	room := distRoom(spec, inUse, total)
	if want := total - inUse - distFixedFrames(spec) - dvm.MinCopyFrames; room != want || room >= spec.Pages {
		t.Fatalf("room %d, want %d (below the VM's %d pages)", room, want, spec.Pages)
	}
	if err := dvm.FitHomes(&spec, []int{room, room}, func(n memory.NodeID) uint32 { return uint32(n) + 1 }); err != nil {
		t.Fatal(err)
	}
	for self := range memory.NodeID(2) {
		if err := checkDistRoom(spec, self, inUse, total); err != nil {
			t.Errorf("node %d: %v", self, err)
		}
		budget := distCopyBudget(spec, self, inUse, total)
		homed := spec.Homed()[self]
		if budget < dvm.MinCopyFrames || homed+budget+distFixedFrames(spec) > total-inUse {
			t.Errorf("node %d homes %d pages with a budget of %d copy frames: more than its %d free", self, homed, budget, total-inUse)
		}
	}
	node0 := spec
	node0.Homes, node0.Shares = dvm.HomesDeviceNode, [memory.MaxNodes]uint32{}
	if err := checkDistRoom(node0, 0, inUse, total); err == nil {
		t.Error("2.5 GiB homed on a 2 GiB node fits")
	}
}

// TestClusterNamed: a stop that ended a start names nodes by their
// cluster ids, keeping the context around it and the StopError.
func TestClusterNamed(t *testing.T) {
	se := &dvm.StopError{By: 1, Lost: memory.NoNode, NotCreated: true}
	err := clusterNamed(fmt.Errorf("dvm: writing the guest's parameters: %w", se), func(n memory.NodeID) uint32 { return uint32(n) + 1 })
	if want := "dvm: writing the guest's parameters: stopped: node 2 could not build its share of the VM (its console says why)"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	var got *dvm.StopError
	if !errors.As(err, &got) || got != se || !errors.Is(err, dvm.ErrStopped) {
		t.Errorf("the StopError is lost: %v", err)
	}
	plain := errors.New("other")
	if clusterNamed(plain, nil) != plain {
		t.Error("an error without a stop changed")
	}
}

// TestDistHomeRoom: a node may come to home what its room leaves after
// its share, whether homes move on use or only when a node is evacuated,
// and nothing on a node that is not the VM's.
func TestDistHomeRoom(t *testing.T) {
	const total, inUse = 1 << 19, 1 << 14
	spec := dvm.Spec{ID: 1, Nodes: 2, VCPUs: 2, Pages: 1 << 17} // 512 MiB striped
	room, homed := distRoom(spec, inUse, total), spec.Homed()[1]
	for _, after := range []uint8{0, 2} {
		spec.MoveAfter = after
		if got := distHomeRoom(spec, 1, inUse, total); got != room-homed || got <= 0 {
			t.Fatalf("moveafter %d: room for %d more homes, want %d (room %d less %d homed)", after, got, room-homed, room, homed)
		}
	}
	if got := distHomeRoom(spec, 2, inUse, total); got != 0 {
		t.Fatalf("node 2 of 2 has room for %d homes", got)
	}
	if got := distHomeRoom(spec, 1, total-100, total); got != 0 {
		t.Fatalf("a full node has room for %d more homes", got)
	}
}
