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

	"github.com/big-iron/big-iron/tools/cluster/launch"
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

// kutPlan works out how test runs and writes its environment module
// into the served folder dir; it returns the plan and the URLs of the
// test's binary and module and its command line, quoted for the shell.
func kutPlan(t *testing.T, dir string, port int, test kut.Test) (plan kut.Plan, args string) {
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
	return plan, fmt.Sprintf("kernel=http://10.0.2.2:%d/x86/%s module=http://10.0.2.2:%d/%s vcpus=%d mem=%dM cmdline=%s",
		port, test.File, port, env, plan.CPUs, plan.MemMiB, quoted)
}

// runKUT boots test under `vm boot multiboot` on node n with its binary
// and environment from the host's HTTP server (serving dir on port),
// waits for the VM to end and reads its console.
func runKUT(t *testing.T, n *node, dir string, port int, test kut.Test) (kut.Plan, kut.Result, string) {
	t.Helper()
	plan, args := kutPlan(t, dir, port, test)
	out := run(t, n, "vm boot multiboot "+args, 2*time.Minute)
	m := regexp.MustCompile(`vm (\d+): multiboot`).FindStringSubmatch(out)
	if m == nil {
		return plan, kut.Result{Verdict: "not started: " + strings.TrimSpace(out)}, out
	}
	res, con := kutOutcome(t, n, m[1], kutTimeout(test.Name, plan))
	return plan, res, con
}

// kutTimeout is how long test may run: its unittests.cfg timeout, or
// kutLong's.
func kutTimeout(name string, plan kut.Plan) time.Duration {
	if long, ok := kutLong[name]; ok {
		return long.timeout
	}
	return plan.Timeout
}

// kutLong gives the tests that need longer than their unittests.cfg
// timeout under big-iron in QEMU's emulator (before kutTimeScale) more
// time, and says why.
var kutLong = map[string]struct {
	timeout time.Duration
	why     string
}{
	"x2apic": {300 * time.Second, "multiple nmi and pending nmi send 100000 NMIs each"},
	"xapic":  {150 * time.Second, "as x2apic"},
}

// kutOutcome waits for VM id on node n to end (at most timeout, scaled
// for running inside an emulator; then it is stopped), and returns the
// test's result from its console and its debug-exit code.
func kutOutcome(t *testing.T, n *node, id string, timeout time.Duration) (kut.Result, string) {
	t.Helper()
	state := ""
	for deadline := time.Now().Add(kutTimeScale() * timeout); state == "" && time.Now().Before(deadline); {
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
	return kut.ParseResult([]byte(con), status), con
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
// the host) for big-iron inside QEMU's emulator: 2, or
// BIGIRON_KUT_TIMESCALE for a longer look at a slow test.
func kutTimeScale() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("BIGIRON_KUT_TIMESCALE")); err == nil && n > 0 {
		return time.Duration(n)
	}
	return 2
}

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
	n, serve, port, served := bootKUTNode(t, src)
	checkMultibootRefused(t, n, serve, port)
	runKUTs(t, n, serve, port, tests, kutExpected, true, func(name string) string {
		if why, slow := kutSlow[name]; slow && os.Getenv("BIGIRON_E2E_SLOW") == "" {
			return "not run without BIGIRON_E2E_SLOW=1: " + why
		}
		return ""
	})
	t.Logf("%d test binaries served", served.Load())
}

// bootKUTNode builds the image and boots an AMD-V QEMU node that can
// fetch the suite's binaries from the host.
//
// The node's QEMU runs both processors on one thread (kutTCG).
func bootKUTNode(t *testing.T, src string) (n *node, serve string, port int, served *atomic.Int32) {
	t.Helper()
	dir := buildImage(t, "pc", "elf")
	serve, port, served = kutServe(t, src)
	n = bootQEMU(t, "-accel", kutTCG, "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "2G",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", "user,id=n0", "-device", "e1000,netdev=n0",
		// a node that resets (a triple fault, with -no-reboot) leaves
		// its processor state here
		"-d", "cpu_reset", "-D", filepath.Join(dir, "kut-qemu-reset.log"),
		"-kernel", filepath.Join(dir, "bigiron.elf"), "-append", "bigiron.ip=dhcp")
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "kut-console.log"), []byte(n.con.Output()), 0o644) })
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	return n, serve, port, served
}

