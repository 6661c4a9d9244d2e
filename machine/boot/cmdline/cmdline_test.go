// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package cmdline

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := Parse("console=ttyS0 bigiron.node=2 bigiron.ip=10.0.0.2/24 bigiron.gw=10.0.0.254 " +
		"bigiron.peers=1@52:54:00:be:00:01,2@52:54:00:be:00:02@10.0.0.2 bigiron.key=" + strings.Repeat("ab", 32) + " quiet")
	if err != nil {
		t.Fatal(err)
	}
	if o.Node != 2 || o.IP.String() != "10.0.0.2/24" || o.Gateway.String() != "10.0.0.254" || len(o.Key) != 32 || o.Join {
		t.Errorf("%+v", o)
	}
	if len(o.Peers) != 2 || o.Peers[1].ID != 2 || o.Peers[1].MAC != [6]byte{0x52, 0x54, 0, 0xbe, 0, 2} || o.Peers[1].IP.String() != "10.0.0.2" || o.Peers[0].IP.IsValid() {
		t.Errorf("peers %+v", o.Peers)
	}
}

func TestDefaults(t *testing.T) {
	o, err := Parse("")
	if err != nil || o.Node != 1 || o.IP.IsValid() || o.Key != nil || o.Peers != nil {
		t.Errorf("%+v %v", o, err)
	}
}

func TestDHCP(t *testing.T) {
	o, err := Parse("bigiron.ip=dhcp bigiron.node=3")
	if err != nil || !o.DHCP || o.IP.IsValid() || o.Node != 3 {
		t.Errorf("%+v %v", o, err)
	}
}

func TestUplink(t *testing.T) {
	o, err := Parse("bigiron.uplink=1 bigiron.ip=dhcp")
	if err != nil || o.Uplink != 1 || !o.DHCP {
		t.Errorf("%+v %v", o, err)
	}
}

func TestMetrics(t *testing.T) {
	for line, want := range map[string]uint16{"": DefaultMetricsPort, "bigiron.metrics=0": 0, "bigiron.metrics=8080": 8080} {
		if o, err := Parse(line); err != nil || o.Metrics != want {
			t.Errorf("Parse(%q): port %d, %v; want %d", line, o.Metrics, err, want)
		}
	}
}

func TestFailureTimeout(t *testing.T) {
	for line, want := range map[string]time.Duration{"": 0, "bigiron.failtimeout=2s": 2 * time.Second, "bigiron.failtimeout=100ms": 100 * time.Millisecond} {
		if o, err := Parse(line); err != nil || o.FailureTimeout != want {
			t.Errorf("Parse(%q): failure timeout %v, %v; want %v", line, o.FailureTimeout, err, want)
		}
	}
}

func TestPollHot(t *testing.T) {
	for _, tc := range []struct {
		line string
		d    time.Duration
		set  bool
	}{
		{"", 0, false},
		{"bigiron.pollhot=0", 0, true},
		{"bigiron.pollhot=200us", 200 * time.Microsecond, true},
		{"bigiron.pollhot=10ms", 10 * time.Millisecond, true},
	} {
		o, err := Parse(tc.line)
		if err != nil || o.PollHot != tc.d || o.PollHotSet != tc.set {
			t.Errorf("Parse(%q): pollhot %v (set %v), %v; want %v (set %v)", tc.line, o.PollHot, o.PollHotSet, err, tc.d, tc.set)
		}
	}
}

func TestSSHKeys(t *testing.T) {
	o, err := Parse("bigiron.sshkey=AAAAC3NzaC1lZDI1NTE5AAAAIA==,AAAA")
	if err != nil || len(o.SSHKeys) != 2 || o.SSHKeys[1] != "AAAA" {
		t.Errorf("%+v %v", o.SSHKeys, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{
		"bigiron.sshkey=",
		"bigiron.sshkey=AAAA,",
		"bigiron.sshkey=ssh-ed25519",
		"bigiron.metrics=65536",
		"bigiron.metrics=-1",
		"bigiron.metrics=on",
		"bigiron.ip=dhcp bigiron.gw=10.0.0.1",
		"bigiron.ip=DHCP",
		"bigiron.node=0",
		"bigiron.node=70000",
		"bigiron.node",
		"bigiron.nodes=2",
		"bigiron.ip=10.0.0.1",
		"bigiron.ip=fe80::1/64",
		"bigiron.gw=10.0.1.1 bigiron.ip=10.0.0.1/24",
		"bigiron.gw=10.0.0.1",
		"bigiron.peers=1@52:54:00:be:00",
		"bigiron.peers=1-52:54:00:be:00:01",
		"bigiron.peers=2@52:54:00:be:00:02",
		"bigiron.peers=1@52:54:00:be:00:01,1@52:54:00:be:00:02",
		"bigiron.key=abcd",
		"bigiron.peers=1@52:54:00:be:00:01@10.0.0",
		"bigiron.peers=1@52:54:00:be:00:01@10.0.0.1@x",
		"bigiron.join=maybe",
		"bigiron.insecure=perhaps",
		"bigiron.node=1 bigiron.node=2",
		"bigiron.uplink=-1",
		"bigiron.uplink=8",
		"bigiron.uplink=eth1",
		"bigiron.failtimeout=2",
		"bigiron.failtimeout=50ms",
		"bigiron.failtimeout=2m",
		"bigiron.pollhot=11ms",
		"bigiron.pollhot=-1us",
		"bigiron.pollhot=200",
	} {
		if o, err := Parse(line); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", line, o)
		} else if !strings.HasPrefix(err.Error(), "cmdline: ") {
			t.Errorf("Parse(%q): error %q lacks context", line, err)
		}
	}
}

// TestKeyNeverEchoed: a malformed key is refused without printing it: a
// key one digit short is still almost all of the secret (issue 16,
// finding 7).
func TestKeyNeverEchoed(t *testing.T) {
	secret := strings.Repeat("5e", 31) + "c"
	_, err := Parse("bigiron.key=" + secret)
	if err == nil || strings.Contains(err.Error(), secret[:8]) || !strings.Contains(err.Error(), "63 characters, not shown") {
		t.Errorf("malformed key: %v", err)
	}
	o, err := Parse("bigiron.insecure=1")
	if err != nil || !o.Insecure {
		t.Errorf("bigiron.insecure=1: %+v, %v", o, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("bigiron.node=2 bigiron.peers=1@52:54:00:be:00:01,2@52:54:00:be:00:02")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(s)
		if err == nil && o.Node == 0 {
			t.Fatalf("node id 0 accepted from %q", s)
		}
	})
}

// A repeated peer is named with its MAC as the command line writes it.
func TestPeerListedTwice(t *testing.T) {
	_, err := Parse("bigiron.peers=1@52:54:00:be:00:01,2@52:54:00:be:00:01")
	if err == nil || !strings.Contains(err.Error(), "node 2 or MAC 52:54:00:be:00:01 listed twice") {
		t.Errorf("duplicate MAC: %v", err)
	}
}
