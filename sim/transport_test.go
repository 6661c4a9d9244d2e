package sim

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/sim/workload"
)

// realConfig is randomConfig's run over the cluster transport: no
// partition as long as the failure timeout (none is drawn that long).
func realConfig(seed uint64) Config {
	c := randomConfig(seed)
	c.RealTransport = true
	return c
}

// TestRealTransport runs the protocols over the real cluster transport
// (sealed frames, fragments, selective acks, its own retransmission
// timer and send queue) on lossy, duplicating, reordering links with
// short partitions: every checker holds, as over the simulator's own
// reliable layer (issue 16, finding 11: the simulator used its own
// delivery layer only).
func TestRealTransport(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	if n, err := strconv.Atoi(os.Getenv("BIGIRON_SIM_SEEDS")); err == nil {
		seeds = n
	}
	tot := runSeeds(t, seeds, realConfig)
	if tot.RemoteFaults == 0 || tot.Migrations == 0 || tot.Retransmits == 0 || tot.Duplicates == 0 {
		t.Fatalf("protocols or faults not exercised: %+v", tot)
	}
	t.Logf("%d seeds: %d reads checked, %d remote faults, %d migrations, %d messages in %d frames, %d retransmissions, %d duplicates suppressed",
		seeds, tot.Reads, tot.RemoteFaults, tot.Migrations, tot.Messages, tot.Frames, tot.Retransmits, tot.Duplicates)
}

// TestRealTransportReplays: the cluster transport is deterministic under
// the virtual clock, so a seed still replays exactly.
func TestRealTransportReplays(t *testing.T) {
	for _, seed := range []uint64{5, 77} {
		a, err := Run(realConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(realConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		if a.TraceHash != b.TraceHash || a.Events != b.Events {
			t.Fatalf("seed %d does not replay: %x/%d vs %x/%d", seed, a.TraceHash, a.Events, b.TraceHash, b.Events)
		}
	}
}

// TestRealTransportRefusesCrashes: what it does not model is refused,
// saying so.
func TestRealTransportRefusesCrashes(t *testing.T) {
	c := realConfig(1)
	c.Faults.Crashes = []Crash{{Node: 1, AtNS: 1000}}
	if _, err := Run(c); err == nil || !strings.Contains(err.Error(), "RealTransport models no crashes") {
		t.Fatalf("a crash over the real transport: %v", err)
	}
}

// TestRealTransportSweep: the sweep larger than every node's copy budget
// (TestWorkingSetBeyondOneNode) over the cluster transport, whose send
// queue fills with the bursts of write-backs and invalidations reclaim
// makes; and a mutated protocol is still caught over it.
func TestRealTransportSweep(t *testing.T) {
	for _, f := range []Faults{{}, {Loss: 0.01, Reorder: 0.02, Dup: 0.01}} {
		wl := workload.Sweep(workload.Params{VCPUs: 6, Length: 2 * 2 * 6 * 64, Seed: 1})
		r, err := Run(Config{Seed: 7, Nodes: 3, Workload: wl, CopyFrames: 4, Faults: f, StateSize: 256, RealTransport: true})
		if err != nil {
			t.Fatalf("faults %+v: %v", f, err)
		}
		if r.MaxCopyFrames > 4 || r.Reclaims == 0 || r.Writebacks == 0 {
			t.Errorf("faults %+v: %d copy frames at most, %d reclaims, %d write-backs", f, r.MaxCopyFrames, r.Reclaims, r.Writebacks)
		}
		t.Logf("loss %v: %d reads and %d writes checked, %d messages in %d frames, %d retransmissions; slowdown %.1f",
			f.Loss, r.Reads, r.Writes, r.Messages, r.Frames, r.Retransmits, r.Slowdown)
	}
	wl := workload.Sweep(workload.Params{VCPUs: 3, Length: 600, Seed: 1})
	if _, err := Run(Config{Seed: 1, Nodes: 3, Workload: wl, CopyFrames: 8, Mutation: memory.MutationDropWriteback, RealTransport: true}); err == nil {
		t.Fatal("dropped writebacks not caught over the real transport")
	}
}
