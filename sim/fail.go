package sim

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
)

// Node failures: crashes, link cuts, failure detection and the stop of the
// VM with a loss report, as the real system does them (membership's
// silence timeout, dvm.Plane.NodeLost and dvm.Runtime.NodeFailed), the
// stop of the VM's other nodes that the node stopping tells (dvm.OpStop
// with dvm.StopNodeLost), and the checks of what the survivors report
// against what the simulator knows was lost.

// CrashWhen says when a Crash happens.
type CrashWhen uint8

// Crash triggers.
const (
	// CrashAt crashes the node at Crash.AtNS.
	CrashAt CrashWhen = iota
	// CrashInFlight crashes the node at the first vCPU migration from or
	// to it at or after Crash.AtNS, the moment the vCPU leaves: the vCPU
	// is then in flight from or to the crashed node.
	CrashInFlight
	// CrashEmpty crashes the node at the first moment at or after
	// Crash.AtNS when it hosts no vCPU and holds no Modified copy (looked
	// at at AtNS and whenever a vCPU that left it arrives elsewhere), so
	// that it holds at most Shared copies and the pages it homes.
	CrashEmpty
)

// Crash stops a node for good: from then on the links drop every frame
// to or from it not yet received (its NIC dies with it), and its engine,
// migrator and vCPUs are gone.
type Crash struct {
	// Node is the node that crashes; -1 draws one from the seed.
	Node int
	// AtNS is when (see When); -1 draws a time from the seed before
	// Faults.CrashWindowNS, or before twice the ideal makespan.
	AtNS int64
	When CrashWhen
}

// Cut drops every frame between nodes A and B, both ways, from AtNS for
// ForNS. A cut longer than Config.FailureTimeoutNS makes A and B declare
// each other lost.
type Cut struct {
	A, B        int
	AtNS, ForNS int64
}

// Stop is one node's share of the VM stopped because another node was
// found lost, with the report the real runtime makes
// (dvm.NodeLostError.Count on the node's engine and migrator).
type Stop struct {
	Node int
	At   int64
	// SilentSince is when the lost node became unreachable from Node; At
	// is SilentSince plus the failure timeout.
	SilentSince int64
	Report      dvm.NodeLostError
	// Lost are the vCPUs really lost with the node (at it, or in flight
	// from or to it), by the simulator's ground truth. Report.VCPUs may
	// name more: vCPUs that were at the lost node once and that Node
	// has not heard of since.
	Lost []migrate.VCPUID
	// ToldBy is the node whose OpStop stopped Node before it found a
	// loss itself, -1 if Node found the loss. A told stop has no loss
	// report (Report names the lost node and why only; Lost is empty),
	// as in dvm, and SilentSince is when it was told.
	ToldBy int
}

// CrashReport says what a node held when it crashed.
type CrashReport struct {
	Node             int
	At               int64
	Homed            int // pages it homed
	Shared, Modified int // copies it held in each state
	VCPUs            []int
	InFlight         []int // vCPUs in flight from or to it
}

// lossMutation breaks the loss report, for checker tests only.
type lossMutation uint8

const (
	lossExact lossMutation = iota
	lossHomedOffByOne
	lossOnlyCopiesOffByOne
	lossNoVCPUs
)

func (m lossMutation) apply(e *dvm.NodeLostError) {
	switch m {
	case lossHomedOffByOne:
		e.HomedPages++
	case lossOnlyCopiesOffByOne:
		e.OnlyCopies++
	case lossNoVCPUs:
		e.VCPUs = e.VCPUs[:0]
	}
}

// pendingCrash is a crash not yet happened.
type pendingCrash struct {
	Crash
	done bool
}

