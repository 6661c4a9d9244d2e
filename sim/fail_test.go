package sim

import (
	"slices"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim/workload"
)

// failSeeds is the number of seeds of each failure scenario.
const failSeeds = 40

// failConfig is a run of seed with a failure: three nodes (two for cuts)
// sharing a mixed workload over a lossy link, the policy drawn from the
// seed.
func failConfig(seed uint64, nodes int) Config {
	wl := workload.Mixed(workload.Params{VCPUs: nodes + 1, Length: 300, Seed: seed})
	pols := []sched.Policy{sched.AlwaysPull{}, sched.AlwaysMove{}}
	return Config{Seed: seed, Nodes: nodes, Workload: wl, Policy: pols[seed%2], StateSize: 256,
		Faults: Faults{Loss: 0.01, Dup: 0.01, Reorder: 0.02, EvictRate: 0.01}, Interrupts: 10, Timers: true}
}

// stopStats summarises the stops of a set of runs.
type stopStats struct {
	runs, stops, onlyCopies, lostVCPUs, overReported int
	maxDelay, maxWait                                int64
}

// add checks the stops of r: every live node other than the lost one
// stopped, exactly one failure timeout after the loss began, and no
// vCPU waited longer than the timeout plus the bound.
func (st *stopStats) add(t *testing.T, cfg Config, r Result, wantStops int) {
	t.Helper()
	st.runs++
	if len(r.Stops) != wantStops {
		t.Fatalf("seed %d: %d stops, want %d: %+v", cfg.Seed, len(r.Stops), wantStops, r.Stops)
	}
	ft := int64(1_000_000)
	lost := map[migrate.VCPUID]bool{}
	for _, s := range r.Stops {
		st.stops++
		st.onlyCopies += s.Report.OnlyCopies
		for _, v := range s.Lost {
			lost[v] = true
		}
		for _, v := range s.Report.VCPUs {
			if !slices.Contains(s.Lost, v) {
				st.overReported++
			}
		}
		if d := s.At - s.SilentSince; d != ft {
			t.Fatalf("seed %d: node %d stopped %d ns after the loss began, want the failure timeout %d", cfg.Seed, s.Node, d, ft)
		}
		st.maxDelay = max(st.maxDelay, s.At-s.SilentSince)
	}
	st.maxWait = max(st.maxWait, r.MaxWaitNS)
	st.lostVCPUs += len(lost)
}

func (st *stopStats) log(t *testing.T) {
	t.Helper()
	t.Logf("%d runs, %d stops: failure to stop %d ns; longest vCPU wait %d ns (bound: timeout 1000000 + %d); reports name %d only copies; %d vCPUs lost; reports also name %d vCPUs that were not (stale locations)",
		st.runs, st.stops, st.maxDelay, st.maxWait, 20*(&Config{Link: Link10G, StateSize: 256}).rto(), st.onlyCopies, st.lostVCPUs, st.overReported)
}

// mustCatch runs the configuration mk makes with each loss-report
// mutation, and with failure detection off: the checker must report
// every one. (mk makes a fresh policy for each run.)
func mustCatch(t *testing.T, mk func() Config, muts ...lossMutation) {
	t.Helper()
	cfg := mk()
	for _, m := range muts {
		c := mk()
		c.lossMutation = m
		if _, err := Run(c); err == nil || !strings.Contains(err.Error(), "report") {
			t.Fatalf("seed %d: loss report mutation %d not caught: %v", cfg.Seed, m, err)
		}
	}
	c := mk()
	c.noDetect = true
	c.MaxEvents = 2_000_000
	if _, err := Run(c); err == nil || !strings.Contains(err.Error(), "hang") {
		t.Fatalf("seed %d: no failure detection, yet no hang reported: %v", cfg.Seed, err)
	}
}

// TestCrashOfHomeNode crashes a node (homing a third of the pages, and
// hosting vCPUs or holding Modified copies) at a random time: both
// survivors stop the VM one failure timeout later with a report that
// matches the ground truth, nothing waits longer, and every read before
// was up to date.
func TestCrashOfHomeNode(t *testing.T) {
	var st stopStats
	for seed := uint64(1); seed <= failSeeds; seed++ {
		cfg := failConfig(seed, 3)
		cfg.Faults.Crashes = []Crash{{Node: -1, AtNS: -1}}
		cfg.Faults.CrashWindowNS = 150_000
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st.add(t, cfg, r, 2)
		if r.Crashes[0].Homed == 0 {
			t.Fatalf("seed %d: crashed node homed no page", seed)
		}
		if seed <= 3 {
			mustCatch(t, func() Config { return cfg }, lossHomedOffByOne, lossOnlyCopiesOffByOne)
		}
	}
	st.log(t)
	if st.onlyCopies == 0 || st.lostVCPUs == 0 {
		t.Fatalf("no only copy or no vCPU lost in %d seeds: scenario not exercised", failSeeds)
	}
}

