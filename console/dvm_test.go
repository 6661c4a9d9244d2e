// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/vmm/testguest"
)

// fakeDist is a DistRunner that records what the commands ask for.
type fakeDist struct {
	running   bool
	started   hv.DistStart
	migrated  [2]int
	evacuated int
	status    hv.DistStatus
}

func (f *fakeDist) Start(req hv.DistStart, progress io.Writer) (dvm.Spec, error) {
	f.started, f.running = req, true
	f.status.Spec = dvm.Spec{ID: 7, Nodes: max(req.Nodes, 2), VCPUs: max(req.VCPUs, 2), Pages: 1024, Arg: uint32(req.Iterations),
		FirstTouch: req.FirstTouch, MoveAfter: uint8(req.MoveAfter), WalkWindows: req.WalkWindows, Balance: req.Balance,
		SmallPages: req.SmallPages}
	return f.status.Spec, nil
}

func (f *fakeDist) Status() (hv.DistStatus, error) {
	if !f.running {
		return hv.DistStatus{}, errors.New("no distributed VM on this node")
	}
	st := f.status
	if st.Index >= 0 && st.Index < st.Spec.Nodes && st.Stats.Homes == 0 {
		st.Stats.Homes = st.Spec.Homed()[st.Index] // its share, as at the start
	}
	return st, nil
}

func (f *fakeDist) Peek(gpa uint64) (uint32, error) { return uint32(gpa) + 1, nil }

func (f *fakeDist) Migrate(vcpu, node int) error {
	f.migrated = [2]int{vcpu, node}
	return nil
}

func (f *fakeDist) Evacuate(node int) (int, error) {
	if !f.running {
		return 0, errors.New("no distributed VM on this node")
	}
	f.evacuated = node
	return 1, nil
}

func (f *fakeDist) Stop() error { f.running = false; return nil }

// run runs one command line against cmds.
func run(t *testing.T, cmds []*shell.Command, line string) (string, error) {
	t.Helper()
	words := strings.Fields(line)
	for _, c := range cmds {
		if c.Name == words[0] {
			var out bytes.Buffer
			err := c.Run(&out, words[1:])
			return out.String(), err
		}
	}
	t.Fatalf("no command %q", words[0])
	return "", nil
}

