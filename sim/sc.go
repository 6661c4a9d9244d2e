package sim

import (
	"fmt"
	"slices"
	"strings"
)

// The cross-location checker. The per-location check (checker.read)
// compares every read with the latest write in the simulation's global
// order, which only a simulator has. This one looks only at what the
// vCPUs observed, as one could on a trace of real hardware: each vCPU's
// accesses in program order and the token every read returned (reads-from),
// with the coherence order of each word taken to be the order of its
// writes' tokens. The execution is sequentially consistent if and only if
// the graph of program order, reads-from, coherence order and from-reads
// (a read precedes the write that overwrote the value it read) is acyclic;
// a cycle is a violation that involves one word (a vCPU reading a word
// newer, then older) or several (message passing, store buffering).
//
// It checks the whole run, up to MaxSCAccesses accesses: a longer run is
// checked on the prefix of its first MaxSCAccesses accesses in global
// order, which still holds every write a recorded read returned.

// MaxSCAccesses bounds the accesses the cross-location checker records
// (24 bytes each).
const MaxSCAccesses = 1 << 20

// access is one recorded guest access: the word, and the token written or
// read.
type access struct {
	gpa   uint64
	token uint64
	write bool
}

// history is every vCPU's accesses in program order.
type history struct {
	ops   [][]access
	n     int
	limit int
}

func newHistory(vcpus, limit int) history {
	return history{ops: make([][]access, vcpus), limit: limit}
}

// add records an access of vCPU v, unless the history is full.
func (h *history) add(v int, gpa, token uint64, write bool) {
	if h.n >= h.limit {
		return
	}
	h.ops[v] = append(h.ops[v], access{gpa: gpa, token: token, write: write})
	h.n++
}

// scGraph is the happens-before graph of a history. Nodes are accesses,
// numbered vCPU by vCPU in program order (base[v] is vCPU v's first).
type scGraph struct {
	h      *history
	base   []int32
	vcpuOf []int32
	writer []int32 // token -> access that wrote it, -1 if none
	next   []int32 // token -> the next write of the same word, -1 if none
	first  map[uint64]int32
	// readers of token t: rlist[rstart[t]:rstart[t+1]].
	rstart, rlist []int32
}

func (h *history) graph() (*scGraph, error) {
	g := &scGraph{h: h, base: make([]int32, len(h.ops)+1), vcpuOf: make([]int32, h.n), first: map[uint64]int32{}}
	var maxTok uint64
	for v, ops := range h.ops {
		g.base[v+1] = g.base[v] + int32(len(ops))
		for i, a := range ops {
			g.vcpuOf[int(g.base[v])+i] = int32(v)
			maxTok = max(maxTok, a.token)
		}
	}
	g.writer, g.next = make([]int32, maxTok+1), make([]int32, maxTok+1)
	for t := range g.writer {
		g.writer[t], g.next[t] = -1, -1
	}
	g.rstart = make([]int32, maxTok+2)
	for i := range h.n {
		if a := g.op(int32(i)); a.write {
			g.writer[a.token] = int32(i)
		} else {
			g.rstart[a.token+1]++
		}
	}
	last := map[uint64]uint64{}
	for t, w := range g.writer {
		if w < 0 {
			continue
		}
		gpa := g.op(w).gpa
		if lt, ok := last[gpa]; ok {
			g.next[lt] = w
		} else {
			g.first[gpa] = w
		}
		last[gpa] = uint64(t)
	}
	return g, g.indexReaders()
}

// indexReaders fills the readers of every token, and checks every read
// returned a value some write wrote.
func (g *scGraph) indexReaders() error {
	for t := 1; t < len(g.rstart); t++ {
		g.rstart[t] += g.rstart[t-1]
	}
	g.rlist = make([]int32, g.rstart[len(g.rstart)-1])
	fill := make([]int32, len(g.rstart))
	for i := range g.h.n {
		a := g.op(int32(i))
		if a.write {
			continue
		}
		if a.token != 0 && g.writer[a.token] < 0 {
			return fmt.Errorf("checker: %s returned token %d, which no recorded write wrote (out of thin air)", g.describe(int32(i)), a.token)
		}
		g.rlist[g.rstart[a.token]+fill[a.token]] = int32(i)
		fill[a.token]++
	}
	return nil
}

