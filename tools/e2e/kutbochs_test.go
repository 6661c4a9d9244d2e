// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "kut-bochs-console.log"), []byte(n.con.Output()), 0o644) })
	if _, err := n.con.Expect(prompt, 5*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	runKUTs(t, n, serve, port, tests, kutVTX, false, kutVTXSlow)
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
// big-iron on VT-x (Bochs' corei7_haswell_4770), and why where it is no
// pass.
var kutVTX = map[string]kutVerdict{
	"smptest":         {"PASS", ""},
	"smptest3":        {"PASS", ""},
	"memory":          {"PASS", ""},
	"msr":             {"PASS", ""},
	"msr64":           {"PASS", ""},
	"la57":            {"PASS", "49 pass, 5 skip: Bochs checks non-canonical bases (QEMU's TCG does not: ERROR there)"},
	"setjmp":          {"PASS", ""},
	"syscall":         {"PASS", ""},
	"xsave":           {"PASS", "338 checks (XSETBV exits on VT-x: big-iron's checks)"},
	"rmap_chain":      {"PASS", ""},
	"pcid-enabled":    {"PASS", ""},
	"pcid-disabled":   {"PASS", ""},
	"pcid-asymmetric": {"PASS", ""},
	"rdpru":           {"PASS", ""},
	"umip":            {"PASS", ""},
	"idt_test":        {"PASS", ""},
	"smap":            {"SKIP", "the Haswell model has no SMAP"},
	"tsc":             {"SKIP", "the Haswell model has no RDTSCP"},
	"pku":             {"SKIP", "the Haswell model has no PKU (and VT-x does not switch PKRU yet)"},
	"pks":             {"SKIP", "hidden, as on AMD-V"},
	"tsc_adjust":      {"SKIP", ""},
	"tsx-ctrl":        {"SKIP", ""},
	"eventinj":        {"PASS", ""},
	"debug":           {"FAIL", "19 pass, 6 fail, not yet told apart as big-iron's or Bochs': DR6.BS kept or set around hardware breakpoints and watchpoints, single-step with MOV SS and DR7.GD, with STI;HLT, MOV SS with a watchpoint and INT 1 or INT3. The single-step #DB after an instruction big-iron carries out passes (kutMustPass)"},
	// Opt-in (kutVTXSlow).
	"vmexit_cpuid":             {"PASS", ""},
	"vmexit_mov_from_cr8":      {"PASS", ""},
	"vmexit_mov_to_cr8":        {"PASS", ""},
	"vmexit_inl_pmtimer":       {"PASS", ""},
	"vmexit_ipi":               {"PASS", ""},
	"vmexit_ipi_halt":          {"PASS", ""},
	"vmexit_ple_round_robin":   {"PASS", ""},
	"vmexit_tscdeadline":       {"PASS", ""},
	"vmexit_tscdeadline_immed": {"PASS", ""},
	"vmexit_cr0_wp":            {"ERROR", "past its timeout: 2 vCPUs run its 2^30 TSC cycles each, Bochs' TSC counting instructions"},
	"vmexit_cr4_pge":           {"ERROR", "as vmexit_cr0_wp"},
}

// kutVTXSlow are the tests of kutVTX that run only with
// BIGIRON_E2E_SLOW=1: the vmexit_* tests measure for 2^30 TSC cycles,
// 10 s at Bochs' 100 M instructions a second, and take 1 to 3 minutes
// each.
func kutVTXSlow(name string) string {
	if os.Getenv("BIGIRON_E2E_SLOW") != "" || !strings.HasPrefix(name, "vmexit_") {
		return ""
	}
	return "not run without BIGIRON_E2E_SLOW=1 (1 to 3 minutes under Bochs)"
}
