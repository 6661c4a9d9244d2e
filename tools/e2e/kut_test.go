// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/kut"
	"github.com/big-iron/big-iron/vmm/devices/debugexit"
)

// kutArchive is the x86 hypervisor test suite's source (kvm-unit-tests).
const kutArchive = "kvm-unit-tests-v2026-04-17.tar.xz"

// kutSuite builds the suite from the shared archive (once per cache:
// BIGIRON_KUT_CACHE, default build/kut) and returns its folder and its
// tests.
func kutSuite(t *testing.T) (string, []kut.Test) {
	t.Helper()
	archive := filepath.Join(repoRoot(t), "..", "shared", "suites", kutArchive)
	if a := os.Getenv("BIGIRON_KUT_ARCHIVE"); a != "" {
		archive = a
	}
	if _, err := os.Stat(archive); err != nil {
		t.Skipf("end-to-end test needs the suite's source %s (BIGIRON_KUT_ARCHIVE): %v", archive, err)
	}
	cache := os.Getenv("BIGIRON_KUT_CACHE")
	if cache == "" {
		cache = filepath.Join(repoRoot(t), "build", "kut")
	}
	start := time.Now()
	src, err := kut.Build(archive, cache)
	if err != nil {
		t.Fatalf("building kvm-unit-tests: %v", err)
	}
	t.Logf("kvm-unit-tests built in %v", time.Since(start).Round(time.Second))
	f, err := os.Open(filepath.Join(src, "x86", "unittests.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests, err := kut.ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return src, tests
}

// kutMaxSMP is $MAX_SMP for the suite's tests: the vCPUs a node's VM gets
// at most here.
const kutMaxSMP = 4

// runKUT boots test under `vm boot multiboot` on node n with its binary
// and environment from the host's HTTP server (serving dir on port),
// waits for the VM to end (at most its timeout, scaled for running
// inside an emulator) and reads its console.
func runKUT(t *testing.T, n *node, dir string, port int, test kut.Test) (kut.Plan, kut.Result, string) {
	t.Helper()
	plan, err := kut.PlanTest(dir, test, 0, kutMaxSMP)
	if err != nil {
		t.Fatalf("%s: %v", test.Name, err)
	}
	env := fmt.Sprintf("env-%d-%d", plan.CPUs, plan.MemMiB)
	if err := os.WriteFile(filepath.Join(dir, env), kut.Env(plan.CPUs, plan.MemMiB), 0o644); err != nil {
		t.Fatal(err)
	}
	quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(plan.Append) + `"`
	line := fmt.Sprintf("vm boot multiboot kernel=http://10.0.2.2:%d/x86/%s module=http://10.0.2.2:%d/%s vcpus=%d mem=%dM cmdline=%s",
		port, test.File, port, env, plan.CPUs, plan.MemMiB, quoted)
	out := run(t, n, line, 2*time.Minute)
	m := regexp.MustCompile(`vm (\d+): multiboot`).FindStringSubmatch(out)
	if m == nil {
		return plan, kut.Result{Verdict: "not started: " + strings.TrimSpace(out)}, out
	}
	id := m[1]
	state := ""
	for deadline := time.Now().Add(kutTimeScale * plan.Timeout); state == "" && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		if s := vmState(run(t, n, "vm list", time.Minute), id); s != "running" {
			state = s
		}
	}
	if state == "" {
		run(t, n, "vm stop "+id, time.Minute)
	}
	con := run(t, n, "console "+id+" wait=0", time.Minute)
	status := kut.NoExit
	if c := regexp.MustCompile(`debug-exit code (\d+)`).FindStringSubmatch(state); c != nil {
		code, _ := strconv.Atoi(c[1])
		status = int(debugexit.Status(uint32(code)))
	}
	return plan, kut.ParseResult([]byte(con), status), con
}

// vmState returns the state column of VM id in `vm list`'s output (id,
// name, vcpus, memory, up, exits, state), "" where it is not listed.
func vmState(list, id string) string {
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) >= 7 && f[0] == id {
			return strings.Join(f[6:], " ")
		}
	}
	return ""
}

// kutTimeScale stretches a test's timeout (written for KVM or QEMU on
// the host) for big-iron inside QEMU's emulator.
const kutTimeScale = 2

