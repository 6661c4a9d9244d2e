// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package metrics

import (
	"bufio"
	"io"
	"net/http"
	"strconv"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

// Sources are what a node's metrics come from: the services the console
// shows. Any may be nil (a node without a cluster port, without VMX).
type Sources struct {
	Cluster console.Cluster
	OS      console.OSHost
	Disks   console.DiskLister
	Dist    console.DistRunner
	// Trace is the node's event ring, streamed at /trace.
	Trace *trace.Ring
}

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the metrics at /metrics.
func (s Sources) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		bw := bufio.NewWriter(w)
		s.Write(bw)
		bw.Flush()
	})
	mux.HandleFunc("GET /trace", s.serveTrace)
	mux.HandleFunc("GET /dvm", s.serveDist)
	return mux
}

// Write writes every metric of the node to w.
func (s Sources) Write(w io.Writer) error {
	mw := NewWriter(w)
	mw.Gauge("bigiron_up", "1: the node serves its metrics.", 1)
	if s.Cluster != nil {
		writeCluster(mw, s.Cluster)
	}
	if s.OS != nil {
		writeVMs(mw, s.OS.Guests())
	}
	if s.Disks != nil {
		writeDisks(mw, s.Disks.Disks())
	}
	if s.Dist != nil {
		if st, err := s.Dist.Status(); err == nil {
			writeDist(mw, &st.Stats, st.Spec.ID, st.Exits.Total())
		}
	}
	return mw.Err()
}

// writeCluster writes the membership and the cluster transport's
// traffic with each peer.
func writeCluster(w *Writer, c console.Cluster) {
	st := c.Status()
	quorum := 0.0
	if st.Quorum {
		quorum = 1
	}
	w.Gauge("bigiron_cluster_members", "Nodes in the cluster's membership.", float64(len(st.Members)))
	w.Gauge("bigiron_cluster_quorum", "1: this node reaches a majority and a leader.", quorum)
	w.Gauge("bigiron_cluster_leader", "The leader's node id (0: none known).", float64(st.Leader))
	w.Gauge("bigiron_cluster_term", "The Raft term.", float64(st.Term))
	nodes := c.Nodes()
	peers := nodes[:0:0]
	for _, n := range nodes {
		if n.State != "self" {
			peers = append(peers, n)
		}
	}
	for _, n := range peers {
		up := 0.0
		if n.State == "alive" {
			up = 1
		}
		w.Gauge("bigiron_peer_up", "1: the peer is a member heard from lately.", up, "peer", strconv.Itoa(int(n.ID)))
	}
	for _, dir := range []string{"in", "out"} {
		for _, n := range peers {
			w.Counter("bigiron_peer_frames_total", "Cluster frames exchanged with the peer.", float64(pick(dir == "in", n.FramesIn, n.FramesOut)), "peer", strconv.Itoa(int(n.ID)), "dir", dir)
		}
	}
	for _, dir := range []string{"in", "out"} {
		for _, n := range peers {
			w.Counter("bigiron_peer_bytes_total", "Bytes of cluster frames exchanged with the peer.", float64(pick(dir == "in", n.BytesIn, n.BytesOut)), "peer", strconv.Itoa(int(n.ID)), "dir", dir)
		}
	}
	for _, n := range peers {
		w.Counter("bigiron_peer_retransmits_total", "Frames sent to the peer again.", float64(n.Retransmits), "peer", strconv.Itoa(int(n.ID)))
	}
	for _, n := range peers {
		w.Gauge("bigiron_peer_rtt_seconds", "The smoothed round-trip time to the peer.", n.SRTT.Seconds(), "peer", strconv.Itoa(int(n.ID)))
	}
	for _, n := range peers {
		w.Gauge("bigiron_peer_longest_silence_seconds", "The longest time between two frames from the peer.", n.LongestSilence.Seconds(), "peer", strconv.Itoa(int(n.ID)))
	}
	ts := c.TransportStats()
	d := ts.Drops
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"malformed", d.Short + d.Version + d.Type + d.Flags + d.Length + d.Fragment + d.Source}, {"ethertype", d.EtherType},
		{"not for us", d.NotForUs}, {"own id", d.OwnID}, {"unknown peer", d.UnknownPeer}, {"bad tag", d.BadTag},
		{"replay", d.Replay}, {"stale", d.Stale}, {"channel", d.Channel}, {"out of window", d.OutOfWindow},
		{"reassembly", d.Reassembly}, {"bad ack", d.BadAck}, {"busy", d.Busy}} {
		w.Counter("bigiron_cluster_drops_total", "Cluster frames dropped, by reason.", float64(r.n), "reason", r.reason)
	}
	w.Counter("bigiron_cluster_transmit_errors_total", "Cluster frames the NIC did not take.", float64(ts.TransmitErrors))
	w.Counter("bigiron_cluster_windows_closed_total", "Times a receive window closed because the receiver had no room (back-pressure).", float64(ts.Closed))
}

