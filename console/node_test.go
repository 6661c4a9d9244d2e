// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// fakeCluster is a node agent as `nodes` and `node` see it.
type fakeCluster struct {
	left bool
}

func (f *fakeCluster) Status() membership.Status {
	return membership.Status{ID: 1, State: membership.StateMember, Leader: 1, Term: 2, Members: []cluster.NodeID{1, 2, 3}, Reachable: 3, Quorum: true}
}

func (f *fakeCluster) Nodes() []membership.NodeInfo {
	return []membership.NodeInfo{
		{ID: 1, MAC: link.MAC{0x52, 0x54, 0, 0xbe, 0, 1}, IP: "10.0.0.1", State: "self"},
		{ID: 2, MAC: link.MAC{0x52, 0x54, 0, 0xbe, 0, 2}, State: "alive", PeerStats: cluster.PeerStats{LongestSilence: 620 * time.Millisecond}},
		{ID: 3, MAC: link.MAC{0x52, 0x54, 0, 0xbe, 0, 3}, State: "alive"},
	}
}

func (f *fakeCluster) Events() []membership.Event {
	return []membership.Event{{Index: 4, Kind: membership.Failed, Member: membership.Member{ID: 3, MAC: link.MAC{0x52, 0x54, 0, 0xbe, 0, 3}}}}
}

func (f *fakeCluster) KeyName() string { return "fingerprint 0123abcd" }
func (f *fakeCluster) Leave() error    { f.left = true; return nil }

func (f *fakeCluster) TransportStats() cluster.Stats {
	return cluster.Stats{Drops: cluster.Drops{BadTag: 1, Replay: 2, Short: 3, Version: 4}}
}

func (f *fakeCluster) RaftLog() ([]string, uint64, uint64, uint64) {
	return []string{"warning: membership: bad raft message from 2"}, 1, 0, 1
}

func runNode(t *testing.T, c Cluster, name string, args ...string) (string, error) {
	t.Helper()
	for _, cmd := range NodeCommands(c, "no NIC") {
		if cmd.Name == name {
			var out bytes.Buffer
			err := cmd.Run(&out, args)
			return out.String(), err
		}
	}
	t.Fatalf("no command %q", name)
	return "", nil
}

func TestNodeCommands(t *testing.T) {
	f := &fakeCluster{}
	out, err := runNode(t, f, "nodes")
	if err != nil || strings.Count(out, "alive") != 2 || !strings.Contains(out, "self") || !strings.Contains(out, "10.0.0.1") {
		t.Errorf("nodes: %v\n%s", err, out)
	}
	if !strings.Contains(out, "silent at most") || !strings.Contains(out, "620ms") {
		t.Errorf("nodes does not show the longest silence:\n%s", out)
	}
	if !strings.HasPrefix(out, "node 1 member, leader 1, term 2, members [1 2 3]: quorum\ncluster key: fingerprint 0123abcd\n") {
		t.Errorf("nodes does not start with the status and the key's name:\n%s", out)
	}
	if out, err = runNode(t, f, "node", "leave"); err != nil || !f.left || !strings.Contains(out, "leave proposed") {
		t.Errorf("node leave: %q %v, left %v", out, err, f.left)
	}
	if out, err = runNode(t, f, "node", "events"); err != nil || !strings.Contains(out, "#4 node 3 failed") {
		t.Errorf("node events: %q %v", out, err)
	}
	if out, err = runNode(t, f, "node", "drops"); err != nil || !strings.Contains(out, "bad tag 1, replay 2, unknown peer 0, stale 0, malformed 7,") {
		t.Errorf("node drops: %q %v", out, err)
	}
	out, err = runNode(t, f, "node", "log")
	if err != nil || !strings.Contains(out, "1 malformed messages dropped") || !strings.Contains(out, "warning: membership: bad raft message from 2") {
		t.Errorf("node log:\n%s", out)
	}
	for _, bad := range [][]string{{}, {"sideways"}, {"leave", "now"}} {
		if _, err := runNode(t, f, "node", bad...); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("node %v: %v, want a usage error", bad, err)
		}
	}
	if _, err := runNode(t, f, "nodes", "x"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("nodes x: %v, want a usage error", err)
	}
}

func TestCommandsWithoutCluster(t *testing.T) {
	for _, c := range NodeCommands(nil, "no NIC") {
		args := []string{}
		if c.Name == "node" {
			args = []string{"leave"}
		}
		if err := c.Run(&bytes.Buffer{}, args); err == nil || !strings.Contains(err.Error(), "no NIC") {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}
