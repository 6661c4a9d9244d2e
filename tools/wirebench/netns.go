//go:build linux

package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/big-iron/big-iron/machine/link"
)

// nsPrefix starts the name of every network namespace wirebench makes:
// "wirebench-PID-a" and "wirebench-PID-b", PID being the process that made
// them, so that a later run can tell its own from a crashed run's.
const nsPrefix = "wirebench-"

// Interface names and addresses inside the namespaces: the veth pair is
// made with its ends already in place, so nothing appears in the host's
// namespace. The addresses are locally administered (IEEE Std 802-2014,
// 8.2), fixed so that each side knows the other's without asking.
const (
	ifA = "wb0"
	ifB = "wb1"
)

// macs returns the addresses of ifA and ifB.
func macs() (a, b link.MAC) {
	return link.MAC{0x02, 0x77, 0x62, 0, 0, 0x0a}, link.MAC{0x02, 0x77, 0x62, 0, 0, 0x0b}
}

// pairNames are the names of the two namespaces of process pid.
func pairNames(pid int) (a, b string) {
	p := fmt.Sprintf("%s%d-", nsPrefix, pid)
	return p + "a", p + "b"
}

// ownerPID returns the pid a namespace name made by pairNames carries, and
// false for any other name.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, false
	}
	pid, side, ok := strings.Cut(rest, "-")
	if !ok || (side != "a" && side != "b") {
		return 0, false
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// parseNetnsList returns the namespace names in the output of
// `ip netns list`: one per line, the name first, maybe followed by
// "(id: N)".
func parseNetnsList(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// stale returns the names among names that wirebench made in a process
// that no longer runs (alive reports whether a pid runs), but never those
// of process self.
func stale(names []string, self int, alive func(pid int) bool) []string {
	var out []string
	for _, n := range names {
		pid, ok := ownerPID(n)
		if ok && pid != self && !alive(pid) {
			out = append(out, n)
		}
	}
	return out
}

// processAlive reports whether process pid exists (kill(2) with signal 0:
// EPERM means it exists but is another user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ip runs ip(8) with args and returns its output, the error wrapped with
// the command and what it printed.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// removeStale deletes the namespaces earlier runs left behind (their veth
// ends go with them) and returns their names.
func removeStale(self int) ([]string, error) {
	out, err := ip("netns", "list")
	if err != nil {
		return nil, err
	}
	old := stale(parseNetnsList(out), self, processAlive)
	for _, n := range old {
		if _, err := ip("netns", "del", n); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// testbed is a pair of namespaces joined by a veth pair.
type testbed struct {
	nsA, nsB string
}

// newTestbed makes the namespaces of process pid and the veth pair
// between them, both ends up. On error it removes what it made.
func newTestbed(pid int) (*testbed, error) {
	t := &testbed{}
	t.nsA, t.nsB = pairNames(pid)
	for _, ns := range []string{t.nsA, t.nsB} {
		if _, err := ip("netns", "add", ns); err != nil {
			t.remove()
			return nil, err
		}
	}
	ma, mb := macs()
	steps := [][]string{
		{"link", "add", ifA, "netns", t.nsA, "address", ma.String(), "type", "veth",
			"peer", "name", ifB, "netns", t.nsB, "address", mb.String()},
		{"-n", t.nsA, "link", "set", ifA, "up"},
		{"-n", t.nsB, "link", "set", ifB, "up"},
	}
	for _, s := range steps {
		if _, err := ip(s...); err != nil {
			t.remove()
			return nil, err
		}
	}
	return t, nil
}

// setMTU sets the MTU of both ends of the pair.
func (t *testbed) setMTU(mtu int) error {
	for _, s := range [][]string{{t.nsA, ifA}, {t.nsB, ifB}} {
		if _, err := ip("-n", s[0], "link", "set", s[1], "mtu", strconv.Itoa(mtu)); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes both namespaces; deleting one takes its veth end with it.
func (t *testbed) remove() error {
	var errs []error
	for _, ns := range []string{t.nsA, t.nsB} {
		if _, err := ip("netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