// writeVMs writes each VM's size, state and exits by reason, and its
// network card's traffic.
func writeVMs(w *Writer, guests []console.Guest) {
	for _, g := range guests {
		in := g.Info()
		running := 0.0
		if in.Outcome == "running" {
			running = 1
		}
		w.Gauge("bigiron_vm_running", "1: the VM runs; 0: it ended.", running, "vm", strconv.Itoa(in.ID), "name", labelValue(in.Name))
	}
	for _, g := range guests {
		in := g.Info()
		w.Gauge("bigiron_vm_vcpus", "The VM's virtual processors.", float64(in.VCPUs), "vm", strconv.Itoa(in.ID))
	}
	for _, g := range guests {
		in := g.Info()
		w.Gauge("bigiron_vm_memory_bytes", "The VM's RAM.", float64(in.Memory), "vm", strconv.Itoa(in.ID))
	}
	for _, g := range guests {
		in := g.Info()
		in.Exits.Each(func(reason string, n, _ uint64) {
			w.Counter("bigiron_vm_exits_total", "VM exits, by reason.", float64(n), "vm", strconv.Itoa(in.ID), "reason", labelValue(reason))
		})
	}
	var cards []netCard
	for _, g := range guests {
		if r, ok := g.(console.NetReporter); ok {
			if st, ok := r.NetStatus(); ok {
				cards = append(cards, netCard{strconv.Itoa(g.Info().ID), st})
			}
		}
	}
	writeCards(w, cards)
}

// netCard is one guest's network card.
type netCard struct {
	vm string
	st virtio.NetStatus
}

// writeCards writes the guests' network cards' traffic and drops.
func writeCards(w *Writer, cards []netCard) {
	for _, dir := range []string{"rx", "tx"} {
		for _, c := range cards {
			w.Counter("bigiron_vm_net_frames_total", "Frames the guest's card received (rx) or sent (tx).", float64(pick(dir == "rx", c.st.RxFrames, c.st.TxFrames)), "vm", c.vm, "dir", dir)
		}
	}
	for _, dir := range []string{"rx", "tx"} {
		for _, c := range cards {
			w.Counter("bigiron_vm_net_bytes_total", "Bytes the guest's card received (rx) or sent (tx).", float64(pick(dir == "rx", c.st.RxBytes, c.st.TxBytes)), "vm", c.vm, "dir", dir)
		}
	}
	for _, c := range cards {
		for i, n := range c.st.Drops {
			w.Counter("bigiron_vm_net_drops_total", "Frames to or from the guest dropped, by reason.", float64(n), "vm", c.vm, "reason", virtio.NetDrop(i).String())
		}
	}
}

