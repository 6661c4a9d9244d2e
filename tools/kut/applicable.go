// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Rule is one entry of the applicability table: a condition on a test of
// x86/unittests.cfg, and what it means for running the test on big-iron.
type Rule struct {
	// ID names the rule, e.g. "kvm-only".
	ID string
	// Blocks reports whether a test the rule matches does not apply.
	// A rule that does not block adds a note to a test that applies.
	Blocks bool
	// Why is the reason, completed by Match's detail.
	Why string
	// Match reports whether the rule holds for t, whose QEMU options
	// are o, and a detail for the reason ("" for none).
	Match func(t Test, o QEMUOpts) (detail string, ok bool)
}

// Rules is the applicability table, decided per test from the cfg and
// the tests' sources. A test applies to big-iron, which runs x86_64
// guests on a VMM with no KVM interfaces, no nested virtualization and
// no QEMU test devices (it has the isa-debug-exit port), when no
// blocking rule matches it.
func Rules() []Rule {
	return slices.Concat(cfgRules(), sourceRules(), noteRules())
}

// cfgRules are the rules read from the cfg's own keys and params.
func cfgRules() []Rule {
	return []Rule{
		{ID: "arch", Blocks: true, Why: "built for another arch (we build x86_64)", Match: archMatch},
		{ID: "kvm-only", Blocks: true, Why: "accel = kvm: the suite runs it only under KVM", Match: func(t Test, _ QEMUOpts) (string, bool) {
			return "", t.Accel == "kvm"
		}},
		{ID: "kvm-params", Blocks: true, Why: "its qemu_params start KVM", Match: kvmParamsMatch},
		{ID: "host-cpu", Blocks: true, Why: "-cpu host: KVM's pass-through of the host CPU", Match: func(_ Test, o QEMUOpts) (string, bool) {
			return "", cpuModel(o.CPU) == "host"
		}},
		{ID: "hyperv", Blocks: true, Why: "Hyper-V enlightenments (hv_* CPUID and MSRs, SynIC, stimers) that KVM emulates", Match: hypervMatch},
		{ID: "nested", Blocks: true, Why: "nested virtualization: runs its own guests with VMX or SVM", Match: nestedMatch},
		{ID: "pmu", Blocks: true, Why: "the virtual PMU (performance counters, LBR, PEBS)", Match: func(t Test, _ QEMUOpts) (string, bool) {
			return "", t.InGroup("pmu") || strings.HasPrefix(t.File, "pmu")
		}},
		{ID: "host-check", Blocks: true, Why: "check = needs host settings", Match: checkMatch},
		{ID: "device", Blocks: true, Why: "needs QEMU devices big-iron does not have", Match: deviceMatch},
		{ID: "machine", Blocks: true, Why: "needs machine options big-iron does not model", Match: machineMatch},
		{ID: "overcommit", Blocks: true, Why: "-overcommit cpu-pm=on: KVM lets the guest own HLT/PAUSE/MWAIT", Match: func(_ Test, o QEMUOpts) (string, bool) {
			return "", otherOpt(o, "-overcommit") != ""
		}},
		{ID: "nodefault", Blocks: true, Why: "group nodefault: the suite runs it only when asked", Match: func(t Test, _ QEMUOpts) (string, bool) {
			return "", t.InGroup("nodefault")
		}},
		{ID: "harness", Blocks: true, Why: "needs the suite's migration or panic harness", Match: func(t Test, _ QEMUOpts) (string, bool) {
			return "", t.InGroup("migration") || t.InGroup("panic")
		}},
		{ID: "shell", Blocks: true, Why: "test_args need the shell to expand them", Match: func(t Test, _ QEMUOpts) (string, bool) {
			_, err := SplitWords(t.TestArgs)
			return t.TestArgs, err != nil
		}},
	}
}

// sourceRules are the rules learnt from reading the tests' sources.
func sourceRules() []Rule {
	return []Rule{
		{ID: "pc-testdev", Blocks: true, Why: "uses QEMU's pc-testdev", Match: fileDetail(map[string]string{
			"ioapic.flat":   "set_irq_line() raises IOAPIC pins through its ports 0x2000+",
			"emulator.flat": "string I/O checks read back its port 0xe0",
			"realmode.flat": "its pio checks read back its port 0xe0",
		})},
		{ID: "kvm-hypercall", Blocks: true, Why: "KVM's hypercall ABI: VMCALL/VMMCALL must return (KVM handles and patches them; elsewhere they raise #UD)", Match: hypercallMatch},
		{ID: "kvm-pv", Blocks: true, Why: "KVM paravirtual interfaces", Match: fileDetail(map[string]string{
			"kvmclock_test.flat":    "kvmclock MSRs",
			"asyncpf.flat":          "async page faults (MSR_KVM_ASYNC_PF_EN)",
			"vmware_backdoors.flat": "VMware backdoor ports (kvm.enable_vmware_backdoor)",
		})},
		{ID: "kvm-fep", Blocks: true, Why: "KVM's forced-emulation prefix (kvm.force_emulation_prefix)", Match: fepMatch},
		{ID: "firmware", Blocks: true, Why: "needs a BIOS", Match: fileDetail(map[string]string{
			"s3.flat": "ACPI S3 sleep and resume through the firmware waking vector in the FACS, woken by the RTC alarm",
		})},
	}
}

