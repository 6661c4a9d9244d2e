package main

import (
	"bufio"
	"fmt"
	"io"
)

// palette colours nodes; pages with only shared copies are grey.
var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

func nodeColour(n int8) string {
	switch {
	case n == -1:
		return "#dddddd"
	case n < 0:
		return "#000000"
	}
	return palette[int(n)%len(palette)]
}

// writeSVG draws r's timeline: one lane per vCPU (colour = node it runs on,
// white = in flight), then one lane per page (colour = node holding it
// Modified, grey = shared copies only), over virtual time.
func writeSVG(w io.Writer, r row, nodes int) error {
	tl := r.res.Timeline
	if len(tl) == 0 {
		return fmt.Errorf("run %s/%s recorded no timeline", r.workload, r.policy)
	}
	const left, top, lane, pageLane, width = 90, 40, 14, 4, 900
	nv, np := len(tl[0].VCPUs), len(tl[0].Pages)
	height := top + nv*lane + 20 + np*pageLane + 40
	dx := float64(width) / float64(len(tl))
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+20, height)
	fmt.Fprintf(bw, `<text x="%d" y="20" font-size="14">%s / %s: vCPU and page locations over %.0f us (slowdown %.2fx)</text>`+"\n",
		left, r.workload, r.policy, float64(tl[len(tl)-1].At)/1000, r.res.Slowdown)
	for v := 0; v < nv; v++ {
		y := top + v*lane
		fmt.Fprintf(bw, `<text x="4" y="%d">vCPU %d</text>`+"\n", y+lane-3, v)
		for i, s := range tl {
			if s.VCPUs[v] < 0 {
				continue
			}
			fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", float64(left)+float64(i)*dx, y, dx+0.5, lane-2, nodeColour(s.VCPUs[v]))
		}
	}
	py := top + nv*lane + 20
	fmt.Fprintf(bw, `<text x="4" y="%d">pages 0-%d</text>`+"\n", py+10, np-1)
	for p := 0; p < np; p++ {
		for i, s := range tl {
			// Merge runs of the same colour to keep the file small.
			if i > 0 && tl[i-1].Pages[p] == s.Pages[p] {
				continue
			}
			j := i
			for j+1 < len(tl) && tl[j+1].Pages[p] == s.Pages[p] {
				j++
			}
			fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", float64(left)+float64(i)*dx, py+p*pageLane, float64(j-i+1)*dx+0.5, pageLane, nodeColour(s.Pages[p]))
		}
	}
	ly := py + np*pageLane + 20
	for n := 0; n < nodes; n++ {
		fmt.Fprintf(bw, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">node %d</text>`+"\n", left+n*80, ly, nodeColour(int8(n)), left+n*80+16, ly+10, n)
	}
	fmt.Fprintf(bw, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">shared only</text>`+"\n", left+nodes*80, ly, nodeColour(-1), left+nodes*80+16, ly+10)
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}
