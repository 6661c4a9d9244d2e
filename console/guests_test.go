// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/machine/link"
)

type fakeGuest struct {
	info    hv.VMInfo
	console *hv.ConsoleLog
	mu      sync.Mutex
	typed   []byte
	exits   uint64
}

func (g *fakeGuest) VCPUs() []hv.VCPUInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.exits += 100
	v := []hv.VCPUInfo{
		{Index: 0, APICID: 0, State: hv.VCPURunning, Core: 1, Exits: g.exits},
		{Index: 1, APICID: 1, State: hv.VCPUWaitSIPI, Core: -1},
	}
	v[0].InService.Set(0x21)
	v[0].Requested.Set(0x21)
	v[0].Requested.Set(0xec)
	return v
}

func (g *fakeGuest) Input(p []byte) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.typed = append(g.typed, p...)
	return len(p)
}

func (g *fakeGuest) Info() hv.VMInfo         { return g.info }
func (g *fakeGuest) Console() *hv.ConsoleLog { return g.console }
func (g *fakeGuest) Stop()                   { g.info.Outcome = "stopped by the operator" }

type fakeOS struct {
	guests []Guest
	last   struct {
		vcpus   int
		mem     uint64
		cmdline string
		req     hv.LinuxRequest
	}
}

func (o *fakeOS) BootOS(r hv.LinuxRequest) (Guest, error) {
	vcpus, mem := r.VCPUs, r.Memory
	o.last.vcpus, o.last.mem, o.last.cmdline, o.last.req = vcpus, mem, r.Cmdline, r
	g := &fakeGuest{info: hv.VMInfo{ID: len(o.guests) + 1, Name: "linux", VCPUs: vcpus, Memory: mem, Started: time.Now(), Outcome: "running",
		Setup: 1234 * time.Millisecond, Tables: (mem >> 21) * 4096}, console: hv.NewConsoleLog(64)}
	o.guests = append(o.guests, g)
	return g, nil
}

func (o *fakeOS) Guests() []Guest { return o.guests }

func runOS(t *testing.T, os OSHost, cmd int, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := VMCommands(&fakeRunner{}, os, "")[cmd].Run(&out, args)
	return out.String(), err
}

// TestBootAbove4G: a guest larger than 3 GiB has RAM above 4 GiB, and the
// message says where.
func TestBootAbove4G(t *testing.T) {
	os := &fakeOS{}
	out, err := runOS(t, os, 0, "boot", "linux", "mem=5G")
	if err != nil || !strings.Contains(out, "5120 MiB at [0, 0xc0000000) + [0x100000000, 0x180000000): started") {
		t.Errorf("boot mem=5G: %q, %v", out, err)
	}
	if os.last.mem != 5<<30 {
		t.Errorf("BootOS got %+v", os.last)
	}
}