// injectFailures resolves the configured crashes (drawing from the seed
// those left to it) and adds the configured cuts to the partitions; it
// schedules the crashes at their times and a failure detection at the
// end of every cut.
func (s *Sim) injectFailures(horizon int64) error {
	fl := &s.cfg.Faults
	for _, c := range fl.Crashes {
		if c.Node < 0 {
			c.Node = s.rng.IntN(s.cfg.Nodes)
		}
		if c.AtNS < 0 {
			w := fl.CrashWindowNS
			if w <= 0 {
				w = horizon
			}
			c.AtNS = s.rng.Int64N(w)
		}
		if c.Node >= s.cfg.Nodes {
			return fmt.Errorf("crash of node %d in a cluster of %d", c.Node, s.cfg.Nodes)
		}
		s.crashes = append(s.crashes, pendingCrash{Crash: c})
		if c.When != CrashInFlight {
			s.schedule(event{at: c.AtNS, kind: evCrash, v: len(s.crashes) - 1})
		}
	}
	for _, c := range fl.Cuts {
		if c.A == c.B || c.A < 0 || c.B < 0 || c.A >= s.cfg.Nodes || c.B >= s.cfg.Nodes {
			return fmt.Errorf("cut between nodes %d and %d in a cluster of %d", c.A, c.B, s.cfg.Nodes)
		}
		s.parts = append(s.parts, partition{a: c.A, b: c.B, from: c.AtNS, to: c.AtNS + c.ForNS})
	}
	for _, p := range s.parts {
		s.watch(p.a, p.b, p.from)
		s.watch(p.b, p.a, p.from)
	}
	return nil
}

// watch schedules node x's failure detector to look at node y one
// failure timeout after y became unreachable (at since).
func (s *Sim) watch(x, y int, since int64) {
	s.schedule(event{at: since + s.cfg.FailureTimeoutNS, kind: evSilence, node: x, peer: y, gen: uint64(since)})
}

// crashDue runs crash i at its time: CrashAt crashes, CrashEmpty crashes
// if the node is empty by then.
func (s *Sim) crashDue(i int) {
	c := &s.crashes[i]
	if c.done || c.When == CrashEmpty && !s.empty(c.Node) {
		return
	}
	c.done = true
	s.crash(c.Node)
}

// crashOnMigration runs the CrashInFlight crashes due when a vCPU has
// just left node from for node to.
func (s *Sim) crashOnMigration(from, to int) {
	for i := range s.crashes {
		c := &s.crashes[i]
		if !c.done && c.When == CrashInFlight && s.now >= c.AtNS && (c.Node == from || c.Node == to) {
			c.done = true
			s.crash(c.Node)
		}
	}
}

// crashOnArrival runs the CrashEmpty crashes of node from, due now that a
// vCPU that left it has arrived elsewhere.
func (s *Sim) crashOnArrival(from int) {
	for i := range s.crashes {
		c := &s.crashes[i]
		if !c.done && c.When == CrashEmpty && c.Node == from && s.now >= c.AtNS && s.empty(from) {
			c.done = true
			s.crash(from)
		}
	}
}

// empty reports whether node n hosts no vCPU, has none in flight from or
// to it and holds no Modified copy.
func (s *Sim) empty(n int) bool {
	for _, v := range s.vcpus {
		if v.node == n || v.state == vFlight && (v.from == n || v.to == n) {
			return false
		}
	}
	_, mod := s.nodes[n].mem.Count()
	return mod == 0
}

// crash stops node n for good and starts every other node's failure
// detector on it.
func (s *Sim) crash(n int) {
	nd := s.nodes[n]
	if nd.crashed {
		return
	}
	nd.crashed, nd.crashAt = true, s.now
	rep := CrashReport{Node: n, At: s.now, Homed: s.homed(n)}
	rep.Shared, rep.Modified = nd.mem.Count()
	for _, v := range s.vcpus {
		switch {
		case v.node == n:
			rep.VCPUs = append(rep.VCPUs, v.id)
			v.state = vLost
			v.gen++
		case v.state == vFlight && (v.from == n || v.to == n):
			rep.InFlight = append(rep.InFlight, v.id)
		}
	}
	s.res.Crashes = append(s.res.Crashes, rep)
	for x := range s.nodes {
		if x != n {
			s.watch(x, n, s.now)
		}
	}
}

// homed counts the pages homed at node n.
func (s *Sim) homed(n int) int {
	c := 0
	for p := 0; p < s.cfg.Workload.Pages; p++ {
		if int(s.nodes[n].mem.Home(uint64(p)*memory.PageSize)) == n {
			c++
		}
	}
	return c
}

