// Package workload generates the guest memory-access streams that the
// deterministic simulator replays, one stream per vCPU, and reads and
// writes them in a simple text trace format; it also reads the fault
// events a node of a real run recorded (its trace, as JSON lines), so
// that a real run can be replayed and trained on.
//
// Each generator exercises one sharing pattern of the classic taxonomy
// (private, read-shared, migratory, producer-consumer, false sharing) so
// that a placement policy can be judged on each; [Mixed] combines them.
package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/big-iron/big-iron/machine/page"
)

// PageSize is the guest page size the generators lay data out in.
const PageSize = page.Size

// wordsPerPage is the number of 8-byte words of a page.
const wordsPerPage = PageSize / 8

// Access is one guest memory access to an aligned 8-byte word.
type Access struct {
	GPA   uint64
	Write bool
}

// Set is a workload: one access stream per vCPU over Pages guest pages.
type Set struct {
	Name    string
	Pages   int
	Streams [][]Access
}

// Accesses returns the total number of accesses.
func (s *Set) Accesses() int {
	n := 0
	for _, st := range s.Streams {
		n += len(st)
	}
	return n
}

// Params sizes a generated workload.
type Params struct {
	VCPUs  int
	Length int // accesses per vCPU
	Seed   uint64
}

func word(page, w int) uint64 { return uint64(page)*PageSize + uint64(w%wordsPerPage)*8 }

func newSet(name string, p Params) (*Set, *rand.Rand) {
	return &Set{Name: name, Streams: make([][]Access, p.VCPUs)}, rand.New(rand.NewPCG(p.Seed, 0x3c6ef372fe94f82b))
}

// privatePages is the size of each vCPU's private region.
const privatePages = 16

// Private: each vCPU reads and writes only its own pages (30% writes).
func Private(p Params) *Set {
	s, rng := newSet("private", p)
	s.Pages = p.VCPUs * privatePages
	for v := range s.Streams {
		for i := 0; i < p.Length; i++ {
			pg := v*privatePages + rng.IntN(privatePages)
			s.Streams[v] = append(s.Streams[v], Access{GPA: word(pg, rng.IntN(wordsPerPage)), Write: rng.IntN(10) < 3})
		}
	}
	return s
}

// ReadShared: all vCPUs read one region; 1% of accesses write it.
func ReadShared(p Params) *Set {
	s, rng := newSet("read-shared", p)
	const shared = 32
	s.Pages = shared
	for v := range s.Streams {
		for i := 0; i < p.Length; i++ {
			s.Streams[v] = append(s.Streams[v], Access{GPA: word(rng.IntN(shared), rng.IntN(wordsPerPage)), Write: rng.IntN(100) == 0})
		}
	}
	return s
}

// Migratory: there are as many objects of 8 pages as vCPUs; in phase j
// vCPU i works (read-modify-write) on object (i+j) mod vCPUs, so each
// object passes from vCPU to vCPU.
func Migratory(p Params) *Set {
	s, rng := newSet("migratory", p)
	const objPages, phase = 8, 128
	s.Pages = p.VCPUs * objPages
	for v := range s.Streams {
		for i := 0; i < p.Length; i++ {
			obj := (v + i/phase) % p.VCPUs
			a := Access{GPA: word(obj*objPages+rng.IntN(objPages), rng.IntN(wordsPerPage)), Write: i%2 == 1}
			s.Streams[v] = append(s.Streams[v], a)
		}
	}
	return s
}

// ProducerConsumer: vCPU 2k writes a ring of 8 pages, vCPU 2k+1 reads it
// (an odd vCPU out works privately).
func ProducerConsumer(p Params) *Set {
	s, rng := newSet("producer-consumer", p)
	const ring = 8
	pairs := (p.VCPUs + 1) / 2
	s.Pages = pairs * ring
	for v := range s.Streams {
		base := (v / 2) * ring
		for i := 0; i < p.Length; i++ {
			pos := i % (ring * 64) // 64 words per page visited per lap
			a := Access{GPA: word(base+pos/64, pos%64*8+rng.IntN(8))}
			if v%2 == 0 {
				a.Write = true
			}
			s.Streams[v] = append(s.Streams[v], a)
		}
	}
	return s
}

// FalseSharing: vCPUs 2k and 2k+1 write disjoint words of the same two
// pages (80% writes).
func FalseSharing(p Params) *Set {
	s, rng := newSet("false-sharing", p)
	const pages = 2
	pairs := (p.VCPUs + 1) / 2
	s.Pages = pairs * pages
	for v := range s.Streams {
		base := (v / 2) * pages
		for i := 0; i < p.Length; i++ {
			w := (v%2)*(wordsPerPage/2) + rng.IntN(wordsPerPage/2)
			s.Streams[v] = append(s.Streams[v], Access{GPA: word(base+rng.IntN(pages), w), Write: rng.IntN(10) < 8})
		}
	}
	return s
}

