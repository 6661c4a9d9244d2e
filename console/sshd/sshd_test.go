// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package sshd

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"golang.org/x/crypto/ssh"
)

// lockedBuffer collects the server's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer serves a shell with `echo` and `quit` to the key it returns.
func testServer(t *testing.T, tune func(*Config)) (addr string, operator ssh.Signer, log *lockedBuffer, srv *Server) {
	t.Helper()
	sh, err := shell.New(
		&shell.Command{Name: "echo", Help: "print the words", Run: func(w io.Writer, a []string) error {
			_, err := io.WriteString(w, strings.Join(a, " ")+"\n")
			return err
		}},
		&shell.Command{Name: "quit", Help: "leave", Run: func(io.Writer, []string) error { return shell.ErrExit }},
	)
	if err != nil {
		t.Fatal(err)
	}
	host, err := NewHostKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	operator, err = NewHostKey(rand.Reader) // any Ed25519 key
	if err != nil {
		t.Fatal(err)
	}
	log = &lockedBuffer{}
	cfg := Config{Shell: sh, HostKey: host, Authorized: []ssh.PublicKey{operator.PublicKey()}, Log: log}
	if tune != nil {
		tune(&cfg)
	}
	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go srv.Serve(l)
	return l.Addr().String(), operator, log, srv
}

func dial(addr string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: auth,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
}

func TestExec(t *testing.T) {
	addr, key, log, srv := testServer(t, nil)
	c, err := dial(addr, ssh.PublicKeys(key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for line, want := range map[string]string{"echo hello  there": "hello there\n", "nosuch": "error: unknown command \"nosuch\" (type help)\n"} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output(line)
		s.Close()
		if err != nil || string(out) != want {
			t.Errorf("exec %q: %q, %v; want %q", line, out, err, want)
		}
	}
	if logins, _ := srv.Stats(); logins != 1 || !strings.Contains(log.String(), "root@127.0.0.1") {
		t.Errorf("%d logins, log %q", logins, log.String())
	}
}

func TestInteractive(t *testing.T) {
	addr, key, _, _ := testServer(t, nil)
	c, err := dial(addr, ssh.PublicKeys(key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 40, 80, nil); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	var out lockedBuffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "echo over ssh\r")
	io.WriteString(in, "quit\r")
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the session ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("quit did not end the session")
	}
	if got := out.String(); !strings.Contains(got, shell.Prompt) || !strings.Contains(got, "\r\nover ssh\r\n") {
		t.Errorf("the session showed %q", got)
	}
}

// TestRefused: a key not given, a password, and no credentials at all
// log nobody in.
func TestRefused(t *testing.T) {
	addr, _, log, srv := testServer(t, nil)
	other, _ := NewHostKey(rand.Reader)
	for name, auth := range map[string][]ssh.AuthMethod{
		"another key": {ssh.PublicKeys(other)},
		"a password":  {ssh.Password("root")},
		"nothing":     nil,
	} {
		if c, err := dial(addr, auth...); err == nil {
			c.Close()
			t.Errorf("%s logged in", name)
		}
	}
	// The server counts a connection once it sees the client leave.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, refused := srv.Stats(); refused == 3 {
			break
		}
	}
	if logins, refused := srv.Stats(); logins != 0 || refused != 3 {
		t.Errorf("%d logins, %d refused; want 0, 3", logins, refused)
	}
	if !strings.Contains(log.String(), "is not authorized") {
		t.Errorf("the log does not say why: %q", log.String())
	}
}

// TestNobodyAuthorized: with no keys given nobody logs in.
func TestNobodyAuthorized(t *testing.T) {
	addr, key, _, _ := testServer(t, func(c *Config) { c.Authorized = nil })
	if c, err := dial(addr, ssh.PublicKeys(key)); err == nil {
		c.Close()
		t.Error("a key logged in where none is authorized")
	}
}

// TestStalledClients: clients that connect and say nothing hold their
// slots until the handshake times out; meanwhile others are turned away
// at once, and afterwards served again.
func TestStalledClients(t *testing.T) {
	addr, key, log, _ := testServer(t, func(c *Config) { c.MaxConns, c.HandshakeTimeout = 2, 500*time.Millisecond })
	var stalled []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled = append(stalled, c)
	}
	time.Sleep(100 * time.Millisecond)
	if c, err := dial(addr, ssh.PublicKeys(key)); err == nil {
		c.Close()
		t.Error("a third connection was served beside two stalled ones")
	}
	for _, c := range stalled {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("the server did not close a stalled connection: %v", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	c, err := dial(addr, ssh.PublicKeys(key))
	if err != nil {
		t.Fatalf("no login once the stalled connections were closed: %v\n%s", err, log.String())
	}
	c.Close()
}

func TestParseKey(t *testing.T) {
	k, _ := NewHostKey(rand.Reader)
	b64 := base64.StdEncoding.EncodeToString(k.PublicKey().Marshal())
	got, err := ParseKey(b64)
	if err != nil || !bytes.Equal(got.Marshal(), k.PublicKey().Marshal()) {
		t.Fatalf("ParseKey: %v", err)
	}
	for _, bad := range []string{"", "!!!", base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 but not a key"))} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) took it", bad)
		}
	}
}

func FuzzExecLine(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 'n', 'o', 'd', 'e', 's'})
	f.Add([]byte{0, 0, 0, 9, 'x'})
	f.Fuzz(func(t *testing.T, p []byte) {
		line, ok := execLine(p)
		if ok && len(line) > len(p) {
			t.Fatalf("execLine(%q) = %q", p, line)
		}
	})
}
