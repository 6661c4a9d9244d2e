package model

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// verify runs spin on coherence.pml with the given -D defines and returns
// the number of errors pan reports and its output.
func verify(t *testing.T, defines ...string) (int, string) {
	t.Helper()
	return verifyWith(t, []string{"-m1000000"}, defines...)
}

// verifyWith is verify with pan's own flags.
func verifyWith(t *testing.T, panFlags []string, defines ...string) (int, string) {
	t.Helper()
	return verifyModel(t, "coherence.pml", panFlags, defines...)
}

// verifyModel runs spin on the model in file with pan's flags and the
// given -D defines, and returns the number of errors pan reports and its
// output.
func verifyModel(t *testing.T, file string, panFlags []string, defines ...string) (int, string) {
	t.Helper()
	spin, err := exec.LookPath("spin")
	if err != nil {
		t.Skip("spin not installed (apt-get install spin)")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc not found: needed to compile spin's verifier")
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, file), src, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	args := append([]string{"-a"}, defines...)
	run(spin, append(args, file)...)
	run(gcc, "-O2", "-DCOLLAPSE", "-o", "pan", "pan.c")
	out := run(filepath.Join(dir, "pan"), panFlags...)
	m := regexp.MustCompile(`errors: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pan output has no error count:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n, out
}

func TestProtocolModel(t *testing.T) {
	defs := []string{}
	if testing.Short() {
		defs = append(defs, "-DN=2")
	}
	n, out := verify(t, defs...)
	if n != 0 {
		t.Fatalf("spin found %d errors in the coherence protocol:\n%s", n, out)
	}
	if !regexp.MustCompile(`Full statespace search`).MatchString(out) || !regexp.MustCompile(`invalid end states\s+\+`).MatchString(out) {
		t.Fatalf("not a full search with end-state checking:\n%s", out)
	}
	t.Logf("%s", regexp.MustCompile(`\d+ states, stored`).FindString(out))
}

// TestModelCatchesBrokenProtocol shows the model's checks can fail: with
// invalidation skipped, spin must find a violation.
func TestModelCatchesBrokenProtocol(t *testing.T) {
	n, out := verify(t, "-DN=2", "-DBUG_SKIP_INV")
	if n == 0 {
		t.Fatalf("spin found no error in a protocol that skips invalidation:\n%s", out)
	}
}

// TestProtocolLiveness checks that every fault is eventually served
// while the nodes are up (issue 16: the model checked safety only), and
// that the check fails on a home that loses requests.
func TestProtocolLiveness(t *testing.T) {
	// -A: assertions are TestProtocolModel's; here only the claim counts.
	flags := []string{"-m1000000", "-a", "-f", "-A"}
	n, out := verifyWith(t, flags, "-DN=2", "-DLIVENESS")
	if n != 0 {
		t.Fatalf("spin found %d liveness errors in the coherence protocol:\n%s", n, out)
	}
	if !regexp.MustCompile(`acceptance\s+cycles\s+\+ \(fairness enabled\)`).MatchString(out) {
		t.Fatalf("not an acceptance-cycle search under fairness:\n%s", out)
	}
	t.Logf("%s", regexp.MustCompile(`\d+ states, stored`).FindString(out))
	n, out = verifyWith(t, flags, "-DN=2", "-DLIVENESS", "-DBUG_DROP_QUEUED")
	if n == 0 || !regexp.MustCompile(`acceptance cycle`).MatchString(out) {
		t.Fatalf("spin found no acceptance cycle in a home that drops queued requests:\n%s", out)
	}
}

// TestMovingHomesModel checks the protocol with homes that move
// (homes.pml: every node a cache and a possible home, requests passed on
// by old homes) for three nodes, two in -short: single writer, no lost
// write, one home at most, and no deadlock with exactly one home at the
// end. It also shows the search passes requests on, and that a node
// serving requests from a directory it handed on is caught.
func TestMovingHomesModel(t *testing.T) {
	defs := []string{}
	if testing.Short() {
		defs = append(defs, "-DN=2")
	}
	flags := []string{"-m1000000"}
	verifyClean(t, "homes.pml", "the protocol with moving homes", defs...)
	if n, out := verifyModel(t, "homes.pml", flags, "-DREACH_FORWARD"); n == 0 {
		t.Fatalf("the search never passed a request on:\n%s", out)
	}
	if n, out := verifyModel(t, "homes.pml", flags, "-DBUG_NO_FORWARD"); n == 0 {
		t.Fatalf("spin found no error in a node that serves requests after handing the home on:\n%s", out)
	}
}

// TestMovingHomesLiveness: with homes that move, every fault node 0
// takes is eventually served (two nodes; three take 73 s: 6.1 M states,
// no acceptance cycle), and the check fails when an old home keeps
// requests instead of passing them on.
func TestMovingHomesLiveness(t *testing.T) {
	flags := []string{"-m1000000", "-a", "-f", "-A"}
	n, out := verifyModel(t, "homes.pml", flags, "-DN=2", "-DLIVENESS")
	if n != 0 {
		t.Fatalf("spin found %d liveness errors with moving homes:\n%s", n, out)
	}
	if !regexp.MustCompile(`acceptance\s+cycles\s+\+ \(fairness enabled\)`).MatchString(out) {
		t.Fatalf("not an acceptance-cycle search under fairness:\n%s", out)
	}
	t.Logf("%s", regexp.MustCompile(`\d+ states, stored`).FindString(out))
	n, out = verifyModel(t, "homes.pml", flags, "-DN=2", "-DLIVENESS", "-DBUG_NO_FORWARD")
	if n == 0 || !regexp.MustCompile(`acceptance cycle`).MatchString(out) {
		t.Fatalf("spin found no acceptance cycle when old homes keep requests:\n%s", out)
	}
}

// TestWalkWindowsModel checks walk windows (walkwin.pml: issue 18's
// remedy for QEMU's page-table walks, designed here before the engine
// has it) for two nodes, without evictions in -short: single writer
// outside windows, no lost store or accessed bit, no node reading a copy
// older than what another node's message told it, no conflict under the
// page-table lock, no deadlock. It shows the search merges window
// stores and invalidation diffs, and that each check fails on a protocol
// that breaks its rule.
func TestWalkWindowsModel(t *testing.T) {
	defs := []string{}
	if testing.Short() {
		defs = append(defs, "-DEVICTS=0")
	}
	flags := []string{"-m1000000"}
	verifyClean(t, "walkwin.pml", "walk windows", defs...)
	for _, c := range []struct{ define, what string }{
		{"-DREACH_WINDOW_STORE", "the search never merged a software store made in a window"},
		{"-DREACH_INV_DIFF", "the search never merged a diff an invalidation's acknowledgement carried"},
		{"-DBUG_NO_CLOSE", "spin found no error in nodes that send messages with windows open"},
		{"-DBUG_NO_LOCK", "spin found no conflict in software stores made without the lock"},
		{"-DBUG_READ_UPGRADING", "spin found no error in nodes that read their copy while waiting for ownership"},
	} {
		if n, out := verifyModel(t, "walkwin.pml", flags, "-DEVICTS=0", c.define); n == 0 {
			t.Errorf("%s:\n%s", c.what, out)
		}
	}
}

// verifyClean runs a full search of the model in file (what names it in
// a failure) with the given defines and fails unless spin finds no error
// and searched the whole state space with end states checked.
func verifyClean(t *testing.T, file, what string, defines ...string) {
	t.Helper()
	n, out := verifyModel(t, file, []string{"-m1000000"}, defines...)
	if n != 0 {
		t.Fatalf("spin found %d errors in %s:\n%s", n, what, out)
	}
	if !regexp.MustCompile(`Full statespace search`).MatchString(out) || !regexp.MustCompile(`invalid end states\s+\+`).MatchString(out) {
		t.Fatalf("not a full search with end-state checking:\n%s", out)
	}
	t.Logf("%s", regexp.MustCompile(`\d+ states, stored`).FindString(out))
}
