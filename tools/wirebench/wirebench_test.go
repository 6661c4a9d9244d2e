//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/big-iron/big-iron/vmm/vcpu"
)

func TestFigureRoundTrip(t *testing.T) {
	f := Figure{Name: "write-fault", MTU: 9000, Size: 4096, Median: 19316 * time.Nanosecond,
		P99: 64482 * time.Nanosecond, Ratio: 4.39, PollRatio: 5.12, Allocs: 0.5, Rate: 38764, MBps: 158.8}
	line := f.String()
	want := "write-fault mtu=9000 size=4096 median=19.316µs p99=64.482µs ratio=4.39 pollratio=5.12 allocs=0.5 rate=38764/s tput=158.8MB/s"
	if line != want {
		t.Fatalf("String() = %q\nwant       %q", line, want)
	}
	g, err := ParseFigure(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("ParseFigure(%q) = %+v, want %+v", line, g, f)
	}
}

func TestParseFigureRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"floor mtu=1500",
		"floor mtu=x size=64 median=1µs p99=2µs ratio=1.00 pollratio=1.00 allocs=0.0 rate=1/s tput=1MB/s",
		"floor mtu=1500 size=64 median=1 p99=2µs ratio=1.00 pollratio=1.00 allocs=0.0 rate=1/s tput=1MB/s",
		"floor mtu=1500 size=64 median=1µs p99=2µs ratio=1.00 pollratio=1.00 allocs=0.0 rate=1/s speed=1MB/s",
		"floor mtu=1500 size=64 median=1µs p99=2µs ratio=1.00 pollratio=1.00 allocs 0.0 rate=1/s tput=1MB/s",
	} {
		if _, err := ParseFigure(line); err == nil {
			t.Errorf("ParseFigure(%q) succeeded", line)
		}
	}
}

func TestSampleFigure(t *testing.T) {
	var s sample
	for i := 1; i <= 100; i++ {
		s.lat = append(s.lat, time.Duration(101-i)*time.Microsecond)
	}
	s.allocs = 200
	f := s.figure("transport", 1500, 64, 10*time.Microsecond, 5*time.Microsecond)
	if f.Median != 50*time.Microsecond || f.P99 != 99*time.Microsecond {
		t.Errorf("median %v p99 %v, want 50µs 99µs", f.Median, f.P99)
	}
	if f.Ratio != 5 || f.PollRatio != 10 || f.Allocs != 2 {
		t.Errorf("ratio %v pollratio %v allocs %v, want 5, 10 and 2", f.Ratio, f.PollRatio, f.Allocs)
	}
}

func TestFrameSizes(t *testing.T) {
	for _, tc := range []struct {
		n, mtu int
		want   []int
	}{
		{64, 1500, []int{64}},
		{8, 1500, []int{64}},
		{1500, 1500, []int{1500}},
		{4096, 1500, []int{1500, 1500, 1096}},
		{3020, 1500, []int{1500, 1500, 64}},
		{4096, 9000, []int{4096}},
	} {
		if got := frameSizes(tc.n, tc.mtu); !slices.Equal(got, tc.want) {
			t.Errorf("frameSizes(%d, %d) = %v, want %v", tc.n, tc.mtu, got, tc.want)
		}
	}
	if got := floorSizes(1500); !slices.Equal(got, []int{64, 1500}) {
		t.Errorf("floorSizes(1500) = %v", got)
	}
	if got := floorName(shape{64, 4096}, false); got != "floor-64-4096" {
		t.Errorf("floorName = %q", got)
	}
	if got := floorName(shape{1500, 1500}, true); got != "pollfloor" {
		t.Errorf("floorName of the polled echo = %q", got)
	}
}

