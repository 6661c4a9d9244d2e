// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReconnectFaults: whatever breaks the connection while a read or a
// write is in flight, the request completes without error and with the
// right data on the next connection, and Status says why the first broke.
func TestReconnectFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       fault
		lastErr string
	}{
		{"drop", faultDrop, "closed the connection"},
		{"drop after doing it", faultDropAfter, "closed the connection"},
		{"mid-reply", faultMidReply, "closed the connection"},
		{"truncated", faultTruncate, "closed the connection"},
		{"bad magic", faultBadMagic, "reply magic 0xdeadbeef"},
		{"unknown cookie", faultUnknownCookie, "unknown cookie"},
		{"structured reply", faultStructured, "structured reply"},
		{"server shutting down", faultShutdown, "NBD_ESHUTDOWN"},
	} {
		for _, op := range []Op{OpRead, OpWrite} {
			t.Run(tc.name+"/"+op.String(), func(t *testing.T) {
				s := newFakeServer(t, 1<<20)
				s.set(func(s *fakeServer) {
					s.fault = func(n int64, r fakeReq) fault {
						if n == 2 {
							return tc.f
						}
						return faultNone
					}
				})
				c := dial(t, s.config())
				w := pattern(8192, 7)
				if _, err := c.WriteAt(w, 16384); err != nil {
					t.Fatal(err)
				}
				var err error
				got := make([]byte, len(w))
				if op == OpRead {
					_, err = c.ReadAt(got, 16384)
				} else {
					w = pattern(8192, 8)
					_, err = c.WriteAt(w, 16384)
					copy(got, s.snapshot()[16384:])
				}
				if err != nil {
					t.Fatalf("%v across the fault: %v", op, err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("%v across the fault: wrong data", op)
				}
				st := c.Status()
				if st.Reconnects != 1 || st.Disconnects != 1 || st.State != StateConnected {
					t.Errorf("reconnects %d, disconnects %d, state %v; want 1, 1, connected", st.Reconnects, st.Disconnects, st.State)
				}
				if st.LastError == nil || !strings.Contains(st.LastError.Error(), tc.lastErr) {
					t.Errorf("last error %v, want one saying %q", st.LastError, tc.lastErr)
				}
				if tc.f == faultShutdown {
					eventually(t, "an NBD_CMD_DISC after NBD_ESHUTDOWN (a soft disconnect)", func() bool {
						_, discs, _, _ := s.counts()
						return discs == 1
					})
				}
			})
		}
	}
}

// block is the content of block i of generation gen in the write loop:
// its index, its generation, pattern bytes, and a CRC-32 of the rest in
// the last 4 bytes.
func block(size int, i, gen uint64) []byte {
	b := pattern(size, i<<32|gen)
	binary.BigEndian.PutUint64(b, i)
	binary.BigEndian.PutUint64(b[8:], gen)
	binary.BigEndian.PutUint32(b[size-4:], crc32.ChecksumIEEE(b[:size-4]))
	return b
}

// checkBlock returns why b is not block i of generation gen.
func checkBlock(b []byte, i, gen uint64) string {
	n := len(b)
	if crc32.ChecksumIEEE(b[:n-4]) != binary.BigEndian.Uint32(b[n-4:]) {
		return "bad checksum (torn or corrupted)"
	}
	if gi, gg := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]); gi != i || gg != gen {
		return "block " + itoa(gi) + " generation " + itoa(gg) + ", want block " + itoa(i) + " generation " + itoa(gen)
	}
	return ""
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// writeLoop drives writes of checksummed blocks (and reads of blocks not
// being written) with up to depth requests in flight; each acknowledged
// write's generation is recorded in acked. It returns after n writes.
type writeLoop struct {
	t     *testing.T
	c     *Client
	bs    int
	acked []uint64 // latest acknowledged generation per block; 0: never written
	mu    sync.Mutex
	busy  []bool
	rng   *rand.Rand
	gen   uint64
	errs  []string
	reads int
	// hooks run before the submission of the request of their number,
	// with requests in flight.
	hooks map[int]func()
}

