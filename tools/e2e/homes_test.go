package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// homesLine matches the line of `pages` that says how a node's homes
// moved, and homedLine the pages it homes.
var (
	homesLine  = regexp.MustCompile(`homes: (\d+) moved here, (\d+) moved away, (\d+) requests passed on`)
	homedLine  = regexp.MustCompile(`pages: (\d+) in the VM, (\d+) homed here`)
	homesMoved = "homes moving to a page's first writer and to a node that asks for a page 2 times in a row"
)

// checkMovingHomes runs the counter guest across nodes a (node 1) and b
// (node 2) with homes that move on first touch and after two requests
// in a row: node 1 writes the guest's image and its parameters, the
// first writer of pages striped onto node 2, and vCPU 1 on node 2 reads
// and writes its own. The count must be exact, homes must have moved,
// what moved to one node must have moved away from the other, and the
// two nodes must home every page between them.
func checkMovingHomes(t *testing.T, a, b *node, timeout time.Duration) {
	t.Helper()
	const iters = 200000
	id := startDVM(t, a, b, fmt.Sprintf("dvm start nodes=2 iters=%d firsttouch=on moveafter=2", iters), timeout)
	if out := a.con.Output(); !regexp.MustCompile(regexp.QuoteMeta(homesMoved)).MatchString(out) {
		t.Errorf("dvm start does not say the homes move:\n%s", out)
	}
	m, stat := waitDVM(t, a, 10*time.Minute)
	checkCounter(t, "moving homes", m, iters)
	var here, away, homed [2]int
	pages := 0
	for i, n := range []*node{a, b} {
		out := runFor(t, n, "pages", fmt.Sprintf("dvm %s on node %d", id, i+1), timeout)
		hm, pm := homesLine.FindStringSubmatch(out), homedLine.FindStringSubmatch(out)
		if hm == nil || pm == nil {
			t.Fatalf("pages on node %d shows no homes line:\n%s", i+1, out)
		}
		here[i], _ = strconv.Atoi(hm[1])
		away[i], _ = strconv.Atoi(hm[2])
		pages, _ = strconv.Atoi(pm[1])
		homed[i], _ = strconv.Atoi(pm[2])
	}
	t.Logf("moving homes: node 1 gained %d and gave %d, node 2 gained %d and gave %d; homes %d and %d\n%s", here[0], away[0], here[1], away[1], homed[0], homed[1], stat)
	if homed[0]+homed[1] != pages {
		t.Errorf("the nodes home %d and %d pages, the VM has %d", homed[0], homed[1], pages)
	}
	if here[0]+here[1] == 0 {
		t.Error("no home moved")
	}
	if here[0] != away[1] || here[1] != away[0] {
		t.Errorf("homes moved to node 1: %d, away from node 2: %d; to node 2: %d, away from node 1: %d", here[0], away[1], here[1], away[0])
	}
	run(t, a, "dvm stop", timeout)
}
