// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command bigview watches a distributed VM from the host: it asks every
// node for its view (/dvm on the metrics port) at a fixed interval and
// draws one SVG of what it saw: which guest-physical ranges each node
// held over time, which node each vCPU ran on, and the pages whose
// faults waited most, named by the guest kernel's symbols when a
// System.map is given.
//
//	go run ./tools/bigview -node http://10.77.0.1:9120 -node http://10.77.0.2:9120 -for 60s -o vm.svg
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/big-iron/big-iron/console/metrics"
)

// nodeFlags collects -node.
type nodeFlags []string

func (n *nodeFlags) String() string     { return strings.Join(*n, ",") }
func (n *nodeFlags) Set(s string) error { *n = append(*n, strings.TrimRight(s, "/")); return nil }

func main() {
	var nodes nodeFlags
	flag.Var(&nodes, "node", "a node's metrics address, http://ADDRESS:9120 (repeat for each node)")
	every := flag.Duration("every", 2*time.Second, "how often to ask")
	dur := flag.Duration("for", time.Minute, "how long to watch")
	sysmap := flag.String("systemmap", "", "the guest kernel's System.map, to name hot pages")
	out := flag.String("o", "bigview.svg", "the SVG to write")
	flag.Parse()
	if len(nodes) == 0 {
		fmt.Fprintln(os.Stderr, "bigview: give each node with -node http://ADDRESS:9120")
		os.Exit(2)
	}
	if err := run(nodes, *every, *dur, *sysmap, *out); err != nil {
		fmt.Fprintf(os.Stderr, "bigview: %v\n", err)
		os.Exit(1)
	}
}

func run(nodes []string, every, dur time.Duration, sysmap, out string) error {
	var syms symbols
	if sysmap != "" {
		f, err := os.Open(sysmap)
		if err != nil {
			return err
		}
		syms, err = readSystemMap(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	samples := watch(context.Background(), &http.Client{Timeout: every + 5*time.Second}, nodes, every, dur)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := render(f, nodes, samples, syms); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// watch asks every node for its view each interval for dur.
func watch(ctx context.Context, c *http.Client, nodes []string, every, dur time.Duration) []sample {
	var samples []sample
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s := sample{at: time.Since(start), nodes: make([]*metrics.DistView, len(nodes))}
		answered := 0
		for i, n := range nodes {
			v, err := fetch(ctx, c, n)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bigview: %s: %v\n", n, err)
				continue
			}
			s.nodes[i] = v
			answered++
		}
		if answered > 0 {
			samples = append(samples, s)
		}
		if time.Since(start) >= dur {
			return samples
		}
		select {
		case <-ctx.Done():
			return samples
		case <-t.C:
		}
	}
}

// fetch asks one node for its view.
func fetch(ctx context.Context, c *http.Client, node string) (*metrics.DistView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/dvm", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/dvm: %s", resp.Status)
	}
	var v metrics.DistView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("/dvm: %w", err)
	}
	return &v, nil
}