// run submits n writes and n/4 reads, depth at a time, and waits for them.
func (l *writeLoop) run(n, depth int) {
	sem := make(chan struct{}, depth)
	var wg sync.WaitGroup
	for k := 0; k < n+n/4; k++ {
		if h := l.hooks[k]; h != nil {
			h()
		}
		sem <- struct{}{}
		l.mu.Lock()
		i := l.rng.IntN(len(l.busy))
		for l.busy[i] {
			i = (i + 1) % len(l.busy)
		}
		l.busy[i] = true
		write := k%5 != 4
		l.gen++
		gen, want := l.gen, l.acked[i]
		l.mu.Unlock()
		r := &Request{Offset: uint64(i * l.bs)}
		if write {
			r.Op, r.Data = OpWrite, block(l.bs, uint64(i), gen)
		} else {
			r.Op, r.Data = OpRead, make([]byte, l.bs)
		}
		wg.Add(1)
		r.Done = func(r *Request) {
			defer wg.Done()
			l.mu.Lock()
			defer l.mu.Unlock()
			l.busy[i] = false
			<-sem
			switch {
			case r.Err != nil:
				l.errs = append(l.errs, r.Err.Error())
			case write:
				l.acked[i] = gen
			case want != 0:
				l.reads++
				if why := checkBlock(r.Data, uint64(i), want); why != "" {
					l.errs = append(l.errs, "read of block "+itoa(uint64(i))+": "+why)
				}
			}
		}
		l.c.Submit(r)
	}
	wg.Wait()
}

// verify reads every block back and checks it is the latest acknowledged
// write.
func (l *writeLoop) verify() {
	buf := make([]byte, len(l.acked)*l.bs)
	if _, err := l.c.ReadAt(buf, 0); err != nil {
		l.t.Fatalf("reading back: %v", err)
	}
	bad := 0
	for i, gen := range l.acked {
		if gen == 0 {
			continue
		}
		if why := checkBlock(buf[i*l.bs:(i+1)*l.bs], uint64(i), gen); why != "" {
			bad++
			if bad < 10 {
				l.t.Errorf("block %d: %s", i, why)
			}
		}
	}
	if bad > 0 {
		l.t.Errorf("%d of %d blocks are not their latest acknowledged write", bad, len(l.acked))
	}
}

// TestReconnectWriteLoop: a server that drops the connection again and
// again, in every way it can, and is killed and restarted twice, costs
// the writer no error: every acknowledged write reads back intact.
func TestReconnectWriteLoop(t *testing.T) {
	const blocks, bs = 256, 4096
	s := newFakeServer(t, blocks*bs)
	faults := []fault{faultDrop, faultDropAfter, faultMidReply, faultTruncate, faultBadMagic, faultUnknownCookie, faultShutdown}
	rng := rand.New(rand.NewPCG(1, 2))
	var frng sync.Mutex
	s.set(func(s *fakeServer) {
		s.outOfOrder = true
		s.fault = func(n int64, r fakeReq) fault {
			frng.Lock()
			defer frng.Unlock()
			if rng.IntN(40) == 0 {
				return faults[rng.IntN(len(faults))]
			}
			return faultNone
		}
	})
	cfg := s.config()
	cfg.MaxInFlight = 8
	c := dial(t, cfg)
	l := &writeLoop{t: t, c: c, bs: bs, acked: make([]uint64, blocks), busy: make([]bool, blocks), rng: rand.New(rand.NewPCG(3, 4))}
	// Kill the server twice with requests in flight; it comes back 30 ms
	// later while the loop goes on submitting.
	var restarts sync.WaitGroup
	kill := func() {
		s.kill()
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			time.Sleep(30 * time.Millisecond)
			s.restart()
		}()
	}
	l.hooks = map[int]func(){1000: kill, 2500: kill}
	start := time.Now()
	l.run(3000, 12)
	restarts.Wait()
	for _, e := range l.errs {
		t.Error(e)
	}
	l.verify()
	st := c.Status()
	t.Logf("%v: %d writes, %d reads checked, 2 kills, %d reconnects; last error: %v",
		time.Since(start).Round(time.Millisecond), st.Completed.Write, l.reads, st.Reconnects, st.LastError)
	if st.Reconnects < 10 {
		t.Errorf("only %d reconnects: the faults did not happen", st.Reconnects)
	}
	if st.Errors != 0 {
		t.Errorf("%d requests failed", st.Errors)
	}
}