// Mixed: phases of private work, read-shared lookups and migratory objects
// alternate in every vCPU, the three regions laid out one after another.
func Mixed(p Params) *Set {
	s, rng := newSet("mixed", p)
	const objPages, shared, phase = 8, 16, 96
	privBase := 0
	sharedBase := p.VCPUs * privatePages
	objBase := sharedBase + shared
	s.Pages = objBase + p.VCPUs*objPages
	for v := range s.Streams {
		for i := 0; i < p.Length; i++ {
			ph := i / phase
			var a Access
			switch ph % 3 {
			case 0:
				a = Access{GPA: word(privBase+v*privatePages+rng.IntN(privatePages), rng.IntN(wordsPerPage)), Write: rng.IntN(10) < 3}
			case 1:
				a = Access{GPA: word(sharedBase+rng.IntN(shared), rng.IntN(wordsPerPage)), Write: rng.IntN(200) == 0}
			default:
				obj := (v + ph/3) % p.VCPUs
				a = Access{GPA: word(objBase+obj*objPages+rng.IntN(objPages), rng.IntN(wordsPerPage)), Write: i%2 == 1}
			}
			s.Streams[v] = append(s.Streams[v], a)
		}
	}
	return s
}

// MessagePassing is the message-passing litmus test over and over: vCPU
// 2k writes a data word, then a flag word on another page; vCPU 2k+1
// reads the flag, then the data (an odd vCPU out only writes). Under
// sequential consistency a reader that sees a flag write also sees the
// data written before it; a stale copy of the data page that survives
// while the flag page is refreshed breaks that.
func MessagePassing(p Params) *Set {
	s, _ := newSet("message-passing", p)
	pairs := (p.VCPUs + 1) / 2
	s.Pages = 2 * pairs
	for v := range s.Streams {
		first, second := word(2*(v/2), 0), word(2*(v/2)+1, 0) // data, flag
		if v%2 == 1 {
			first, second = second, first
		}
		for i := 0; i < p.Length; i++ {
			a := Access{GPA: first, Write: v%2 == 0}
			if i%2 == 1 {
				a.GPA = second
			}
			s.Streams[v] = append(s.Streams[v], a)
		}
	}
	return s
}

// StoreBuffering is Dekker's store-buffering litmus test over and over:
// vCPU 2k writes x, then reads y; vCPU 2k+1 writes y, then reads x, x and
// y on different pages (an odd vCPU out writes and reads x alone). Under
// sequential consistency the two reads of a round cannot both miss the
// other's write of that round.
func StoreBuffering(p Params) *Set {
	s, _ := newSet("store-buffering", p)
	pairs := (p.VCPUs + 1) / 2
	s.Pages = 2 * pairs
	for v := range s.Streams {
		mine, other := word(2*(v/2)+v%2, 0), word(2*(v/2)+1-v%2, 0)
		for i := 0; i < p.Length; i++ {
			a := Access{GPA: mine, Write: true}
			if i%2 == 1 {
				a = Access{GPA: other}
			}
			s.Streams[v] = append(s.Streams[v], a)
		}
	}
	return s
}

// Litmus returns the litmus generators, which exercise cross-location
// ordering rather than a sharing pattern.
func Litmus() []Generator { return []Generator{MessagePassing, StoreBuffering} }

// Generator makes a workload from parameters.
type Generator func(Params) *Set

// All returns every generator in table order.
func All() []Generator {
	return []Generator{Private, ReadShared, Migratory, ProducerConsumer, FalseSharing, Mixed}
}

// WriteTrace writes s in the trace format read by [ParseTrace].
func WriteTrace(w io.Writer, s *Set) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# big-iron access trace: %s\n# vcpu r|w gpa\n", s.Name)
	for v, st := range s.Streams {
		for _, a := range st {
			op := 'r'
			if a.Write {
				op = 'w'
			}
			fmt.Fprintf(bw, "%d %c %#x\n", v, op, a.GPA)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("workload: write trace: %w", err)
	}
	return nil
}

// Limits of parsed traces.
const (
	MaxTraceVCPUs = 1024
	MaxTracePages = 1 << 20
)

// ParseTrace reads a trace: one access per line, "VCPU OP GPA" where VCPU
// is a decimal vCPU number, OP is r or w, and GPA is a guest physical
// address (decimal or 0x hex) rounded down to its 8-byte word. Blank lines
// and lines starting with # are ignored. Each vCPU's accesses keep file
// order; Pages covers the highest address used.
//
// A trace may instead be the JSON lines a node of a real run recorded
// (cluster/trace, served at the node's /trace): each "fault" event of a
// vCPU is an access, the page the vCPU had to fetch; other events, and
// faults no vCPU took (vcpu -1), are skipped. Several nodes' traces may be
// concatenated: a vCPU's faults then come node by node, in the order the
// files were given (the nodes' clocks are their own, so their times are
// not compared). A trace does not mix the two kinds of lines.
func ParseTrace(r io.Reader, name string) (*Set, error) {
	s := &Set{Name: name}
	sc := bufio.NewScanner(r)
	line, text, events := 0, false, false
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		var v int
		var a Access
		var ok bool
		var err error
		if t[0] == '{' {
			events = true
			v, a, ok, err = parseEvent(t)
		} else {
			text = true
			v, a, err = parseAccess(t)
			ok = true
		}
		if err == nil && text && events {
			err = fmt.Errorf("mixes node-trace and access lines")
		}
		if err != nil {
			return nil, fmt.Errorf("workload: trace %s line %d: %w", name, line, err)
		}
		if !ok {
			continue
		}
		for len(s.Streams) <= v {
			s.Streams = append(s.Streams, nil)
		}
		s.Streams[v] = append(s.Streams[v], a)
		if pg := int(a.GPA/PageSize) + 1; pg > s.Pages {
			s.Pages = pg
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("workload: trace %s: %w", name, err)
	}
	if len(s.Streams) == 0 {
		return nil, fmt.Errorf("workload: trace %s: no accesses", name)
	}
	return s, nil
}

