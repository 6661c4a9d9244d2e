// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package launch

import (
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/boot/cmdline"
	"github.com/big-iron/big-iron/machine/link"
)

// The command line each node gets must parse as that node's settings.
func TestCommandLineParses(t *testing.T) {
	c := Cluster{Nodes: 3, Segment: 41000, Key: strings.Repeat("0f", 32), FailureTimeout: 1500 * time.Millisecond, PollHot: 200 * time.Microsecond}
	for i := 1; i <= 3; i++ {
		o, err := cmdline.Parse(c.CommandLine(i))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if int(o.Node) != i || o.IP.Addr().String() != IP(i) || len(o.Peers) != 3 || len(o.Key) != 32 || o.FailureTimeout != c.FailureTimeout || !o.PollHotSet || o.PollHot != c.PollHot {
			t.Errorf("node %d: %+v", i, o)
		}
		if link.MAC(o.Peers[i-1].MAC).String() != MAC(i) {
			t.Errorf("node %d: peer MAC %v, want %s", i, o.Peers[i-1].MAC, MAC(i))
		}
	}
}

func TestArgs(t *testing.T) {
	c := Cluster{Nodes: 2, Segment: 41000}
	q := strings.Join(c.QEMU(2, "x.elf", []string{"-cpu", "max"}), " ")
	for _, want := range []string{"mcast=230.0.0.1:41000", "mac=52:54:00:be:00:02", "bigiron.node=2"} {
		if !strings.Contains(q, want) {
			t.Errorf("QEMU args lack %q: %s", want, q)
		}
	}
	b := strings.Join(c.Bochs(2, "rc", "x.iso", "log", 5000, 5001), " ")
	if !strings.Contains(b, "ethdev=41002 ") {
		t.Errorf("Bochs node 2 should use bxhub's second port pair: %s", b)
	}
	if err := (Cluster{Nodes: 7, Segment: 41000}).Check(); err == nil {
		t.Error("7 nodes accepted")
	}
	if !strings.Contains(c.GrubConfig(2), "multiboot /boot/bigiron.mb bigiron.node=2") {
		t.Errorf("grub config:\n%s", c.GrubConfig(2))
	}
}
