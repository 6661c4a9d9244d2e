package exits

import (
	"fmt"
	"strings"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// ExitStats counts VM exits by basic exit reason, and the TSC cycles
// spent handling them, in fixed arrays: recording allocates nothing. One
// ExitStats belongs to one vCPU (not safe for concurrent use).
type ExitStats struct {
	count  [vmx.NumExitReasons + 1]uint64 // last slot: reasons beyond the table
	cycles [vmx.NumExitReasons + 1]uint64
	total  uint64
}

func statSlot(r vmx.ExitReason) int {
	if int(r) < vmx.NumExitReasons {
		return int(r)
	}
	return vmx.NumExitReasons
}

// Record counts one exit with the given reason.
func (s *ExitStats) Record(r vmx.ExitReason) {
	s.count[statSlot(r)]++
	s.total++
}

// AddCycles adds handling time (TSC cycles) to reason r.
func (s *ExitStats) AddCycles(r vmx.ExitReason, cycles uint64) { s.cycles[statSlot(r)] += cycles }

// Count returns the number of exits with reason r (reasons outside the
// table share one counter).
func (s *ExitStats) Count(r vmx.ExitReason) uint64 { return s.count[statSlot(r)] }

// Cycles returns the cycles recorded for reason r.
func (s *ExitStats) Cycles(r vmx.ExitReason) uint64 { return s.cycles[statSlot(r)] }

// Total returns the number of exits recorded.
func (s *ExitStats) Total() uint64 { return s.total }

// Add merges o into s (for machine-wide totals).
func (s *ExitStats) Add(o *ExitStats) {
	for i := range s.count {
		s.count[i] += o.count[i]
		s.cycles[i] += o.cycles[i]
	}
	s.total += o.total
}

// Each calls f for every reason with exits, in reason order: its name
// ("other" for reasons beyond the table), its exits and their cycles.
func (s *ExitStats) Each(f func(reason string, count, cycles uint64)) {
	for i, n := range s.count {
		if n == 0 {
			continue
		}
		name := "other"
		if i < vmx.NumExitReasons {
			name = vmx.ExitReason(i).String()
		}
		f(name, n, s.cycles[i])
	}
}

// String lists the non-zero counters, one reason a line.
func (s *ExitStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d exits\n", s.total)
	s.Each(func(name string, n, cycles uint64) {
		fmt.Fprintf(&b, "%10d  %-40s %d cycles/exit\n", n, name, cycles/n)
	})
	return b.String()
}
