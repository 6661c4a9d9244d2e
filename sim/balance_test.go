package sim

import (
	"testing"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/sched"
	"github.com/big-iron/big-iron/sim/workload"
)

// TestBalancerSpreadsAVMStartedOnOneNode: every vCPU starts on node 0 of
// four, one core each. Without a balancer they time-share node 0 to the
// end; a balancer moves them to idle nodes (checked by the consistency
// checker like any migration), and on private work the run ends about
// four times sooner.
func TestBalancerSpreadsAVMStartedOnOneNode(t *testing.T) {
	wl := workload.Private(workload.Params{VCPUs: 4, Length: 40000, Seed: 1})
	run := func(b sched.Balancer) Result {
		t.Helper()
		r, err := Run(Config{Seed: 1, Nodes: 4, CoresPerNode: 1, Workload: wl, Place: func(int) int { return 0 },
			Home: func(uint64) memory.NodeID { return 0 }, Balancer: b, Interrupts: 10, Timers: true})
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		return r
	}
	none := run(sched.NoBalance{})
	spread := run(sched.Spread{})
	t.Logf("private work started on node 0: none %.2fx (%d moves), spread %.2fx (%d moves, %d remote faults)",
		none.Slowdown, none.BalanceMoves, spread.Slowdown, spread.BalanceMoves, spread.RemoteFaults)
	if none.BalanceMoves != 0 || none.Slowdown < 3.5 {
		t.Errorf("without a balancer: %d moves, slowdown %.2fx, want 0 and about 4x", none.BalanceMoves, none.Slowdown)
	}
	if spread.BalanceMoves != 3 || spread.Migrations != 3 {
		t.Errorf("spread made %d moves (%d migrations), want 3: one to each idle node", spread.BalanceMoves, spread.Migrations)
	}
	if spread.Slowdown > none.Slowdown/2 {
		t.Errorf("spread %.2fx against none %.2fx: it did not pay", spread.Slowdown, none.Slowdown)
	}
	again := run(sched.Spread{})
	if again.TraceHash != spread.TraceHash {
		t.Error("a balanced run is not reproducible")
	}
}
