package sim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim/workload"
)

// randomConfig derives a short, fault-injected run from a seed.
func randomConfig(seed uint64) Config {
	nodes := 2 + int(seed%3)
	gens := workload.All()
	wl := gens[int(seed/3)%len(gens)](workload.Params{VCPUs: nodes + int(seed%2), Length: 300, Seed: seed})
	var pol sched.Policy
	switch (seed / 7) % 3 {
	case 0:
		pol = sched.AlwaysPull{}
	case 1:
		pol = sched.AlwaysMove{}
	default:
		pol = sched.NewHysteresis(sched.DefaultHysteresis(sched.Costs{PullNS: 15_000, MoveNS: 16_000}), nodes, len(wl.Streams))
	}
	link := Links()[int(seed/5)%3]
	loss := []float64{0, 0.01, 0.05, 0.2}[(seed/11)%4]
	return Config{
		Seed: seed, Nodes: nodes, CoresPerNode: 1 + int(seed/13)%2, Link: link, Workload: wl, Policy: pol, StateSize: 256,
		Faults: Faults{Loss: loss, Dup: loss, Reorder: 2 * loss, Partitions: int(seed % 3), PartitionNS: 50_000,
			PartitionWindowNS: 20_000, EvictRate: []float64{0, 0.01, 0.05}[(seed/17)%3]},
		Interrupts: 10, Timers: true,
	}
}

// runSeeds runs config(seed) for seeds 1..seeds and sums what they did.
func runSeeds(t *testing.T, seeds int, config func(uint64) Config) Result {
	t.Helper()
	var tot Result
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		r, err := Run(config(seed))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		tot.RemoteFaults += r.RemoteFaults
		tot.Migrations += r.Migrations
		tot.Retransmits += r.Retransmits
		tot.Duplicates += r.Duplicates
		tot.Reads += r.Reads
		tot.InterruptsTaken += r.InterruptsTaken
		tot.TimersFired += r.TimersFired
		tot.Frames += r.Frames
		tot.Messages += r.Messages
		tot.HomesMoved += r.HomesMoved
		tot.Forwards += r.Forwards
	}
	return tot
}

func TestManySeeds(t *testing.T) {
	seeds := 4000
	if testing.Short() {
		seeds = 400
	}
	tot := runSeeds(t, seeds, randomConfig)
	// The runs must exercise what they claim to check.
	if tot.RemoteFaults == 0 || tot.Migrations == 0 || tot.Retransmits == 0 || tot.Duplicates == 0 || tot.InterruptsTaken == 0 || tot.TimersFired == 0 {
		t.Fatalf("fault injection or protocols not exercised: %+v", tot)
	}
	t.Logf("%d seeds: %d reads checked, %d remote faults, %d migrations, %d retransmissions, %d duplicates suppressed",
		seeds, tot.Reads, tot.RemoteFaults, tot.Migrations, tot.Retransmits, tot.Duplicates)
}

func TestSameSeedReplays(t *testing.T) {
	for _, seed := range []uint64{3, 42, 1234} {
		a, err := Run(randomConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(randomConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		if a.TraceHash != b.TraceHash || a.Events != b.Events || a.MakespanNS != b.MakespanNS || a.WireBytes != b.WireBytes {
			t.Fatalf("seed %d does not replay: %x/%d/%d vs %x/%d/%d", seed, a.TraceHash, a.Events, a.MakespanNS, b.TraceHash, b.Events, b.MakespanNS)
		}
		c := randomConfig(seed)
		c.Seed++
		other, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		if other.TraceHash == a.TraceHash {
			t.Fatalf("seeds %d and %d give the same trace hash", seed, seed+1)
		}
	}
}

// TestCheckerCatchesBrokenProtocols runs deliberately broken coherence
// protocols: the checker must report a violation, with the seed.
func TestCheckerCatchesBrokenProtocols(t *testing.T) {
	for _, mut := range []memory.Mutation{memory.MutationSkipInvalidate, memory.MutationDropWriteback} {
		caught := false
		for seed := uint64(1); seed <= 40 && !caught; seed++ {
			wl := workload.FalseSharing(workload.Params{VCPUs: 3, Length: 200, Seed: seed})
			if mut == memory.MutationSkipInvalidate {
				wl = workload.ReadShared(workload.Params{VCPUs: 3, Length: 300, Seed: seed})
				for v := range wl.Streams { // more writes than read-shared has
					for i := range wl.Streams[v] {
						wl.Streams[v][i].Write = i%7 == 0
					}
				}
			}
			_, err := Run(Config{Seed: seed, Nodes: 3, Workload: wl, Mutation: mut, Faults: Faults{EvictRate: 0.05}})
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("seed %d", seed)) {
					t.Fatalf("violation without its seed: %v", err)
				}
				caught = true
				t.Logf("mutation %d caught: %v", mut, err)
			}
		}
		if !caught {
			t.Errorf("mutation %d not caught in 40 seeds", mut)
		}
	}
}