// TestFloorExchange runs the floor's two sides over a datagram socket
// pair, frames as datagrams: every shape's exchange completes, the
// answer's frames are those the exchange asked for, and the measuring
// side waits for all of them.
func TestFloorExchange(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	client, server := &rawSocket{fd: fds[0]}, &rawSocket{fd: fds[1]}
	defer client.close()
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	for _, fd := range fds {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
	}
	const mtu = 1500
	var stop atomic.Bool
	served := make(chan error, 1)
	go func() { served <- serveFloor(server, mtu, &stop) }()
	ma, mb := macs()
	for _, sh := range []shape{{64, 64}, {1500, 1500}, {64, 4096}, {4096, 64}, {3840, 64}} {
		e := newFloorExchange(client, mb, ma, sh.out, sh.back, mtu)
		if len(e.frames) != len(frameSizes(sh.out, mtu)) || e.nBack != len(frameSizes(sh.back, mtu)) {
			t.Errorf("%v: %d frames out, %d back", sh, len(e.frames), e.nBack)
		}
		for i := 0; i < 3; i++ {
			if err := e.run(); err != nil {
				t.Fatalf("%v: exchange %d: %v", sh, i, err)
			}
		}
	}
	// An exchange that waits for more frames than come back fails
	// when the read times out, instead of passing.
	e := newFloorExchange(client, mb, ma, 64, 64, mtu)
	e.nBack = 2
	if err := e.run(); err == nil {
		t.Errorf("an exchange missing a frame of its answer succeeded")
	}
	// The serving side sees stop at its next read's timeout; its socket
	// is closed after it returned, never under a read.
	stop.Store(true)
	if err := <-served; err != nil {
		t.Errorf("serving side: %v", err)
	}
	server.close()
}

// TestLinuxVCPUState: the migration figure's state is valid (the serving
// side decodes and validates it), as large as a Linux vCPU's with AVX and
// protection keys in use, and survives encoding.
func TestLinuxVCPUState(t *testing.T) {
	st := linuxVCPUState()
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	// The area's zero blocks (the room for AVX-512, the x87 registers)
	// stay home, the vector registers (512 bytes) travel.
	if st.XSAVELen != 2696 || st.Size() <= vcpu.MinEncodedSize+512 || st.Size() >= vcpu.MinEncodedSize+int(st.XSAVELen) {
		t.Errorf("XSAVE %d bytes, state %d bytes; want 2696 and %d-%d", st.XSAVELen, st.Size(), vcpu.MinEncodedSize+512, vcpu.MinEncodedSize+int(st.XSAVELen))
	}
	var back vcpu.State
	if err := back.UnmarshalBinary(st.MarshalAppend(nil)); err != nil || back != st {
		t.Errorf("round trip: %v (equal %v)", err, back == st)
	}
}

func TestNamespaceNames(t *testing.T) {
	a, b := pairNames(4242)
	if a != "wirebench-4242-a" || b != "wirebench-4242-b" {
		t.Fatalf("pairNames = %q, %q", a, b)
	}
	for name, want := range map[string]int{a: 4242, b: 4242, "wirebench-7-c": 0, "wirebench-x-a": 0,
		"wirebench--a": 0, "wirebench-0-a": 0, "other-7-a": 0, "bi-afp-7": 0} {
		if pid, ok := ownerPID(name); pid != want || ok != (want != 0) {
			t.Errorf("ownerPID(%q) = %d, %v", name, pid, ok)
		}
	}
}

func TestStale(t *testing.T) {
	out := "wirebench-10-a (id: 3)\nwirebench-10-b (id: 4)\nwirebench-11-a\nwirebench-12-b\nmine\n\n"
	names := parseNetnsList(out)
	if want := []string{"wirebench-10-a", "wirebench-10-b", "wirebench-11-a", "wirebench-12-b", "mine"}; !slices.Equal(names, want) {
		t.Fatalf("parseNetnsList = %q", names)
	}
	alive := func(pid int) bool { return pid == 11 }
	got := stale(names, 12, alive)
	if want := []string{"wirebench-10-a", "wirebench-10-b"}; !slices.Equal(got, want) {
		t.Fatalf("stale = %q, want %q (11 runs, 12 is this process)", got, want)
	}
	if !processAlive(os.Getpid()) {
		t.Error("processAlive(own pid) = false")
	}
}