// TestDeadline: with the server gone for longer than Timeout, waiting
// requests and new ones fail with ErrTimeout; once it is back, new
// requests succeed.
func TestDeadline(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	cfg := s.config()
	cfg.Timeout = 300 * time.Millisecond
	c := dial(t, cfg)
	if _, err := c.WriteAt(pattern(4096, 1), 0); err != nil {
		t.Fatal(err)
	}
	s.kill()
	start := time.Now()
	_, err := c.ReadAt(make([]byte, 4096), 0)
	waited := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("read with the server gone: %v, want ErrTimeout", err)
	}
	if waited < cfg.Timeout/2 || waited > 3*cfg.Timeout {
		t.Errorf("the read failed after %v, want about %v", waited, cfg.Timeout)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not say why the server could not be reached", err)
	}
	if st := c.Status().State; st != StateFailed {
		t.Errorf("state %v, want failed", st)
	}
	start = time.Now()
	if err := c.Flush(); !errors.Is(err, ErrTimeout) || time.Since(start) > cfg.Timeout {
		t.Errorf("a new request while failed: %v after %v, want ErrTimeout at once", err, time.Since(start))
	}
	s.restart()
	deadline := time.Now().Add(5 * time.Second)
	for c.Status().State != StateConnected {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect; status %+v", c.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := make([]byte, 4096)
	if _, err := c.ReadAt(got, 0); err != nil || !bytes.Equal(got, pattern(4096, 1)) {
		t.Fatalf("read after the server came back: %v", err)
	}
}

// TestLostDial: a dial whose connection request is lost (it never
// answers) is given up after DialTimeout and made again, so requests
// waiting for the connection succeed once the server is back, well
// within Timeout. Before DialTimeout, one lost dial used up the whole
// Timeout and the requests failed although the server was back (seen
// as I/O errors in a guest whose NBD server was restarted, 2026-12-06).
func TestLostDial(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	cfg := s.config()
	cfg.Timeout = 2 * time.Second
	var dials atomic.Int32
	lose := make(chan struct{}) // closed: the next dial is lost
	cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		if dials.Add(1) == 2 {
			<-lose
			<-ctx.Done() // a SYN nobody answers
			return nil, ctx.Err()
		}
		return dialTCP(ctx, addr)
	}
	c := dial(t, cfg)
	close(lose)
	s.kill()
	s.restart()
	start := time.Now()
	if _, err := c.WriteAt(pattern(4096, 3), 4096); err != nil {
		t.Fatalf("write after a lost dial, the server back: %v (after %v, %d dials)", err, time.Since(start), dials.Load())
	}
	if d := time.Since(start); d >= cfg.Timeout {
		t.Errorf("the write took %v, Timeout %v", d, cfg.Timeout)
	}
	if n := dials.Load(); n < 3 {
		t.Errorf("%d dials, want the lost one and another", n)
	}
	if !bytes.Equal(s.snapshot()[4096:8192], pattern(4096, 3)) {
		t.Error("the server does not hold the write")
	}
}

// TestServerPause: a server gone for less than Timeout costs a delay,
// not an error.
func TestServerPause(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	cfg := s.config()
	cfg.Timeout = 2 * time.Second
	c := dial(t, cfg)
	s.kill()
	tr := newTracker(t)
	r := tr.req(OpWrite, 4096, pattern(4096, 5), 0)
	c.Submit(r)
	time.Sleep(200 * time.Millisecond)
	if st := c.Status(); st.State != StateReconnecting || st.Queued != 1 {
		t.Errorf("state %v with %d queued, want reconnecting with 1", st.State, st.Queued)
	}
	s.restart()
	tr.wait(5 * time.Second)
	if r.Err != nil || !bytes.Equal(s.snapshot()[4096:8192], r.Data) {
		t.Fatalf("write across the pause: %v", r.Err)
	}
}