// kutTCG is the kvm-unit-tests node's accelerator: QEMU's emulator on
// one thread for both processors. With a thread per processor, QEMU 7.2
// now and then faulted the node's first instruction after a #VMEXIT out
// of a guest's WRMSR to its x2APIC ICR, in the IPI tests: a #PF with the
// reserved-bit error code 8 although the node's page tables, read back
// from the paused machine, map the address; then the #PF's and the #DF's
// IDT reads fault too, and the node triple-faults (1 run of 15, 3 of 14
// with QEMU's -d int log on; none of 19 on one thread). On one thread the
// emulator also leaves its translated code right after VMRUN far more
// often, which showed its second delivery of EVENTINJ interrupts (see
// svm.SetVirtualInterrupt) in nearly every run of vmexit_ipi. Not for
// Linux guests: on one thread the node's own console stalled for minutes
// with Debian's kernel running (TestQEMULinuxAMDV failed 4 runs of 4).
const kutTCG = "tcg,thread=single"

// kutVerdict is a test's expected verdict, and why where it is no pass.
type kutVerdict struct{ verdict, why string }

// runKUTs runs on node n every applicable test of tests that expected
// lists (BIGIRON_KUT_ONLY: those it names) and skip does not refuse
// with a reason, and checks each verdict against expected. With all,
// expected must list every applicable test skip lets run.
func runKUTs(t *testing.T, n *node, serve string, port int, tests []kut.Test, expected map[string]kutVerdict, all bool, skip func(name string) string) {
	t.Helper()
	ran := 0
	for _, test := range tests {
		if ok, _ := kut.Applicable(test); !ok {
			continue
		}
		want, listed := expected[test.Name]
		if only := os.Getenv("BIGIRON_KUT_ONLY"); only != "" && !strings.Contains(","+only+",", ","+test.Name+",") {
			continue
		}
		if why := skip(test.Name); why != "" {
			t.Logf("%-22s %s", test.Name, why)
			continue
		}
		if !listed {
			if all {
				t.Errorf("%s: applicable, and not in the table of expected results", test.Name)
			}
			continue
		}
		start := time.Now()
		plan, res, con := runKUT(t, n, serve, port, test)
		ran++
		t.Logf("%-22s vcpus=%d %-6s %3d pass %3d fail %3d skip  %v%s", test.Name, plan.CPUs, res.Verdict, res.Pass, res.Fail, res.Skip,
			time.Since(start).Round(time.Second), cycles(res))
		if want.verdict != res.Verdict {
			t.Errorf("%s: %s (%s), want %q\n%s", test.Name, res.Verdict, res.Reason, want.verdict, con)
		}
		for _, check := range kutMustPass[test.Name] {
			if !strings.Contains(con, "PASS: "+check+"\n") && !strings.Contains(con, "PASS: "+check+"\r") {
				t.Errorf("%s: check %q did not pass\n%s", test.Name, check, con)
			}
		}
	}
	if ran == 0 {
		t.Fatal("no applicable test ran")
	}
}

// checkMultibootRefused asks node n for Multiboot guests it must refuse,
// each with the reason and no VM made: a file that is no Multiboot image,
// and a test binary (loaded at 4 MiB, ending above 16 MiB with its
// data) in a guest of 16 MiB.
func checkMultibootRefused(t *testing.T, n *node, serve string, port int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(serve, "not-multiboot"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ line, want string }{
		{fmt.Sprintf("vm boot multiboot kernel=http://10.0.2.2:%d/not-multiboot", port), "multiboot: "},
		{fmt.Sprintf("vm boot multiboot kernel=http://10.0.2.2:%d/x86/msr.flat mem=16M", port), "not inside usable RAM"},
		{fmt.Sprintf("vm boot multiboot kernel=http://10.0.2.2:%d/x86/nothing.flat", port), "404 Not Found"},
	} {
		out := run(t, n, c.line, 2*time.Minute)
		if !strings.Contains(out, "error: ") || !strings.Contains(out, c.want) {
			t.Errorf("%s: %q, want an error naming %q", c.line, out, c.want)
		}
	}
	if list := run(t, n, "vm list", time.Minute); strings.Contains(list, "multiboot") {
		t.Errorf("a refused guest left a VM:\n%s", list)
	}
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
	"sieve":  "69 s under big-iron (PASS), 166 s directly under QEMU TCG",
	"debug":  "hangs directly under QEMU TCG (single-step with STI blocking)",
	"x2apic": "about 2 minutes, and in about half the runs a vCPU triple-faults in its NMI storms (see kutExpected)",
	"xapic":  "the same binary and, under big-iron, the same vCPU as x2apic (its qemu_params hide QEMU's x2APIC, not ours)",
}

