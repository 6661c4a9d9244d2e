// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dial connects a client to cfg's server and closes it at the end of the
// test.
func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pattern fills a buffer of n bytes with a pattern of seed.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// tracker makes requests whose Done is checked to be called once.
type tracker struct {
	t     *testing.T
	mu    sync.Mutex
	calls map[*Request]int
	wg    sync.WaitGroup
}

func newTracker(t *testing.T) *tracker {
	return &tracker{t: t, calls: map[*Request]int{}}
}

// req makes a request whose completion the tracker waits for.
func (tr *tracker) req(op Op, off uint64, data []byte, length uint32) *Request {
	tr.wg.Add(1)
	return &Request{Op: op, Offset: off, Data: data, Length: length, Done: tr.done}
}

func (tr *tracker) done(r *Request) {
	tr.mu.Lock()
	tr.calls[r]++
	n := tr.calls[r]
	tr.mu.Unlock()
	if n > 1 {
		tr.t.Errorf("Done called %d times for %v at %d", n, r.Op, r.Offset)
		return
	}
	tr.wg.Done()
}

// wait waits for every request, failing the test after d.
func (tr *tracker) wait(d time.Duration) {
	tr.t.Helper()
	ch := make(chan struct{})
	go func() { tr.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		tr.t.Fatalf("requests not done after %v", d)
	}
}

func TestHandshakeGo(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.set(func(s *fakeServer) { s.blockSizes = []uint32{4096, 8192, 1 << 20} })
	c := dial(t, s.config())
	info, ok := c.Info()
	if !ok {
		t.Fatal("Info: no handshake")
	}
	want := Info{Size: 1 << 20, Flags: s.flags, MinBlock: 4096, PreferredBlock: 8192, MaxPayload: 1 << 20}
	if info != want {
		t.Errorf("Info = %+v, want %+v", info, want)
	}
	if err := c.Trim(0, 512); !errors.Is(err, ErrUnaligned) {
		t.Errorf("trim of 512 bytes with a 4096-byte block: %v, want ErrUnaligned", err)
	}
	if got := c.Status().State; got != StateConnected {
		t.Errorf("state %v, want connected", got)
	}
}

func TestHandshakeFallback(t *testing.T) {
	for _, tc := range []struct {
		name              string
		refuseGo, noFixed bool
		noZeroes          bool
	}{
		{"go refused", true, false, true},
		{"go refused, zeroes", true, false, false},
		{"plain newstyle", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, 64<<10)
			s.set(func(s *fakeServer) { s.refuseGo, s.noFixed, s.noZeroes = tc.refuseGo, tc.noFixed, tc.noZeroes })
			c := dial(t, s.config())
			info, _ := c.Info()
			if !info.Fallback || info.Size != 64<<10 || info.MinBlock != BlockSize || info.MaxPayload != MaxPayload {
				t.Errorf("Info = %+v, want the NBD_OPT_EXPORT_NAME fallback with the default sizes", info)
			}
			w := pattern(4096, 1)
			if _, err := c.WriteAt(w, 8192); err != nil {
				t.Fatal(err)
			}
			r := make([]byte, 4096)
			if _, err := c.ReadAt(r, 8192); err != nil || !bytes.Equal(r, w) {
				t.Fatalf("read back: %v, equal %v", err, bytes.Equal(r, w))
			}
		})
	}
}

