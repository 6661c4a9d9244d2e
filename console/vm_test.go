// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/hyperkernel/hv"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/testguest"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// fakeRunner hands out cores in turn from a fixed sequence, standing in
// for the scheduler.
type fakeRunner struct {
	mu    sync.Mutex
	cores int
	seq   []uint32
	runs  int
	fail  error
	// failAfter is what `vm fail` last asked for.
	failAfter int
	// watch is the slice watch `vm slice` shows and sets.
	watch hv.SliceWatchStatus
}

func (f *fakeRunner) RunTest(v testguest.Variant) (*hv.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	id := f.seq[f.runs%len(f.seq)]
	f.runs++
	r := &hv.Result{Variant: v, Outcome: "halted", APICID: id, Cores: []uint32{id}, Loads: 1}
	r.Exits.Record(vmx.ExitCPUID)
	return r, nil
}

func (f *fakeRunner) Stats() (exits.ExitStats, int)   { return exits.ExitStats{}, f.runs }
func (f *fakeRunner) NumCores() int                   { return f.cores }
func (f *fakeRunner) Frames() (inUse, total int)      { return 300, 1024 }
func (f *fakeRunner) FailFramesAfter(n int)           { f.failAfter = n }
func (f *fakeRunner) FailFramesPending() int          { return f.failAfter }
func (f *fakeRunner) SliceWatch() hv.SliceWatchStatus { return f.watch }
func (f *fakeRunner) SetSliceTimer(on bool) error {
	if !f.watch.Watched {
		return errors.New("no slice timer")
	}
	f.watch.TimerOff = !on
	return nil
}

func runVM(t *testing.T, r Runner, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := VMCommands(r, nil, "no VMX here")[0].Run(&out, args)
	return out.String(), err
}

func TestRunOnAllCoresKeepsGoingUntilEveryCoreRan(t *testing.T) {
	// The scheduler keeps putting both VMs on core 0 for two rounds.
	r := &fakeRunner{cores: 2, seq: []uint32{0, 0, 0, 0, 1, 0}}
	out, err := runVM(t, r, "run", "test", "cores=all")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ran on 2 of 2 cores [0 1]") {
		t.Errorf("want both cores covered:\n%s", out)
	}
	if r.runs != 6 {
		t.Errorf("runs = %d, want 6 (three rounds of two)", r.runs)
	}
}

func TestRunOnAllCoresGivesUp(t *testing.T) {
	r := &fakeRunner{cores: 2, seq: []uint32{1}}
	out, err := runVM(t, r, "run", "test", "cores=all")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ran on 1 of 2 cores [1]") || r.runs != 2*maxRounds {
		t.Errorf("runs %d, output:\n%s", r.runs, out)
	}
}

func TestVMCommandErrors(t *testing.T) {
	if _, err := runVM(t, nil, "run", "test"); err == nil || !strings.Contains(err.Error(), "no VMX here") {
		t.Errorf("nil runner: %v", err)
	}
	r := &fakeRunner{cores: 1, seq: []uint32{0}}
	for _, args := range [][]string{{"run", "test", "bogus"}, {"stat", "x"}, {}, {"run"}} {
		if _, err := runVM(t, r, args...); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("vm %v: err %v, want a usage error", args, err)
		}
	}
	r.fail = errors.New("VMXON failed")
	if _, err := runVM(t, r, "run", "test", "cores=all"); err == nil || !strings.Contains(err.Error(), "VMXON failed") {
		t.Errorf("failure not reported: %v", err)
	}
}

func TestVMStatShowsGuestMemory(t *testing.T) {
	out, err := runVM(t, &fakeRunner{cores: 1}, "stat")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "guest memory: 1.1 MiB in use of 4 MiB, 2.8 MiB free\n") {
		t.Errorf("vm stat:\n%s", out)
	}
}

// TestVMFail: `vm fail N` hands N to the hypervisor's frame pool, `vm
// fail` says what is in force, `off` cancels, anything else is a usage
// error.
func TestVMFail(t *testing.T) {
	r := &fakeRunner{cores: 1, seq: []uint32{0}, failAfter: 99}
	if out, err := runVM(t, r, "fail", "3"); err != nil || r.failAfter != 3 || !strings.Contains(out, "after the next 3 fail") {
		t.Errorf("vm fail 3: %q, %v, pool told %d", out, err, r.failAfter)
	}
	if out, err := runVM(t, r, "fail"); err != nil || !strings.Contains(out, "after the next 3 fail") {
		t.Errorf("vm fail: %q, %v", out, err)
	}
	if _, err := runVM(t, r, "fail", "off"); err != nil || r.failAfter != -1 {
		t.Errorf("vm fail off: %v, pool told %d", err, r.failAfter)
	}
	if out, err := runVM(t, r, "fail"); err != nil || !strings.Contains(out, "no failure injected") {
		t.Errorf("vm fail after off: %q, %v", out, err)
	}
	for _, bad := range []string{"-1", "x", ""} {
		if _, err := runVM(t, r, "fail", bad); !errors.Is(err, shell.ErrUsage) {
			t.Errorf("vm fail %q: %v, want a usage error", bad, err)
		}
	}
}

// TestVMSlice: `vm slice off` turns the slice timer off and says so,
// `on` turns it back on, `vm stat` shows the watch; on VT-x the command
// says there is none and off is refused with the hypervisor's reason.
func TestVMSlice(t *testing.T) {
	r := &fakeRunner{cores: 1, watch: hv.SliceWatchStatus{Watched: true, Regained: 7, Limit: 20 * time.Millisecond}}
	if out, err := runVM(t, r, "slice", "off"); err != nil || !r.watch.TimerOff ||
		out != "time slices: slice timer OFF (testing: only the watch ends a turn); 7 turns ended by the watch's NMI (a turn longer than 20ms)\n" {
		t.Errorf("vm slice off: %q, %v, timer off %v", out, err, r.watch.TimerOff)
	}
	if out, err := runVM(t, r, "stat"); err != nil || !strings.Contains(out, "slice timer OFF") {
		t.Errorf("vm stat: %q, %v", out, err)
	}
	if out, err := runVM(t, r, "slice", "on"); err != nil || r.watch.TimerOff || !strings.Contains(out, "slice timer on; 7 turns") {
		t.Errorf("vm slice on: %q, %v", out, err)
	}
	if _, err := runVM(t, r, "slice", "maybe"); !errors.Is(err, shell.ErrUsage) {
		t.Errorf("vm slice maybe: %v, want a usage error", err)
	}
	vtx := &fakeRunner{cores: 1}
	if out, err := runVM(t, vtx, "slice"); err != nil || !strings.Contains(out, "no slice watch") {
		t.Errorf("vm slice on VT-x: %q, %v", out, err)
	}
	if _, err := runVM(t, vtx, "slice", "off"); err == nil {
		t.Error("vm slice off on VT-x: no error")
	}
	if out, _ := runVM(t, vtx, "stat"); strings.Contains(out, "time slices") {
		t.Errorf("vm stat on VT-x shows a slice watch:\n%s", out)
	}
}
