// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/big-iron/big-iron/console/metrics"
	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/console/sshd"
	"golang.org/x/crypto/ssh"
)

// serveMetrics serves the node's metrics over HTTP on its control-plane
// address, at the port the command line gives (bigiron.metrics), if it
// has both.
func serveMetrics(nn *nodeNet, src metrics.Sources) {
	if nn.stack == nil || nn.metricsPort == 0 {
		return
	}
	l, err := nn.stack.ListenTCP(nn.metricsPort)
	if err != nil {
		fmt.Printf("metrics: %v\n", err)
		return
	}
	srv := &http.Server{
		Handler:           src.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			fmt.Printf("metrics: %v\n", err)
		}
	}()
	fmt.Printf("metrics: http://%v:%d/metrics\n", nn.stack.Addr().Addr(), nn.metricsPort)
}

// sshPort is the TCP port of the node's shell over SSH.
const sshPort = 22

// serveSSH serves the shell over SSH on the control plane's address to
// the operators' keys the command line gives (bigiron.sshkey), if it has
// both; logins and refusals are written to log.
func serveSSH(nn *nodeNet, sh *shell.Shell, log io.Writer) {
	if nn.stack == nil || len(nn.sshKeys) == 0 {
		return
	}
	var keys []ssh.PublicKey
	for _, k := range nn.sshKeys {
		pk, err := sshd.ParseKey(k)
		if err != nil {
			fmt.Printf("ssh: bigiron.sshkey: %v\n", err)
			continue
		}
		keys = append(keys, pk)
	}
	host, err := sshd.NewHostKey(rand.Reader)
	if err != nil {
		fmt.Printf("ssh: %v\n", err)
		return
	}
	srv, err := sshd.New(sshd.Config{Shell: sh, HostKey: host, Authorized: keys, Log: log})
	if err != nil {
		fmt.Printf("ssh: %v\n", err)
		return
	}
	l, err := nn.stack.ListenTCP(sshPort)
	if err != nil {
		fmt.Printf("ssh: %v\n", err)
		return
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			fmt.Printf("ssh: %v\n", err)
		}
	}()
	fmt.Printf("ssh: %v:%d, host key %s, %d operator keys\n", nn.stack.Addr().Addr(), sshPort, ssh.FingerprintSHA256(host.PublicKey()), len(keys))
}
