// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package cmdline reads the hyperkernel's settings from the boot command
// line (GRUB's multiboot line, PVH's, or iPXE's):
//
//	bigiron.node=N              this node's id (1..65535), default 1
//	bigiron.ip=ADDR/PREFIX      static IPv4 address of the first NIC
//	bigiron.gw=ADDR             default gateway
//	bigiron.peers=ID@MAC[@IP],... the initial members, this node included
//	bigiron.key=HEX             the 32-byte cluster key, 64 hex digits
//	bigiron.join=1              join a running cluster instead of forming one
//	bigiron.uplink=N            the control plane's address (bigiron.ip)
//	                            and the guests' network cards are on the
//	                            node's NIC N (0 the first with a driver),
//	                            the cluster alone on the first; default 0
//	bigiron.metrics=PORT        serve the node's metrics over HTTP on the
//	                            control plane's address at this TCP port
//	                            (default 9120, 0 none)
//	bigiron.sshkey=KEY[,KEY...] the operators' SSH public keys (the base64
//	                            field of an authorized_keys line): the node
//	                            serves its shell over SSH on port 22 of the
//	                            control plane's address to these keys only
//	bigiron.failtimeout=D       how long a member may stay silent before
//	                            it is declared failed (a Go duration,
//	                            100ms-1m; default the membership's 500ms):
//	                            longer for emulated nodes that share too
//	                            few host cores
//	bigiron.pollhot=D           how long the NIC's receive loop polls
//	                            without sleeping after a frame (a Go
//	                            duration, 0-10ms; default 200us on
//	                            hardware, 0 under an emulator, whose
//	                            host cores the spinning would take)
//	bigiron.insecure=1          use the published development key without
//	                            bigiron.key even on a machine that is not
//	                            an emulator
//
// Words without the bigiron. prefix belong to someone else and are
// ignored; a bigiron word that is unknown or malformed is an error, so a
// typo does not silently give a node the wrong identity.
//
// The settings come back as plain values (node ids as numbers, MACs as
// six bytes, the key as bytes): the caller turns them into the cluster's
// and the link's types. Boot-time parsing stays below the network stack.
package cmdline

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// prefix starts every word this package reads.
const prefix = "bigiron."

// KeyLen is the length of the cluster key bigiron.key gives, in bytes:
// the cluster transport's key length (netstack/cluster.KeyLen; a test in
// tools/layering checks they agree).
const KeyLen = 32

// Peer is one initial cluster member.
type Peer struct {
	// ID is the member's node id, 1 to 65535.
	ID uint16
	// MAC is its cluster port's address, six octets.
	MAC [6]byte
	// IP is the member's control-plane address, if given.
	IP netip.Addr
}

// Options are the settings from the command line.
type Options struct {
	// Node is this node's id, 1 to 65535.
	Node    uint16
	IP      netip.Prefix
	Gateway netip.Addr
	// DHCP asks for the address from a DHCP server (bigiron.ip=dhcp).
	DHCP bool
	// Uplink is the NIC (0 the first with a driver) that carries the
	// control plane and the guests' networks; 0 shares the cluster's.
	Uplink int
	Peers  []Peer
	// Key is the cluster key; nil when not given (the caller then uses
	// a development key and says so).
	Key  []byte
	Join bool
	// Insecure allows the development key on real hardware.
	Insecure bool
	// Metrics is the TCP port of the node's metrics (0: not served).
	Metrics uint16
	// SSHKeys are the operators' public keys, base64 as in an
	// authorized_keys line (checked for base64 only: the SSH server
	// parses them).
	SSHKeys []string
	// FailureTimeout is how long a member may stay silent before it is
	// declared failed; 0: the membership's default.
	FailureTimeout time.Duration
	// PollHot is how long the receive loop polls without sleeping
	// after a frame, if PollHotSet.
	PollHot    time.Duration
	PollHotSet bool
}

// The failure timeouts bigiron.failtimeout= accepts: a few heartbeats at
// least, and short enough that a dead node is noticed.
const (
	MinFailureTimeout = 100 * time.Millisecond
	MaxFailureTimeout = time.Minute
)

// MaxPollHot is the longest bigiron.pollhot= accepts: the receive loop's
// hot window is a few remote faults long, not a core given away.
const MaxPollHot = 10 * time.Millisecond

// DefaultMetricsPort is the port of a node's metrics unless
// bigiron.metrics= gives another.
const DefaultMetricsPort = 9120