func TestDistCommands(t *testing.T) {
	f := &fakeDist{}
	cmds := DistCommands(f, "")
	if _, err := run(t, cmds, "dvm start nodes=2 vcpus=zero"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("bad argument: %v, want a usage error", err)
	}
	if _, err := run(t, cmds, "dvm start color=2"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("unknown argument: %v, want a usage error", err)
	}
	if _, err := run(t, cmds, "dvm start guest=doom"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("unknown guest: %v, want a usage error", err)
	}
	out, err := run(t, cmds, "dvm start guest=pingpong iters=9")
	if err != nil || f.started.Guest != testguest.VariantPingPong || !strings.Contains(out, "pingpong guest") {
		t.Errorf("dvm start guest=pingpong: %q %v, runner got %+v", out, err, f.started)
	}
	out, err = run(t, cmds, "dvm start nodes=2 vcpus=2 iters=500")
	if err != nil || !strings.Contains(out, "dvm 7: counter guest, 2 vCPUs on 2 nodes, 4 MiB, 500 iterations per vCPU: started") {
		t.Errorf("dvm start: %q %v", out, err)
	}
	if !reflect.DeepEqual(f.started, hv.DistStart{Nodes: 2, VCPUs: 2, Iterations: 500, Guest: testguest.VariantCounter}) {
		t.Errorf("dvm start asked for %+v", f.started)
	}
	if _, err := run(t, cmds, "dvm start place=node0 balance=learned"); err != nil || f.started.Balance != dvm.BalanceLearned || f.started.Place != dvm.PlaceDeviceNode {
		t.Errorf("balance=learned: %v, runner got %+v", err, f.started)
	}
	for _, bad := range []string{"move=sometimes", "devices=teleport", "balance=often"} {
		if _, err := run(t, cmds, "dvm start "+bad); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("dvm start %s: %v, want a usage error", bad, err)
		}
	}
	if _, err := run(t, cmds, "dvm start guest=linux homes=everywhere"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("homes=everywhere: %v, want a usage error", err)
	}
	if _, err := run(t, cmds, "dvm start guest=linux homes=striped"); err != nil || f.started.Homes != "striped" {
		t.Errorf("homes=striped: %v, runner got %+v", err, f.started)
	}
	if _, err := run(t, cmds, "dvm start guest=linux numa=maybe"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("numa=maybe: %v, want a usage error", err)
	}
	if _, err := run(t, cmds, "dvm start guest=linux numa=on"); err != nil || !f.started.NUMA {
		t.Errorf("numa=on: %v, runner got %+v", err, f.started)
	}
	if _, err = run(t, cmds, "dvm start guest=pingpong move=hysteresis devices=move"); err != nil || f.started.Move != dvm.MoveHysteresis || f.started.Devices != dvm.DevicesMove {
		t.Errorf("dvm start move=hysteresis devices=move: %v, runner got %+v", err, f.started)
	}
	f.status.Self, f.status.Index, f.status.Elapsed = 2, 1, 2*time.Second
	f.status.Spec.Move, f.status.Stats.PolicyMoves = dvm.MoveAlways, 3
	f.status.Stats.Memory.RemoteFaults = 100
	f.status.Stats.Migration.MigrationsIn = 1
	f.status.IPIs, f.status.Stats.Migration.Delivered, f.status.Startups = 10, 9, 1
	f.status.Stats.DeviceReads, f.status.Stats.DeviceReadTime = 2, 6*time.Millisecond
	f.status.VCPUs = []hv.DistVCPU{{ID: 0, Node: 1, State: "running"}, {ID: 1, Node: 2, Here: true, State: "halted"}}
	out, err = run(t, cmds, "dvm stat")
	for _, want := range []string{"dvm 7 on node 2 (1 of 2 in the VM): running", "512 homed here", "(100 remote, 50.0/s)", "1 in (0.50/s)", "policy move=always devices=forward chose 3", "interrupts: 10 IPIs sent from here (5.0/s, 0 to no vCPU), 9 made pending here, 0 forwarded; 1 startup IPIs sent", "devices: 2 reads forwarded to the device node, 3ms on average; 0 interrupts raised by devices here", "1     2     halted"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("dvm stat: no %q in %q (%v)", want, out, err)
		}
	}
	if out, err = run(t, cmds, "pages"); err != nil || strings.Contains(out, "VCPU") || !strings.Contains(out, "pages: 1024 in the VM") {
		t.Errorf("pages: %q %v", out, err)
	}
	f.status.PagesPerCell = 2
	f.status.PageMap = make([]memory.State, 70)
	f.status.PageMap[1], f.status.PageMap[65] = memory.Modified, memory.Shared
	out, err = run(t, cmds, "pages map")
	if err != nil || !strings.Contains(out, "  0x00000000 .M......") || !strings.Contains(out, "  0x00080000 .s....\n") || !strings.Contains(out, "2 page(s) of 4 KiB per character") {
		t.Errorf("pages map:\n%s %v", out, err)
	}
	if _, err = run(t, cmds, "pages all"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("pages all: %v, want a usage error", err)
	}
	if out, err = run(t, cmds, "dvm peek 0x10"); err != nil || !strings.Contains(out, "0x10: 17") {
		t.Errorf("dvm peek: %q %v", out, err)
	}
	if _, err = run(t, cmds, "migrate 1 x"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("migrate 1 x: %v, want a usage error", err)
	}
	if _, err = run(t, cmds, "migrate 1 1"); err != nil || f.migrated != [2]int{1, 1} {
		t.Errorf("migrate 1 1: %v, runner got %v", err, f.migrated)
	}
	if out, err = run(t, cmds, "dvm evacuate 2"); err != nil || f.evacuated != 2 || !strings.Contains(out, "moving 1 vCPUs away") {
		t.Errorf("dvm evacuate 2: %q %v, runner got %d", out, err, f.evacuated)
	}
	if _, err = run(t, cmds, "dvm evacuate -1"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("dvm evacuate -1: %v, want a usage error", err)
	}
	if _, err = run(t, cmds, "dvm stop"); err != nil || f.running {
		t.Errorf("dvm stop: %v, running %v", err, f.running)
	}
	if _, err = run(t, cmds, "dvm stat"); err == nil {
		t.Error("dvm stat after stop succeeded")
	}

	// Without a runner every command says why.
	out, err = run(t, DistCommands(nil, "VT-x is unavailable"), "dvm start")
	if err != nil || !strings.Contains(out, "distributed VMs unavailable: VT-x is unavailable") {
		t.Errorf("no runner: %q %v", out, err)
	}
}

