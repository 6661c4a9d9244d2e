// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/big-iron/big-iron/console/metrics"
)

// sample is what every node said at one moment.
type sample struct {
	at    time.Duration
	nodes []*metrics.DistView // by the order of -node; nil: no answer
}

// Picture sizes.
const (
	cellPx    = 6   // a sample's width
	maxRows   = 128 // page-map rows per node (cells merged above)
	rowPx     = 2
	vcpuRowPx = 14
	margin    = 60
)

// nodeColors tells nodes apart on the vCPU timeline.
var nodeColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// render draws the samples as one SVG: for each node, which guest-physical
// range it held (modified red, shared blue) over time; where each vCPU ran
// over time; and the pages whose faults waited most, with the kernel
// symbols in them when syms is given.
func render(w io.Writer, names []string, samples []sample, syms symbols) error {
	if len(samples) == 0 {
		return fmt.Errorf("no samples to draw")
	}
	var b strings.Builder
	width := margin*2 + len(samples)*cellPx
	y := 30
	body := &strings.Builder{}
	fmt.Fprintf(body, `<text x="%d" y="20" font-size="14">big-iron: page placement and vCPUs over %v</text>`+"\n", margin, samples[len(samples)-1].at.Round(time.Second))
	for n, name := range names {
		y = drawPages(body, n, name, samples, y+20)
	}
	y = drawVCPUs(body, names, samples, y+30)
	y = drawHot(body, names, samples, syms, y+30)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">`+"\n", max(width, 700), y+20)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// drawPages draws node n's page map over time from y; it returns the y
// below it.
func drawPages(b *strings.Builder, n int, name string, samples []sample, y int) int {
	cells := 0
	for _, s := range samples {
		if v := s.nodes[n]; v != nil {
			cells = max(cells, len(v.PageMap))
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12">%s: guest memory held (red modified, blue shared), 0 at the top</text>`+"\n", margin, y, html.EscapeString(name))
	y += 6
	rows := min(cells, maxRows)
	if rows == 0 {
		return y + 10
	}
	per := (cells + rows - 1) / rows
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", margin, y, len(samples)*cellPx, rows*rowPx)
	for i, s := range samples {
		v := s.nodes[n]
		if v == nil {
			continue
		}
		for r := 0; r < rows; r++ {
			lo, hi := r*per, min((r+1)*per, len(v.PageMap))
			if lo >= hi {
				break
			}
			part := v.PageMap[lo:hi]
			color := ""
			switch {
			case strings.Contains(part, "M"):
				color = "#d62728"
			case strings.Contains(part, "s"):
				color = "#1f77b4"
			}
			if color != "" {
				fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", margin+i*cellPx, y+r*rowPx, cellPx, rowPx, color)
			}
		}
	}
	return y + rows*rowPx + 10
}

// drawVCPUs draws where each vCPU ran, as the node running it says.
func drawVCPUs(b *strings.Builder, names []string, samples []sample, y int) int {
	vcpus := 0
	for _, s := range samples {
		for _, v := range s.nodes {
			if v != nil {
				vcpus = max(vcpus, len(v.VCPUs))
			}
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12">vCPUs: the node each ran on</text>`+"\n", margin, y)
	y += 6
	for c := 0; c < vcpus; c++ {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10">vCPU %d</text>`+"\n", 4, y+c*vcpuRowPx+10, c)
		for i, s := range samples {
			node := -1
			for _, v := range s.nodes {
				if v != nil && c < len(v.VCPUs) && v.VCPUs[c].Here {
					node = v.Index
				}
			}
			if node >= 0 {
				fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>node index %d</title></rect>`+"\n",
					margin+i*cellPx, y+c*vcpuRowPx, cellPx, vcpuRowPx-2, nodeColors[node%len(nodeColors)], node)
			}
		}
	}
	y += vcpus*vcpuRowPx + 4
	for n, name := range names {
		idx := n
		for _, s := range samples {
			if v := s.nodes[n]; v != nil {
				idx = v.Index
			}
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="10">%s (index %d)</text>`+"\n",
			margin+n*200, y, nodeColors[idx%len(nodeColors)], margin+n*200+14, y+9, html.EscapeString(name), idx)
	}
	return y + 14
}

// hot is a page's waits summed over the nodes' last answers.
type hot struct {
	gpa   uint64
	waits uint64
}

// drawHot lists the pages whose faults waited most.
func drawHot(b *strings.Builder, names []string, samples []sample, syms symbols, y int) int {
	sum := map[uint64]uint64{}
	for n := range names {
		for i := len(samples) - 1; i >= 0; i-- {
			if v := samples[i].nodes[n]; v != nil {
				for _, h := range v.Hot {
					sum[h.GPA] += uint64(h.Waits)
				}
				break
			}
		}
	}
	var list []hot
	for g, w := range sum {
		list = append(list, hot{g, w})
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].waits > list[j].waits || list[i].waits == list[j].waits && list[i].gpa < list[j].gpa
	})
	list = list[:min(len(list), 16)]
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12">the pages whose faults waited most</text>`+"\n", margin, y)
	for i, h := range list {
		line := fmt.Sprintf("%#010x  %6d waits  %s", h.gpa, h.waits, syms.page(h.gpa))
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" font-family="monospace" xml:space="preserve">%s</text>`+"\n", margin, y+16+i*14, html.EscapeString(line))
	}
	return y + 16 + len(list)*14
}
