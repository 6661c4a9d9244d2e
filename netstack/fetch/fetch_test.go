// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package fetch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// dialer dials over the host's TCP and counts the connections.
type dialer struct{ calls int }

func (d *dialer) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	d.calls++
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr.String())
}

// serve starts a server of h and returns its URL prefix.
func serve(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func TestGet(t *testing.T) {
	blob := bytes.Repeat([]byte("kernel"), 100000)
	base := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/boot/vmlinuz" {
			http.NotFound(w, r)
			return
		}
		w.Write(blob)
	})
	var d dialer
	got, err := Get(context.Background(), Config{Dial: d.dial, Limit: 1 << 20}, base+"/boot/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatalf("got %d bytes, want the server's %d", len(got), len(blob))
	}
	if d.calls != 1 {
		t.Errorf("%d connections, want 1", d.calls)
	}
}

// TestGetChunked reads a body of unannounced length.
func TestGetChunked(t *testing.T) {
	base := serve(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 50; i++ {
			w.Write(bytes.Repeat([]byte{byte(i)}, 1000))
			w.(http.Flusher).Flush()
		}
	})
	var d dialer
	got, err := Get(context.Background(), Config{Dial: d.dial, Limit: 50000}, base+"/x")
	if err != nil || len(got) != 50000 || got[49999] != 49 {
		t.Fatalf("got %d bytes, %v; want 50000", len(got), err)
	}
	if _, err := Get(context.Background(), Config{Dial: d.dial, Limit: 49999}, base+"/x"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte over the limit, unannounced: %v, want ErrTooLarge", err)
	}
}

func TestGetFails(t *testing.T) {
	base := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", "4096")
			w.Write(make([]byte, 4096))
		case "/redirect":
			http.Redirect(w, r, "/big", http.StatusFound)
		case "/short": // announces 1000 bytes, sends 10 and hangs up
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
			buf.Flush()
			conn.Close()
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.NotFound(w, r)
		}
	})
	var d dialer
	cfg := Config{Dial: d.dial, Limit: 1000, Timeout: 500 * time.Millisecond}
	for _, tc := range []struct{ url, want string }{
		{base + "/missing", "404 Not Found"},
		{base + "/big", "4096 bytes, larger than the limit of 1000"},
		{base + "/redirect", "not followed"},
		{base + "/short", "unexpected EOF"},
		{base + "/slow", "deadline exceeded"},
		{"https://10.0.2.2/vmlinuz", "want an http:// URL"},
		{"http://boot.example/vmlinuz", "IPv4 address"},
		{"http://[::1]:80/vmlinuz", "IPv4 address"},
		{"http://10.0.2.2:0/vmlinuz", "want 1-65535"},
		{"http://u:p@10.0.2.2/vmlinuz", "user name"},
		{"tftp://10.0.2.2/vmlinuz", "want an http:// URL"},
	} {
		_, err := Get(context.Background(), cfg, tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Get(%s): %v, want an error saying %q", tc.url, err, tc.want)
		}
	}
}

// TestGetNoServer: nobody listens.
func TestGetNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var d dialer
	if _, err := Get(context.Background(), Config{Dial: d.dial, Limit: 1}, "http://"+addr+"/k"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("no server: %v, want connection refused", err)
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.2.2/vmlinuz":         "10.0.2.2:80",
		"http://10.0.2.2:8080/a/b?x=1":    "10.0.2.2:8080",
		"http://192.168.1.9:65535/initrd": "192.168.1.9:65535",
	} {
		got, err := ParseURL(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseURL(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
}

// FuzzGet answers a fetch with whatever bytes a server might send: the
// result is an error, or a body no longer than the limit and as long as
// any length the server announced.
func FuzzGet(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/x\r\n\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		dial := func(ctx context.Context, _ netip.AddrPort) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				buf := make([]byte, 4096)
				server.Read(buf) // the request
				server.Write(reply)
			}()
			return client, nil
		}
		const limit = 64
		body, err := Get(context.Background(), Config{Dial: dial, Limit: limit, Timeout: 2 * time.Second}, "http://10.0.2.2/k")
		if err == nil && len(body) > limit {
			t.Fatalf("a body of %d bytes past the limit of %d", len(body), limit)
		}
	})
}
