// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package shell

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
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

func testShell(t testing.TB) *Shell {
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
		&Command{Name: "dvm", Help: "fail as a package does", Run: func(io.Writer, []string) error { return errors.New("dvm: no room") }},
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
		{"dvm", "error: dvm: no room\n"}, // not "dvm: dvm: "
		{"panic", "error: panic: internal error: boom\n"},
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

func FuzzExec(f *testing.F) {
	for _, s := range []string{"help", "cpus", "mem x", `echo "a b" 'c'`, "\\", "\"", "vm boot linux vcpus=2", "\x00", "help help help"} {
		f.Add(s)
	}
	sh := testShell(f)
	// panic misbehaves on purpose and quit ends the session: leave them out
	delete(sh.commands, "panic")
	delete(sh.commands, "quit")
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

// syncBuffer is a bytes.Buffer safe for a session and notices at once.
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

// pipeSession is a terminal whose input the test types.
type pipeSession struct {
	in  *io.PipeReader
	out *syncBuffer
}

func (s pipeSession) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s pipeSession) Write(p []byte) (int, error) { return s.out.Write(p) }

// TestSessions serves the console and a network session at once: each
// attaching command reads its own session's input, and notices go to
// the console alone.
func TestSessions(t *testing.T) {
	s := testShell(t)
	grab := &Command{Name: "grab", Help: "read three raw bytes", Run: func(w io.Writer, _ []string) error {
		_, err := io.WriteString(w, "no terminal\n")
		return err
	}, Attach: func(in io.Reader, w io.Writer, _ []string) error {
		b := make([]byte, 3)
		if _, err := io.ReadFull(in, b); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "grabbed %s\n", b)
		return err
	}}
	if err := s.Register(grab); err != nil {
		t.Fatal(err)
	}
	conIn, conType := io.Pipe()
	con := pipeSession{conIn, &syncBuffer{}}
	conDone := make(chan error)
	go func() { conDone <- s.Serve(con) }()
	io.WriteString(conType, "grab\r")

	netIn, netType := io.Pipe()
	remote := pipeSession{netIn, &syncBuffer{}}
	netDone := make(chan error)
	go func() { netDone <- s.ServeRemote(remote) }()
	// Separate writes, as keys arrive: the terminal reads what it is
	// given before the command runs.
	io.WriteString(netType, "grab\r")
	io.WriteString(netType, "xyz")
	io.WriteString(conType, "abc")
	fmt.Fprintf(s.Notices(), "node 3 joined\n")
	io.WriteString(netType, "quit\r")
	if err := <-netDone; err != nil {
		t.Fatal(err)
	}
	io.WriteString(conType, "quit\r")
	if err := <-conDone; err != nil {
		t.Fatal(err)
	}
	if out := con.out.String(); !strings.Contains(out, "grabbed abc") || !strings.Contains(out, "node 3 joined") {
		t.Errorf("the console's session: %q, want its own bytes and the notice", out)
	}
	if out := remote.out.String(); !strings.Contains(out, "grabbed xyz") || strings.Contains(out, "joined") {
		t.Errorf("the network session: %q, want its own bytes and no notice", out)
	}
	if b := (&bytes.Buffer{}); s.Exec(b, "grab") != nil || b.String() != "no terminal\n" {
		t.Errorf("Exec of an attaching command: %q, want its Run", b.String())
	}
}