// readThenMove pulls pages until vCPU v has faulted after times, then
// moves it to the page's holder.
type readThenMove struct {
	v, after, n int
}

func (*readThenMove) Name() string { return "read-then-move" }
func (p *readThenMove) Decide(f sched.Fault, _ sched.Cluster) sched.Decision {
	if f.VCPU != p.v {
		return sched.Pull
	}
	p.n++
	if p.n > p.after {
		return sched.Move
	}
	return sched.Pull
}
func (*readThenMove) Migrated(int, int, int, int64) {}

// TestCrashOfSharedOnlyNode crashes a node that homes no page and, when
// it crashes, hosts no vCPU and holds only Shared copies (its vCPU read
// shared pages, then moved to their home): nothing went with it, the
// survivors' reports say so, and the VM still stops (the real system
// has no way to drop a node from sharer sets): a write by vCPU 0 waits
// for the crashed node's invalidation acknowledgement until then.
func TestCrashOfSharedOnlyNode(t *testing.T) {
	var st stopStats
	for seed := uint64(1); seed <= failSeeds; seed++ {
		mk := func() Config {
			wl := workload.ReadShared(workload.Params{VCPUs: 3, Length: 3000, Seed: seed})
			wl.Streams[2] = wl.Streams[2][:300]
			for i := range wl.Streams[2] {
				wl.Streams[2][i].Write = false
			}
			for i := range wl.Streams[0] {
				wl.Streams[0][i].Write = i%3 == 0 // invalidates the crashed node's copies
			}
			return Config{Seed: seed, Nodes: 3, Workload: wl, Policy: &readThenMove{v: 2, after: 5}, StateSize: 256,
				Home:   func(p uint64) memory.NodeID { return memory.NodeID(p % 2) },
				Faults: Faults{Loss: 0.01, Crashes: []Crash{{Node: 2, When: CrashEmpty}}}}
		}
		cfg := mk()
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st.add(t, cfg, r, 2)
		c := r.Crashes[0]
		if c.Homed != 0 || c.Modified != 0 || len(c.VCPUs) != 0 || len(c.InFlight) != 0 || c.Shared == 0 {
			t.Fatalf("seed %d: crashed node held more or less than Shared copies: %+v", seed, c)
		}
		for _, s := range r.Stops {
			if s.Report.HomedPages != 0 || s.Report.OnlyCopies != 0 || len(s.Lost) != 0 {
				t.Fatalf("seed %d: report %v for a node with only Shared copies", seed, &s.Report)
			}
		}
		if seed <= 3 {
			mustCatch(t, mk, lossHomedOffByOne, lossOnlyCopiesOffByOne)
		}
	}
	st.log(t)
}

// TestCrashMidMigration crashes the source or destination of a vCPU
// migration while the vCPU is in flight: the vCPU is lost, some survivor
// reports it, and the survivors stop in time.
func TestCrashMidMigration(t *testing.T) {
	var st stopStats
	for seed := uint64(1); seed <= failSeeds; seed++ {
		cfg := failConfig(seed, 3)
		cfg.Policy = sched.AlwaysMove{}
		cfg.Faults.Crashes = []Crash{{Node: -1, AtNS: -1, When: CrashInFlight}}
		cfg.Faults.CrashWindowNS = 100_000
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Crashes) == 0 {
			continue // no migration touched the node after the time drawn
		}
		st.add(t, cfg, r, 2)
		if len(r.Crashes[0].InFlight) == 0 {
			t.Fatalf("seed %d: crash with no vCPU in flight: %+v", seed, r.Crashes[0])
		}
		if seed <= 3 {
			mustCatch(t, func() Config { return cfg }, lossHomedOffByOne, lossNoVCPUs)
		}
	}
	st.log(t)
	if st.runs < failSeeds/2 {
		t.Fatalf("only %d of %d runs crashed mid-migration", st.runs, failSeeds)
	}
}