// TestQEMUKVMUnitTests runs the x86 hypervisor test suite (kvm-unit-tests)
// under big-iron: one AMD-V QEMU node fetches each test binary and its
// environment from the host and boots it with `vm boot multiboot`,
// with the vCPUs its unittests.cfg section asks for; the test ends the
// VM through the debug-exit port. Every applicable x86_64 test runs, and
// each result must match kutExpected: a result that changes, better or
// worse, fails the test until the table says why.
func TestQEMUKVMUnitTests(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make", "gcc")
	src, tests := kutSuite(t)
	dir := buildImage(t, "pc", "elf")
	serve := t.TempDir()
	if err := os.Symlink(filepath.Join(src, "x86"), filepath.Join(serve, "x86")); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int32
	port := serveDir(t, serve, &served)
	n := bootQEMU(t, "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "2G",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", "user,id=n0", "-device", "e1000,netdev=n0",
		"-kernel", filepath.Join(dir, "bigiron.elf"), "-append", "bigiron.ip=dhcp")
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "kut-console.log"), []byte(n.con.Output()), 0o644) })
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	ran := 0
	for _, test := range tests {
		if ok, _ := kut.Applicable(test); !ok {
			continue
		}
		if only := os.Getenv("BIGIRON_KUT_ONLY"); only != "" && !strings.Contains(","+only+",", ","+test.Name+",") {
			continue
		}
		if why, slow := kutSlow[test.Name]; slow && os.Getenv("BIGIRON_E2E_SLOW") == "" {
			t.Logf("%-22s not run without BIGIRON_E2E_SLOW=1: %s", test.Name, why)
			continue
		}
		start := time.Now()
		plan, res, con := runKUT(t, n, serve, port, test)
		ran++
		t.Logf("%-22s vcpus=%d %-6s %3d pass %3d fail %3d skip  %v%s", test.Name, plan.CPUs, res.Verdict, res.Pass, res.Fail, res.Skip,
			time.Since(start).Round(time.Second), cycles(res))
		if want := kutExpected[test.Name]; want.verdict != res.Verdict {
			t.Errorf("%s: %s (%s), want %q (kutExpected)\n%s", test.Name, res.Verdict, res.Reason, want.verdict, con)
		}
	}
	if ran == 0 {
		t.Fatal("no applicable test ran")
	}
	t.Logf("%d test binaries served", served.Load())
}

// cycles formats the vmexit test's figures, sorted by name.
func cycles(r kut.Result) string {
	var names []string
	for k := range r.Cycles {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%d", k, r.Cycles[k])
	}
	return b.String()
}

// kutSlow are the applicable tests make test leaves out, and why.
var kutSlow = map[string]string{
	"access": "QEMU's TCG gets the error code of an NX fault wrong (8, want 9), directly too, and the test prints ~90k failures until its timeout",
	"sieve":  "166 s directly under QEMU TCG",
	"debug":  "hangs directly under QEMU TCG (single-step with STI blocking)",
	"x2apic": "the node stopped answering, or `vm stop` waited forever, in 2 runs of 3 (a vCPU that never exits: see the closing note)",
	"xapic":  "as x2apic",
}

// kutExpected is each applicable test's verdict under big-iron on one
// node (QEMU TCG, AMD-V), with why where it is not a pass.
var kutExpected = map[string]struct{ verdict, why string }{
	"smptest":                  {"PASS", ""},
	"smptest3":                 {"PASS", ""},
	"vmexit_cpuid":             {"PASS", ""},
	"vmexit_mov_from_cr8":      {"PASS", ""},
	"vmexit_mov_to_cr8":        {"PASS", ""},
	"vmexit_inl_pmtimer":       {"PASS", ""},
	"vmexit_ipi":               {"PASS", ""},
	"vmexit_ipi_halt":          {"PASS", ""},
	"vmexit_ple_round_robin":   {"PASS", ""},
	"vmexit_tscdeadline":       {"PASS", ""},
	"vmexit_tscdeadline_immed": {"PASS", ""},
	"vmexit_cr0_wp":            {"PASS", ""},
	"vmexit_cr4_pge":           {"PASS", ""},
	"smap":                     {"PASS", ""},
	"pku":                      {"SKIP", "CPUID offers no PKU (OSPKE state is not switched): QEMU directly passes 7"},
	"pks":                      {"SKIP", "CPUID offers no PKS (IA32_PKRS is not emulated)"},
	"eventinj":                 {"FAIL", "NMIs are not delivered yet (vcpuEvents.NMI): two NMI checks fail; QEMU directly passes"},
	"idt_test":                 {"ERROR", "QEMU's SVM takes a MOV to CR4 with reserved bits instead of #GP, and the next VMRUN fails (exit -1); directly under QEMU the test hangs"},
	"memory":                   {"PASS", ""},
	"msr":                      {"FAIL", "IA32_MISC_ENABLE refuses bits the test writes (#GP, abort); QEMU directly fails later, on a non-canonical FS base"},
	"msr64":                    {"FAIL", "as msr"},
	"setjmp":                   {"PASS", ""},
	"syscall":                  {"PASS", ""},
	"tsc":                      {"FAIL", "a WRMSR to the TSC (0x10) is refused (#GP, abort); QEMU directly passes 3"},
	"tsc_adjust":               {"SKIP", "CPUID offers no IA32_TSC_ADJUST, as QEMU directly"},
	"xsave":                    {"FAIL", "CPUID hides XSAVE but CR4 writes are not intercepted, so CR4.OSXSAVE takes no #GP; QEMU directly passes 338"},
	"rmap_chain":               {"PASS", ""},
	"pcid-enabled":             {"FAIL", "\"PCID when disabled\" fails, as directly under QEMU"},
	"pcid-disabled":            {"FAIL", "as pcid-enabled"},
	"pcid-asymmetric":          {"FAIL", "as pcid-enabled"},
	"rdpru":                    {"PASS", ""},
	"umip":                     {"PASS", ""},
	"la57":                     {"ERROR", "non-canonical descriptor-table and segment bases are accepted (QEMU's TCG, as directly), then no exit"},
	"tsx-ctrl":                 {"SKIP", "no TSX, as QEMU directly"},
}