// TestCleanup makes a namespace as a crashed run would have left it and
// checks that removeStale deletes it and nothing else.
func TestCleanup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("wirebench: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("wirebench: ip(8) not installed (iproute2)")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("wirebench: cannot run true(1):", err)
	}
	left, _ := pairNames(dead.Process.Pid)
	keep, _ := pairNames(os.Getpid())
	for _, ns := range []string{left, keep} {
		if _, err := ip("netns", "add", ns); err != nil {
			t.Skip("wirebench: cannot create a network namespace:", err)
		}
		t.Cleanup(func() { ip("netns", "del", ns) })
	}
	removed, err := removeStale(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, left) || slices.Contains(removed, keep) {
		t.Fatalf("removed %q; want %s removed and %s kept", removed, left, keep)
	}
	out, err := ip("netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	names := parseNetnsList(out)
	if slices.Contains(names, left) || !slices.Contains(names, keep) {
		t.Fatalf("namespaces after cleanup: %q", names)
	}
}

// TestMeasureKeepsStatsOutOfTiming checks that no read of the allocation
// counters (which stops the world) comes between a prepare step and the
// run it prepares, nor during the timed pass at all.
func TestMeasureKeepsStatsOutOfTiming(t *testing.T) {
	for _, withPrepare := range []bool{false, true} {
		reads, runs := 0, 0
		var readsAtRun []int
		s := series{warm: 3, n: 10, allocOps: 4,
			readStats: func(m *runtime.MemStats) { reads++ },
			run: func() error {
				runs++
				readsAtRun = append(readsAtRun, reads)
				return nil
			},
		}
		if withPrepare {
			s.prepare = func() error { return nil }
		}
		smp, err := measure(s)
		if err != nil {
			t.Fatal(err)
		}
		if runs != 3+10+4 || len(smp.lat) != 10 || smp.allocOps != 4 {
			t.Fatalf("prepare %v: %d runs, %d timed, %d counted; want 17, 10, 4", withPrepare, runs, len(smp.lat), smp.allocOps)
		}
		for i, r := range readsAtRun[:3+10] {
			if r != 0 {
				t.Fatalf("prepare %v: run %d (warm-up or timed) came after %d reads of the counters", withPrepare, i, r)
			}
		}
		if reads == 0 {
			t.Errorf("prepare %v: the counters were never read", withPrepare)
		}
	}
}

// allocSink keeps TestMeasureCountsAllocs' allocations on the heap.
var allocSink []*[64]byte

// TestMeasureCountsAllocs checks the allocation pass: an operation that
// allocates twice counts 2 per operation, its prepare step's allocations
// left out.
func TestMeasureCountsAllocs(t *testing.T) {
	s := series{warm: 1, n: 5, allocOps: 50,
		prepare: func() error { allocSink = append(allocSink[:0], new([64]byte)); return nil },
		run: func() error {
			allocSink = append(allocSink[:0], new([64]byte), new([64]byte))
			return nil
		},
	}
	allocSink = make([]*[64]byte, 0, 8)
	smp, err := measure(s)
	if err != nil {
		t.Fatal(err)
	}
	// The count is the process's: a goroutine an earlier test left
	// running may add a few (2.14 once, in a full go test ./...). The
	// prepare step's allocation counted would make it 3.
	if f := smp.figure("x", 1500, 64, 0, 0); f.Allocs < 2 || f.Allocs >= 2.5 {
		t.Errorf("allocs per operation %v, want 2", f.Allocs)
	}
}