// TestCutShorterThanTimeout cuts the link of two nodes for half the
// failure timeout: the reliable layer retransmits once it heals, no
// node is declared lost, every vCPU finishes and no write is lost.
func TestCutShorterThanTimeout(t *testing.T) {
	var maxWait int64
	for seed := uint64(1); seed <= failSeeds; seed++ {
		cfg := failConfig(seed, 2+int(seed%2))
		cfg.Faults.Cuts = []Cut{{A: 0, B: 1, AtNS: int64(seed%5) * 10_000, ForNS: 500_000}}
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Stops) != 0 || r.Retransmits == 0 {
			t.Fatalf("seed %d: %d stops, %d retransmissions", seed, len(r.Stops), r.Retransmits)
		}
		maxWait = max(maxWait, r.MaxWaitNS)
	}
	if maxWait < 400_000 {
		t.Fatalf("longest wait %d ns: the cut held nothing up", maxWait)
	}
	t.Logf("%d seeds: longest vCPU wait %d ns across a 500000 ns cut", failSeeds, maxWait)
}

// TestCutLongerThanTimeout cuts the only link of two nodes for three
// failure timeouts: each declares the other lost and stops its share one
// timeout after the cut, with a report of what it cannot reach.
func TestCutLongerThanTimeout(t *testing.T) {
	var st stopStats
	for seed := uint64(1); seed <= failSeeds; seed++ {
		cfg := failConfig(seed, 2)
		cfg.Faults.Cuts = []Cut{{A: 0, B: 1, AtNS: int64(seed%5) * 10_000, ForNS: 3_000_000}}
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st.add(t, cfg, r, 2)
		if seed <= 3 {
			mustCatch(t, func() Config { return cfg }, lossHomedOffByOne, lossOnlyCopiesOffByOne)
		}
	}
	st.log(t)
}

// TestPartialCutStopsThirdNode: the link between two of three nodes is
// cut for longer than the failure timeout; those two declare each other
// lost and stop their shares, and each tells the third (dvm.OpStop with
// dvm.StopNodeLost, as dvm.Plane.NodeLost does; the model mirrors dvm),
// which stops at once, without a loss report of its own, instead of
// waiting for pages and migrations for ever. Before the fix the third
// node hung (issue 16) and the checker reported it.
func TestPartialCutStopsThirdNode(t *testing.T) {
	const cutAt, ft = 20_000, 1_000_000
	for seed := uint64(1); seed <= 10; seed++ {
		cfg := failConfig(seed, 3)
		cfg.Workload = workload.Mixed(workload.Params{VCPUs: 4, Length: 20_000, Seed: seed}) // node 2 outlives the timeout
		cfg.Faults.Cuts = []Cut{{A: 0, B: 1, AtNS: cutAt, ForNS: 3_000_000}}
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Stops) != 3 {
			t.Fatalf("seed %d: %d stops, want 3: %+v", seed, len(r.Stops), r.Stops)
		}
		bound := int64(cutAt + ft + (&Config{Link: Link10G, StateSize: 256}).rto())
		for _, st := range r.Stops {
			switch {
			case st.Node < 2 && (st.ToldBy != -1 || int(st.Report.Node) != 1-st.Node):
				t.Fatalf("seed %d: node %d stopped %+v, want on its own for the loss of node %d", seed, st.Node, st, 1-st.Node)
			case st.Node == 2 && (st.ToldBy < 0 || st.ToldBy > 1 || int(st.Report.Node) != 1-st.ToldBy):
				t.Fatalf("seed %d: node 2 stopped %+v, want told by node 0 or 1 of the other's loss", seed, st)
			case st.Node == 2 && st.At > bound:
				t.Fatalf("seed %d: node 2 stopped at %d ns, more than one retransmission timeout after the loss (%d)", seed, st.At, bound)
			}
		}
		if seed == 1 {
			t.Logf("seed %d: stops %+v; longest vCPU wait %d ns", seed, r.Stops, r.MaxWaitNS)
		}
	}
}

// TestFailureReplays checks that a run with a drawn crash and a cut
// replays exactly from its seed.
func TestFailureReplays(t *testing.T) {
	for _, seed := range []uint64{5, 17} {
		mk := func() Config {
			cfg := failConfig(seed, 3)
			cfg.Faults.Crashes = []Crash{{Node: -1, AtNS: -1}}
			cfg.Faults.Cuts = []Cut{{A: 0, B: 1, AtNS: 5_000, ForNS: 200_000}}
			return cfg
		}
		a, err := Run(mk())
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(mk())
		if err != nil {
			t.Fatal(err)
		}
		if a.TraceHash != b.TraceHash || a.Events != b.Events || len(a.Stops) != len(b.Stops) || a.Crashes[0].At != b.Crashes[0].At {
			t.Fatalf("seed %d does not replay: %x/%d vs %x/%d", seed, a.TraceHash, a.Events, b.TraceHash, b.Events)
		}
	}
}