// noteRules are notes on tests that apply.
func noteRules() []Rule {
	return []Rule{
		{ID: "cpu-model", Why: "asks for -cpu", Match: func(_ Test, o QEMUOpts) (string, bool) {
			return o.CPU + " (results follow the CPUID big-iron gives)", o.CPU != ""
		}},
		{ID: "pit-off", Why: "asks for -machine pit=off (no 8254 PIT)", Match: func(_ Test, o QEMUOpts) (string, bool) {
			return "", slices.Contains(machineProps(o), "pit=off")
		}},
		{ID: "no-testdev", Why: "with TEST_DEVICE=0", Match: fileDetail(map[string]string{
			"eventinj.flat": "it skips pc-testdev's page flush (port 0xe4)",
			"apic.flat":     "it skips the KVM PV IPI hypercall check",
			"syscall.flat":  "it runs the TF check only on a non-Intel vendor",
		})},
		{ID: "acpi", Why: "reads ACPI tables", Match: func(t Test, _ QEMUOpts) (string, bool) {
			return "the FADT's PM timer port", t.File == "vmexit.flat" && strings.Contains(t.TestArgs, "pmtimer")
		}},
	}
}

// Applicable reports whether t applies to big-iron and why: the reasons
// of every blocking rule that matches it when it does not, the notes
// that match it (or "") when it does.
func Applicable(t Test) (ok bool, why string) {
	o, err := Options(t)
	if err != nil {
		return false, err.Error()
	}
	var blocks, notes []string
	for _, r := range Rules() {
		detail, hit := r.Match(t, o)
		if !hit {
			continue
		}
		reason := r.ID + ": " + r.Why
		if detail != "" {
			reason += ": " + detail
		}
		if r.Blocks {
			blocks = append(blocks, reason)
		} else {
			notes = append(notes, reason)
		}
	}
	if len(blocks) > 0 {
		return false, strings.Join(blocks, "; ")
	}
	return true, strings.Join(notes, "; ")
}

// Decision is Applicable's answer for one test.
type Decision struct {
	Test Test
	OK   bool
	Why  string
}

// Decide is Applicable for each test, in order.
func Decide(tests []Test) []Decision {
	ds := make([]Decision, len(tests))
	for i, t := range tests {
		ok, why := Applicable(t)
		ds[i] = Decision{Test: t, OK: ok, Why: why}
	}
	return ds
}

// WriteDecisions writes ds as a Markdown table: test, binary,
// applicable or not, why.
func WriteDecisions(w io.Writer, ds []Decision) error {
	if _, err := fmt.Fprintln(w, "| test | file | applicable | why |\n| --- | --- | --- | --- |"); err != nil {
		return fmt.Errorf("kut: writing decisions: %w", err)
	}
	for _, d := range ds {
		yes := "no"
		if d.OK {
			yes = "yes"
		}
		why := strings.ReplaceAll(d.Why, "|", `\|`)
		if _, err := fmt.Fprintf(w, "| %s | %s | %s | %s |\n", d.Test.Name, d.Test.File, yes, why); err != nil {
			return fmt.Errorf("kut: writing decisions: %w", err)
		}
	}
	return nil
}

// archMatch holds for a test restricted to an arch other than x86_64.
func archMatch(t Test, _ QEMUOpts) (string, bool) {
	return t.Arch + " only", t.Arch != "" && t.Arch != "x86_64"
}

// kvmParamsMatch holds for -enable-kvm, -accel kvm or -machine accel=kvm.
func kvmParamsMatch(_ Test, o QEMUOpts) (string, bool) {
	if o.EnableKVM {
		return "-enable-kvm", true
	}
	for _, a := range o.Accel {
		if strings.HasPrefix(a, "kvm") {
			return "-accel " + a, true
		}
	}
	for _, p := range machineProps(o) {
		if p == "accel=kvm" || p == "kernel-irqchip=split" || p == "kernel-irqchip=on" {
			return "-machine " + p, true
		}
	}
	return "", false
}

