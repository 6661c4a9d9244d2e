package sim

import "testing"

// TestLoadCountsVCPUsOnTheirWay: a vCPU in flight counts at its
// destination for the node that sent it (migrate.Migrator.Location) and
// for the balancer, but not for other nodes, which learn of the move
// later: a policy that saw the destination's core free would otherwise
// send a second vCPU of its own to it before the first landed.
func TestLoadCountsVCPUsOnTheirWay(t *testing.T) {
	s := &Sim{vcpus: []*vcpu{
		{id: 0, node: 0, state: vRunning},
		{id: 1, node: 0, state: vBlocked},
		{id: 2, node: -1, state: vFlight, from: 0, to: 1},
		{id: 3, node: 1, state: vDone},
	}}
	for _, tc := range []struct{ node, self, want int }{
		{0, 0, 2}, {1, 0, 1}, {1, -1, 1}, {1, 2, 0}, {1, 1, 0},
	} {
		if got := s.load(tc.node, tc.self); got != tc.want {
			t.Errorf("node %d as node %d sees it: load %d, want %d", tc.node, tc.self, got, tc.want)
		}
	}
}