func TestUnknownExport(t *testing.T) {
	s := newFakeServer(t, 64<<10)
	cfg := s.config()
	cfg.Export = "nosuch"
	start := time.Now()
	_, err := Dial(context.Background(), cfg)
	if !errors.Is(err, ErrUnknownExport) {
		t.Fatalf("Dial: %v, want ErrUnknownExport", err)
	}
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Export != "nosuch" || oe.Message != "no export named nosuch" {
		t.Errorf("error %#v: want an OptionError naming the export and the server's message", err)
	}
	if !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "NBD_REP_ERR_UNKNOWN") {
		t.Errorf("error text %q", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Dial took %v to report a refusal", time.Since(start))
	}
	// The client owes the server a soft disconnect (NBD_OPT_ABORT).
	deadline := time.Now().Add(time.Second)
	for {
		if _, _, _, aborts := s.counts(); aborts == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no NBD_OPT_ABORT after the refusal")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadWriteFlushTrim(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	c := dial(t, s.config())
	w := pattern(64<<10, 2)
	if n, err := c.WriteAt(w, 4096); n != len(w) || err != nil {
		t.Fatalf("WriteAt: %d, %v", n, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := s.snapshot()[4096 : 4096+len(w)]; !bytes.Equal(got, w) {
		t.Fatal("the server holds other data than written")
	}
	if err := c.Trim(8192, 4096); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	r := make([]byte, len(w))
	if n, err := c.ReadAt(r, 4096); n != len(r) || err != nil {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	want := append([]byte(nil), w...)
	clear(want[4096:8192])
	if !bytes.Equal(r, want) {
		t.Fatal("read back other data than written and trimmed")
	}
	_, _, flushes, _ := s.counts()
	st := c.Status()
	if flushes != 1 || st.Completed != (OpCounts{Read: 1, Write: 1, Flush: 1, Trim: 1}) ||
		st.BytesRead != uint64(len(r)) || st.BytesWritten != uint64(len(w)) || st.Errors != 0 {
		t.Errorf("server flushes %d, status %+v", flushes, st)
	}
	if st.Latency.Count != 4 || st.Latency.Max <= 0 || st.Latency.Mean() <= 0 || st.Latency.Mean() > st.Latency.Max {
		t.Errorf("latency %+v", st.Latency)
	}
	var sum uint64
	for _, n := range st.Latency.Buckets {
		sum += n
	}
	if sum != 4 {
		t.Errorf("latency buckets %v hold %d requests, want 4", st.Latency.Buckets, sum)
	}
	if st.Addr != s.addr || st.Export != "disk" || st.InFlight != 0 || st.Queued != 0 || st.State != StateConnected {
		t.Errorf("status %+v", st)
	}
}

func TestLargeTransferSplit(t *testing.T) {
	s := newFakeServer(t, 4<<20)
	s.set(func(s *fakeServer) { s.blockSizes = []uint32{512, 4096, 256 << 10} })
	c := dial(t, s.config())
	w := pattern(3<<20+512, 3)
	if n, err := c.WriteAt(w, 512); n != len(w) || err != nil {
		t.Fatalf("WriteAt: %d, %v", n, err)
	}
	r := make([]byte, len(w))
	if n, err := c.ReadAt(r, 512); n != len(r) || err != nil || !bytes.Equal(r, w) {
		t.Fatalf("ReadAt: %d, %v, equal %v", n, err, bytes.Equal(r, w))
	}
	if got := c.Status().Completed.Write; got != 13 {
		t.Errorf("%d writes for 3 MiB in pieces of 256 KiB, want 13", got)
	}
}

func TestValidation(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.set(func(s *fakeServer) { s.flags = FlagHasFlags })
	c := dial(t, s.config())
	big := make([]byte, MaxPayload+BlockSize)
	for _, tc := range []struct {
		name string
		r    Request
		want error
	}{
		{"unaligned offset", Request{Op: OpRead, Offset: 100, Data: make([]byte, 512)}, ErrUnaligned},
		{"unaligned length", Request{Op: OpWrite, Data: make([]byte, 1000)}, ErrUnaligned},
		{"too large", Request{Op: OpRead, Data: big}, ErrTooLarge},
		{"past the end", Request{Op: OpRead, Offset: 1<<20 - 512, Data: make([]byte, 1024)}, ErrOutOfRange},
		{"offset past the end", Request{Op: OpWrite, Offset: 1 << 40, Data: make([]byte, 512)}, ErrOutOfRange},
		{"wrapping", Request{Op: OpTrim, Offset: 1<<64 - 512, Length: 1024}, ErrOutOfRange},
		{"empty read", Request{Op: OpRead}, ErrInvalid},
		{"length mismatch", Request{Op: OpRead, Data: make([]byte, 512), Length: 1024}, ErrInvalid},
		{"trim with data", Request{Op: OpTrim, Data: make([]byte, 512)}, ErrInvalid},
		{"flush with offset", Request{Op: OpFlush, Offset: 512}, ErrInvalid},
		{"unknown op", Request{Op: 9, Data: make([]byte, 512)}, ErrInvalid},
		{"disc", Request{Op: opDisc}, ErrInvalid},
		{"read with FUA", Request{Op: OpRead, Data: make([]byte, 512), FUA: true}, ErrInvalid},
		{"trim not offered", Request{Op: OpTrim, Length: 512}, ErrUnsupported},
		{"flush not offered", Request{Op: OpFlush}, ErrUnsupported},
		{"FUA not offered", Request{Op: OpWrite, Data: make([]byte, 512), FUA: true}, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			r := tc.r
			r.Done = func(*Request) { close(done) }
			c.Submit(&r)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("not done")
			}
			if !errors.Is(r.Err, tc.want) {
				t.Errorf("error %v, want %v", r.Err, tc.want)
			}
			if !strings.HasPrefix(r.Err.Error(), "nbd: ") {
				t.Errorf("error %q without the package's prefix", r.Err)
			}
		})
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("the server got %d requests, want none", n)
	}
	if _, err := c.ReadAt(make([]byte, 512), -512); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadAt at a negative offset: %v", err)
	}
	s.set(func(s *fakeServer) { s.flags |= FlagReadOnly })
	s.kill()
	s.restart() // the client learns of read-only on its next handshake
	deadline := time.Now().Add(5 * time.Second)
	for c.Status().Reconnects == 0 && time.Now().Before(deadline) {
		_, _ = c.ReadAt(make([]byte, 512), 0)
	}
	if _, err := c.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write on a read-only export: %v", err)
	}
}

