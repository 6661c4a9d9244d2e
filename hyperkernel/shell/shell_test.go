// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package shell

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/board"
	"github.com/big-iron/big-iron/boot/memmap"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"help", []string{"help"}, false},
		{"  vm   boot\tlinux ", []string{"vm", "boot", "linux"}, false},
		{`vm boot linux cmdline="console=ttyS0 quiet"`, []string{"vm", "boot", "linux", "cmdline=console=ttyS0 quiet"}, false},
		{`echo 'a "b" c'`, []string{"echo", `a "b" c`}, false},
		{`echo a\ b`, []string{"echo", "a b"}, false},
		{`echo ""`, []string{"echo", ""}, false},
		{`echo "open`, nil, true},
		{`echo \`, nil, true},
		{"echo \x1b[A", nil, true},
	} {
		got, err := Split(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Split(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKeyValues(t *testing.T) {
	kv, err := KeyValues([]string{"vcpus=2", "mem=1G"}, "vcpus", "mem", "cmdline")
	if err != nil || kv["vcpus"] != "2" || kv["mem"] != "1G" || len(kv) != 2 {
		t.Fatalf("KeyValues = %v, %v", kv, err)
	}
	for _, bad := range [][]string{{"vcpus"}, {"=2"}, {"cpus=2"}, {"mem=1", "mem=2"}} {
		if _, err := KeyValues(bad, "vcpus", "mem"); !errors.Is(err, ErrUsage) {
			t.Errorf("KeyValues(%q) error = %v, want ErrUsage", bad, err)
		}
	}
}

func testShell(t *testing.T) *Shell {
	t.Helper()
	s, err := New(
		&Command{Name: "echo", Usage: "WORDS...", Help: "print the words", Run: func(w io.Writer, a []string) error {
			_, err := io.WriteString(w, strings.Join(a, " ")+"\n")
			return err
		}},
		&Command{Name: "panic", Help: "misbehave", Run: func(io.Writer, []string) error { panic("boom") }},
		&Command{Name: "strict", Usage: "N", Help: "needs one argument", Run: func(w io.Writer, a []string) error {
			if len(a) != 1 {
				return ErrUsage
			}
			return nil
		}},
		&Command{Name: "quit", Help: "leave", Run: func(io.Writer, []string) error { return ErrExit }},
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExec(t *testing.T) {
	s := testShell(t)
	for _, tc := range []struct{ line, want string }{
		{"echo hello  world", "hello world\n"},
		{"", ""},
		{"nosuch", "error: unknown command \"nosuch\" (type help)\n"},
		{"panic", "error: panic: internal error: boom\n"},
		{"strict", "error: strict: bad arguments (usage: strict N)\n"},
		{"strict 1", ""},
		{`echo "x`, "error: unterminated \" quote\n"},
		{"help nosuch", "error: help: no command \"nosuch\"\n"},
		{"help echo", "echo WORDS...\n  print the words\n"},
	} {
		var b bytes.Buffer
		if err := s.Exec(&b, tc.line); err != nil {
			t.Errorf("Exec(%q) = %v", tc.line, err)
		}
		if b.String() != tc.want {
			t.Errorf("Exec(%q) printed %q, want %q", tc.line, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	if err := s.Exec(&b, "help"); err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Commands() {
		if !strings.Contains(b.String(), c.Name) || !strings.Contains(b.String(), c.Help) {
			t.Errorf("help output lacks %q: %q", c.Name, b.String())
		}
	}
	if err := s.Exec(&b, "quit"); err != ErrExit {
		t.Errorf("quit returned %v, want ErrExit", err)
	}
}

func TestRegisterRejects(t *testing.T) {
	s := testShell(t)
	run := func(io.Writer, []string) error { return nil }
	for _, c := range []*Command{
		{Name: "echo", Help: "dup", Run: run},
		{Name: "", Help: "x", Run: run},
		{Name: "a b", Help: "x", Run: run},
		{Name: "nohelp", Run: run},
		{Name: "norun", Help: "x"},
	} {
		if err := s.Register(c); err == nil {
			t.Errorf("Register(%q) succeeded", c.Name)
		}
	}
}

// session is a terminal double: input is fed, output is collected.
type session struct {
	in  *strings.Reader
	out bytes.Buffer
}

func (s *session) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *session) Write(p []byte) (int, error) { return s.out.Write(p) }

func TestServeLineEditing(t *testing.T) {
	s := testShell(t)
	// "echx" + backspace + "o hi", Enter; then up-arrow recalls it, Enter;
	// then Ctrl-D-free end of input.
	in := "echx\x7fo hi\r" + "\x1b[A\r" + "quit\r"
	sess := &session{in: strings.NewReader(in)}
	if err := s.Serve(sess); err != nil {
		t.Fatal(err)
	}
	out := sess.out.String()
	if n := strings.Count(out, "\r\nhi\r\n"); n != 2 {
		t.Errorf("want the echoed line twice (typed, then from history), got %d in %q", n, out)
	}
	if !strings.Contains(out, Prompt) {
		t.Errorf("no prompt in %q", out)
	}
}

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

func TestSystemCommands(t *testing.T) {
	sh, err := New(SystemCommands(testSystem())...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"version", []string{"big-iron abc123", "go go1.26.0", "tamago v1.26.0"}},
		{"cpus", []string{"2 cores, 2 online", "BSP", "2000000", "yes"}},
		{"mem", []string{"usable: 1.9 GiB in 2 regions", "free for guests: 1.2 GiB in 1 regions", "hyperkernel"}},
		{"uptime", []string{"up 1m30s"}},
		{"cpus extra", []string{"error: cpus: bad arguments"}},
	} {
		var b bytes.Buffer
		sh.Exec(&b, tc.line)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%q output lacks %q:\n%s", tc.line, w, b.String())
			}
		}
	}
}

func FuzzExec(f *testing.F) {
	for _, s := range []string{"help", "cpus", "mem x", `echo "a b" 'c'`, "\\", "\"", "vm boot linux vcpus=2", "\x00", "help help help"} {
		f.Add(s)
	}
	sh, err := New(SystemCommands(testSystem())...)
	if err != nil {
		f.Fatal(err)
	}
	// halt and reboot would call the platform: replace with harmless ones
	sh.commands["halt"].Run = func(io.Writer, []string) error { return nil }
	sh.commands["reboot"].Run = func(io.Writer, []string) error { return nil }
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
