// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"fmt"
	"strings"
	"time"

	"github.com/big-iron/big-iron/cluster/memory"
)

// JoinTimeout bounds how long the creator of a VM waits for the other
// nodes to build their shares (Joins.Wait). Building takes a node about
// as long as zeroing the frames of its homes: a second or two in QEMU's
// emulator for gigabytes, tens of seconds in Bochs. A node lost
// meanwhile stops the creator's share sooner.
const JoinTimeout = 5 * time.Minute

// Joins is the creator's wait for the OpJoined of each other node of a
// VM: Plane.ExpectJoins makes it before OpCreate goes out, Wait waits.
type Joins struct {
	p      *Plane
	id     uint32
	nodes  int
	joined chan memory.NodeID // buffered for every node
}

// ExpectJoins starts waiting for the other nodes of spec to say they have
// built their shares. Call it before broadcasting OpCreate, so that no
// answer comes too soon to count; a later call replaces it.
func (p *Plane) ExpectJoins(spec Spec) *Joins {
	j := &Joins{p: p, id: spec.ID, nodes: spec.Nodes, joined: make(chan memory.NodeID, memory.MaxNodes)}
	p.mu.Lock()
	p.joins = j
	p.mu.Unlock()
	return j
}

// joined takes node from's OpJoined for VM id (in the receive path).
func (p *Plane) joined(from memory.NodeID, id uint32) {
	p.mu.Lock()
	j := p.joins
	p.mu.Unlock()
	if j == nil || j.id != id || int(from) >= j.nodes {
		return
	}
	select {
	case j.joined <- from:
	default: // a node that says it twice: its first counted
	}
}

// Wait waits until every node of the VM but self has joined (nil), the
// creator's share stops (stopped returns its error, nil while it runs),
// or timeout passes (an error naming the nodes that did not join).
func (j *Joins) Wait(self memory.NodeID, timeout time.Duration, stopped func() error) error {
	defer j.cancel()
	var have [memory.MaxNodes]bool
	have[self] = true
	left := j.nodes - 1
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for left > 0 {
		select {
		case n := <-j.joined:
			if !have[n] {
				have[n], left = true, left-1
			}
		case <-tick.C:
			if err := stopped(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				var missing []string
				for i := 0; i < j.nodes; i++ {
					if !have[i] {
						missing = append(missing, fmt.Sprint(j.p.cfg.ClusterID(memory.NodeID(i))))
					}
				}
				return fmt.Errorf("dvm %d: node %s did not build its share within %v", j.id, strings.Join(missing, ", "), timeout)
			}
		}
	}
	return nil
}

// cancel ends the wait: later OpJoined messages of the VM are ignored.
func (j *Joins) cancel() {
	j.p.mu.Lock()
	if j.p.joins == j {
		j.p.joins = nil
	}
	j.p.mu.Unlock()
}