// TestHungServer: a server that accepts requests and answers none is taken
// as gone after Timeout; the requests are sent again on a new connection.
func TestHungServer(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.set(func(s *fakeServer) {
		s.fault = func(n int64, r fakeReq) fault {
			if n == 1 {
				return faultHang
			}
			return faultNone
		}
	})
	cfg := s.config()
	cfg.Timeout = 200 * time.Millisecond
	c := dial(t, cfg)
	start := time.Now()
	if _, err := c.WriteAt(pattern(4096, 9), 0); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < cfg.Timeout {
		t.Errorf("answered after %v, before the timeout", d)
	}
	if st := c.Status(); st.Reconnects != 1 || !strings.Contains(st.LastError.Error(), "no progress") {
		t.Errorf("reconnects %d, last error %v", st.Reconnects, st.LastError)
	}
}

// TestServerStopsReading: a server that stops reading leaves the client's
// writes blocked on a full connection; after Timeout without progress the
// client breaks it and sends everything again on a new one.
func TestServerStopsReading(t *testing.T) {
	const n, size = 16, 4 << 20 // more than the sockets' buffers hold
	s := newFakeServer(t, n*size)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.set(func(s *fakeServer) {
		s.stallUntil = release
		s.fault = func(k int64, r fakeReq) fault {
			if k == 1 {
				return faultStall
			}
			return faultNone
		}
	})
	cfg := s.config()
	cfg.Timeout = 300 * time.Millisecond
	c := dial(t, cfg)
	tr := newTracker(t)
	var reqs []*Request
	for i := range n {
		r := tr.req(OpWrite, uint64(i*size), pattern(size, uint64(i)), 0)
		reqs = append(reqs, r)
		c.Submit(r)
	}
	tr.wait(10 * time.Second)
	data := s.snapshot()
	for i, r := range reqs {
		if r.Err != nil || !bytes.Equal(data[i*size:(i+1)*size], r.Data) {
			t.Fatalf("write %d: %v", i, r.Err)
		}
	}
	if st := c.Status(); st.Reconnects != 1 || !strings.Contains(st.LastError.Error(), "no progress") {
		t.Errorf("reconnects %d, last error %v", st.Reconnects, st.LastError)
	}
}

// TestShrinkOnReconnect: after a reconnect to a smaller or read-only
// export, requests that no longer fit fail with a clear error, in flight
// at the break or not, and the others go on.
func TestShrinkOnReconnect(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	cfg := s.config()
	c := dial(t, cfg)
	// The server shrinks to 512 KiB and drops the connection while a write
	// near the end is in flight.
	s.set(func(s *fakeServer) {
		s.fault = func(n int64, r fakeReq) fault {
			if n == 1 {
				s.setSize(512 << 10)
				return faultDrop
			}
			return faultNone
		}
	})
	tr := newTracker(t)
	end := tr.req(OpWrite, 1<<20-4096, make([]byte, 4096), 0)
	c.Submit(end)
	tr.wait(5 * time.Second)
	tr = newTracker(t)
	low := tr.req(OpWrite, 4096, make([]byte, 4096), 0)
	c.Submit(low)
	tr.wait(5 * time.Second)
	if st := c.Status(); st.Reconnects != 1 {
		t.Errorf("%d reconnects, want 1", st.Reconnects)
	}
	if !errors.Is(end.Err, ErrOutOfRange) || !strings.Contains(end.Err.Error(), "524288") {
		t.Errorf("write past the shrunk end: %v, want ErrOutOfRange naming the new size", end.Err)
	}
	if low.Err != nil {
		t.Errorf("write inside the shrunk export: %v", low.Err)
	}
	if info, _ := c.Info(); info.Size != 512<<10 {
		t.Errorf("Info().Size = %d after the shrink", info.Size)
	}
	s.set(func(s *fakeServer) { s.flags |= FlagReadOnly })
	s.kill()
	s.restart()
	if _, err := c.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		// The first write may go out before the client notices the
		// break; the one after the reconnect must fail.
		if _, err = c.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
			t.Errorf("write on the now read-only export: %v", err)
		}
	}
	if _, err := c.ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("read on the read-only export: %v", err)
	}
}

