package exits

import (
	"fmt"
	"sort"
)

// MSRHandler emulates one or more MSRs for one vCPU's accesses. Read
// returns ok=false and Write returns false to make the access raise #GP
// in the guest (reserved bits, read-only MSR, ...). vcpu identifies the
// accessing vCPU for per-vCPU MSRs.
type MSRHandler interface {
	ReadMSR(vcpu int, msr uint32) (value uint64, ok bool)
	WriteMSR(vcpu int, msr uint32, value uint64) (ok bool)
}

type msrEntry struct {
	first, last uint32
	h           MSRHandler
	name        string
}

// MSRTable maps MSR indexes to handlers; lookup is a binary search over
// the registered ranges. An MSR no handler claims raises #GP, as on real
// hardware for an unimplemented MSR. Register before the vCPUs start.
type MSRTable struct {
	entries []msrEntry // sorted, non-overlapping
}

// NewMSRTable returns an empty table.
func NewMSRTable() *MSRTable { return &MSRTable{} }

// Register gives MSRs first..last (inclusive) to h.
func (t *MSRTable) Register(first, last uint32, name string, h MSRHandler) error {
	if last < first {
		return fmt.Errorf("msr table: %s: range %#x-%#x is empty", name, first, last)
	}
	if h == nil {
		return fmt.Errorf("msr table: %s: nil handler", name)
	}
	i := sort.Search(len(t.entries), func(i int) bool { return t.entries[i].last >= first })
	if i < len(t.entries) && t.entries[i].first <= last {
		e := t.entries[i]
		return fmt.Errorf("msr table: %s: range %#x-%#x overlaps %s (%#x-%#x)", name, first, last, e.name, e.first, e.last)
	}
	t.entries = append(t.entries, msrEntry{})
	copy(t.entries[i+1:], t.entries[i:])
	t.entries[i] = msrEntry{first: first, last: last, h: h, name: name}
	return nil
}

func (t *MSRTable) lookup(msr uint32) MSRHandler {
	lo, hi := 0, len(t.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.entries[m].last < msr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.entries) && t.entries[lo].first <= msr {
		return t.entries[lo].h
	}
	return nil
}

// Read performs a guest RDMSR; ok=false means inject #GP.
func (t *MSRTable) Read(vcpu int, msr uint32) (uint64, bool) {
	h := t.lookup(msr)
	if h == nil {
		return 0, false
	}
	return h.ReadMSR(vcpu, msr)
}

// Write performs a guest WRMSR; false means inject #GP.
func (t *MSRTable) Write(vcpu int, msr uint32, v uint64) bool {
	h := t.lookup(msr)
	if h == nil {
		return false
	}
	return h.WriteMSR(vcpu, msr, v)
}

// Name returns the name of the handler of msr, or "".
func (t *MSRTable) Name(msr uint32) string {
	for _, e := range t.entries {
		if e.first <= msr && msr <= e.last {
			return e.name
		}
	}
	return ""
}