// kutExpected is each applicable test's verdict under big-iron on one
// node (QEMU TCG, AMD-V), with why where it is not a pass.
var kutExpected = map[string]kutVerdict{
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
	"pku":                      {"PASS", ""},
	"pks":                      {"PASS", ""},
	"x2apic":                   {"FAIL", "in about half the runs 54 of 55 pass (\"TMCCT should not be reset to TMICT value\": the timer counts at the TSC's rate, divide by 1, so half a count of 0x999999 is about 2 ms, less than the test's four exits take in QEMU's emulator); in the other half a vCPU triple-faults during the NMI storms (nmi-after-sti, multiple nmi): a #PF right after it sent an NMI by WRMSR, whose delivery faults again at the IDT, though the guest's page tables walked by the hyperkernel at the shutdown map every address involved (not present, error code 0, CR2 at IDT[8]); with QEMU's single-threaded TCG (-accel tcg,thread=single) it did not happen in 4 runs, against 5 of 8 with the default multi-threaded TCG, so it points at the emulator, not proven: opt-in for that reason. QEMU directly aborts at once (no x2APIC there)"},
	"xapic":                    {"FAIL", "as x2apic"},
	"eventinj":                 {"PASS", ""},
	"idt_test":                 {"FAIL", "3 of 4: #UD's \"rflags.rf\" fails, QEMU's TCG pushes the faulting RFLAGS without RF (UD2 reaches the guest without an exit; #GP, injected by big-iron after the CR4 exit, has RF); directly under QEMU the test hangs"},
	"memory":                   {"PASS", ""},
	"msr":                      {"ERROR", "QEMU's TCG takes a WRMSR of a non-canonical FS or GS base without #GP (the MSRs pass through, as on KVM, and hardware checks them); the guest then faults on its GS base until it shuts down. Directly under QEMU it fails the same check"},
	"msr64":                    {"ERROR", "as msr"},
	"setjmp":                   {"PASS", ""},
	"sieve":                    {"PASS", ""},
	"syscall":                  {"PASS", ""},
	"tsc":                      {"PASS", ""},
	"tsc_adjust":               {"SKIP", "CPUID offers no IA32_TSC_ADJUST, as QEMU directly"},
	"xsave":                    {"PASS", "338 checks, as directly under QEMU (whose TCG does not intercept a nested XSETBV: the hyperkernel reads the guest's XCR0 back at each exit)"},
	"rmap_chain":               {"PASS", ""},
	"pcid-enabled":             {"PASS", "CR4 writes are big-iron's (CR4.PCIDE's rules); directly under QEMU \"PCID when disabled\" fails"},
	"pcid-disabled":            {"PASS", "as pcid-enabled"},
	"pcid-asymmetric":          {"PASS", "as pcid-enabled"},
	"rdpru":                    {"PASS", ""},
	"umip":                     {"PASS", ""},
	"la57":                     {"ERROR", "non-canonical descriptor-table and segment bases are accepted (QEMU's TCG, as directly), then no exit"},
	"tsx-ctrl":                 {"SKIP", "no TSX, as QEMU directly"},
	// Opt-in (kutSlow).
	"access": {"ERROR", "past its timeout printing NX faults' error codes (8, want 9), as directly under QEMU's TCG"},
	"debug":  {"ERROR", "13 pass, 2 fail (single-step with STI blocking, kernel and user mode), then past its timeout, as directly under QEMU"},
}

// kutMustPass names checks of tests that fail as a whole (kutExpected,
// kutVTX) which must pass on their own: what big-iron fixed inside them.
var kutMustPass = map[string][]string{
	// The single-step #DB after CPUID and IN, which the hyperkernel
	// carries out (runloop's StepTrap).
	"debug": {"Single-step #DB on emulated instructions", "Usermode Single-step #DB on emulated instructions"},
}

// kutServe serves the suite's x86 folder and the environment modules the
// tests write beside it; it returns the served folder and the port.
func kutServe(t *testing.T, src string) (string, int, *atomic.Int32) {
	t.Helper()
	serve := t.TempDir()
	if err := os.Symlink(filepath.Join(src, "x86"), filepath.Join(serve, "x86")); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int32
	return serve, serveDir(t, serve, &served), &served
}

