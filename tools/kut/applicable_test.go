// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bytes"
	"strings"
	"testing"
)

// knownTest is a test as the suite's cfg describes it (the fields that
// matter here), the rule that decides it ("" when it applies) and why.
type knownTest struct {
	test Test
	rule string
	why  string
}

// knownTests are the tests whose decision is known.
func knownTests() []knownTest {
	return []knownTest{
		{Test{Name: "xapic", File: "apic.flat", SMP: 2, Arch: "x86_64", ExtraParams: "-cpu qemu64,-x2apic,+tsc-deadline"}, "",
			"the local APIC (xAPIC, timer, IPIs): big-iron emulates it; its KVM PV IPI check is skipped with TEST_DEVICE=0"},
		{Test{Name: "msr", File: "msr.flat", ExtraParams: "-cpu max,vendor=GenuineIntel"}, "",
			"architectural MSRs through RDMSR/WRMSR exits, no device needed"},
		{Test{Name: "vmexit_ipi", File: "vmexit.flat", SMP: 2, TestArgs: "'ipi'", ExtraParams: "-machine pit=off"}, "",
			"IPI round trips; pit=off only removes a device"},
		{Test{Name: "pmu", File: "pmu.flat", Accel: "kvm", Groups: []string{"pmu"}, ExtraParams: "-cpu max",
			Check: []string{"/sys/module/kvm/parameters/enable_pmu=Y"}}, "kvm-only",
			"the virtual PMU, which the cfg runs only under KVM with its enable_pmu parameter"},
		{Test{Name: "hyperv_synic", File: "hyperv_synic.flat", SMP: 2, Groups: []string{"hyperv"},
			ExtraParams: "-cpu host,hv_passthrough -device hyperv-testdev"}, "hyperv",
			"Hyper-V's SynIC as KVM emulates it, with -cpu host and QEMU's hyperv-testdev"},
		{Test{Name: "vmx", File: "vmx.flat", Arch: "x86_64", Groups: []string{"vmx"}, ExtraParams: "-cpu max,+vmx",
			TestArgs: `"-exit_monitor_from_l2_test -vmx_pf_exception_forced_emulation_test"`}, "nested",
			"nested VMX: the test is a hypervisor itself"},
		{Test{Name: "svm", File: "svm.flat", SMP: 2, Arch: "x86_64", Groups: []string{"svm"}, ExtraParams: "-cpu max,+svm -m 4g"}, "nested",
			"nested SVM: the test is a hypervisor itself"},
		{Test{Name: "kvmclock_test", File: "kvmclock_test.flat", SMP: 2, TestArgs: "\"10000000 `date +%s`\""}, "kvm-pv",
			"KVM's paravirtual clock MSRs; its arguments also need the shell"},
		{Test{Name: "ioapic", File: "ioapic.flat", SMP: 4, Arch: "x86_64", ExtraParams: "-cpu qemu64,+x2apic"}, "pc-testdev",
			"it raises IOAPIC pins through pc-testdev's ports"},
		{Test{Name: "hypercall", File: "hypercall.flat"}, "kvm-hypercall",
			"it expects KVM to handle VMCALL/VMMCALL"},
		{Test{Name: "cmpxchg8b", File: "cmpxchg8b.flat", Arch: "i386"}, "arch", "32-bit build only"},
		{Test{Name: "intel_iommu", File: "intel-iommu.flat", Arch: "x86_64",
			ExtraParams: "-M q35,kernel-irqchip=split -device intel-iommu,intremap=on,eim=off -device edu"}, "device",
			"QEMU's q35 machine, its IOMMU and the edu device"},
		{Test{Name: "access_fep", File: "access_test.flat", Arch: "x86_64", TestArgs: "force_emulation",
			Groups: []string{"nodefault"}}, "kvm-fep", "KVM's forced-emulation prefix, a module parameter"},
		{Test{Name: "lam", File: "lam.flat", Arch: "x86_64", ExtraParams: "-enable-kvm -cpu max"}, "kvm-params",
			"its params start KVM"},
	}
}

// TestApplicableKnown checks the decision, and its reason, for tests
// whose answer is known.
func TestApplicableKnown(t *testing.T) {
	for _, k := range knownTests() {
		ok, why := Applicable(k.test)
		if ok != (k.rule == "") {
			t.Errorf("%s: applicable %v (%s), want %v: %s", k.test.Name, ok, why, k.rule == "", k.why)
			continue
		}
		if k.rule != "" && !strings.Contains(why, k.rule+":") {
			t.Errorf("%s: why %q does not name rule %s (%s)", k.test.Name, why, k.rule, k.why)
		}
		t.Logf("%s: applicable %v: %s; %s", k.test.Name, ok, k.why, why)
	}
}

// TestApplicableNotes checks that the notes of an applicable test name
// its CPU model and TEST_DEVICE=0.
func TestApplicableNotes(t *testing.T) {
	ok, why := Applicable(knownTests()[0].test)
	if !ok || !strings.Contains(why, "cpu-model: asks for -cpu: qemu64,-x2apic,+tsc-deadline") || !strings.Contains(why, "no-testdev:") {
		t.Errorf("xapic: %v %q", ok, why)
	}
}

// TestRulesComplete checks that every rule has an ID, a reason and a
// condition, and that IDs are unique.
func TestRulesComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if r.ID == "" || r.Why == "" || r.Match == nil || seen[r.ID] {
			t.Errorf("rule %+v", r)
		}
		seen[r.ID] = true
	}
}

// TestApplicableReal decides every test of the suite's own cfg and
// checks the known ones against the table above.
func TestApplicableReal(t *testing.T) {
	tests, err := ParseConfig(bytes.NewReader(realConfig(t)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"x2apic": true, "xapic": true, "msr": true, "msr64": true, "smptest": true,
		"pmu": false, "hyperv_synic": false, "vmx": false, "svm": false, "kvmclock_test": false,
		"ioapic": false, "emulator": false, "hypercall": false, "vmexit_vmcall": false, "s3": false}
	for _, d := range Decide(tests) {
		if w, known := want[d.Test.Name]; known && w != d.OK {
			t.Errorf("%s: applicable %v (%s), want %v", d.Test.Name, d.OK, d.Why, w)
		}
	}
}
