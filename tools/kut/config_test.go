// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// smallCfg is a unittests.cfg with the forms the suite's files use.
const smallCfg = `##############################################################
# x86 specifics:
#
# file = <name>.flat            # x86 uses .flat files
##############################################################

[x2apic]
file = apic.flat
smp = 2
qemu_params = -cpu qemu64,+x2apic,+tsc-deadline
arch = x86_64
timeout = 30
groups = apic

#[init]
#file = init.flat

[vmexit_ipi]
file = vmexit.flat
smp = 2
test_args = 'ipi'
qemu_params = -machine pit=off
groups = vmexit

[big]
file = big.flat
smp = $((($MAX_SMP < 8)?$MAX_SMP:8))
qemu_params = """-cpu max -m 4g \
-device pc-testdev
-machine pit=off"""
test_args = "a b"
check = /sys/module/kvm/parameters/enable_pmu=Y /proc/sys/kernel/nmi_watchdog=0
accel = kvm
timeout = 2m
unknown_key = kept

[old]
file = old.flat
extra_params = -cpu max -append 'one two'
`

// TestParseConfigSmall checks every field on an inline cfg.
func TestParseConfigSmall(t *testing.T) {
	tests, err := ParseConfig(strings.NewReader(smallCfg))
	if err != nil {
		t.Fatal(err)
	}
	want := []Test{
		{Name: "x2apic", File: "apic.flat", SMP: 2, SMPExpr: "2", ExtraParams: "-cpu qemu64,+x2apic,+tsc-deadline",
			Arch: "x86_64", Timeout: 30 * time.Second, Groups: []string{"apic"}, Line: 7},
		{Name: "vmexit_ipi", File: "vmexit.flat", SMP: 2, SMPExpr: "2", TestArgs: "'ipi'", ExtraParams: "-machine pit=off",
			Groups: []string{"vmexit"}, Line: 18},
		{Name: "big", File: "big.flat", SMPExpr: "$((($MAX_SMP < 8)?$MAX_SMP:8))",
			ExtraParams: "-cpu max -m 4g -device pc-testdev\n-machine pit=off", TestArgs: `"a b"`,
			Check: []string{"/sys/module/kvm/parameters/enable_pmu=Y", "/proc/sys/kernel/nmi_watchdog=0"},
			Accel: "kvm", Timeout: 2 * time.Minute, Other: map[string]string{"unknown_key": "kept"}, Line: 25},
		{Name: "old", File: "old.flat", SMP: 1, ExtraParams: "-cpu max -append 'one two'", Line: 37},
	}
	if !reflect.DeepEqual(tests, want) {
		t.Errorf("got\n%+v\nwant\n%+v", tests, want)
	}
}

// TestParseConfigErrors checks that malformed files are refused with
// the line.
func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{"file = a.flat\n", "line 1: file = outside a [section]"},
		{"[a]\nfile = a.flat\n[a]\nfile = b.flat\n", "line 3: [a] again (first at line 1)"},
		{"[a]\nsmp = 2\n", "line 1: [a] has no file ="},
		{"[a]\nfile = a.flat\ntimeout = soon\n", `line 3: test a: timeout "soon"`},
		{"[a]\nfile = a.flat\nqemu_params = \"\"\"-m 1\n", `""" opened at line 3 is not closed`},
		{"[a]\nwhat is this\n", "line 2: neither"},
	} {
		_, err := ParseConfig(strings.NewReader(c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one with %q", c.cfg, err, c.want)
		}
	}
}

// TestParseConfigReal parses the suite's own x86/unittests.cfg and logs
// every test with whether it applies to big-iron, and why not.
func TestParseConfigReal(t *testing.T) {
	tests, err := ParseConfig(bytes.NewReader(realConfig(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) < 50 {
		t.Errorf("only %d tests", len(tests))
	}
	for _, tst := range tests {
		if _, err := tst.CPUs(4); err != nil {
			t.Errorf("%s: %v", tst.Name, err)
		}
		if _, err := Options(tst); err != nil {
			t.Errorf("%s: %v", tst.Name, err)
		}
	}
	var b strings.Builder
	if err := WriteDecisions(&b, Decide(tests)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tests of x86/unittests.cfg:\n%s", len(tests), b.String())
}

// TestCPUs checks the smp= forms.
func TestCPUs(t *testing.T) {
	for _, c := range []struct {
		expr    string
		max     int
		want    int
		wantErr bool
	}{
		{"", 4, 1, false},
		{"3", 0, 3, false},
		{"2,threads=2", 0, 2, false},
		{"$MAX_SMP", 6, 6, false},
		{"${MAX_SMP}", 6, 6, false},
		{"$((($MAX_SMP < 8)?$MAX_SMP:8))", 16, 8, false},
		{"$((($MAX_SMP < 8)?$MAX_SMP:8))", 2, 2, false},
		{"$MAX_SMP", 0, 0, true},
		{"$((MAX_SMP * 2))", 4, 0, true},
	} {
		got, err := Test{Name: "x", SMPExpr: c.expr}.CPUs(c.max)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("smp = %q, MAX_SMP %d: %d, %v; want %d, error %v", c.expr, c.max, got, err, c.want, c.wantErr)
		}
	}
}

// TestParseTimeout checks timeout(1)'s forms.
func TestParseTimeout(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"90": 90 * time.Second, "10s": 10 * time.Second, "2m": 2 * time.Minute,
		"1.5h": 90 * time.Minute, "1d": 24 * time.Hour, "0.5": 500 * time.Millisecond,
	} {
		if got, err := ParseTimeout(s); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "s", "-1", "ten"} {
		if _, err := ParseTimeout(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}