// kutDistributed are the multi-processor tests that also run as one VM
// across two nodes, with their expected verdicts there.
var kutDistributed = map[string]struct{ verdict, why string }{
	"smptest":         {"PASS", ""},
	"smptest3":        {"PASS", ""},
	"vmexit_ipi":      {"PASS", ""},
	"vmexit_ipi_halt": {"PASS", ""},
	// Opt-in (kutSlow). 31 checks pass (the APIC mode changes, self
	// IPIs, physical broadcast to the vCPU on node 2); then
	// test_sti_nmi sends vCPU 1 30,000 NMIs one at a time, each waiting
	// for vCPU 1's handler to move a counter on a page that must come
	// back across the cluster link, and it does not end within 600 s
	// (vCPU 0 waits in its loop; whether it is slow or stuck at one NMI
	// is not established). test_multiple_nmi and test_pending_nmi would
	// send 100,000 more each.
	"x2apic": {"ERROR", "31 pass, then the NMI storm does not end in time"},
	"xapic":  {"ERROR", "as x2apic"},
}

// TestQEMUClusterKVMUnitTests runs the suite's multi-processor tests as
// one VM across two AMD-V QEMU nodes (`dvm start guest=multiboot
// place=spread`: vCPU 0 on node 1, vCPU 1 on node 2, and for three
// vCPUs vCPU 2 on node 1 again): their start-up IPIs, IPIs and
// xAPIC accesses cross the cluster. Node 1 fetches the binaries from
// the host through a second NIC (bigiron.uplink=1).
func TestQEMUClusterKVMUnitTests(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make", "gcc")
	src, tests := kutSuite(t)
	dir := buildImage(t, "pc", "elf")
	serve, port, _ := kutServe(t, src)
	c := launch.Cluster{Nodes: 2, Segment: 51000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024}
	elf := filepath.Join(dir, "bigiron.elf")
	nodes := make([]*node, 3)
	nodes[1] = bootQEMU(t, withUplink(c, 1, elf, "user,id=n1", "")...)
	nodes[2] = bootQEMU(t, c.QEMU(2, elf, launch.Accel(false))...)
	a, b := nodes[1], nodes[2]
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "kut-cluster-1.log"), []byte(a.con.Output()), 0o644)
		os.WriteFile(filepath.Join(dir, "kut-cluster-2.log"), []byte(b.con.Output()), 0o644)
	})
	waitPair(t, a, b)
	ran, skipped := 0, 0
	for _, test := range tests {
		want, ok := kutDistributed[test.Name]
		if !ok {
			continue
		}
		if why, slow := kutSlow[test.Name]; slow && os.Getenv("BIGIRON_E2E_SLOW") == "" {
			t.Logf("%-16s not run without BIGIRON_E2E_SLOW=1: %s", test.Name, why)
			skipped++
			continue
		}
		plan, args := kutPlan(t, serve, port, test)
		if out := run(t, a, "dvm start guest=multiboot nodes=2 place=spread "+args, 3*time.Minute); !strings.Contains(out, "Multiboot") || !strings.Contains(out, "started") {
			t.Fatalf("%s: dvm start: %s\nnode 2:\n%s", test.Name, out, run(t, b, "dvm stat", time.Minute))
		}
		ids := regexp.MustCompile(`(?m)^(\d+)\s+multiboot`).FindAllStringSubmatch(run(t, a, "vm list", time.Minute), -1)
		if len(ids) == 0 {
			t.Fatalf("%s: node 1 lists no multiboot VM", test.Name)
		}
		id := ids[len(ids)-1][1]
		res, con := kutOutcome(t, a, id, kutTimeout(test.Name, plan))
		vcpus := run(t, a, "vcpus", time.Minute)
		run(t, a, "dvm stop", time.Minute)
		ran++
		t.Logf("%-16s vcpus=%d across 2 nodes: %-6s %d pass %d fail%s", test.Name, plan.CPUs, res.Verdict, res.Pass, res.Fail, cycles(res))
		if res.Verdict != want.verdict {
			t.Errorf("%s across two nodes: %s (%s), want %s\n%s\nvcpus:\n%s", test.Name, res.Verdict, res.Reason, want.verdict, con, vcpus)
		}
		if !regexp.MustCompile(`(?m)^1\s+2\s+`).MatchString(vcpus) {
			t.Errorf("%s: vCPU 1 did not run on node 2:\n%s", test.Name, vcpus)
		}
	}
	if ran+skipped != len(kutDistributed) {
		t.Errorf("%d of the %d distributed tests ran (%d opt-in)", ran, len(kutDistributed), skipped)
	}
}