// silent reports whether node y has been unreachable from node x
// without a break from since until now: crashed, or cut off by
// partitions that follow one another.
func (s *Sim) silent(x, y int, since int64) bool {
	ny := s.nodes[y]
	t := since
	for {
		if ny.crashed && ny.crashAt <= t {
			return true
		}
		end := int64(-1)
		for _, p := range s.parts {
			if (p.a == x && p.b == y || p.a == y && p.b == x) && p.from <= t && t < p.to && p.to > end {
				end = p.to
			}
		}
		if end < 0 {
			return false
		}
		if end > s.now {
			return true
		}
		t = end
	}
}

// detect runs node x's failure detector on node y, unreachable since
// since: if y has been silent all along, x declares it lost (and, as
// membership removes a lost peer, stops retransmitting to it) and, if
// its share still runs, stops it with a loss report.
func (s *Sim) detect(x, y int, since int64) error {
	nx := s.nodes[x]
	if nx.crashed || nx.gone[y] || s.cfg.noDetect || !s.silent(x, y, since) {
		return nil
	}
	nx.gone[y] = true
	if nx.stopped {
		return nil // NodeFailed counts only the first stop
	}
	return s.stop(x, y, since)
}

// simVM is the VM id of the simulator's control messages.
const simVM = 1

// stopMessage is the OpStop a node sends when its share stopped because
// node lost is gone, as dvm.Plane.NodeLost sends it.
func stopMessage(lost int) []byte {
	c := dvm.Control{Op: dvm.OpStop, Spec: dvm.Spec{ID: simVM}, Arg: uint32(dvm.StopNodeLost), Node: memory.NodeID(lost)}
	b := make([]byte, dvm.MaxControlSize)
	return b[:c.MarshalTo(b)]
}

// tellStop has node x, whose share stopped because node y is lost, tell
// every other node of the VM but y, as dvm.Plane.NodeLost does.
func (s *Sim) tellStop(x, y int) {
	for z := range s.nodes {
		if z != x && z != y {
			s.send(x, z, stopMessage(y))
		}
	}
}

// control serves a control message from node src at node dst: OpStop
// stops dst's share (dvm.Plane: Runtime.Halt, then Share.End) unless it
// stopped already; a told node does not tell others.
func (s *Sim) control(dst, src int, p []byte) error {
	var c dvm.Control
	if err := c.Unmarshal(p); err != nil {
		return err
	}
	if c.Op != dvm.OpStop || dvm.StopReason(c.Arg) != dvm.StopNodeLost {
		return fmt.Errorf("control message %v (reason %d) %d->%d: the simulator sends only loss stops", c.Op, c.Arg, src, dst)
	}
	nd := s.nodes[dst]
	if nd.stopped {
		return nil // stopped already: a later stop is ignored
	}
	lost := int(c.Node)
	s.res.Stops = append(s.res.Stops, Stop{Node: dst, At: s.now, SilentSince: s.now, ToldBy: src,
		Report: dvm.NodeLostError{Node: c.Node, Why: fmt.Sprintf("reported by node %d", src)}})
	nd.stopped, nd.stopLost, nd.toldStop = true, lost, true
	s.halt(dst)
	return nil
}

// answerStopped has node x, whose share stopped, answer a message of the
// VM from node src with OpStop, once per node, as dvm.Plane does (it
// retells at most once per dvm.StopRetell; the simulator does not lose
// control messages, so once is enough).
func (s *Sim) answerStopped(x, src int) {
	nd := s.nodes[x]
	if nd.told[src] {
		return
	}
	nd.told[src] = true
	s.send(x, src, stopMessage(nd.stopLost))
}

// stop stops the VM's share on node x because node y is lost, as
// dvm.Runtime.NodeFailed does, after checking x's report against the
// ground truth: x's vCPUs stop, and so do the migrations from or to x.
func (s *Sim) stop(x, y int, since int64) error {
	nx := s.nodes[x]
	st := Stop{Node: x, At: s.now, SilentSince: since, ToldBy: -1, Report: dvm.NodeLostError{Node: memory.NodeID(y), Why: fmt.Sprintf("silent for %d ns", s.now-since)}}
	st.Report.Count(nx.mem, nx.mig, s.cfg.Workload.Pages, len(s.vcpus))
	s.cfg.lossMutation.apply(&st.Report)
	var err error
	if st.Lost, err = s.checkLoss(x, y, &st.Report); err != nil {
		return fmt.Errorf("node %d stopping on the loss of node %d: %w", x, y, err)
	}
	s.res.Stops = append(s.res.Stops, st)
	nx.stopped, nx.stopLost = true, y
	s.halt(x)
	s.tellStop(x, y)
	return nil
}

