// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"errors"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
)

// TestRoomReplyCarriesVirt: a room reply carries the sender's
// virtualization in the byte a reply left zero (the node field), so a
// reply from a node older than the field reads as VirtUnknown and the
// message keeps its size.
func TestRoomReplyCarriesVirt(t *testing.T) {
	var b [MaxControlSize]byte
	for _, v := range []Virt{VirtUnknown, VirtVTx, VirtAMDV} {
		in := Control{Op: OpRoomReply, Spec: Spec{ID: 9}, Arg: 1234, Virt: v}
		n := in.MarshalTo(b[:])
		var out Control
		if err := out.Unmarshal(b[:n]); err != nil || out != in || n != ControlSize {
			t.Errorf("%v: round trip %+v, %v (%d bytes)", v, out, err, n)
		}
	}
	old := Control{Op: OpRoomReply, Spec: Spec{ID: 9}, Arg: 1234}
	n := old.MarshalTo(b[:])
	if b[2] != 0 {
		t.Fatalf("a reply without Virt has byte 2 = %d, as an older node's would not", b[2])
	}
	var out Control
	if err := out.Unmarshal(b[:n]); err != nil || out.Virt != VirtUnknown || out.Arg != 1234 {
		t.Errorf("an older node's reply: %+v, %v", out, err)
	}
	// Other operations keep their node in that byte.
	mig := Control{Op: OpMigrate, Spec: Spec{ID: 9}, VCPU: 1, Node: 2}
	n = mig.MarshalTo(b[:])
	if err := out.Unmarshal(b[:n]); err != nil || out != mig {
		t.Errorf("migrate round trip: %+v, %v", out, err)
	}
}

// TestMixedVirtRefused: the node that starts a VM learns each node's
// virtualization with its room and refuses a VM whose nodes do not all
// use one, naming each node's; a node that does not say is not counted.
func TestMixedVirtRefused(t *testing.T) {
	names := func(n memory.NodeID) uint32 { return uint32(n) + 1 }
	for _, tc := range []struct {
		hosts []NodeRoom
		want  string // "" for a VM that may start
	}{
		{[]NodeRoom{{100, VirtVTx, 1}, {100, VirtAMDV, 1}},
			"dvm: nodes use different virtualization: node 1 VT-x, node 2 AMD-V; a VM's nodes must all use one"},
		{[]NodeRoom{{100, VirtAMDV, 1}, {100, VirtAMDV, 1}, {100, VirtVTx, 1}},
			"dvm: nodes use different virtualization: node 1 AMD-V, node 2 AMD-V, node 3 VT-x; a VM's nodes must all use one"},
		{[]NodeRoom{{100, VirtAMDV, 1}, {100, VirtUnknown, 1}, {100, VirtVTx, 1}},
			"dvm: nodes use different virtualization: node 1 AMD-V, node 2 unknown, node 3 VT-x; a VM's nodes must all use one"},
		{[]NodeRoom{{100, VirtAMDV, 1}, {100, VirtAMDV, 1}}, ""},
		{[]NodeRoom{{100, VirtVTx, 1}, {100, VirtVTx, 1}, {100, VirtVTx, 1}}, ""},
		{[]NodeRoom{{100, VirtVTx, 1}, {100, VirtUnknown, 1}}, ""}, // an older node
	} {
		n, _ := newPlanesOf(t, tc.hosts)
		spec := Spec{ID: 5, Nodes: len(tc.hosts), VCPUs: 2, Pages: 50, Homes: HomesFill}
		rooms, err := n.planes[0].Rooms(0, spec, time.Second)
		if err != nil {
			t.Fatalf("%v: Rooms: %v", tc.hosts, err)
		}
		err = Fit(&spec, rooms, names)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.hosts, err)
			}
			continue
		}
		var ve *VirtError
		if !errors.As(err, &ve) || err.Error() != tc.want {
			t.Errorf("%v:\n got %v\nwant %s", tc.hosts, err, tc.want)
		}
	}
}

// TestVirtBeforeRoom: a mixed cluster is refused for its virtualization
// even when the VM would not fit either: the first thing to fix.
func TestVirtBeforeRoom(t *testing.T) {
	spec := Spec{ID: 5, Nodes: 2, VCPUs: 2, Pages: 500}
	err := Fit(&spec, []NodeRoom{{10, VirtVTx, 1}, {10, VirtAMDV, 1}}, func(n memory.NodeID) uint32 { return uint32(n) + 1 })
	var ve *VirtError
	if !errors.As(err, &ve) {
		t.Fatalf("Fit = %v, want a VirtError", err)
	}
}