func TestBootListStopConsole(t *testing.T) {
	os := &fakeOS{}
	out, err := runOS(t, os, 0, "boot", "linux", "vcpus=2", "mem=256M", "cmdline=console=ttyS0 quiet")
	if err != nil || !strings.Contains(out, "vm 1: linux, 2 vCPUs, 256 MiB") {
		t.Fatalf("boot: %q, %v", out, err)
	}
	// A page table per 2 MiB: 512 KiB of tables, 2 MiB per GiB.
	if !strings.Contains(out, "built in 1.234s; page tables 512 KiB (2 MiB per GiB of RAM)") {
		t.Errorf("boot does not report its setup cost: %q", out)
	}
	if os.last.vcpus != 2 || os.last.mem != 256<<20 || os.last.cmdline != "console=ttyS0 quiet" {
		t.Errorf("BootOS got %+v", os.last)
	}
	if _, err := runOS(t, os, 0, "boot", "linux"); err != nil || os.last.vcpus != hv.DefaultGuestVCPUs || os.last.mem != hv.DefaultGuestMemory {
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
	out, err = runOS(t, os, 0, "stat", "1")
	if err != nil || !strings.Contains(out, "vm 1 (linux, running): 0 exits") {
		t.Errorf("vm stat 1: %q, %v", out, err)
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

// syncBuffer is a bytes.Buffer safe for the attach goroutine's writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// slowReader hands out its chunks one Read at a time, after a pause, as
// a typing operator does.
type slowReader struct{ chunks []string }

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	time.Sleep(30 * time.Millisecond)
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

func TestConsoleAttach(t *testing.T) {
	os := &fakeOS{}
	g0, _ := os.BootOS(hv.LinuxRequest{VCPUs: 1, Memory: 1 << 20})
	g := g0.(*fakeGuest)
	for _, c := range "# " {
		g.console.WriteByte(byte(c))
	}
	cmd := ConsoleCommand(os)
	var out syncBuffer
	in := &slowReader{chunks: []string{"ls\r", "cat /proc/cpuinfo\r", "x\x1dnot for the guest", "shell input"}}
	if err := cmd.Attach(in, &out, nil); err != nil {
		t.Fatal(err)
	}
	if string(g.typed) != "ls\rcat /proc/cpuinfo\rx" {
		t.Errorf("guest got %q", g.typed)
	}
	if len(in.chunks) != 1 {
		t.Errorf("attach read %d chunks past the detach key", 1-len(in.chunks))
	}
	if s := out.String(); !strings.Contains(s, "Ctrl-]") || !strings.Contains(s, "# ") || !strings.Contains(s, "[detached from vm 1]") {
		t.Errorf("output %q", s)
	}

	// A VM that ends while attached: the next key returns to the shell
	// and is not typed into it.
	g.typed = nil
	g.info.Outcome = "the guest reset the machine"
	out = syncBuffer{}
	in = &slowReader{chunks: []string{"y", "z"}}
	if err := cmd.Attach(in, &out, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if len(g.typed) > 1 || !strings.Contains(out.String(), "reset the machine; press a key") {
		t.Errorf("ended VM: typed %q, output %q", g.typed, out.String())
	}
	// wait= keeps the non-interactive follow mode.
	out = syncBuffer{}
	if err := cmd.Attach(&slowReader{}, &out, []string{"wait=0"}); err != nil || !strings.Contains(out.String(), "[vm 1: the guest reset the machine]") {
		t.Errorf("wait=0: %q %v", out.String(), err)
	}
}

func TestVCPUsCommand(t *testing.T) {
	os := &fakeOS{}
	os.BootOS(hv.LinuxRequest{VCPUs: 2, Memory: 1 << 20})
	var out bytes.Buffer
	if err := VCPUsCommand(os).Run(&out, nil); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// 100 exits over the half-second sample: 200 exits/s.
	for _, want := range []string{"vm 1 (linux)", "0     0     running        1     200        200      0x21        0x21 0xec", "1     1     wait-for-SIPI  -     0          0        -           -"} {
		if !strings.Contains(s, want) {
			t.Errorf("vcpus: no %q in:\n%s", want, s)
		}
	}
	if err := VCPUsCommand(nil).Run(&out, nil); err == nil {
		t.Error("vcpus without VMs succeeded")
	}
}

// TestBootDisksAndNet reads disk= and net= into the boot request and
// refuses what cannot be a disk or a MAC, booting nothing.
func TestBootDisksAndNet(t *testing.T) {
	os := &fakeOS{}
	_, err := runOS(t, os, 0, "boot", "linux", "disk=nbd://10.0.2.2/root,ram:64M,nbd://10.0.2.2:10810/", "net=on")
	if err != nil {
		t.Fatal(err)
	}
	r := os.last.req
	want := []string{"nbd://10.0.2.2:10809/root", "ram:64M", "nbd://10.0.2.2:10810/"}
	if len(r.Disks) != len(want) || r.Net == nil || r.Net.MAC != (link.MAC{}) {
		t.Fatalf("request %+v", r)
	}
	for i, d := range r.Disks {
		if d.String() != want[i] {
			t.Errorf("disk %d is %s, want %s", i, d, want[i])
		}
	}
	if _, err := runOS(t, os, 0, "boot", "linux", "net=0a:b1:00:00:00:07"); err != nil || os.last.req.Net.MAC != (link.MAC{0x0a, 0xb1, 0, 0, 0, 7}) || os.last.req.Disks != nil {
		t.Errorf("net=MAC: %+v, %v", os.last.req, err)
	}
	n := len(os.guests)
	for _, bad := range []string{"disk=nbd://server/x", "disk=ram:100", "disk=nfs://1.2.3.4/x", "disk=nbd://1.2.3.4:0/x",
		"disk=nbd://1.2.3.4:70000/x", "disk=" + strings.Repeat("ram:1M,", 8) + "ram:1M", "net=ff:ff:ff:ff:ff:ff", "net=yes", "net=0a:b1:00:00:00"} {
		if _, err := runOS(t, os, 0, "boot", "linux", bad); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if len(os.guests) != n {
		t.Error("a refused request booted a guest")
	}
}

// TestBootRoot reads root= into the boot request, which puts
// bigiron.root= on the guest's command line, the default one or the
// operator's; a disk the guest does not have is refused.
func TestBootRoot(t *testing.T) {
	os := &fakeOS{}
	if _, err := runOS(t, os, 0, "boot", "linux", "disk=ram:8M,nbd://10.0.2.2/r", "root=vdb"); err != nil {
		t.Fatal(err)
	}
	r := os.last.req
	if r.Root != "/dev/vdb" || r.KernelCmdline("console=ttyS0") != "console=ttyS0 bigiron.root=/dev/vdb" {
		t.Errorf("root=vdb: %+v, command line %q", r, r.KernelCmdline("console=ttyS0"))
	}
	if _, err := runOS(t, os, 0, "boot", "linux", "root=/dev/vda", "cmdline=quiet"); err != nil || os.last.req.KernelCmdline("x") != "quiet bigiron.root=/dev/vda" {
		t.Errorf("root=/dev/vda on the one RAM disk: %+v, %v", os.last.req, err)
	}
	if _, err := runOS(t, os, 0, "boot", "linux"); err != nil || os.last.req.KernelCmdline("console=ttyS0") != "console=ttyS0" {
		t.Errorf("no root: %+v, %v", os.last.req, err)
	}
	n := len(os.guests)
	for _, bad := range [][]string{{"root=vdb"}, {"root=sda"}, {"root="}, {"root=vda1"}, {"disk=ram:8M,ram:8M", "root=vdc"}, {"root=/dev/../vda"}} {
		_, err := runOS(t, os, 0, append([]string{"boot", "linux"}, bad...)...)
		if !errors.Is(err, shell.ErrUsage) || !strings.Contains(err.Error(), "root=") {
			t.Errorf("%v: %v, want a usage error about root=", bad, err)
		}
	}
	if len(os.guests) != n {
		t.Error("a refused request booted a guest")
	}
}

// TestBootFiles reads kernel= and initrd= into the boot request; a URL
// the node cannot fetch is refused before anything boots.
func TestBootFiles(t *testing.T) {
	os := &fakeOS{}
	if _, err := runOS(t, os, 0, "boot", "linux", "kernel=http://10.0.2.2:8000/vmlinuz", "initrd=http://10.0.2.2/i.gz"); err != nil {
		t.Fatal(err)
	}
	if b := os.last.req.Boot; b.Kernel != "http://10.0.2.2:8000/vmlinuz" || b.Initrd != "http://10.0.2.2/i.gz" {
		t.Errorf("boot files: %+v", b)
	}
	n := len(os.guests)
	for _, bad := range []string{"kernel=https://10.0.2.2/k", "kernel=http://boot.lan/k", "initrd=tftp://10.0.2.2/i", "kernel=", "initrd=http://10.0.2.2:99999/i"} {
		if _, err := runOS(t, os, 0, "boot", "linux", bad); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if len(os.guests) != n {
		t.Error("a refused request booted a guest")
	}
}

// TestBootMultiboot: `vm boot multiboot` asks for a Multiboot kernel and
// its modules by URL; without a kernel, or with Linux's words, it is
// refused before the node is asked.
func TestBootMultiboot(t *testing.T) {
	os := &fakeOS{}
	_, err := runOS(t, os, 0, "boot", "multiboot", "kernel=http://10.0.2.2:8000/x86/apic.flat",
		"module=http://10.0.2.2:8000/env,http://10.0.2.2:8000/m2", "cmdline=-test x", "vcpus=2", "mem=64M")
	if err != nil {
		t.Fatal(err)
	}
	r := os.last.req
	if !r.Multiboot || r.Boot.Kernel != "http://10.0.2.2:8000/x86/apic.flat" || r.VCPUs != 2 || r.Memory != 64<<20 || r.Cmdline != "-test x" ||
		len(r.Boot.Modules) != 2 || r.Boot.Modules[1] != "http://10.0.2.2:8000/m2" {
		t.Errorf("BootOS got %+v", r)
	}
	for _, bad := range [][]string{
		{"module=http://10.0.2.2/env"},
		{"kernel=http://10.0.2.2/k", "disk=ram:1M"},
		{"kernel=http://10.0.2.2/k", "initrd=http://10.0.2.2/i"},
		{"kernel=https://10.0.2.2/k"},
		{"kernel=http://10.0.2.2/k", "module=http://10.0.2.2/a,tftp://10.0.2.2/b"},
		{"kernel=http://10.0.2.2/k", "module=" + strings.Repeat("http://10.0.2.2/a,", 16) + "http://10.0.2.2/a"},
	} {
		n := len(os.guests)
		if _, err := runOS(t, os, 0, append([]string{"boot", "multiboot"}, bad...)...); err == nil || len(os.guests) != n {
			t.Errorf("vm boot multiboot %q: accepted (%v)", bad, err)
		}
	}
}
