// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package fetch downloads a guest's boot files (its kernel, its
// initramfs) over HTTP through the node's control-plane TCP, as a
// network boot loader would: one GET of an http:// URL whose host is an
// IPv4 address (the node resolves no names), its size bounded, every
// failure a clear error.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// DialFunc opens a TCP connection to addr (the node's gVisor stack).
type DialFunc func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)

// Config says how to fetch.
type Config struct {
	// Dial connects to the server.
	Dial DialFunc
	// Limit bounds the size of a file; a larger one is an error.
	Limit int64
	// Timeout bounds a whole fetch, connection to last byte (default
	// DefaultTimeout).
	Timeout time.Duration
}

// DefaultTimeout bounds a fetch whose Config gives no Timeout.
const DefaultTimeout = 5 * time.Minute

// ErrTooLarge is returned for a file larger than the limit.
var ErrTooLarge = errors.New("larger than the limit")

// ParseURL checks that s is a URL this package fetches: http://, an IPv4
// address, an optional port (80 by default) and a path. It returns the
// server's address.
func ParseURL(s string) (netip.AddrPort, error) {
	u, err := url.Parse(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %v", s, err)
	}
	if u.Scheme != "http" {
		return netip.AddrPort{}, fmt.Errorf("%q: want an http:// URL", s)
	}
	if u.User != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: a URL with a user name is not fetched", s)
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil || !addr.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%q: the server must be an IPv4 address (the node resolves no names)", s)
	}
	port := uint64(80)
	if p := u.Port(); p != "" {
		if port, err = strconv.ParseUint(p, 10, 16); err != nil || port == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: port %q: want 1-65535", s, p)
		}
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// Get fetches the file at rawURL and returns its bytes.
func Get(ctx context.Context, cfg Config, rawURL string) ([]byte, error) {
	server, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		// Every connection goes to the one server the URL names, through
		// the node's stack; the environment's proxies mean nothing here.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return cfg.Dial(ctx, server)
		},
		DisableKeepAlives:  true,
		DisableCompression: true, // a .gz is fetched as it is
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("redirected to %v: not followed", req.URL)
		}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rawURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: the server answered %s", rawURL, resp.Status)
	}
	if resp.ContentLength > cfg.Limit {
		return nil, fmt.Errorf("%s: %d bytes, %w of %d", rawURL, resp.ContentLength, ErrTooLarge, cfg.Limit)
	}
	return readBody(resp, rawURL, cfg.Limit)
}

// readBody reads a response's body of at most limit bytes, checking it
// against the length the server announced.
func readBody(resp *http.Response, rawURL string, limit int64) ([]byte, error) {
	buf, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: after %d bytes: %w", rawURL, len(buf), err)
	}
	if int64(len(buf)) > limit {
		return nil, fmt.Errorf("%s: %w of %d bytes", rawURL, ErrTooLarge, limit)
	}
	if resp.ContentLength >= 0 && int64(len(buf)) != resp.ContentLength {
		return nil, fmt.Errorf("%s: %d bytes of the %d announced", rawURL, len(buf), resp.ContentLength)
	}
	return buf, nil
}
