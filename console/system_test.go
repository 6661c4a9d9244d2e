// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/boot/memmap"
)

func testSystem() *System {
	return &System{
		Platform: &board.Platform{
			Name: "pc", Loader: "multiboot", TSCHz: 2_000_000_000, TSCSource: "PIT",
			CPUs: []board.CPU{
				{APICID: 0, BSP: true, Online: true, VMX: board.VMXSupport{Capable: true, EPT: true}},
				{APICID: 2, Online: true, VMX: board.VMXSupport{Capable: true, EPT: true}},
			},
			Memory: memmap.Map{
				{Start: 0, Size: 0x9fc00, Type: memmap.Usable},
				{Start: 0x100000, Size: 0x7ff00000, Type: memmap.Usable},
			},
			Reserved: []board.Reservation{{Range: memmap.Range{Start: 0, Size: 0x30000000}, Owner: "hyperkernel"}},
		},
		Build:  Build{Revision: "abc123", Go: "go1.26.0", Tamago: "v1.26.0"},
		Uptime: func() time.Duration { return 90 * time.Second },
	}
}

// lineWants is a shell line and strings its output must hold.
type lineWants struct {
	line string
	want []string
}

// checkOutputs runs each line on sh and checks its output.
func checkOutputs(t *testing.T, sh *shell.Shell, cases []lineWants) {
	t.Helper()
	for _, tc := range cases {
		var b bytes.Buffer
		sh.Exec(&b, tc.line)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%q output lacks %q:\n%s", tc.line, w, b.String())
			}
		}
	}
}

func TestSystemCommands(t *testing.T) {
	sh, err := shell.New(SystemCommands(testSystem())...)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, sh, []lineWants{
		{"version", []string{"big-iron abc123", "go go1.26.0", "tamago v1.26.0"}},
		{"cpus", []string{"2 cores, 2 online", "BSP", "2000000", "yes"}},
		{"mem", []string{"usable: 1.9 GiB in 2 regions", "free for guests: 1.2 GiB in 1 regions", "hyperkernel"}},
		{"uptime", []string{"up 1m30s"}},
		{"cpus extra", []string{"error: cpus: bad arguments"}},
	})
}

func TestVMXCommandUnavailable(t *testing.T) {
	var b bytes.Buffer
	c := VMXCommand(nil, false, "CPUID.1:ECX.VMX clear")
	if err := c.Run(&b, nil); err != nil || b.String() != "VMX not available: CPUID.1:ECX.VMX clear\n" {
		t.Errorf("vmx: %q %v", b.String(), err)
	}
	if err := c.Run(&b, []string{"x"}); err == nil {
		t.Error("vmx x accepted")
	}
}

func FuzzExec(f *testing.F) {
	for _, s := range []string{"help", "cpus", "mem x", `echo "a b" 'c'`, "\\", "\"", "vm boot linux vcpus=2", "\x00", "help help help"} {
		f.Add(s)
	}
	cmds := SystemCommands(testSystem())
	// halt and reboot would call the platform: replace with harmless ones
	for _, c := range cmds {
		if c.Name == "halt" || c.Name == "reboot" {
			c.Run = func(io.Writer, []string) error { return nil }
		}
	}
	sh, err := shell.New(cmds...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var b bytes.Buffer
		if err := sh.Exec(&b, line); err != nil {
			t.Fatalf("Exec(%q) = %v", line, err)
		}
		if strings.Contains(b.String(), "internal error") {
			t.Fatalf("Exec(%q) panicked inside a command: %s", line, b.String())
		}
	})
}

func TestStressCommand(t *testing.T) {
	sys := testSystem()
	var asked uint64 = 3
	sys.Platform.ExtraThreadRequests = func() uint64 { asked++; return asked }
	sh, err := shell.New(SystemCommands(sys)...)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, sh, []lineWants{
		{"stress 150ms", []string{"stop-the-world pauses", "goroutine hand-offs in 15", "beyond the cores 1 times (5 since boot)"}},
		{"cpus", []string{"beyond the cores 6 times"}},
		{"stress 1ms", []string{"error: stress: bad arguments", "from 100ms to 10m0s"}},
		{"stress forever", []string{"error: stress: bad arguments"}},
		{"stress 1s 2s", []string{"error: stress: bad arguments"}},
	})
	// A board without the count prints no count.
	sys.Platform.ExtraThreadRequests = nil
	var b bytes.Buffer
	sh.Exec(&b, "stress 100ms")
	if strings.Contains(b.String(), "beyond") || !strings.Contains(b.String(), "pauses") {
		t.Errorf("stress without a count:\n%s", b.String())
	}
}