// halt stops node x's vCPUs, and the migrations from or to x.
func (s *Sim) halt(x int) {
	for _, v := range s.vcpus {
		switch {
		case v.node == x && (v.state == vRunning || v.state == vBlocked):
			s.endWait(v)
			v.state = vStopped
			v.gen++
		case v.state == vFlight && (v.from == x || v.to == x):
			s.endWait(v) // its source or destination stopped the VM
		}
	}
}

// lossTruth is what node x really cannot have back from node y, counted
// as dvm.NodeLostError counts it.
type lossTruth struct {
	homed, onlyCopies int
	vcpus             []migrate.VCPUID
}

// truth computes what x loses with y from the simulator's ground truth:
// the pages homed at y; the pages homed at x whose only up-to-date copy
// (the latest write of every word, by the checker) is y's own, or data
// in an undelivered message from or to y; and the vCPUs at y (hosted,
// finished there or lost with it) or in flight from or to y.
func (s *Sim) truth(x, y int) lossTruth {
	var t lossTruth
	t.homed = s.homed(y)
	holders := s.holders(x, y)
	for _, h := range holders {
		if h == 1<<y {
			t.onlyCopies++
		}
	}
	for _, v := range s.vcpus {
		if v.node == y && v.state != vFlight || v.state == vFlight && (v.from == y || v.to == y) {
			t.vcpus = append(t.vcpus, migrate.VCPUID(v.id))
		}
	}
	return t
}

// holders returns, for every page homed at x (in page order), the set of
// nodes holding an up-to-date copy: a valid one in their engine; the
// home's frame while no node owns the page (the home serves it from
// there, even while a write transaction has invalidated it); or data
// travelling to them in an undelivered message (data from or to y counts
// as y's: a crash drops it, a cut holds it until x has stopped).
func (s *Sim) holders(x, y int) []uint64 {
	var out []uint64
	idx := map[uint64]int{}
	for p := 0; p < s.cfg.Workload.Pages; p++ {
		gpa := uint64(p) * memory.PageSize
		if int(s.nodes[x].mem.Home(gpa)) != x {
			continue
		}
		idx[uint64(p)] = len(out)
		var h uint64
		for n, nd := range s.nodes {
			f := nd.mem.Frame(gpa)
			if owner, _, _, _ := nd.mem.Directory(gpa); f == nil && n == x && owner == memory.NoNode {
				f = nd.ept.frames[p]
			}
			if f != nil && s.upToDate(uint64(p), f) {
				h |= 1 << n
			}
		}
		out = append(out, h)
	}
	var m memory.Message
	for a, row := range s.chans {
		for b, c := range row {
			for _, pk := range c.unacked {
				if pk.seq < c.expect || pk.frame[frameHeader] != memory.MessageMagic {
					continue
				}
				if m.Unmarshal(pk.frame[frameHeader:], &s.pageBuf) != nil || m.Data == nil {
					continue
				}
				i, ok := idx[m.GPA/memory.PageSize]
				if !ok || !s.upToDate(m.GPA/memory.PageSize, m.Data) {
					continue
				}
				if a == y || b == y {
					out[i] |= 1 << y
				} else {
					out[i] |= 1 << b
				}
			}
		}
	}
	return out
}

// upToDate reports whether f holds the latest write of every word of
// page p.
func (s *Sim) upToDate(p uint64, f *memory.Page) bool {
	for w := 0; w < memory.PageSize; w += 8 {
		if binary.LittleEndian.Uint64(f[w:]) != s.check.last[p*memory.PageSize+uint64(w)] {
			return false
		}
	}
	return true
}

