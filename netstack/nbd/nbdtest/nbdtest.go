// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package nbdtest runs real NBD servers (Debian's qemu-nbd and nbdkit) on
// the host's loopback for tests: the NBD client's, the network disk's and
// the end-to-end tier's. A test whose server is not installed skips,
// naming the package that has it.
package nbdtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a server process on a loopback port; it is killed when the
// test ends, and what it printed is logged if the test failed.
type Server struct {
	t    testing.TB
	argv []string // {PORT} stands for the port
	port string

	mu  sync.Mutex // guards cmd and out
	cmd *exec.Cmd
	out bytes.Buffer
}

// Look returns the path of bin, or skips the test naming the Debian
// package pkg that installs it.
func Look(t testing.TB, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("missing: %s (Debian package %s; make deps installs it)", bin, pkg)
	}
	return path
}

// Start runs argv on a free loopback port ({PORT} in argv stands for it).
// It does not wait for the server to listen: see Ready.
func Start(t testing.TB, argv ...string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	s := &Server{t: t, argv: argv, port: port}
	s.Start()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", argv[0], s.Output())
		}
	})
	return s
}

// QEMU serves a new sparse raw file of size bytes with qemu-nbd as export
// name (QEMUFile) and returns the server, ready, and the file's path.
func QEMU(t testing.TB, size int64, name string, extra ...string) (*Server, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	return QEMUFile(t, file, name, extra...), file
}

// QEMUFile serves file as export name with qemu-nbd: persistent (-t),
// with trims punching holes and up to four clients; extra arguments go
// before the file. It returns once the server listens.
func QEMUFile(t testing.TB, file, name string, extra ...string) *Server {
	t.Helper()
	bin := Look(t, "qemu-nbd", "qemu-utils")
	argv := append([]string{bin, "-f", "raw", "-x", name, "-b", "127.0.0.1", "-p", "{PORT}", "-t", "-e", "4", "--discard=unmap"}, extra...)
	s := Start(t, append(argv, file)...)
	s.Ready()
	return s
}

// Addr is the server's address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", s.port) }

// Port is the server's port.
func (s *Server) Port() string { return s.port }

// Start runs the server (again, after Kill).
func (s *Server) Start() {
	args := make([]string, len(s.argv)-1)
	for i, a := range s.argv[1:] {
		args[i] = strings.ReplaceAll(a, "{PORT}", s.port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmd = exec.Command(s.argv[0], args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Errorf("starting %s: %v", s.argv[0], err)
		s.cmd = nil
	}
}

// Ready waits up to 5 s for the server to take connections.
func (s *Server) Ready() {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.Addr()); err == nil {
			c.Close()
			return
		}
	}
	s.t.Fatalf("%s does not listen on %s:\n%s", s.argv[0], s.Addr(), s.Output())
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Output is what the server printed.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}
