package sched

import "testing"

type fixedCluster struct{ load, cores int }

func (c fixedCluster) Load(int) int  { return c.load }
func (c fixedCluster) Cores(int) int { return c.cores }

func TestBaselines(t *testing.T) {
	f := Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true}
	c := fixedCluster{0, 1}
	if (AlwaysPull{}).Decide(f, c) != Pull {
		t.Error("always-pull moved")
	}
	if (AlwaysMove{}).Decide(f, c) != Move {
		t.Error("always-move pulled")
	}
	f.Target = 0
	if (AlwaysMove{}).Decide(f, c) != Pull {
		t.Error("always-move moved to its own node")
	}
}

func TestHysteresis(t *testing.T) {
	costs := Costs{PullNS: 10_000, MoveNS: 12_000}
	free := fixedCluster{0, 2}
	newH := func() *Hysteresis { return NewHysteresis(DefaultHysteresis(costs), 3, 2) }

	t.Run("clean pages are pulled", func(t *testing.T) {
		h := newH()
		for i := int64(0); i < 50; i++ {
			if h.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Page: uint64(i), Now: i * 100}, free) != Pull {
				t.Fatalf("fault %d on a clean page moved the vCPU", i)
			}
		}
	})
	t.Run("contended faults on one node move after a few", func(t *testing.T) {
		h := newH()
		moved := -1
		for i := 0; i < 10 && moved < 0; i++ {
			if h.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Now: int64(i) * 100}, free) == Move {
				moved = i
			}
		}
		// Margin 2 x 12 us over 10 us per pull: the third fault tips it.
		if moved != 2 {
			t.Fatalf("moved at fault %d, want 2", moved)
		}
	})
	t.Run("cooldown and no swap", func(t *testing.T) {
		h := newH()
		h.Migrated(0, 0, 1, 0)
		for i := 0; i < 10; i++ {
			if h.Decide(Fault{VCPU: 0, Node: 1, Target: 2, Dirty: true, Now: int64(i)}, free) == Move {
				t.Fatal("moved during cooldown")
			}
			if h.Decide(Fault{VCPU: 1, Node: 1, Target: 0, Dirty: true, Now: int64(i)}, free) == Move {
				t.Fatal("swapped back along a pair that just moved")
			}
		}
	})
	t.Run("full node", func(t *testing.T) {
		h := newH()
		for i := 0; i < 20; i++ {
			if h.Decide(Fault{VCPU: 0, Node: 0, Target: 1, Dirty: true, Now: int64(i)}, fixedCluster{2, 2}) == Move {
				t.Fatal("moved onto a node without a free core")
			}
		}
	})
	t.Run("scattered faults", func(t *testing.T) {
		h := newH()
		for i := 0; i < 40; i++ {
			tgt := 1 + i%2
			if h.Decide(Fault{VCPU: 0, Node: 0, Target: tgt, Dirty: true, Now: int64(i)}, free) == Move {
				t.Fatalf("moved at fault %d although faults split between two nodes", i)
			}
		}
	})
}

func TestSetCostsRescalesTheTimes(t *testing.T) {
	h := NewHysteresis(DefaultHysteresis(Costs{PullNS: 15_000, MoveNS: 30_000}), 2, 2)
	h.SetCosts(Costs{PullNS: 5_000_000, MoveNS: 10_000_000})
	got, want := h.Config(), DefaultHysteresis(Costs{PullNS: 5_000_000, MoveNS: 10_000_000})
	if got != want {
		t.Fatalf("after SetCosts: %+v, want %+v", got, want)
	}
}

// loads is a cluster with a load per node and two cores each.
type loads []int

func (l loads) Load(n int) int { return l[n] }
func (loads) Cores(int) int    { return 2 }

func TestYields(t *testing.T) {
	for _, tc := range []struct {
		self, target int
		load         loads
		want         bool
	}{
		{self: 0, target: 1, load: loads{1, 1}, want: true},       // the higher node's vCPU moves
		{self: 1, target: 0, load: loads{1, 1}, want: false},      // ... so this one may
		{self: 0, target: 1, load: loads{1, 0}, want: false},      // nobody there to move instead
		{self: 2, target: 3, load: loads{0, 0, 1, 2}, want: true}, // any higher node
	} {
		if got := Yields(tc.self, tc.target, tc.load); got != tc.want {
			t.Errorf("Yields(%d, %d, loads %v) = %v, want %v", tc.self, tc.target, tc.load, got, tc.want)
		}
	}
}