func TestWithDistVCPUs(t *testing.T) {
	f := &fakeDist{}
	cmd := WithDistVCPUs(VCPUsCommand(nil), f)
	var out bytes.Buffer
	if err := cmd.Run(&out, nil); err == nil {
		t.Errorf("vcpus with no VM at all succeeded: %q", out.String())
	}
	f.Start(hv.DistStart{Nodes: 2, VCPUs: 2}, io.Discard)
	f.status.VCPUs = []hv.DistVCPU{{ID: 0, Node: 1, State: "running"}, {ID: 1, Node: 2, Here: true, State: "running"}}
	for _, args := range [][]string{nil, {"dvm"}} {
		out.Reset()
		if err := cmd.Run(&out, args); err != nil {
			t.Fatalf("vcpus %v: %v", args, err)
		}
		for _, want := range []string{"dvm 7 across 2 nodes", "0     1     running\n", "1     2     running (this node)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("vcpus %v: no %q in:\n%s", args, want, out.String())
			}
		}
	}
	// Local VMs still come first.
	os := &fakeOS{}
	os.BootOS(hv.LinuxRequest{VCPUs: 1, Memory: 1 << 20})
	out.Reset()
	if err := WithDistVCPUs(VCPUsCommand(os), f).Run(&out, nil); err != nil || !strings.Contains(out.String(), "vm 1 (linux)") || !strings.Contains(out.String(), "dvm 7") {
		t.Errorf("vcpus with both: %q %v", out.String(), err)
	}
	if WithDistVCPUs(VCPUsCommand(nil), nil).Usage != VCPUsCommand(nil).Usage {
		t.Error("a nil runner changed the command")
	}
}

func TestWithNodeEvacuate(t *testing.T) {
	var passed []string
	base := &shell.Command{Name: "node", Usage: "leave", Help: "leave", Run: func(w io.Writer, args []string) error {
		passed = args
		return nil
	}}
	f := &fakeDist{}
	cmd := WithNodeEvacuate(base, f)
	if err := cmd.Run(io.Discard, []string{"leave"}); err != nil || len(passed) != 1 || passed[0] != "leave" {
		t.Errorf("node leave: %v, base got %v", err, passed)
	}
	if err := cmd.Run(io.Discard, []string{"evacuate", "2"}); err == nil {
		t.Error("node evacuate without a VM succeeded")
	}
	f.Start(hv.DistStart{}, io.Discard)
	var out bytes.Buffer
	if err := cmd.Run(&out, []string{"evacuate", "2"}); err != nil || f.evacuated != 2 || !strings.Contains(out.String(), "node 2: moving 1 vCPUs away") {
		t.Errorf("node evacuate 2: %q %v", out.String(), err)
	}
	if err := cmd.Run(&out, []string{"evacuate"}); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("node evacuate: %v, want a usage error", err)
	}
	if !strings.Contains(cmd.Usage, "evacuate N") {
		t.Errorf("usage %q does not show evacuate", cmd.Usage)
	}
}

// TestNodeLeaveInAVM: a node with vCPUs or pages of a running
// distributed VM refuses `node leave` (it used to leave, and the VM lost
// the node; issue 16, finding 3), says what to do, and leaves with force
// or once the VM has ended or has nothing on it.
func TestNodeLeaveInAVM(t *testing.T) {
	var passed []string
	base := &shell.Command{Name: "node", Usage: "leave | events", Help: "leave", Run: func(w io.Writer, args []string) error {
		passed = args
		return nil
	}}
	f := &fakeDist{}
	cmd := WithNodeEvacuate(base, f)
	f.Start(hv.DistStart{Nodes: 2}, io.Discard)
	f.status.Self, f.status.Index = 2, 1
	f.status.Spec.Homes = dvm.HomesStriped
	f.status.VCPUs = []hv.DistVCPU{{ID: 0, Node: 1}, {ID: 1, Node: 2, Here: true}}
	err := cmd.Run(io.Discard, []string{"leave"})
	if err == nil || passed != nil {
		t.Fatalf("node leave with a vCPU here: %v, base got %v", err, passed)
	}
	for _, want := range []string{"1 vCPUs and 512 pages homed here", "node evacuate 2", "node leave force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	// No vCPU here, but pages of a striped VM still homed here (the
	// evacuation has not handed them on yet, or found no room).
	f.status.VCPUs[1].Here = false
	if err := cmd.Run(io.Discard, []string{"leave"}); err == nil || !strings.Contains(err.Error(), "0 vCPUs and 512 pages") {
		t.Errorf("node leave homing pages: %v", err)
	}
	// All pages homed on node 1 and no vCPU here: nothing is lost.
	f.status.Spec.Homes = dvm.HomesDeviceNode
	if err := cmd.Run(io.Discard, []string{"leave"}); err != nil || len(passed) != 1 {
		t.Errorf("node leave with nothing here: %v, base got %v", err, passed)
	}
	passed = nil
	f.status.Spec.Homes = dvm.HomesStriped
	if err := cmd.Run(io.Discard, []string{"leave", "force"}); err != nil || len(passed) != 1 || passed[0] != "leave" {
		t.Errorf("node leave force: %v, base got %v", err, passed)
	}
	passed = nil
	f.status.Outcome = "finished"
	if err := cmd.Run(io.Discard, []string{"leave"}); err != nil || len(passed) != 1 {
		t.Errorf("node leave after the VM ended: %v, base got %v", err, passed)
	}
	if err := cmd.Run(io.Discard, []string{"leave", "now"}); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("node leave now: %v, want a usage error", err)
	}
	if !strings.Contains(cmd.Usage, "leave [force]") {
		t.Errorf("usage %q", cmd.Usage)
	}
}

