// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"errors"
	"reflect"
	"testing"
)

// TestSplitWords checks the shell quoting the cfg files use.
func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		"":                                  nil,
		"  ipi ":                            {"ipi"},
		"'cpuid'":                           {"cpuid"},
		`"-pause_filter_test"`:              {"-pause_filter_test"},
		`"ept_access*"`:                     {"ept_access*"},
		"a\tb\nc":                           {"a", "b", "c"},
		`'a b' "c d"e f\ g`:                 {"a b", "c de", "f g"},
		`"x\"y\\z\q"`:                       {`x"y\z\q`},
		"'$MAX_SMP `no`'":                   {"$MAX_SMP `no`"},
		`-cpu max -append 'a b' -m 4g`:      {"-cpu", "max", "-append", "a b", "-m", "4g"},
		"line\\\njoined":                    {"linejoined"},
		`""`:                                {""},
		`price=\$x`:                         {"price=$x"},
		`trailing\`:                         {`trailing\`},
		`"a"'b'c`:                           {"abc"},
		`x="1 2"`:                           {"x=1 2"},
		`$`:                                 {"$"},
		`'-exit_monitor_from_l2_test -ept'`: {"-exit_monitor_from_l2_test -ept"},
	} {
		got, err := SplitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"10000000 `date +%s`", `"$(date)"`, "$MAX_SMP", `"${x}"`, "cost $5", `'open`, `"open`} {
		_, err := SplitWords(in)
		if err == nil {
			t.Errorf("SplitWords(%q): no error", in)
		}
	}
	if _, err := SplitWords("`x`"); !errors.Is(err, ErrExpansion) {
		t.Errorf("backticks: %v, want ErrExpansion", err)
	}
}

// TestParseQEMUParams checks the options of qemu_params values.
func TestParseQEMUParams(t *testing.T) {
	o, err := ParseQEMUParams("-M q35,kernel-irqchip=split -device intel-iommu,intremap=on,eim=off -device edu -cpu max,+vmx -m 2560 -enable-kvm -overcommit cpu-pm=on --smp 4 -append 'a b' -nodefaults")
	if err != nil {
		t.Fatal(err)
	}
	want := QEMUOpts{CPU: "max,+vmx", Mem: "2560", SMP: "4", Machine: []string{"q35,kernel-irqchip=split"},
		Devices: []string{"intel-iommu,intremap=on,eim=off", "edu"}, Append: "a b", HasAppend: true, EnableKVM: true,
		Other: [][]string{{"-overcommit", "cpu-pm=on"}, {"-nodefaults"}}}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}
	for _, bad := range []string{"-cpu", "max", "-m 1 stray"} {
		if _, err := ParseQEMUParams(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestMemMiB checks -m sizes.
func TestMemMiB(t *testing.T) {
	for in, want := range map[string]int{"": 0, "2048": 2048, "4g": 4096, "4G": 4096, "512M": 512, "size=1G,slots=2,maxmem=8G": 1024, "1.5g": 1536} {
		got, err := QEMUOpts{Mem: in}.MemMiB()
		if err != nil || got != want {
			t.Errorf("-m %q: %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := (QEMUOpts{Mem: "lots"}).MemMiB(); err == nil {
		t.Error("-m lots: no error")
	}
}

// TestArgsAndCPUFlags checks the guest command line and -cpu of tests.
func TestArgsAndCPUFlags(t *testing.T) {
	for _, c := range []struct {
		test      Test
		args, cpu string
		wantErr   bool
	}{
		{Test{Name: "vmexit_cpuid", TestArgs: "'cpuid'"}, "cpuid", "", false},
		{Test{Name: "svm", TestArgs: `"-pause_filter_test"`, ExtraParams: "-cpu max,+svm -m 4g"}, "-pause_filter_test", "max,+svm", false},
		{Test{Name: "x2apic", ExtraParams: "-cpu qemu64,+x2apic,+tsc-deadline"}, "", "qemu64,+x2apic,+tsc-deadline", false},
		{Test{Name: "old", ExtraParams: "-cpu max,+x2apic -append 'tscdeadline_immed'"}, "tscdeadline_immed", "max,+x2apic", false},
		{Test{Name: "kvmclock_test", TestArgs: "\"10000000 `date +%s`\""}, "", "", true},
	} {
		args, err := Args(c.test)
		if args != c.args || (err != nil) != c.wantErr {
			t.Errorf("Args(%s) = %q, %v; want %q", c.test.Name, args, err, c.args)
		}
		cpu, err := CPUFlags(c.test)
		if cpu != c.cpu || err != nil {
			t.Errorf("CPUFlags(%s) = %q, %v; want %q", c.test.Name, cpu, err, c.cpu)
		}
	}
}