// parseAccess reads a "VCPU OP GPA" line.
func parseAccess(t string) (int, Access, error) {
	f := strings.Fields(t)
	if len(f) != 3 {
		return 0, Access{}, fmt.Errorf("want 3 fields, got %d", len(f))
	}
	v, err := strconv.Atoi(f[0])
	if err != nil || v < 0 || v >= MaxTraceVCPUs {
		return 0, Access{}, fmt.Errorf("bad vCPU %q", f[0])
	}
	var write bool
	switch f[1] {
	case "r", "R":
	case "w", "W":
		write = true
	default:
		return 0, Access{}, fmt.Errorf("op %q is not r or w", f[1])
	}
	gpa, err := strconv.ParseUint(f[2], 0, 64)
	if err != nil || gpa/PageSize >= MaxTracePages {
		return 0, Access{}, fmt.Errorf("bad address %q", f[2])
	}
	return v, Access{GPA: gpa &^ 7, Write: write}, nil
}

// nodeEvent is the part of a node's trace event (cluster/trace.Event's
// JSON) a replay uses.
type nodeEvent struct {
	Kind  string  `json:"kind"`
	VCPU  *int    `json:"vcpu"`
	GPA   *uint64 `json:"gpa"`
	Write bool    `json:"write"`
}

// parseEvent reads one JSON line of a node's trace; ok is false for an
// event that is no vCPU's fault.
func parseEvent(t string) (v int, a Access, ok bool, err error) {
	var e nodeEvent
	if err := json.Unmarshal([]byte(t), &e); err != nil {
		return 0, Access{}, false, fmt.Errorf("node-trace event: %w", err)
	}
	if e.Kind == "" || e.VCPU == nil || e.GPA == nil {
		return 0, Access{}, false, fmt.Errorf("node-trace event without kind, vcpu or gpa")
	}
	if e.Kind != "fault" || *e.VCPU < 0 {
		return 0, Access{}, false, nil
	}
	if *e.VCPU >= MaxTraceVCPUs {
		return 0, Access{}, false, fmt.Errorf("bad vCPU %d", *e.VCPU)
	}
	if *e.GPA/PageSize >= MaxTracePages {
		return 0, Access{}, false, fmt.Errorf("bad address %#x", *e.GPA)
	}
	return *e.VCPU, Access{GPA: *e.GPA &^ 7, Write: e.Write}, true, nil
}

// handoffPages is the size of each vCPU's region in Handoff.
const handoffPages = 32

// Handoff: vCPU 0 first writes a word of every page, as a guest's boot
// processor clears memory, then every vCPU works (30% writes) on a
// region of its own: pages first touched by one node and then used by
// another, the case a page's home should follow.
func Handoff(p Params) *Set {
	s, rng := newSet("handoff", p)
	s.Pages = p.VCPUs * handoffPages
	for pg := 0; pg < s.Pages && len(s.Streams[0]) < p.Length; pg++ {
		s.Streams[0] = append(s.Streams[0], Access{GPA: word(pg, 0), Write: true})
	}
	for v := range s.Streams {
		for len(s.Streams[v]) < p.Length {
			pg := v*handoffPages + rng.IntN(handoffPages)
			s.Streams[v] = append(s.Streams[v], Access{GPA: word(pg, rng.IntN(wordsPerPage)), Write: rng.IntN(10) < 3})
		}
	}
	return s
}

// sweepPages is the memory Sweep adds per vCPU.
const sweepPages = 64

// Sweep: every vCPU walks all of memory in order, each from its own
// starting page, writing a word of its own on each page and reading its
// neighbour's: every node's working set is the whole guest, the shape of
// a memory tester on a guest larger than any one node.
func Sweep(p Params) *Set {
	s, _ := newSet("sweep", p)
	s.Pages = p.VCPUs * sweepPages
	for v := range s.Streams {
		for i := 0; len(s.Streams[v]) < p.Length; i++ {
			pg := (v*sweepPages + i) % s.Pages
			s.Streams[v] = append(s.Streams[v], Access{GPA: word(pg, v), Write: true}, Access{GPA: word(pg, (v+1)%p.VCPUs)})
		}
		s.Streams[v] = s.Streams[v][:p.Length]
	}
	return s
}
