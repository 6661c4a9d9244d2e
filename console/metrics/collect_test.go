// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/console"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/netstack/cluster"
	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
	"github.com/big-iron/big-iron/vmm/vmx"
	dto "github.com/prometheus/client_model/go"
)

// fakeCluster is a node of three, peer 3 silent.
type fakeCluster struct{ console.Cluster }

func (fakeCluster) Status() membership.Status {
	return membership.Status{ID: 1, Leader: 2, Term: 7, Members: []cluster.NodeID{1, 2, 3}, Quorum: true}
}

func (fakeCluster) Nodes() []membership.NodeInfo {
	return []membership.NodeInfo{
		{ID: 1, State: "self"},
		{ID: 2, State: "alive", PeerStats: cluster.PeerStats{FramesIn: 10, FramesOut: 12, BytesIn: 1000, BytesOut: 1200, Retransmits: 1, SRTT: 250 * time.Microsecond, LongestSilence: 620 * time.Millisecond}},
		{ID: 3, State: "silent"},
	}
}

func (fakeCluster) TransportStats() cluster.Stats {
	var s cluster.Stats
	s.BadTag, s.Replay, s.Short = 4, 5, 1
	return s
}

// fakeGuest is a running VM with exits and a network card.
type fakeGuest struct {
	console.Guest
	info hv.VMInfo
}

func (g fakeGuest) Info() hv.VMInfo { return g.info }

func (g fakeGuest) NetStatus() (virtio.NetStatus, bool) {
	st := virtio.NetStatus{RxFrames: 5, TxFrames: 6, RxBytes: 500, TxBytes: 600}
	st.Drops[virtio.DropTxBadSource] = 9
	return st, true
}

type fakeOS struct{ guests []console.Guest }

func (o fakeOS) BootOS(hv.LinuxRequest) (console.Guest, error) { return nil, errors.New("no") }
func (o fakeOS) Guests() []console.Guest                       { return o.guests }

type fakeDisks []console.DiskInfo

func (d fakeDisks) Disks() []console.DiskInfo { return d }

type fakeDist struct{ console.DistRunner }

func (fakeDist) Status() (hv.DistStatus, error) {
	st := hv.DistStatus{Spec: dvm.Spec{ID: 0xab}}
	st.Stats.Memory.Faults, st.Stats.Memory.RemoteFaults = 100, 30
	st.Stats.RemoteWaits, st.Stats.WaitTime = 30, 90*time.Millisecond
	st.Stats.Waits[2], st.Stats.Waits[3] = 20, 10
	st.Stats.Migration.MigrationsOut = 2
	st.Stats.Homes, st.Stats.Memory.HomesGained, st.Stats.Memory.HomesGiven = 5, 1, 3
	st.Spec.Nodes, st.Spec.Pages, st.Self, st.PagesPerCell = 2, 8, 1, 2
	st.PageMap = []memory.State{memory.Modified, memory.Invalid, memory.Shared, memory.Modified}
	st.VCPUs = []hv.DistVCPU{{ID: 0, Node: 0, Here: true}, {ID: 1, Node: 1}}
	st.HotPages = []dvm.HotPage{{GPA: 0x3000, Waits: 9}}
	return st, nil
}

func sources() Sources {
	info := hv.VMInfo{ID: 1, Name: "linux", VCPUs: 2, Memory: 512 << 20, Outcome: "running"}
	info.Exits.Record(vmx.ExitEPTViolation)
	info.Exits.Record(vmx.ExitEPTViolation)
	info.Exits.Record(vmx.ExitHLT)
	st := nbd.Status{Reconnects: 2}
	st.Latency.Buckets[1], st.Latency.Buckets[6], st.Latency.Total = 3, 1, 12*time.Second
	return Sources{
		Cluster: fakeCluster{},
		OS:      fakeOS{[]console.Guest{fakeGuest{info: info}}},
		Disks: fakeDisks{{VM: 1, Name: "vda", Block: virtio.BlockStats{Reads: 7, BytesRead: 7 << 12}, NBD: &st},
			{VM: 1, Name: "vdb", Block: virtio.BlockStats{Writes: 1}}},
		Dist: fakeDist{},
	}
}

