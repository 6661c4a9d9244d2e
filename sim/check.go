package sim

import (
	"encoding/binary"
	"fmt"
)

// checker holds the simulation's ground truth and reports violations.
type checker struct {
	last     map[uint64]uint64 // word address -> token of the latest write
	token    uint64
	inFlight []bool
	expect   [][4]uint64 // per vCPU: interrupt vectors that must be pending
	raisedN  uint64
	pendingN uint64
	timerAt  []int64 // armed deadline, 0 if none
	fired    []bool
}

func newChecker(vcpus int) checker {
	return checker{last: map[uint64]uint64{}, inFlight: make([]bool, vcpus), expect: make([][4]uint64, vcpus),
		timerAt: make([]int64, vcpus), fired: make([]bool, vcpus)}
}

// write returns a fresh token for a write to gpa and records it as latest.
func (c *checker) write(gpa uint64) uint64 {
	c.token++
	c.last[gpa] = c.token
	return c.token
}

// read checks that a read of gpa returned the latest write.
func (c *checker) read(gpa, got uint64, node, v int) error {
	if want := c.last[gpa]; got != want {
		return fmt.Errorf("checker: vCPU %d on node %d read %#x = token %d, latest write is token %d (stale or lost write)", v, node, gpa, got, want)
	}
	return nil
}

func (c *checker) depart(v int) error {
	if c.inFlight[v] {
		return fmt.Errorf("checker: vCPU %d departs twice", v)
	}
	c.inFlight[v] = true
	return nil
}

// arrive checks a migrated vCPU: it was in flight, and its state is the
// one it left with (run position and identity).
func (c *checker) arrive(v, pc int, state []byte) error {
	if !c.inFlight[v] {
		return fmt.Errorf("checker: vCPU %d arrived without departing (duplicated vCPU)", v)
	}
	c.inFlight[v] = false
	if got := binary.LittleEndian.Uint64(state[0:]); got != uint64(pc) {
		return fmt.Errorf("checker: vCPU %d arrived with state of access %d, left at %d", v, got, pc)
	}
	if got := binary.LittleEndian.Uint64(state[8:]); got != uint64(v)^0x5eed {
		return fmt.Errorf("checker: vCPU %d arrived with another vCPU's state (%#x)", v, got)
	}
	return nil
}

func (c *checker) raised(int) { c.raisedN++ }

// interruptPending records that an interrupt raised by the test became
// pending at the vCPU's host.
func (c *checker) interruptPending(v int, vec uint8) error {
	c.pendingN++
	if c.pendingN > c.raisedN {
		return fmt.Errorf("checker: vCPU %d: interrupt %#x delivered more often than raised (duplicate)", v, vec)
	}
	c.pendingNoCount(v, vec)
	return nil
}

// pendingNoCount marks vec pending for v (LAPIC coalescing allowed).
func (c *checker) pendingNoCount(v int, vec uint8) {
	c.expect[v][vec/64] |= 1 << (vec % 64)
}

// takeInterrupt checks the vCPU takes only vectors that are pending.
func (c *checker) takeInterrupt(v int, vec uint8) error {
	b := uint64(1) << (vec % 64)
	if c.expect[v][vec/64]&b == 0 {
		return fmt.Errorf("checker: vCPU %d took interrupt %#x that was never raised for it (or twice)", v, vec)
	}
	c.expect[v][vec/64] &^= b
	return nil
}

func (c *checker) armTimer(v int, at int64) { c.timerAt[v] = at }

func (c *checker) timerFired(v int, now int64) {
	if c.fired[v] || c.timerAt[v] == 0 || now < c.timerAt[v] {
		c.fired[v] = false
		c.timerAt[v] = -1 // poison: reported by final
		return
	}
	c.fired[v] = true
}

// timersNotEarly checks that no timer fired early or twice.
func (c *checker) timersNotEarly() error {
	for v, at := range c.timerAt {
		if at < 0 {
			return fmt.Errorf("checker: vCPU %d timer fired early or twice", v)
		}
	}
	return nil
}

func (c *checker) final() error {
	if c.pendingN != c.raisedN {
		return fmt.Errorf("checker: %d interrupts raised, %d reached their vCPU (lost interrupt)", c.raisedN, c.pendingN)
	}
	for v, e := range c.expect {
		if e != [4]uint64{} {
			return fmt.Errorf("checker: vCPU %d ended with interrupts %x pending but never taken (lost from its IRR)", v, e)
		}
	}
	for v, at := range c.timerAt {
		if at < 0 {
			return fmt.Errorf("checker: vCPU %d timer fired early or twice", v)
		}
		if at > 0 && !c.fired[v] {
			return fmt.Errorf("checker: vCPU %d timer armed for %d never fired", v, at)
		}
	}
	for v, f := range c.inFlight {
		if f {
			return fmt.Errorf("checker: vCPU %d still in flight at the end (lost vCPU)", v)
		}
	}
	return nil
}
