package sim

import (
	"testing"

	"github.com/big-iron/big-iron/sim/workload"
)

// TestMovingHomesHalveRemoteFaults: on Handoff (vCPU 0 touches every
// page first, then each vCPU works on its own region, larger than the
// copies its node may hold), homes that follow their users take at
// least half the remote faults away; every run passes the checker.
func TestMovingHomesHalveRemoteFaults(t *testing.T) {
	for _, nodes := range []int{2, 3} {
		wl := workload.Handoff(workload.Params{VCPUs: nodes, Length: 4000, Seed: 1})
		base := Config{Seed: 1, Nodes: nodes, Workload: wl, CopyFrames: 8, StateSize: 256}
		fixed, err := Run(base)
		if err != nil {
			t.Fatal(err)
		}
		moving := base
		moving.MoveAfter, moving.HomeRoom = 2, wl.Pages
		moved, err := Run(moving)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d nodes: remote faults %d with fixed homes, %d with moving homes (%d moved, %d passed on); makespan %.2fx",
			nodes, fixed.RemoteFaults, moved.RemoteFaults, moved.HomesMoved, moved.Forwards, float64(moved.MakespanNS)/float64(fixed.MakespanNS))
		if moved.HomesMoved == 0 || 2*moved.RemoteFaults > fixed.RemoteFaults {
			t.Errorf("%d nodes: moving homes left %d of %d remote faults (%d homes moved), want at most half", nodes, moved.RemoteFaults, fixed.RemoteFaults, moved.HomesMoved)
		}
	}
}

// TestMovingHomesManySeeds runs the fault-injected random configurations
// of TestManySeeds (loss, duplication, reordering, short partitions,
// evictions, migrations, interrupts) with homes that move on first
// touch and after runs of one to three requests: every run must pass
// the checker, and the sweep must move homes and pass requests on.
func TestMovingHomesManySeeds(t *testing.T) {
	seeds := 600
	if testing.Short() {
		seeds = 100
	}
	sweepMovingHomes(t, seeds, func(seed uint64) Config {
		cfg := randomConfig(seed)
		cfg.FirstTouch = seed%2 == 0
		cfg.MoveAfter = 1 + int(seed/2)%3
		cfg.HomeRoom = int(seed % 5 * 4) // 0: a node never takes a home
		if seed%3 == 0 {
			cfg.CopyFrames = 2
		}
		return cfg
	})
}

// sweepMovingHomes runs config(seed) for seeds 1..seeds (runSeeds) and
// fails if no home moved or no request was passed on.
func sweepMovingHomes(t *testing.T, seeds int, config func(uint64) Config) {
	t.Helper()
	tot := runSeeds(t, seeds, config)
	if tot.HomesMoved == 0 || tot.Forwards == 0 {
		t.Fatalf("sweep too tame: %d homes moved, %d requests passed on", tot.HomesMoved, tot.Forwards)
	}
	t.Logf("%d seeds: %d homes moved, %d requests passed on, %d reads checked", seeds, tot.HomesMoved, tot.Forwards, tot.Reads)
}

// TestMovingHomesRefuseCrashes: the loss report of a crash counts homes
// as each survivor knows them, which moving homes make stale.
func TestMovingHomesRefuseCrashes(t *testing.T) {
	cfg := randomConfig(1)
	cfg.MoveAfter = 2
	cfg.Faults.Crashes = []Crash{{Node: 1, AtNS: -1}}
	if _, err := Run(cfg); err == nil {
		t.Fatal("a run with moving homes and a crash was accepted")
	}
}

// TestMovingHomesRealTransport runs the moving-homes sweep over the real
// cluster transport (sealed frames, selective acks, its own timers) on
// lossy, duplicating, reordering links: homes move, old homes pass
// requests on, and every checker holds.
func TestMovingHomesRealTransport(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	sweepMovingHomes(t, seeds, func(seed uint64) Config {
		cfg := realConfig(seed)
		cfg.FirstTouch = seed%2 == 1
		cfg.MoveAfter = 1 + int(seed/2)%3
		cfg.HomeRoom = 16
		return cfg
	})
}