// writeDisks writes each guest disk's requests, bytes, errors and, for
// a network disk, its server's latency and reconnects.
func writeDisks(w *Writer, disks []console.DiskInfo) {
	id := func(d console.DiskInfo) []string { return []string{"vm", strconv.Itoa(d.VM), "disk", d.Name} }
	for _, d := range disks {
		b := d.Block
		for _, op := range []struct {
			name string
			n    uint64
		}{{"read", b.Reads}, {"write", b.Writes}, {"flush", b.Flushes}, {"discard", b.Discards}} {
			w.Counter("bigiron_disk_requests_total", "Requests the guest made of its disk, by operation.", float64(op.n), append(id(d), "op", op.name)...)
		}
	}
	for _, d := range disks {
		w.Counter("bigiron_disk_bytes_total", "Bytes the guest read or wrote.", float64(d.Block.BytesRead), append(id(d), "dir", "read")...)
		w.Counter("bigiron_disk_bytes_total", "Bytes the guest read or wrote.", float64(d.Block.BytesWritten), append(id(d), "dir", "write")...)
	}
	for _, d := range disks {
		w.Counter("bigiron_disk_errors_total", "Requests answered with an I/O error.", float64(d.Block.IOErrors), id(d)...)
	}
	for _, d := range disks {
		w.Gauge("bigiron_disk_in_flight", "Requests taken from the ring and not yet answered.", float64(d.Block.InFlight), id(d)...)
	}
	for _, d := range disks {
		if d.NBD != nil {
			w.Counter("bigiron_disk_reconnects_total", "Times the network disk's connection was made again.", float64(d.NBD.Reconnects), id(d)...)
		}
	}
	for _, d := range disks {
		if d.NBD == nil {
			continue
		}
		l := d.NBD.Latency
		bounds := make([]float64, nbd.LatencyBuckets-1)
		for i := range bounds {
			bounds[i] = nbd.LatencyBound(i).Seconds()
		}
		w.Histogram("bigiron_disk_latency_seconds", "How long the network disk's requests took, submission to answer.", bounds, l.Buckets[:], l.Total.Seconds(), id(d)...)
	}
}

// writeDist writes this node's share of the distributed VM id.
func writeDist(w *Writer, s *dvm.Stats, id uint32, exits uint64) {
	vm := strconv.FormatUint(uint64(id), 16)
	w.Counter("bigiron_dvm_faults_total", "Guest page faults served here, local or sent to another node.", float64(s.Memory.Faults-s.Memory.RemoteFaults), "dvm", vm, "kind", "local")
	w.Counter("bigiron_dvm_faults_total", "Guest page faults served here, local or sent to another node.", float64(s.Memory.RemoteFaults), "dvm", vm, "kind", "remote")
	bounds := make([]float64, dvm.WaitBuckets-1)
	for i := range bounds {
		bounds[i] = dvm.WaitBound(i).Seconds()
	}
	w.Histogram("bigiron_dvm_fault_wait_seconds", "How long faults waited for another node.", bounds, s.Waits[:], s.WaitTime.Seconds(), "dvm", vm)
	w.Counter("bigiron_dvm_migrations_total", "vCPUs that left or arrived.", float64(s.Migration.MigrationsOut), "dvm", vm, "dir", "out")
	w.Counter("bigiron_dvm_migrations_total", "vCPUs that left or arrived.", float64(s.Migration.MigrationsIn), "dvm", vm, "dir", "in")
	w.Counter("bigiron_dvm_bytes_total", "Bytes of the VM's messages received and sent.", float64(s.BytesIn), "dvm", vm, "dir", "in")
	w.Counter("bigiron_dvm_bytes_total", "Bytes of the VM's messages received and sent.", float64(s.BytesOut), "dvm", vm, "dir", "out")
	w.Counter("bigiron_dvm_invalidations_total", "Page copies invalidated here.", float64(s.Memory.Invalidations), "dvm", vm)
	w.Counter("bigiron_dvm_device_reads_total", "Device reads forwarded to the device node.", float64(s.DeviceReads), "dvm", vm)
	w.Gauge("bigiron_dvm_pages", "Guest pages this node holds, by state.", float64(s.Shared), "dvm", vm, "state", "shared")
	w.Gauge("bigiron_dvm_pages", "Guest pages this node holds, by state.", float64(s.Modified), "dvm", vm, "state", "modified")
	w.Gauge("bigiron_dvm_homes", "Guest pages this node homes.", float64(s.Homes), "dvm", vm)
	w.Counter("bigiron_dvm_home_moves_total", "Pages whose home moved here or away.", float64(s.Memory.HomesGained), "dvm", vm, "dir", "in")
	w.Counter("bigiron_dvm_home_moves_total", "Pages whose home moved here or away.", float64(s.Memory.HomesGiven), "dvm", vm, "dir", "out")
	w.Counter("bigiron_dvm_exits_total", "VM exits of the vCPUs that ran here.", float64(exits), "dvm", vm)
}

// pick is a if first, else b: a family's two directions, in a loop that
// keeps each family's samples together.
func pick(first bool, a, b uint64) uint64 {
	if first {
		return a
	}
	return b
}
