// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/hyperkernel/shell"
)

type fakeGuest struct {
	info    VMInfo
	console *ConsoleLog
}

func (g *fakeGuest) Info() VMInfo         { return g.info }
func (g *fakeGuest) Console() *ConsoleLog { return g.console }
func (g *fakeGuest) Stop()                { g.info.Outcome = "stopped by the operator" }

type fakeOS struct {
	guests []Guest
	last   struct {
		vcpus   int
		mem     uint64
		cmdline string
	}
}

func (o *fakeOS) BootOS(vcpus int, mem uint64, cmdline string) (Guest, error) {
	o.last.vcpus, o.last.mem, o.last.cmdline = vcpus, mem, cmdline
	g := &fakeGuest{info: VMInfo{ID: len(o.guests) + 1, Name: "linux", VCPUs: vcpus, Memory: mem, Started: time.Now(), Outcome: "running"}, console: NewConsoleLog(64)}
	o.guests = append(o.guests, g)
	return g, nil
}

func (o *fakeOS) Guests() []Guest { return o.guests }

func runOS(t *testing.T, os OSHost, cmd int, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Commands(&fakeRunner{}, os, "")[cmd].Run(&out, args)
	return out.String(), err
}

func TestBootListStopConsole(t *testing.T) {
	os := &fakeOS{}
	out, err := runOS(t, os, 0, "boot", "linux", "vcpus=2", "mem=256M", "cmdline=console=ttyS0 quiet")
	if err != nil || !strings.Contains(out, "vm 1: linux, 2 vCPUs, 256 MiB") {
		t.Fatalf("boot: %q, %v", out, err)
	}
	if os.last.vcpus != 2 || os.last.mem != 256<<20 || os.last.cmdline != "console=ttyS0 quiet" {
		t.Errorf("BootOS got %+v", os.last)
	}
	if _, err := runOS(t, os, 0, "boot", "linux"); err != nil || os.last.vcpus != DefaultGuestVCPUs || os.last.mem != DefaultGuestMemory {
		t.Errorf("defaults: %+v, %v", os.last, err)
	}
	out, _ = runOS(t, os, 0, "list")
	if strings.Count(out, "running") != 2 {
		t.Errorf("list:\n%s", out)
	}
	for _, c := range "hello\nworld\n" {
		os.guests[0].Console().WriteByte(byte(c))
	}
	out, err = runOS(t, os, 1, "1")
	if err != nil || !strings.Contains(out, "hello\r\nworld\r\n") || !strings.Contains(out, "[vm 1: running]") {
		t.Errorf("console 1: %q, %v", out, err)
	}
	out, err = runOS(t, os, 0, "stop", "1")
	if err != nil || !strings.Contains(out, "stopped by the operator") {
		t.Errorf("stop: %q, %v", out, err)
	}
	for _, bad := range [][]string{
		{"boot", "windows"}, {"boot", "linux", "vcpus=0"}, {"boot", "linux", "vcpus=x"}, {"boot", "linux", "mem=12Q"},
		{"boot", "linux", "mem=0"}, {"boot", "linux", "disk=1"}, {"boot", "linux", "vcpus"}, {"stop", "x"},
	} {
		if _, err := runOS(t, os, 0, bad...); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("vm %v: %v, want a usage error", bad, err)
		}
	}
	if _, err := runOS(t, os, 0, "stop", "9"); err == nil {
		t.Error("stopping VM 9 of 2 succeeded")
	}
	if _, err := runOS(t, os, 1, "1", "wait=-1"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("console wait=-1: %v", err)
	}
	if _, err := runOS(t, nil, 0, "list"); err == nil || !strings.Contains(err.Error(), "no guest operating system") {
		t.Errorf("vm list without an image: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"4096": 4096, "64K": 64 << 10, "128M": 128 << 20, "2G": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "M", "-1M", "1T", "99999999999G", "0"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
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

func TestEarlySerial(t *testing.T) {
	log := NewConsoleLog(64)
	s := &earlySerial{out: log}
	s.Out(0x3FB, 1, 0x80) // DLAB
	s.Out(0x3F8, 1, 1)    // divisor, not output
	s.Out(0x3FB, 1, 0x03)
	for _, c := range "ok\n" {
		if s.In(0x3FD, 1)&lsrTHRE == 0 {
			t.Fatal("transmitter never empty")
		}
		s.Out(0x3F8, 1, uint32(c))
	}
	if b, _ := log.Since(0); string(b) != "ok\n" {
		t.Errorf("console got %q", b)
	}
	s.Out(0x3FF, 1, 0x5A)
	if s.In(0x3FF, 1) != 0x5A {
		t.Error("scratch register lost its value")
	}
}
