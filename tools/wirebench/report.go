//go:build linux

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Figure is one measured line of the report.
type Figure struct {
	// Name says what was measured: floor, transport, write-fault,
	// read-fault or migrate.
	Name string
	// MTU is the link's MTU and Size the bytes one operation carries.
	MTU, Size int
	// Median and P99 are the operation's latency percentiles.
	Median, P99 time.Duration
	// Ratio is Median over the floor's median for the same shape, and
	// PollRatio over the polled floor's (pollfloor.go).
	Ratio, PollRatio float64
	// Allocs is heap allocations per operation, both sides together.
	Allocs float64
	// Rate is operations per second with one operation outstanding, and
	// MBps the bytes of Size they move per second (10^6 bytes).
	Rate, MBps float64
}

// String formats f as one line of the report:
//
//	NAME mtu=N size=B median=D p99=D ratio=R pollratio=R allocs=A rate=N/s tput=X.XMB/s
func (f Figure) String() string {
	return fmt.Sprintf("%s mtu=%d size=%d median=%v p99=%v ratio=%.2f pollratio=%.2f allocs=%.1f rate=%.0f/s tput=%.1fMB/s",
		f.Name, f.MTU, f.Size, f.Median, f.P99, f.Ratio, f.PollRatio, f.Allocs, f.Rate, f.MBps)
}

// ParseFigure reads a line String wrote.
func ParseFigure(line string) (Figure, error) {
	fields := strings.Fields(line)
	if len(fields) != 10 {
		return Figure{}, fmt.Errorf("wirebench: %d fields in %q, want 10", len(fields), line)
	}
	f := Figure{Name: fields[0]}
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Figure{}, fmt.Errorf("wirebench: field %q has no value", kv)
		}
		if err := f.set(k, v); err != nil {
			return Figure{}, fmt.Errorf("wirebench: field %q: %w", kv, err)
		}
	}
	return f, nil
}

// set parses the value of field k into f.
func (f *Figure) set(k, v string) error {
	var err error
	switch k {
	case "mtu":
		f.MTU, err = strconv.Atoi(v)
	case "size":
		f.Size, err = strconv.Atoi(v)
	case "median":
		f.Median, err = time.ParseDuration(v)
	case "p99":
		f.P99, err = time.ParseDuration(v)
	case "ratio":
		f.Ratio, err = strconv.ParseFloat(v, 64)
	case "pollratio":
		f.PollRatio, err = strconv.ParseFloat(v, 64)
	case "allocs":
		f.Allocs, err = strconv.ParseFloat(v, 64)
	case "rate":
		f.Rate, err = strconv.ParseFloat(strings.TrimSuffix(v, "/s"), 64)
	case "tput":
		f.MBps, err = strconv.ParseFloat(strings.TrimSuffix(v, "MB/s"), 64)
	default:
		err = fmt.Errorf("unknown key %q", k)
	}
	return err
}

// sample is the outcome of one measured series.
type sample struct {
	lat      []time.Duration // one per operation
	allocs   uint64          // heap allocations of allocOps operations
	allocOps int             // operations allocs counts (0: len(lat))
}

// figure summarizes s as the figure called name for operations of size
// bytes at mtu; floor and pollFloor are the floors' medians for the same
// shape (0: none, that ratio is 1).
func (s sample) figure(name string, mtu, size int, floor, pollFloor time.Duration) Figure {
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	f := Figure{Name: name, MTU: mtu, Size: size}
	if len(lat) == 0 {
		return f
	}
	f.Median = percentile(lat, 50)
	f.P99 = percentile(lat, 99)
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	f.Rate = float64(len(lat)) / total.Seconds()
	f.MBps = f.Rate * float64(size) / 1e6
	ops := s.allocOps
	if ops == 0 {
		ops = len(lat)
	}
	f.Allocs = float64(s.allocs) / float64(ops)
	f.Ratio, f.PollRatio = 1, 1
	if floor > 0 {
		f.Ratio = float64(f.Median) / float64(floor)
	}
	if pollFloor > 0 {
		f.PollRatio = float64(f.Median) / float64(pollFloor)
	}
	return f
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