// hypervMatch holds for hv_* CPU properties, group hyperv or a hyperv_
// binary.
func hypervMatch(t Test, o QEMUOpts) (string, bool) {
	for _, p := range cpuProps(o.CPU) {
		if strings.HasPrefix(p, "hv_") || strings.HasPrefix(p, "hv-") {
			return "-cpu ..." + p, true
		}
	}
	return "", t.InGroup("hyperv") || strings.HasPrefix(t.File, "hyperv")
}

// nestedMatch holds for +vmx / +svm, groups vmx / svm, or the vmx and
// svm binaries.
func nestedMatch(t Test, o QEMUOpts) (string, bool) {
	for _, p := range cpuProps(o.CPU) {
		if p == "+vmx" || p == "+svm" || p == "vmx=on" || p == "svm=on" {
			return "-cpu ..." + p, true
		}
	}
	switch {
	case t.InGroup("vmx"), t.File == "vmx.flat":
		return "VMX", true
	case t.InGroup("svm"), strings.HasPrefix(t.File, "svm"):
		return "SVM", true
	}
	return "", false
}

// checkMatch holds for any check = item: each names a host file, most
// a KVM module parameter (/sys/module/kvm*).
func checkMatch(t Test, _ QEMUOpts) (string, bool) {
	var parts []string
	for _, c := range t.Check {
		if strings.HasPrefix(c, "/sys/module/kvm") {
			c += " (KVM module parameter)"
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, ", "), len(parts) > 0
}

// deviceMatch holds for any -device other than isa-debug-exit.
func deviceMatch(_ Test, o QEMUOpts) (string, bool) {
	var names []string
	for _, d := range o.Devices {
		name, _, _ := strings.Cut(d, ",")
		if name != "isa-debug-exit" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", "), len(names) > 0
}

// machineMatch holds for machine types and properties other than pc
// and pit=off (and the KVM ones kvmParamsMatch names).
func machineMatch(_ Test, o QEMUOpts) (string, bool) {
	var bad []string
	for _, p := range machineProps(o) {
		switch {
		case p == "pc" || p == "pit=off" || p == "accel=tcg":
		case p == "accel=kvm" || strings.HasPrefix(p, "kernel-irqchip"):
		default:
			bad = append(bad, p)
		}
	}
	return strings.Join(bad, ", "), len(bad) > 0
}

// hypercallMatch holds for the hypercall test and vmexit's vmcall case.
func hypercallMatch(t Test, _ QEMUOpts) (string, bool) {
	if t.File == "hypercall.flat" {
		return "", true
	}
	if t.File != "vmexit.flat" {
		return "", false
	}
	words, _ := SplitWords(t.TestArgs)
	return "vmexit's vmcall case", slices.Contains(words, "vmcall")
}

// fepMatch holds for a test asked (not told not) to use forced
// emulation: test_args words naming it, without vmx's "-" that leaves
// a case out.
func fepMatch(t Test, _ QEMUOpts) (string, bool) {
	words, _ := SplitWords(t.TestArgs)
	for _, w := range words {
		if !strings.HasPrefix(w, "-") && (strings.Contains(w, "force_emulation") || strings.Contains(w, "forced_emulation")) {
			return w, true
		}
	}
	return "", false
}

// fileDetail is a Match that holds for the binaries of a table, with
// their entries as detail.
func fileDetail(byFile map[string]string) func(Test, QEMUOpts) (string, bool) {
	return func(t Test, _ QEMUOpts) (string, bool) {
		d, ok := byFile[t.File]
		return d, ok
	}
}

// cpuModel is the model of a -cpu value ("qemu64" of "qemu64,+x2apic").
func cpuModel(cpu string) string {
	m, _, _ := strings.Cut(cpu, ",")
	return m
}

// cpuProps are the properties of a -cpu value after its model.
func cpuProps(cpu string) []string {
	parts := strings.Split(cpu, ",")
	return parts[1:]
}

// machineProps are the comma-separated parts of every -machine / -M.
func machineProps(o QEMUOpts) []string {
	var ps []string
	for _, m := range o.Machine {
		ps = append(ps, strings.Split(m, ",")...)
	}
	return ps
}

// otherOpt is the value of option name among o.Other ("" if absent).
func otherOpt(o QEMUOpts, name string) string {
	for _, kv := range o.Other {
		if kv[0] == name && len(kv) > 1 {
			return kv[1]
		}
	}
	return ""
}
