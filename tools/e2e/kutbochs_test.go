// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
)

// TestBochsKVMUnitTests runs part of the x86 hypervisor test suite under
// big-iron on VT-x: a Bochs node (Haswell, VT-x with EPT) whose NIC is
// on Bochs' own user-mode network (slirp, the host at 10.0.2.2 as in
// QEMU) fetches the binaries from the host, as TestQEMUKVMUnitTests'
// node does. Bochs runs about 100 M instructions a second, so the part
// is the suite's checks of what the two backends do each their own way
// (events, control registers, TSC, MSRs, start-up of the other CPUs),
// not its timing loops; each verdict must match kutVTX.
func TestBochsKVMUnitTests(t *testing.T) {
	requireE2E(t, "bochs", "make", "gcc", "grub-mkrescue", "xorriso", "mformat")
	src, tests := kutSuite(t)
	dir := buildImage(t, "pc", "image")
	iso, err := launch.ISO(filepath.Join(dir, "bigiron.mb"), t.TempDir(), "big-iron", "bigiron.ip=dhcp")
	if err != nil {
		t.Fatal(err)
	}
	serve, port, served := kutServe(t, src)
	console := freePort(t)
	n := startBochs(t, dir, console, bochsKUTArgs(t, iso, dir, console)...)
	if _, err := n.con.Expect(prompt, 5*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	runKUTs(t, n, serve, port, tests, kutVTX, false, func(string) string { return "" })
	t.Logf("%d test binaries served", served.Load())
}

// bochsKUTArgs are the bochs arguments of TestBochsKVMUnitTests' node:
// two cores, 2 GiB, the ISO, the e1000 on slirp, COM1 on a socket at
// console.
func bochsKUTArgs(t *testing.T, iso, dir string, console int) []string {
	return []string{"-q", "-f", filepath.Join(repoRoot(t), "qemu", "bochsrc.txt"),
		"megs: 2048",
		"cpu: model=corei7_haswell_4770, count=2, ips=100000000, reset_on_triple_fault=0",
		"ata0-master: type=cdrom, path=" + iso + ", status=inserted",
		"log: " + filepath.Join(dir, "bochs-kut.log"),
		"e1000: enabled=1, mac=52:54:00:12:34:56, ethmod=slirp",
		fmt.Sprintf("com1: enabled=1, mode=socket-server, dev=127.0.0.1:%d", console),
		fmt.Sprintf("display_library: rfb, options=\"timeout=0 port=%d\"", freePort(t)),
	}
}

// kutVTX is each test TestBochsKVMUnitTests runs, with its verdict under
// big-iron on VT-x (Bochs), and why where it is no pass.
var kutVTX = map[string]kutVerdict{
	"smptest": {"PASS", ""},
	"xsave":   {"PASS", ""},
}