// TestMeasureCountsPeerAllocs checks that the allocation pass adds the
// serving side's allocations, read around each run, and leaves out those
// of the prepare step.
func TestMeasureCountsPeerAllocs(t *testing.T) {
	var peer uint64
	s := series{warm: 1, n: 3, allocOps: 10,
		readStats:   func(*runtime.MemStats) {},
		prepare:     func() error { peer += 5; return nil },
		run:         func() error { peer += 3; return nil },
		peerMallocs: func() (uint64, error) { return peer, nil },
	}
	smp, err := measure(s)
	if err != nil {
		t.Fatal(err)
	}
	if f := smp.figure("x", 1500, 64, 0, 0); f.Allocs != 3 {
		t.Errorf("allocs per operation %v, want the peer's 3", f.Allocs)
	}
}

// TestShortRun builds wirebench, runs it with -short over a real veth
// pair and checks its report: every figure at both MTUs, each line as
// ParseFigure reads it, and no heap allocation per operation on either
// side of the transport, the faults and the migration (the hot path's
// rule). Latencies are not asserted: they belong to the benchmark.
func TestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("wirebench: a run over a veth pair (about 10 s); not with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("wirebench: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("wirebench: ip(8) not installed (iproute2)")
	}
	bin := filepath.Join(t.TempDir(), "wirebench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-short").Output()
	if err != nil {
		t.Fatalf("wirebench -short: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f, err := ParseFigure(line)
		if err != nil {
			t.Fatal(err)
		}
		seen[fmt.Sprintf("%s/%d/%d", f.Name, f.MTU, f.Size)] = true
		if f.Median <= 0 || f.P99 < f.Median || f.Ratio <= 0 || f.PollRatio <= 0 {
			t.Errorf("%q: median, p99 or ratio out of order", line)
		}
		if f.Allocs >= 0.5 {
			t.Errorf("%q: %.1f allocations per operation, want none", line, f.Allocs)
		}
	}
	for _, mtu := range []int{1500, 9000} {
		want := []string{"transport/%d/64", "transport/%d/4096", "write-fault/%d/4096", "read-fault/%d/4096",
			"floor-4096-64/%d/4096", "floor-64-4096/%d/4096", "pollfloor-4096-64/%d/4096", "pollfloor-64-4096/%d/4096"}
		for _, size := range floorSizes(mtu) {
			want = append(want, fmt.Sprintf("floor/%%d/%d", size), fmt.Sprintf("pollfloor/%%d/%d", size))
		}
		for _, w := range want {
			if k := fmt.Sprintf(w, mtu); !seen[k] {
				t.Errorf("no figure %s in the report:\n%s", k, out)
			}
		}
		if !hasPrefix(seen, fmt.Sprintf("migrate/%d/", mtu)) {
			t.Errorf("no migrate figure at MTU %d in the report:\n%s", mtu, out)
		}
		st := linuxVCPUState()
		size := st.Size()
		for _, name := range []string{"floor", "pollfloor"} {
			if k := fmt.Sprintf("%s-%d-64/%d/%d", name, size, mtu, size); !seen[k] {
				t.Errorf("no floor %s for the migration in the report:\n%s", k, out)
			}
		}
	}
}

// hasPrefix reports whether a key of m starts with p.
func hasPrefix(m map[string]bool, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// TestMeasureIdle checks -idle's gap: each timed run starts at least the
// idle time after its prepare step ended, and the gap is not timed.
func TestMeasureIdle(t *testing.T) {
	const idle = 3 * time.Millisecond
	var prepared time.Time
	var gaps []time.Duration
	s := series{warm: 1, n: 4, allocOps: 1, idle: idle,
		readStats: func(*runtime.MemStats) {},
		prepare:   func() error { prepared = time.Now(); return nil },
		run: func() error {
			gaps = append(gaps, time.Since(prepared))
			return nil
		},
	}
	smp, err := measure(s)
	if err != nil {
		t.Fatal(err)
	}
	timed := gaps[1 : 1+4] // after the warm-up, before the allocation pass
	for i, g := range timed {
		if g < idle {
			t.Errorf("timed run %d started %v after its prepare step, want at least %v", i, g, idle)
		}
	}
	for i, d := range smp.lat {
		if d >= idle {
			t.Errorf("timed run %d took %v: the idle gap was timed", i, d)
		}
	}
}
