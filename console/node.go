// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/cluster/node"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/netstack/cluster"
)

var _ Cluster = (*node.Agent)(nil)

// Cluster is what `nodes` and `node` show and drive: the node.Agent on
// bare metal.
type Cluster interface {
	Status() membership.Status
	Nodes() []membership.NodeInfo
	Events() []membership.Event
	// KeyName names the cluster key (by fingerprint, never the key).
	KeyName() string
	Leave() error
	TransportStats() cluster.Stats
	RaftLog() (lines []string, warnings, errors, badMessages uint64)
}

// NodeCommands returns `nodes` and `node`. a is nil where the node has no
// cluster port; the commands then say why.
func NodeCommands(a Cluster, unavailable string) []*shell.Command {
	need := func() error {
		if a == nil {
			return fmt.Errorf("not in a cluster: %s", unavailable)
		}
		return nil
	}
	return []*shell.Command{{
		Name: "nodes",
		Help: "cluster members: id, MAC, IP, state, RTT, traffic",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: nodes takes no arguments", shell.ErrUsage)
			}
			if err := need(); err != nil {
				return err
			}
			writeNodes(w, a)
			return nil
		},
	}, {
		Name:  "node",
		Usage: "leave | events | drops | log",
		Help:  "leave the cluster cleanly; show membership events, dropped frames, or Raft's warnings and errors",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: want `node leave`, `node events`, `node drops` or `node log`", shell.ErrUsage)
			}
			if err := need(); err != nil {
				return err
			}
			switch args[0] {
			case "leave":
				if err := a.Leave(); err != nil {
					return err
				}
				fmt.Fprintln(w, "leave proposed; the cluster removes this node once the change commits")
			case "events":
				for _, e := range a.Events() {
					fmt.Fprintln(w, e)
				}
			case "drops":
				d := a.TransportStats()
				fmt.Fprintf(w, "bad tag %d, replay %d, unknown peer %d, stale %d, malformed %d, not for us %d, hellos over budget %d, transmit errors %d\n",
					d.BadTag, d.Replay, d.UnknownPeer, d.Stale,
					d.Short+d.Version+d.Type+d.Flags+d.Length+d.Fragment+d.Source+d.Channel+d.Reassembly+d.BadAck,
					d.NotForUs, d.Busy, d.TransmitErrors)
				fmt.Fprintf(w, "receive windows closed for lack of room %d (senders held back, nothing dropped)\n", d.Closed)
			case "log":
				lines, warnings, errs, bad := a.RaftLog()
				fmt.Fprintf(w, "raft: %d warnings, %d errors, %d malformed messages dropped\n", warnings, errs, bad)
				for _, l := range lines {
					fmt.Fprintln(w, l)
				}
			default:
				return fmt.Errorf("%w: unknown node subcommand %q", shell.ErrUsage, args[0])
			}
			return nil
		},
	}}
}

func writeNodes(w io.Writer, a Cluster) {
	st := a.Status()
	fmt.Fprintln(w, st)
	if k := a.KeyName(); k != "" {
		fmt.Fprintf(w, "cluster key: %s\n", k)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tmac\tip\tstate\trtt\tframes in/out\tbytes in/out\tretrans\tsilent at most")
	for _, n := range a.Nodes() {
		rtt := "-"
		if n.SRTT > 0 {
			rtt = n.SRTT.Round(time.Microsecond).String()
		}
		ip := n.IP
		if ip == "" {
			ip = "-"
		}
		silent := "-"
		if n.LongestSilence > 0 {
			silent = n.LongestSilence.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%v\t%s\t%s\t%s\t%d/%d\t%d/%d\t%d\t%s\n", n.ID, n.MAC, ip, n.State, rtt,
			n.FramesIn, n.FramesOut, n.BytesIn, n.BytesOut, n.Retransmits, silent)
	}
	tw.Flush()
}