// TestWorkingSetBeyondOneNode: three nodes, each allowed 16 (then 1)
// frames for copies, run six vCPUs that each sweep all 384 pages of the
// guest twice, writing and reading on every page, also over lossy,
// reordering links and with random evictions. Every node's working set is
// eight times (256 times) its budget: the run completes, the
// checker finds no lost write and no stale read, and no node ever holds
// more copy frames than its budget.
func TestWorkingSetBeyondOneNode(t *testing.T) {
	const budget = 16
	for _, b := range []int{budget, 1} {
		for _, f := range []Faults{{}, {Loss: 0.01, Reorder: 0.02, Dup: 0.01}, {EvictRate: 0.01}} {
			wl := workload.Sweep(workload.Params{VCPUs: 6, Length: 2 * 2 * 6 * 64, Seed: 1})
			r, err := Run(Config{Seed: 7, Nodes: 3, Workload: wl, CopyFrames: b, Faults: f, StateSize: 256})
			if err != nil {
				t.Fatalf("budget %d, faults %+v: %v", b, f, err)
			}
			if r.MaxCopyFrames > b {
				t.Errorf("budget %d, faults %+v: a node held %d copy frames", b, f, r.MaxCopyFrames)
			}
			if r.Reclaims == 0 || r.Writebacks == 0 || r.Writes == 0 {
				t.Errorf("budget %d, faults %+v: nothing reclaimed: %+v", b, f, r)
			}
			t.Logf("budget %d, loss %v, evict rate %v: %d reads and %d writes checked, %d remote faults, %d reclaims, %d writebacks, %d faults retried for room, at most %d copy frames; slowdown %.1f",
				b, f.Loss, f.EvictRate, r.Reads, r.Writes, r.RemoteFaults, r.Reclaims, r.Writebacks, r.NoRoom, r.MaxCopyFrames, r.Slowdown)
		}
	}
	// Without a bound the same sweep holds every page everywhere.
	wl := workload.Sweep(workload.Params{VCPUs: 6, Length: 2 * 2 * 6 * 64, Seed: 1})
	r, err := Run(Config{Seed: 7, Nodes: 3, Workload: wl, StateSize: 256})
	if err != nil || r.MaxCopyFrames <= budget || r.Reclaims != 0 {
		t.Fatalf("unbounded: %d copy frames, %d reclaims, %v", r.MaxCopyFrames, r.Reclaims, err)
	}
}

// TestCheckerCatchesBrokenProtocolsWithBudget: with copies bounded, the
// checker still catches a home that drops writebacks (reclaims write
// back constantly).
func TestCheckerCatchesBrokenProtocolsWithBudget(t *testing.T) {
	wl := workload.Sweep(workload.Params{VCPUs: 3, Length: 600, Seed: 1})
	if _, err := Run(Config{Seed: 1, Nodes: 3, Workload: wl, CopyFrames: 8, Mutation: memory.MutationDropWriteback}); err == nil {
		t.Fatal("dropped writebacks not caught")
	}
}

// TestLinkCosts: a pull on 10GbE is the exit, two latencies and the
// request and page frames on the wire; a move the state one way.
func TestLinkCosts(t *testing.T) {
	c := Link10G.Costs(4608)
	// Frames on the wire: (64+38)*8/10 = 81 ns, (4120+38)*8/10 = 3326 ns,
	// (4668+38)*8/10 = 3764 ns.
	if c.PullNS != 1000+2*5000+81+3326 || c.MoveNS != 2000+5000+3764 {
		t.Fatalf("10GbE costs %+v", c)
	}
}

// TestMovesGatherARing: under Sweep every vCPU faults on pages the next
// one wrote. Moving each to the next's node, all at once, sent them round
// the ring for good (7,999 migrations in 8,000 page visits); a vCPU that
// yields to the higher-numbered node's vCPUs (sched.Yields, as the real
// runtime does) lets them gather.
func TestMovesGatherARing(t *testing.T) {
	wl := workload.Sweep(workload.Params{VCPUs: 4, Length: 4000, Seed: 1})
	r, err := Run(Config{Seed: 1, Nodes: 4, Workload: wl, Policy: sched.AlwaysMove{}, StateSize: migrate.DefaultStateSize})
	if err != nil {
		t.Fatal(err)
	}
	if r.Migrations > 2000 {
		t.Errorf("always-move on sweep: %d migrations, slowdown %.2fx; want the vCPUs gathered, at most 2000", r.Migrations, r.Slowdown)
	}
	t.Logf("always-move on sweep: %d migrations, %d remote faults, slowdown %.2fx", r.Migrations, r.RemoteFaults, r.Slowdown)
}