// checkLoss checks node x's report on the loss of node y against the
// ground truth: the page counts exactly; the vCPUs as far as x can know:
// each one reported was at y at some time and is not hosted at x. That
// every vCPU really lost is reported by some survivor is checked at the
// end (finishFailures).
func (s *Sim) checkLoss(x, y int, r *dvm.NodeLostError) ([]migrate.VCPUID, error) {
	t := s.truth(x, y)
	if r.HomedPages != t.homed {
		return nil, fmt.Errorf("checker: report names %d pages homed at node %d, it homed %d", r.HomedPages, y, t.homed)
	}
	if r.OnlyCopies != t.onlyCopies {
		return nil, fmt.Errorf("checker: report names %d pages homed at node %d whose only copy node %d held, the simulator counts %d", r.OnlyCopies, x, y, t.onlyCopies)
	}
	for _, id := range r.VCPUs {
		v := s.vcpus[id]
		if v.visited&(1<<y) == 0 || s.nodes[x].mig.Hosts(id) {
			return nil, fmt.Errorf("checker: report names vCPU %d, which never was at node %d or is at node %d", id, y, x)
		}
	}
	if s.reported == nil {
		s.reported, s.lostVCPUs = map[int][]migrate.VCPUID{}, map[int][]migrate.VCPUID{}
	}
	s.reported[y] = append(s.reported[y], r.VCPUs...)
	s.lostVCPUs[y] = append(s.lostVCPUs[y], t.vcpus...)
	return t.vcpus, nil
}

// finishFailures checks at the end of a run with failures that every
// vCPU lost with a node was reported by a survivor, for every node that
// all live nodes declared lost (with a partial cut the nodes that did
// not see it cannot report it) and none of them was told to stop before
// it found the loss itself (a told node reports nothing, as in dvm).
func (s *Sim) finishFailures() error {
	for y, lost := range s.lostVCPUs {
		all := true
		for x, nd := range s.nodes {
			if x != y && !nd.crashed && (!nd.gone[y] || nd.toldStop) {
				all = false
			}
		}
		if !all {
			continue
		}
		for _, v := range lost {
			if !slices.Contains(s.reported[y], v) {
				return fmt.Errorf("checker: vCPU %d went with node %d but no survivor reported it (reports %v)", v, y, s.reported[y])
			}
		}
	}
	return nil
}

// startWait records that vCPU v begins to wait (for a page, or in
// flight) and arms a watchdog one failure timeout plus the wait bound
// later: by then the wait must have ended, served or stopped.
func (s *Sim) startWait(v *vcpu) {
	v.waitFrom = s.now
	v.waits++
	s.schedule(event{at: s.now + s.cfg.FailureTimeoutNS + s.cfg.WaitBoundNS + 1, kind: evWatchdog, v: v.id, gen: v.waits})
}

// endWait records the end of vCPU v's wait (served, or stopped) and
// disarms its watchdog.
func (s *Sim) endWait(v *vcpu) {
	if d := s.now - v.waitFrom; d > s.res.MaxWaitNS {
		s.res.MaxWaitNS = d
	}
	v.waits++
}

// watchdog reports a wait of vCPU id that has not ended in time.
func (s *Sim) watchdog(id int, waits uint64) error {
	v := s.vcpus[id]
	if v.waits != waits || v.state != vBlocked && v.state != vFlight {
		return nil
	}
	what := fmt.Sprintf("page %d on node %d", v.page, v.node)
	if v.state == vFlight {
		what = fmt.Sprintf("its migration from node %d to node %d", v.from, v.to)
	}
	return fmt.Errorf("checker: vCPU %d has waited for %s since t=%dns, more than the failure timeout %d ns plus %d ns: hang (stopped nodes %v)",
		id, what, v.waitFrom, s.cfg.FailureTimeoutNS, s.cfg.WaitBoundNS, s.stoppedNodes())
}

func (s *Sim) stoppedNodes() []int {
	var out []int
	for _, st := range s.res.Stops {
		out = append(out, st.Node)
	}
	return out
}

// failed reports whether a node crashed or a share stopped.
func (s *Sim) failed() bool {
	return len(s.res.Crashes) > 0 || len(s.res.Stops) > 0
}
