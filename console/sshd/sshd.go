// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package sshd serves the hyperkernel's shell over SSH
// (golang.org/x/crypto/ssh), so that an operator steers a node without
// its serial console: public-key logins only, for the keys the node's
// command line names; an interactive session runs the shell, an exec
// request runs one command line.
package sshd

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/big-iron/big-iron/console/shell"
	"golang.org/x/crypto/ssh"
)

// Config describes the server.
type Config struct {
	// Shell runs the sessions' command lines.
	Shell *shell.Shell
	// HostKey is the node's host key (NewHostKey).
	HostKey ssh.Signer
	// Authorized are the public keys that may log in; none: nobody can.
	Authorized []ssh.PublicKey
	// Log gets one line per login and per refused connection.
	Log io.Writer
	// MaxConns bounds the connections served at once (default
	// DefaultMaxConns); more are closed at once.
	MaxConns int
	// HandshakeTimeout bounds the SSH handshake, authentication
	// included, so that a client that stalls there holds a connection
	// slot no longer (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
}

// DefaultMaxConns bounds a server's connections unless Config says.
const DefaultMaxConns = 8

// DefaultHandshakeTimeout bounds a handshake unless Config says.
const DefaultHandshakeTimeout = 30 * time.Second

// NewHostKey generates an Ed25519 host key from random.
func NewHostKey(random io.Reader) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("sshd: host key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// ParseKey reads an operator's public key as the command line gives it:
// the base64 field of an authorized_keys line (its type and comment
// left out; the type is inside the blob).
func ParseKey(s string) (ssh.PublicKey, error) {
	blob, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("sshd: public key %q: not base64: %v", abbrev(s), err)
	}
	k, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("sshd: public key %q: %w", abbrev(s), err)
	}
	return k, nil
}

// abbrev shortens a long key for an error message.
func abbrev(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}

// Server serves the shell over SSH.
type Server struct {
	cfg   Config
	ssh   *ssh.ServerConfig
	slots chan struct{}

	mu sync.Mutex
	// logins counts successful logins; refused the connections that did
	// not log in.
	logins, refused uint64
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Shell == nil || cfg.HostKey == nil {
		return nil, errors.New("sshd: a shell and a host key are needed")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}
	s.ssh = &ssh.ServerConfig{PublicKeyCallback: s.checkKey, MaxAuthTries: 3}
	s.ssh.AddHostKey(cfg.HostKey)
	return s, nil
}

// checkKey admits the authorized keys, by their wire form.
func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	for _, k := range s.cfg.Authorized {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return &ssh.Permissions{Extensions: map[string]string{"key": ssh.FingerprintSHA256(key)}}, nil
		}
	}
	return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
}

// Serve accepts connections on l until it fails.
func (s *Server) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("sshd: %w", err)
		}
		select {
		case s.slots <- struct{}{}:
			go func() {
				defer func() { <-s.slots }()
				s.serveConn(c)
			}()
		default:
			fmt.Fprintf(s.cfg.Log, "ssh: %v: refused, %d connections already\n", c.RemoteAddr(), s.cfg.MaxConns)
			c.Close()
		}
	}
}

// Stats returns the logins and the refused connections so far.
func (s *Server) Stats() (logins, refused uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.refused
}

// serveConn runs one connection: the handshake, then its sessions.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(c, s.ssh)
	if err != nil {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		fmt.Fprintf(s.cfg.Log, "ssh: %v: no login: %v\n", c.RemoteAddr(), err)
		return
	}
	c.SetDeadline(time.Time{})
	defer conn.Close()
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	fmt.Fprintf(s.cfg.Log, "ssh: %s@%v logged in with key %s\n", conn.User(), conn.RemoteAddr(), conn.Permissions.Extensions["key"])
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ch, creqs)
		}()
	}
	wg.Wait()
}

// session serves one session channel: a pty and a shell, or an exec.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "pty-req", "env", "window-change":
			req.Reply(req.Type != "env", nil) // the shell's terminal draws what it can
		case "shell":
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			err := s.cfg.Shell.ServeRemote(ch)
			s.exit(ch, err)
			return
		case "exec":
			line, ok := execLine(req.Payload)
			req.Reply(ok, nil)
			if !ok {
				continue
			}
			go ssh.DiscardRequests(reqs)
			s.cfg.Shell.Exec(ch, line)
			s.exit(ch, nil)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// exit sends the session's exit status (RFC 4254, 6.10): 0, or 1 after
// an error.
func (s *Server) exit(ch ssh.Channel, err error) {
	status := uint32(0)
	if err != nil {
		status = 1
		fmt.Fprintf(ch.Stderr(), "%v\n", err)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], status)
	ch.SendRequest("exit-status", false, b[:])
}

// execLine decodes an exec request's command (RFC 4254, 6.5: a string,
// four bytes of length then the bytes).
func execLine(p []byte) (string, bool) {
	if len(p) < 4 {
		return "", false
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) != uint64(len(p)-4) {
		return "", false
	}
	return strings.TrimSpace(string(p[4:])), true
}
