// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/console/metrics"
)

const systemMap = `ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff82a0c000 D jiffies
ffffffff82a0c040 D jiffies_64
ffffffff82a0d100 d timekeeper
`

func TestSymbols(t *testing.T) {
	s, err := readSystemMap(strings.NewReader(systemMap))
	if err != nil {
		t.Fatal(err)
	}
	for gpa, want := range map[uint64]string{0x2a0c000: "jiffies jiffies_64", 0x2a0d000: "jiffies_64 timekeeper", 0x1000000: "startup_64", 0x500000: ""} {
		if got := s.page(gpa); got != want {
			t.Errorf("page(%#x) = %q, want %q", gpa, got, want)
		}
	}
	if _, err := readSystemMap(strings.NewReader("zz T x\n")); err == nil {
		t.Error("a bad address was taken")
	}
}

// fakeNode serves /dvm: vCPU 1 moves to node 1 halfway, node 1 takes
// pages as the run goes on.
func fakeNode(t *testing.T, index int, calls *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dvm" {
			http.NotFound(w, r)
			return
		}
		n := int(calls.Add(1))
		moved := n > 6
		v := metrics.DistView{VM: "ab", Index: index, Nodes: 2, Pages: 64, PagesPerCell: 1,
			PageMap: strings.Repeat("M", 32) + strings.Repeat(".", 32),
			VCPUs:   []metrics.VCPUView{{ID: 0, Node: 0, Here: index == 0}, {ID: 1, Node: 0, Here: index == 0 && !moved}},
			Hot:     []metrics.HotView{{GPA: 0x2a0c000, Waits: 40}}}
		if index == 1 {
			v.PageMap = strings.Repeat(".", 64-min(n, 30)) + strings.Repeat("s", min(n, 30))
			v.VCPUs[0].Here, v.VCPUs[1].Here = false, moved
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWatchAndRender(t *testing.T) {
	var c0, c1 atomic.Int32
	n0, n1 := fakeNode(t, 0, &c0), fakeNode(t, 1, &c1)
	samples := watch(context.Background(), http.DefaultClient, []string{n0.URL, n1.URL, "http://127.0.0.1:1"}, 10*time.Millisecond, 150*time.Millisecond)
	if len(samples) < 8 || samples[0].nodes[2] != nil || samples[0].nodes[1] == nil {
		t.Fatalf("%d samples, first %+v", len(samples), samples[0])
	}
	syms, _ := readSystemMap(strings.NewReader(systemMap))
	var b strings.Builder
	if err := render(&b, []string{"node 1", "node 2", "node 3"}, samples, syms); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg[:min(len(svg), 2000)])
		}
	}
	for _, want := range []string{"#d62728", "#1f77b4", "vCPU 1", "jiffies jiffies_64", "80 waits", "node index 1"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
	if err := render(&b, nil, nil, nil); err == nil {
		t.Error("rendered nothing without an error")
	}
}
