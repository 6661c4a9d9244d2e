// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm_test

import (
	"testing"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/netstack/cluster"
)

func TestNodeNumbers(t *testing.T) {
	for i := memory.NodeID(0); i < memory.MaxNodes; i++ {
		id := dvm.ClusterID(i)
		if id != cluster.NodeID(i)+1 {
			t.Fatalf("ClusterID(%d) = %d", i, id)
		}
		if back, ok := dvm.NodeIndex(id); !ok || back != i {
			t.Fatalf("NodeIndex(%d) = %d, %v, want %d", id, back, ok, i)
		}
	}
	for _, id := range []cluster.NodeID{0, memory.MaxNodes + 1, 1 << 31} {
		if i, ok := dvm.NodeIndex(id); ok {
			t.Errorf("NodeIndex(%d) = %d, want none", id, i)
		}
	}
}