// TestDistStartDevices: dvm start guest=linux takes disk= and net= as vm
// boot does; a test guest has no such devices.
func TestDistStartDevices(t *testing.T) {
	f := &fakeDist{}
	cmds := DistCommands(f, "")
	if _, err := run(t, cmds, "dvm start guest=linux disk=nbd://10.0.2.2/r,ram:8M net=on root=vda"); err != nil {
		t.Fatal(err)
	}
	if len(f.started.Disks) != 2 || f.started.Disks[0].String() != "nbd://10.0.2.2:10809/r" || f.started.Net == nil || f.started.Root != "/dev/vda" {
		t.Errorf("dvm start asked for %+v", f.started)
	}
	f.started = hv.DistStart{}
	if _, err := run(t, cmds, "dvm start guest=counter net=on"); !errors.Is(err, shell.ErrUsage) || f.started.Net != nil {
		t.Errorf("a counter guest with a NIC: %v", err)
	}
	if _, err := run(t, cmds, "dvm start guest=linux root=vdb"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("root= on a disk the guest lacks: %v", err)
	}
	f.started = hv.DistStart{}
	if _, err := run(t, cmds, "dvm start guest=linux kernel=http://10.0.2.2:8000/vmlinuz initrd=http://10.0.2.2:8000/initrd"); err != nil ||
		f.started.Boot.Kernel != "http://10.0.2.2:8000/vmlinuz" || f.started.Boot.Initrd != "http://10.0.2.2:8000/initrd" || len(f.started.Boot.Modules) != 0 {
		t.Errorf("dvm start with boot files asked for %+v: %v", f.started.Boot, err)
	}
	if _, err := run(t, cmds, "dvm start guest=pingpong kernel=http://10.0.2.2/k"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("a ping-pong guest with a kernel: %v", err)
	}
}

// TestDistStartMultiboot: guest=multiboot asks for a Multiboot kernel
// and its modules across nodes; Linux's words and a missing kernel are
// refused before anything starts, and module= is for multiboot only.
func TestDistStartMultiboot(t *testing.T) {
	f := &fakeDist{}
	cmds := DistCommands(f, "")
	out, err := run(t, cmds, "dvm start guest=multiboot nodes=2 vcpus=2 mem=128M kernel=http://10.0.2.2:8000/x86/smptest.flat module=http://10.0.2.2:8000/env cmdline=-v")
	if err != nil {
		t.Fatal(err)
	}
	if s := f.started; !s.Linux || !s.Multiboot || s.Boot.Kernel != "http://10.0.2.2:8000/x86/smptest.flat" || len(s.Boot.Modules) != 1 || s.Cmdline != "-v" {
		t.Errorf("dvm start asked for %+v", s)
	}
	if !strings.Contains(out, ": Multiboot, 2 vCPUs on 2 nodes") {
		t.Errorf("dvm start said %q", out)
	}
	for _, bad := range []string{
		"dvm start guest=multiboot module=http://10.0.2.2/env",
		"dvm start guest=multiboot kernel=http://10.0.2.2/k disk=ram:8M",
		"dvm start guest=multiboot kernel=http://10.0.2.2/k initrd=http://10.0.2.2/i",
		"dvm start guest=linux module=http://10.0.2.2/env",
		"dvm start guest=counter module=http://10.0.2.2/env",
		"dvm start guest=pingpong cmdline=quiet",
	} {
		f.started = hv.DistStart{}
		if _, err := run(t, cmds, bad); !errors.Is(err, shell.ErrUsage) || f.started.Linux {
			t.Errorf("%s: %v (started %+v)", bad, err, f.started)
		}
	}
}