func TestSubmitPanics(t *testing.T) {
	s := newFakeServer(t, 64<<10)
	c := dial(t, s.config())
	mustPanic := func(name string, f func()) {
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("a request without Done", func() { c.Submit(&Request{Op: OpFlush}) })
	block := make(chan struct{})
	r := &Request{Op: OpRead, Data: make([]byte, 512), Done: func(*Request) { <-block }}
	c.Submit(r)
	mustPanic("a request submitted twice", func() { c.Submit(r) })
	close(block)
}

func TestServerError(t *testing.T) {
	s := newFakeServer(t, 64<<10)
	s.set(func(s *fakeServer) {
		s.fault = func(n int64, r fakeReq) fault {
			if n == 1 {
				return faultEIO
			}
			return faultNone
		}
	})
	c := dial(t, s.config())
	_, err := c.WriteAt(make([]byte, 512), 0)
	var errno Errno
	if !errors.As(err, &errno) || errno != EIO || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("write failed by the server: %v, want Errno EIO", err)
	}
	if _, err := c.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("next write: %v", err)
	}
	if st := c.Status(); st.Reconnects != 0 || st.Errors != 1 {
		t.Errorf("an error reply is no broken connection: %+v", st)
	}
}

func TestOutOfOrder(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.set(func(s *fakeServer) { s.outOfOrder = true })
	cfg := s.config()
	cfg.MaxInFlight = 8
	c := dial(t, cfg)
	tr := newTracker(t)
	var reqs []*Request
	for i := range 64 {
		reqs = append(reqs, tr.req(OpWrite, uint64(i)*4096, pattern(4096, uint64(i)), 0))
	}
	for _, r := range reqs {
		c.Submit(r)
	}
	tr.wait(10 * time.Second)
	for _, r := range reqs {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	tr = newTracker(t)
	reqs = reqs[:0]
	for i := range 64 {
		reqs = append(reqs, tr.req(OpRead, uint64(i)*4096, make([]byte, 4096), 0))
	}
	for _, r := range reqs {
		c.Submit(r)
	}
	tr.wait(10 * time.Second)
	for i, r := range reqs {
		if r.Err != nil || !bytes.Equal(r.Data, pattern(4096, uint64(i))) {
			t.Fatalf("read %d: %v, equal %v", i, r.Err, bytes.Equal(r.Data, pattern(4096, uint64(i))))
		}
	}
	if st := c.Status(); st.Reconnects != 0 || st.Completed.Read != 64 || st.Completed.Write != 64 || st.InFlight != 0 {
		t.Errorf("status %+v", st)
	}
	var most int
	s.set(func(s *fakeServer) { most = s.maxInflight })
	if most < 2 || most > cfg.MaxInFlight {
		t.Errorf("the server had up to %d requests in flight, want 2 to MaxInFlight (%d)", most, cfg.MaxInFlight)
	}
}

func TestDoneResubmits(t *testing.T) {
	s := newFakeServer(t, 64<<10)
	c := dial(t, s.config())
	var n atomic.Int32
	finished := make(chan error, 1)
	r := &Request{Op: OpWrite, Data: make([]byte, 512)}
	r.Done = func(r *Request) {
		if r.Err != nil || n.Add(1) == 100 {
			finished <- r.Err
			return
		}
		r.Offset = (r.Offset + 512) % (64 << 10)
		c.Submit(r)
	}
	c.Submit(r)
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("stuck after %d requests", n.Load())
	}
}

// goroutines waits for the goroutine count to drop to at most n.
func goroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