// Parse reads the bigiron.* words of a command line.
func Parse(line string) (Options, error) {
	o := Options{Node: 1, Metrics: DefaultMetricsPort}
	seen := map[string]bool{}
	for _, w := range strings.Fields(line) {
		if !strings.HasPrefix(w, prefix) {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(w, prefix), "=")
		if !ok {
			return o, fmt.Errorf("cmdline: %q is not %sKEY=VALUE", w, prefix)
		}
		if seen[k] {
			return o, fmt.Errorf("cmdline: %s%s given twice", prefix, k)
		}
		seen[k] = true
		if err := o.set(k, v); err != nil {
			shown := fmt.Sprintf("%q", v)
			if k == "key" { // a secret, even when malformed: never echoed
				shown = fmt.Sprintf("(%d characters, not shown)", len(v))
			}
			return o, fmt.Errorf("cmdline: %s%s=%s: %w", prefix, k, shown, err)
		}
	}
	if len(o.Peers) > 0 {
		found := false
		for _, p := range o.Peers {
			found = found || p.ID == o.Node
		}
		if !found {
			return o, fmt.Errorf("cmdline: %speers does not list this node (%d)", prefix, o.Node)
		}
	}
	if o.DHCP && o.Gateway.IsValid() {
		return o, fmt.Errorf("cmdline: %sgw with %sip=dhcp: the server gives the gateway", prefix, prefix)
	}
	if o.Gateway.IsValid() && (!o.IP.IsValid() || !o.IP.Contains(o.Gateway)) {
		return o, fmt.Errorf("cmdline: gateway %v is not on the network of %sip", o.Gateway, prefix)
	}
	return o, nil
}

func (o *Options) set(k, v string) error {
	switch k {
	case "node":
		id, err := parseID(v)
		if err != nil {
			return err
		}
		o.Node = id
	case "ip":
		if v == "dhcp" {
			o.DHCP = true
			return nil
		}
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("want an IPv4 address with prefix length, like 10.0.0.1/24, or dhcp")
		}
		o.IP = p
	case "gw":
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return fmt.Errorf("want an IPv4 address")
		}
		o.Gateway = a
	case "peers":
		for _, item := range strings.Split(v, ",") {
			parts := strings.Split(item, "@")
			if len(parts) < 2 || len(parts) > 3 {
				return fmt.Errorf("%q is not ID@MAC or ID@MAC@IP", item)
			}
			ids, macs := parts[0], parts[1]
			var ip netip.Addr
			if len(parts) == 3 {
				a, err := netip.ParseAddr(parts[2])
				if err != nil || !a.Is4() {
					return fmt.Errorf("%q: %q is not an IPv4 address", item, parts[2])
				}
				ip = a
			}
			id, err := parseID(ids)
			if err != nil {
				return err
			}
			mac, err := ParseMAC(macs)
			if err != nil {
				return err
			}
			for _, p := range o.Peers {
				if p.ID == id || p.MAC == mac {
					return fmt.Errorf("node %d or MAC %s listed twice", id, formatMAC(mac))
				}
			}
			o.Peers = append(o.Peers, Peer{ID: id, MAC: mac, IP: ip})
		}
	case "key":
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != KeyLen {
			return fmt.Errorf("want %d hex digits", 2*KeyLen)
		}
		o.Key = b
	case "uplink":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 7 {
			return fmt.Errorf("cmdline: bigiron.uplink=%q: want a NIC number 0-7", v)
		}
		o.Uplink = n
	case "metrics":
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return fmt.Errorf("want a TCP port, 0 for none")
		}
		o.Metrics = uint16(n)
	case "sshkey":
		for _, k := range strings.Split(v, ",") {
			if _, err := base64.StdEncoding.DecodeString(k); err != nil || k == "" {
				return fmt.Errorf("want the base64 field of an authorized_keys line, comma-separated")
			}
			o.SSHKeys = append(o.SSHKeys, k)
		}
	case "failtimeout":
		d, err := time.ParseDuration(v)
		if err != nil || d < MinFailureTimeout || d > MaxFailureTimeout {
			return fmt.Errorf("want a duration from %v to %v", MinFailureTimeout, MaxFailureTimeout)
		}
		o.FailureTimeout = d
	case "pollhot":
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxPollHot {
			return fmt.Errorf("want a duration from 0 to %v", MaxPollHot)
		}
		o.PollHot, o.PollHotSet = d, true
	case "join":
		return parseBool(v, &o.Join)
	case "insecure":
		return parseBool(v, &o.Insecure)
	default:
		return fmt.Errorf("unknown setting (known: node, ip, gw, peers, key, join, uplink, metrics, sshkey, failtimeout, pollhot, insecure)")
	}
	return nil
}

// parseBool reads a yes/no setting into b.
func parseBool(v string, b *bool) error {
	switch v {
	case "1", "true", "yes":
		*b = true
	case "0", "false", "no":
		*b = false
	default:
		return fmt.Errorf("want 1 or 0")
	}
	return nil
}

func parseID(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("node id %q: want 1 to 65535", s)
	}
	return uint16(n), nil
}

// ParseMAC reads a MAC address written as six colon-separated hex octets.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("MAC %q: want six hex octets separated by colons", s)
	}
	for i, p := range parts {
		b, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return m, fmt.Errorf("MAC %q: octet %q", s, p)
		}
		m[i] = byte(b)
	}
	return m, nil
}

// formatMAC writes m as ParseMAC reads it.
func formatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
