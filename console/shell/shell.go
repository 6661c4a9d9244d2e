// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package shell is the hyperkernel's operator shell: a line-edited command
// interpreter served on the serial console (and later over TCP). Commands
// register with a name, a one-line description and a run function; the
// shell parses lines, dispatches them, and turns every failure (unknown
// command, bad argument, even a panicking command) into one line of error
// output, so no input can take the shell down.
//
// The commands themselves live in package console, above the services
// they drive; no service imports this package.
package shell

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Prompt is printed before each command line.
const Prompt = "bigiron> "

// Command is one shell command.
type Command struct {
	// Name is the word that invokes the command.
	Name string
	// Usage shows the arguments, e.g. "[vcpus=N] [mem=SIZE]" (package
	// console parses key=value arguments).
	Usage string
	// Help is the one-line description `help` prints.
	Help string
	// Run executes the command with the words after its name, writing
	// its output to w. A returned error is printed as one line.
	Run func(w io.Writer, args []string) error
	// Attach, if set, runs instead of Run when the shell serves a
	// terminal: the command then reads the operator's keystrokes from in
	// itself, raw (a guest console). It must return only after a read,
	// so that it never leaves a read pending that would take the shell's
	// next input.
	Attach func(in io.Reader, w io.Writer, args []string) error
}

// ErrUsage is returned (wrapped) by commands given bad arguments; the shell
// then prints the command's usage.
var ErrUsage = errors.New("bad arguments")

// ErrExit ends Serve when returned by a command.
var ErrExit = errors.New("exit")

// Shell dispatches command lines to registered commands. It may serve
// several sessions at once (the serial console and network logins):
// their commands then run concurrently.
type Shell struct {
	commands map[string]*Command

	// mu guards the sessions being served and the notices written
	// before there was one.
	mu       sync.Mutex
	sessions map[*term.Terminal]bool
	pending  [][]byte
}

// noticeWriter is Shell.Notices.
type noticeWriter struct{ s *Shell }

// Notices returns a writer for messages that arrive while the operator
// types (cluster events, say): each Write appears whole, above the prompt
// and the line being edited, which are then redrawn. Writes before the
// shell serves a console are held and shown when it starts.
func (s *Shell) Notices() io.Writer { return noticeWriter{s} }

func (w noticeWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if len(w.s.sessions) == 0 {
		w.s.pending = append(w.s.pending, append([]byte(nil), p...))
		return len(p), nil
	}
	for t := range w.s.sessions {
		t.Write(p) // a session whose peer went away is ended by its reader
	}
	return len(p), nil
}

// New returns a shell with the given commands and a built-in `help`.
func New(cmds ...*Command) (*Shell, error) {
	s := &Shell{commands: make(map[string]*Command), sessions: make(map[*term.Terminal]bool)}
	help := &Command{Name: "help", Usage: "[COMMAND]", Help: "list commands, or describe one", Run: s.help}
	for _, c := range append([]*Command{help}, cmds...) {
		if err := s.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Register adds a command.
func (s *Shell) Register(c *Command) error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, " \t\"'"):
		return fmt.Errorf("shell: invalid command name %q", c.Name)
	case c.Run == nil || c.Help == "":
		return fmt.Errorf("shell: command %q needs Run and Help", c.Name)
	case s.commands[c.Name] != nil:
		return fmt.Errorf("shell: command %q registered twice", c.Name)
	}
	s.commands[c.Name] = c
	return nil
}

// Commands returns the registered commands sorted by name.
func (s *Shell) Commands() []*Command {
	cmds := make([]*Command, 0, len(s.commands))
	for _, c := range s.commands {
		cmds = append(cmds, c)
	}
	slices.SortFunc(cmds, func(a, b *Command) int { return strings.Compare(a.Name, b.Name) })
	return cmds
}

func (s *Shell) help(w io.Writer, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%w: help takes at most one command name", ErrUsage)
	}
	if len(args) == 1 {
		c := s.commands[args[0]]
		if c == nil {
			return fmt.Errorf("no command %q", args[0])
		}
		fmt.Fprintf(w, "%s %s\n  %s\n", c.Name, c.Usage, c.Help)
		return nil
	}
	for _, c := range s.Commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Help)
	}
	return nil
}

// Exec runs one command line, writing its output and any error (as one
// line) to w, with no terminal to take input from (a command that would
// attach to the terminal runs its Run instead). It returns ErrExit when
// a command asked to end the session.
func (s *Shell) Exec(w io.Writer, line string) error { return s.exec(w, line, nil) }

// exec runs one command line of a session whose raw input is in (nil:
// none).
func (s *Shell) exec(w io.Writer, line string, in io.Reader) (err error) {
	words, perr := Split(line)
	if perr != nil {
		fmt.Fprintf(w, "error: %v\n", perr)
		return nil
	}
	if len(words) == 0 {
		return nil
	}
	c := s.commands[words[0]]
	if c == nil {
		fmt.Fprintf(w, "error: unknown command %q (type help)\n", words[0])
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(w, "error: %s: internal error: %v\n", c.Name, r)
			err = nil
		}
	}()
	run := c.Run
	if c.Attach != nil && in != nil {
		run = func(w io.Writer, args []string) error { return c.Attach(in, w, args) }
	}
	switch err := run(w, words[1:]); {
	case err == nil:
	case errors.Is(err, ErrExit):
		return ErrExit
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(w, "error: %s: %v (usage: %s %s)\n", c.Name, err, c.Name, c.Usage)
	case strings.HasPrefix(err.Error(), c.Name+": "):
		// the error names the package the command drives already
		fmt.Fprintf(w, "error: %v\n", err)
	default:
		fmt.Fprintf(w, "error: %s: %v\n", c.Name, err)
	}
	return nil
}

// Serve runs an interactive session on rw: line editing with backspace,
// history on the up and down arrows, and the prompt. It returns when rw
// reports end of input or a command returns ErrExit.
func (s *Shell) Serve(rw io.ReadWriter) error { return s.serve(rw, true) }

// ServeRemote is Serve for a session over the network, which gets no
// notices: its writes wait for a peer that may be slow or gone, and a
// notice must never wait.
func (s *Shell) ServeRemote(rw io.ReadWriter) error { return s.serve(rw, false) }

// serve runs a session, which shows notices if notices is set.
func (s *Shell) serve(rw io.ReadWriter, notices bool) error {
	t := term.NewTerminal(rw, Prompt)
	if notices {
		s.mu.Lock()
		s.sessions[t] = true
		for _, p := range s.pending {
			t.Write(p)
		}
		s.pending = nil
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, t)
			s.mu.Unlock()
		}()
	}
	for {
		line, err := t.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("shell: reading line: %w", err)
		}
		if s.exec(t, line, rw) == ErrExit {
			return nil
		}
	}
}

// Split breaks a command line into words at white space. Double or single
// quotes group words with spaces; a backslash escapes the next character
// outside single quotes. Control characters are refused.
func Split(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quote  rune
		escape bool
	)
	for _, r := range line {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return nil, fmt.Errorf("control character %q in command line", r)
		}
		switch {
		case escape:
			cur.WriteRune(r)
			escape = false
		case r == '\\' && quote != '\'':
			escape, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("unterminated %c quote", quote)
	case escape:
		return nil, errors.New("line ends with a backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
