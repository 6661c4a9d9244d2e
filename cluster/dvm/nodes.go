// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// A node has two numbers. Within a distributed VM it is an index,
// memory.NodeID, from 0 to the VM's size less one: the coherence engine,
// the migrator and this package speak only of those. In the cluster it is
// a member id, cluster.NodeID, from 1 (0 is "any node"): the transport,
// the membership and the operator (bigiron.node=, the shell) speak of
// those. Node i of a VM is the member with id i+1, the numbering `make
// cluster` uses, so the translation needs no lookup; ClusterID and
// NodeIndex are the only places it is made.

// ClusterID is the cluster member that is node i of a distributed VM.
func ClusterID(i memory.NodeID) cluster.NodeID { return cluster.NodeID(i) + 1 }

// NodeIndex is the node of a distributed VM that cluster member id is,
// and whether it can be one at all (ids 1 to memory.MaxNodes).
func NodeIndex(id cluster.NodeID) (memory.NodeID, bool) {
	if id == 0 || id > memory.MaxNodes {
		return 0, false
	}
	return memory.NodeID(id - 1), true
}