// find returns the sample of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i < len(want); i += 2 {
			if label(m, want[i]) != want[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s has no sample with %v", name, want)
	return nil
}

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	if err := sources().Write(&b); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, b.String())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"bigiron_cluster_members", nil, 3},
		{"bigiron_cluster_leader", nil, 2},
		{"bigiron_peer_up", []string{"peer", "2"}, 1},
		{"bigiron_peer_up", []string{"peer", "3"}, 0},
		{"bigiron_peer_frames_total", []string{"peer", "2", "dir", "out"}, 12},
		{"bigiron_peer_rtt_seconds", []string{"peer", "2"}, 0.00025},
		{"bigiron_peer_longest_silence_seconds", []string{"peer", "2"}, 0.62},
		{"bigiron_cluster_drops_total", []string{"reason", "bad tag"}, 4},
		{"bigiron_cluster_drops_total", []string{"reason", "malformed"}, 1},
		{"bigiron_vm_running", []string{"vm", "1", "name", "linux"}, 1},
		{"bigiron_vm_memory_bytes", []string{"vm", "1"}, 512 << 20},
		{"bigiron_vm_exits_total", []string{"vm", "1", "reason", vmx.ExitEPTViolation.String()}, 2},
		{"bigiron_vm_net_frames_total", []string{"vm", "1", "dir", "tx"}, 6},
		{"bigiron_vm_net_drops_total", []string{"vm", "1", "reason", "tx bad source mac"}, 9},
		{"bigiron_disk_requests_total", []string{"disk", "vda", "op", "read"}, 7},
		{"bigiron_disk_bytes_total", []string{"disk", "vda", "dir", "read"}, 7 << 12},
		{"bigiron_disk_reconnects_total", []string{"disk", "vda"}, 2},
		{"bigiron_dvm_faults_total", []string{"dvm", "ab", "kind", "remote"}, 30},
		{"bigiron_dvm_faults_total", []string{"dvm", "ab", "kind", "local"}, 70},
		{"bigiron_dvm_migrations_total", []string{"dir", "out"}, 2},
		{"bigiron_dvm_homes", []string{"dvm", "ab"}, 5},
		{"bigiron_dvm_home_moves_total", []string{"dir", "in"}, 1},
		{"bigiron_dvm_home_moves_total", []string{"dir", "out"}, 3},
	} {
		m := find(t, fams, c.name, c.labels...)
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := fams["bigiron_disk_latency_seconds"]; !ok {
		t.Error("no disk latency histogram")
	}
	if n := len(fams["bigiron_disk_latency_seconds"].Metric); n != 1 {
		t.Errorf("%d latency histograms, want 1 (vdb is a RAM disk)", n)
	}
	h := find(t, fams, "bigiron_dvm_fault_wait_seconds").GetHistogram()
	if h.GetSampleCount() != 30 || h.GetSampleSum() != 0.09 {
		t.Errorf("fault waits: %d, %v s; want 30, 0.09", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, bk := range h.Bucket {
		if bk.GetUpperBound() == 0.001 && bk.GetCumulativeCount() != 20 || bk.GetUpperBound() == 0.01 && bk.GetCumulativeCount() != 30 {
			t.Errorf("fault waits ≤ %v s: %d", bk.GetUpperBound(), bk.GetCumulativeCount())
		}
	}
}

// TestWriteNothing: a node without cluster, VMX or guests still answers.
func TestWriteNothing(t *testing.T) {
	var b bytes.Buffer
	if err := (Sources{}).Write(&b); err != nil {
		t.Fatal(err)
	}
	if fams := parse(t, b.String()); len(fams) != 1 || fams["bigiron_up"] == nil {
		t.Errorf("families %v, want bigiron_up alone", fams)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(sources().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("GET /metrics: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	parse(t, string(body))
	for _, bad := range []string{"/", "/metricsx", "/debug/pprof/"} {
		resp, err := http.Get(srv.URL + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", bad, resp.Status)
		}
	}
	resp, err = http.Post(srv.URL+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s, want 405", resp.Status)
	}
}

func TestTraceStream(t *testing.T) {
	r := trace.NewRing(4)
	r.Start()
	r.Record(trace.Event{Kind: trace.KindFault, VCPU: 1, Addr: 0x1000, Wait: time.Millisecond})
	r.Record(trace.Event{Kind: trace.KindMigrateOut, VCPU: 0, Node: 2})
	srv := httptest.NewServer(Sources{Trace: r}.Handler())
	defer srv.Close()
	get := func(q string) (int, []map[string]any) {
		resp, err := http.Get(srv.URL + "/trace" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lines []map[string]any
		dec := json.NewDecoder(resp.Body)
		for resp.StatusCode == http.StatusOK && dec.More() {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("/trace%s: %v", q, err)
			}
			lines = append(lines, m)
		}
		return resp.StatusCode, lines
	}
	if code, ls := get(""); code != 200 || len(ls) != 2 || ls[0]["kind"] != "fault" || ls[1]["node"] != float64(2) {
		t.Errorf("/trace: %d %v", code, ls)
	}
	if _, ls := get("?kind=migrate-out"); len(ls) != 1 {
		t.Errorf("/trace?kind=migrate-out: %v", ls)
	}
	if _, ls := get("?from=1"); len(ls) != 1 || ls[0]["seq"] != float64(1) {
		t.Errorf("/trace?from=1: %v", ls)
	}
	for _, bad := range []string{"?kind=x", "?vcpu=a", "?from=-1"} {
		if code, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("/trace%s: %d, want 400", bad, code)
		}
	}
	// Followed: an event recorded after the request arrives.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/trace?follow=1&from=2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r.Record(trace.Event{Kind: trace.KindInvalidate, Addr: 0x5000, Node: 3})
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m["kind"] != "invalidate" || m["seq"] != float64(2) {
		t.Errorf("followed trace: %v, %v", m, err)
	}
	none := httptest.NewServer(Sources{}.Handler())
	defer none.Close()
	if resp, err := http.Get(none.URL + "/trace"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/trace without a ring: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}
}

func TestDistView(t *testing.T) {
	srv := httptest.NewServer(sources().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dvm")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v DistView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.VM != "ab" || v.PageMap != "M.sM" || v.PagesPerCell != 2 || len(v.VCPUs) != 2 || v.VCPUs[1].Node != 1 || v.Hot[0].GPA != 0x3000 {
		t.Errorf("/dvm: %+v", v)
	}
	none := httptest.NewServer(Sources{}.Handler())
	defer none.Close()
	if resp, err := http.Get(none.URL + "/dvm"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/dvm without a VM: %v", err)
	} else {
		resp.Body.Close()
	}
}
