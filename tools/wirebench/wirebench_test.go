//go:build linux

package main

import (
	"os"
	"os/exec"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestFigureRoundTrip(t *testing.T) {
	f := Figure{Name: "write-fault", MTU: 9000, Size: 4096, Median: 19316 * time.Nanosecond,
		P99: 64482 * time.Nanosecond, Ratio: 4.39, Allocs: 0.5, Rate: 38764, MBps: 158.8}
	line := f.String()
	want := "write-fault mtu=9000 size=4096 median=19.316µs p99=64.482µs ratio=4.39 allocs=0.5 rate=38764/s tput=158.8MB/s"
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
		"floor mtu=x size=64 median=1µs p99=2µs ratio=1.00 allocs=0.0 rate=1/s tput=1MB/s",
		"floor mtu=1500 size=64 median=1 p99=2µs ratio=1.00 allocs=0.0 rate=1/s tput=1MB/s",
		"floor mtu=1500 size=64 median=1µs p99=2µs ratio=1.00 allocs=0.0 rate=1/s speed=1MB/s",
		"floor mtu=1500 size=64 median=1µs p99=2µs ratio=1.00 allocs 0.0 rate=1/s tput=1MB/s",
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
	f := s.figure("transport", 1500, 64, 10*time.Microsecond)
	if f.Median != 50*time.Microsecond || f.P99 != 99*time.Microsecond {
		t.Errorf("median %v p99 %v, want 50µs 99µs", f.Median, f.P99)
	}
	if f.Ratio != 5 || f.Allocs != 2 {
		t.Errorf("ratio %v allocs %v, want 5 and 2", f.Ratio, f.Allocs)
	}
}

func TestFloorFor(t *testing.T) {
	floors := map[int]time.Duration{64: 1, 1500: 2, 4096: 3, 9000: 4}
	for size, want := range map[int]time.Duration{64: 1, 65: 2, 1308: 2, 4096: 3, 9000: 4, 65536: 4} {
		if got := floorFor(floors, size); got != want {
			t.Errorf("floorFor(%d) = %v, want %v", size, got, want)
		}
	}
	if got := floorSizes(1500); !slices.Equal(got, []int{64, 1500}) {
		t.Errorf("floorSizes(1500) = %v", got)
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
