// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"strings"
	"testing"
)

func TestResultNotesMigrations(t *testing.T) {
	var r Result
	for _, c := range []uint32{2, 2, 0, 0, 2} {
		r.noteCore(c)
	}
	if r.APICID != 2 || r.Loads != 5 || r.Migrations != 2 || len(r.Cores) != 2 {
		t.Errorf("got first %d, loads %d, migrations %d, cores %v", r.APICID, r.Loads, r.Migrations, r.Cores)
	}
	if s := r.String(); !strings.Contains(s, "moved between cores 2 times") {
		t.Errorf("String:\n%s", s)
	}
}

func TestConsoleLogKeepsTheNewest(t *testing.T) {
	c := NewConsoleLog(16)
	for i := range 40 {
		c.WriteByte(byte('a' + i%26))
	}
	b, next := c.Since(0)
	if next != 40 || len(b) == 0 || len(b) > 16 || b[len(b)-1] != 'a'+39%26 {
		t.Fatalf("Since(0) = %q, %d", b, next)
	}
	if b, _ := c.Since(38); string(b) != string([]byte{'a' + 38%26, 'a' + 39%26}) {
		t.Errorf("Since(38) = %q", b)
	}
	if b, n := c.Since(100); len(b) != 0 || n != 40 {
		t.Errorf("Since(100) = %q, %d", b, n)
	}
	if n := testing.AllocsPerRun(100, func() { c.WriteByte('x') }); n != 0 {
		t.Errorf("WriteByte allocates %v", n)
	}
}

func TestResetControl(t *testing.T) {
	n := 0
	r := resetControl{reset: func() { n++ }}
	r.Out(portResetControl, 1, 0x02) // hard/soft select only
	r.Out(portI8042Command, 1, 0xD1)
	r.Out(portI8042Data, 1, 0xFE)
	if n != 0 {
		t.Fatalf("reset by a write that does not ask for one")
	}
	r.Out(portResetControl, 1, 0x06)
	r.Out(portI8042Command, 1, i8042PulseReset)
	if n != 2 {
		t.Errorf("%d resets, want 2", n)
	}
	if r.In(portI8042Command, 1) != 0 {
		t.Error("i8042 status not empty")
	}
}

// TestWithTSCRate checks the TSC rate an AMD-V node puts on a Linux
// guest's command line: dilated like CPUID's, and never over the
// operator's.
func TestWithTSCRate(t *testing.T) {
	for _, c := range []struct {
		cmdline  string
		dilation int
		want     string
	}{
		{"console=ttyS0", 0, "console=ttyS0 tsc_early_khz=2600000"},
		{"console=ttyS0", 1, "console=ttyS0 tsc_early_khz=2600000"},
		{"console=ttyS0", 10, "console=ttyS0 tsc_early_khz=26000000"},
		{"console=ttyS0", 255, "console=ttyS0 tsc_early_khz=663000000"},
		{"tsc_early_khz=1000 quiet", 10, "tsc_early_khz=1000 quiet"},
	} {
		if got := withTSCRate(c.cmdline, 2_600_000_000, c.dilation); got != c.want {
			t.Errorf("withTSCRate(%q, 2.6 GHz, %d) = %q, want %q", c.cmdline, c.dilation, got, c.want)
		}
	}
}