// TestCloseDrains: Close lets submitted requests complete, sends
// NBD_CMD_DISC, and leaves no goroutine behind; later requests fail with
// ErrClosed.
func TestCloseDrains(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.set(func(s *fakeServer) { s.outOfOrder = true })
	before := runtime.NumGoroutine()
	c, err := Dial(context.Background(), s.config())
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker(t)
	var reqs []*Request
	for i := range 100 {
		r := tr.req(OpWrite, uint64(i)*4096, pattern(4096, uint64(i)), 0)
		reqs = append(reqs, r)
		c.Submit(r)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	tr.wait(time.Second)
	for i, r := range reqs {
		if r.Err != nil {
			t.Fatalf("request %d submitted before Close: %v", i, r.Err)
		}
	}
	if _, discs, _, _ := s.counts(); discs != 1 {
		t.Errorf("%d NBD_CMD_DISC, want 1", discs)
	}
	if st := c.Status(); st.State != StateClosed || st.InFlight != 0 || st.Queued != 0 {
		t.Errorf("status after Close: %+v", st)
	}
	s.kill()
	goroutines(t, before)
	called := false
	r := &Request{Op: OpFlush, Done: func(*Request) { called = true }}
	c.Submit(r)
	if !called || !errors.Is(r.Err, ErrClosed) {
		t.Errorf("Submit after Close: called %v, error %v", called, r.Err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseWhileDown: Close with the server gone fails the waiting
// requests with ErrClosed at once and stops every goroutine, the dialing
// ones too.
func TestCloseWhileDown(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	before := runtime.NumGoroutine()
	cfg := s.config()
	cfg.Timeout = time.Minute
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.kill()
	tr := newTracker(t)
	r := tr.req(OpRead, 0, make([]byte, 512), 0)
	c.Submit(r)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	tr.wait(time.Second)
	if !errors.Is(r.Err, ErrClosed) {
		t.Errorf("request waiting at Close: %v, want ErrClosed", r.Err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	goroutines(t, before)
}

// TestDialFails: Dial gives up after Timeout when nothing listens, and
// when its context ends.
func TestDialFails(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.kill()
	cfg := s.config()
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Dial with nothing listening: %v, want ErrTimeout with the cause", err)
	}
	if d := time.Since(start); d < cfg.Timeout || d > 2*time.Second {
		t.Errorf("Dial gave up after %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cfg.Timeout = time.Minute
	if _, err := Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial with an ending context: %v", err)
	}
	if _, err := Dial(context.Background(), Config{}); err == nil {
		t.Error("Dial without a Dial function succeeded")
	}
	if _, err := New(Config{Dial: dialTCP, MaxInFlight: -1}); err == nil {
		t.Error("New with MaxInFlight -1 succeeded")
	}
}

// TestNewConnectsLater: New returns at once; requests submitted before
// the server is up wait for it.
func TestNewConnectsLater(t *testing.T) {
	s := newFakeServer(t, 1<<20)
	s.kill()
	c, err := New(s.config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Status().State; st != StateConnecting {
		t.Errorf("state %v, want connecting", st)
	}
	tr := newTracker(t)
	r := tr.req(OpWrite, 0, pattern(512, 3), 0)
	c.Submit(r)
	time.Sleep(50 * time.Millisecond)
	s.restart()
	tr.wait(5 * time.Second)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if st := c.Status(); st.Reconnects != 0 || st.State != StateConnected {
		t.Errorf("status %+v, want connected after a first handshake", st)
	}
}

// eventually fails the test unless cond becomes true within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