func (g *scGraph) op(i int32) access {
	v := g.vcpuOf[i]
	return g.h.ops[v][i-g.base[v]]
}

// succ appends the successors of access i to buf: the next access of its
// vCPU; for a write, the next write of its word and the reads of its
// token; for a read, the write that overwrote the value it read.
func (g *scGraph) succ(i int32, buf []int32) []int32 {
	if v := g.vcpuOf[i]; i+1 < g.base[v+1] {
		buf = append(buf, i+1)
	}
	a := g.op(i)
	if a.write {
		if n := g.next[a.token]; n >= 0 {
			buf = append(buf, n)
		}
		return append(buf, g.rlist[g.rstart[a.token]:g.rstart[a.token+1]]...)
	}
	n := int32(-1)
	if a.token != 0 {
		n = g.next[a.token]
	} else if f, ok := g.first[a.gpa]; ok {
		n = f
	}
	if n >= 0 {
		buf = append(buf, n)
	}
	return buf
}

// check returns the number of accesses checked, or a violation naming a
// cycle of the happens-before graph.
func (h *history) check() (int, error) {
	g, err := h.graph()
	if err != nil {
		return 0, err
	}
	indeg := make([]int32, h.n)
	var buf []int32
	for i := range int32(h.n) {
		buf = g.succ(i, buf[:0])
		for _, j := range buf {
			indeg[j]++
		}
	}
	ready := make([]int32, 0, len(h.ops))
	for i, d := range indeg {
		if d == 0 {
			ready = append(ready, int32(i))
		}
	}
	done := 0
	for len(ready) > 0 {
		i := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		done++
		buf = g.succ(i, buf[:0])
		for _, j := range buf {
			if indeg[j]--; indeg[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	if done < h.n {
		return 0, g.cycle(indeg)
	}
	return h.n, nil
}

// cycle describes a shortest cycle through an access on a cycle among
// those left with a positive in-degree (each has a predecessor among
// them, so walking predecessors from any of them repeats an access).
func (g *scGraph) cycle(indeg []int32) error {
	pred := make([]int32, len(indeg))
	start := int32(-1)
	var buf []int32
	for i := range int32(len(indeg)) {
		if indeg[i] <= 0 {
			continue
		}
		start = i
		buf = g.succ(i, buf[:0])
		for _, j := range buf {
			if indeg[j] > 0 {
				pred[j] = i
			}
		}
	}
	seen := map[int32]bool{}
	for !seen[start] {
		seen[start] = true
		start = pred[start]
	}
	path := g.shortestCycle(start, indeg)
	words := map[uint64]bool{}
	var b strings.Builder
	for k, i := range path {
		words[g.op(i).gpa] = true
		if k > 0 && k+1 < len(path) && g.vcpuOf[path[k-1]] == g.vcpuOf[i] && g.vcpuOf[path[k+1]] == g.vcpuOf[i] {
			continue // inside a run of one vCPU's program order
		}
		if k > 0 {
			b.WriteString(" -> ")
		}
		b.WriteString(g.describe(i))
	}
	return fmt.Errorf("checker: not sequentially consistent: cycle of %d accesses over %d words (runs of one vCPU shortened to their ends): %s", len(path), len(words), b.String())
}

// shortestCycle returns a shortest cycle through access c, which is on
// one, by a breadth-first search among the accesses left.
func (g *scGraph) shortestCycle(c int32, indeg []int32) []int32 {
	parent := map[int32]int32{}
	queue := []int32{c}
	var buf []int32
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		buf = g.succ(i, buf[:0])
		for _, j := range buf {
			if j == c {
				path := []int32{i}
				for i != c {
					i = parent[i]
					path = append(path, i)
				}
				slices.Reverse(path)
				return path
			}
			if _, ok := parent[j]; !ok && indeg[j] > 0 {
				parent[j] = i
				queue = append(queue, j)
			}
		}
	}
	return []int32{c} // unreachable: c is on a cycle
}

func (g *scGraph) describe(i int32) string {
	a, v := g.op(i), g.vcpuOf[i]
	op := "read"
	if a.write {
		op = "write"
	}
	return fmt.Sprintf("vCPU %d access %d %s %#x=%d", v, i-g.base[v], op, a.gpa, a.token)
}
