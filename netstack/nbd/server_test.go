// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/big-iron/big-iron/netstack/nbd/nbdtest"
)

// Tests against real NBD servers: qemu-nbd (Debian's qemu-utils) and
// nbdkit (Debian's nbdkit). Each is skipped, naming what is missing, when
// its server is not installed.

// realConfig is a client configuration for a server on addr.
func realConfig(addr, export string) Config {
	return Config{Dial: dialTCP, Addr: addr, Export: export, Timeout: 10 * time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// TestQemuNBD: reads, writes, flushes and trims against qemu-nbd, checked
// in the file it serves.
func TestQemuNBD(t *testing.T) {
	p, file := nbdtest.QEMU(t, 16<<20, "disk")
	c := dial(t, realConfig(p.Addr(), "disk"))
	info, _ := c.Info()
	t.Logf("qemu-nbd: %+v, flags %v", info, info.Flags)
	if info.Size != 16<<20 || info.Fallback || info.Flags&FlagSendFlush == 0 || info.Flags&FlagReadOnly != 0 {
		t.Fatalf("qemu-nbd export %+v", info)
	}
	w := pattern(1<<20, 11)
	if _, err := c.WriteAt(w, 3<<20); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk[3<<20:4<<20], w) {
		t.Fatal("the file holds other data than written")
	}
	r := make([]byte, len(w))
	if _, err := c.ReadAt(r, 3<<20); err != nil || !bytes.Equal(r, w) {
		t.Fatalf("ReadAt: %v, equal %v", err, bytes.Equal(r, w))
	}
	if info.Flags&FlagSendTrim != 0 {
		if err := c.Trim(3<<20, 64<<10); err != nil {
			t.Fatalf("Trim: %v", err)
		}
	}
	if info.Flags&FlagSendFUA != 0 {
		if err := waitRequest(c, &Request{Op: OpWrite, Offset: 0, Data: w[:4096], FUA: true}); err != nil {
			t.Fatalf("FUA write: %v", err)
		}
	}
	if _, err := c.ReadAt(r[:4096], 16<<20); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("read past the end: %v", err)
	}
	cfg := realConfig(p.Addr(), "nosuch")
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrUnknownExport) {
		t.Errorf("Dial of an unknown export: %v", err)
	} else {
		t.Logf("unknown export: %v", err)
	}
}

// waitRequest submits r and waits for it.
func waitRequest(c *Client, r *Request) error {
	done := make(chan struct{})
	r.Done = func(*Request) { close(done) }
	c.Submit(r)
	<-done
	return r.Err
}

// TestQemuNBDKilled: qemu-nbd killed with SIGKILL and restarted twice in
// the middle of a write loop costs the writer no error, and every
// acknowledged write is in the file.
func TestQemuNBDKilled(t *testing.T) {
	const blocks, bs = 512, 4096
	p, file := nbdtest.QEMU(t, blocks*bs, "disk")
	c := dial(t, realConfig(p.Addr(), "disk"))
	l := &writeLoop{t: t, c: c, bs: bs, acked: make([]uint64, blocks), busy: make([]bool, blocks), rng: rand.New(rand.NewPCG(5, 6))}
	// SIGKILL twice with requests in flight; qemu-nbd comes back 50 ms
	// later while the loop goes on submitting.
	var restarts sync.WaitGroup
	kill := func() {
		p.Kill()
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			time.Sleep(50 * time.Millisecond)
			p.Start()
		}()
	}
	l.hooks = map[int]func(){1500: kill, 3500: kill}
	start := time.Now()
	l.run(4000, 12)
	restarts.Wait()
	n := 2
	for _, e := range l.errs {
		t.Error(e)
	}
	l.verify()
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, gen := range l.acked {
		if gen == 0 {
			continue
		}
		if why := checkBlock(onDisk[i*bs:(i+1)*bs], uint64(i), gen); why != "" {
			t.Errorf("block %d in the file: %s", i, why)
		}
	}
	st := c.Status()
	t.Logf("%v: %d writes, %d reads checked, %d kills, %d reconnects, latency mean %v max %v; last error: %v",
		time.Since(start).Round(time.Millisecond), st.Completed.Write, l.reads, n, st.Reconnects,
		st.Latency.Mean(), st.Latency.Max, st.LastError)
	if st.Reconnects != uint64(n) {
		t.Errorf("%d reconnects for %d kills", st.Reconnects, n)
	}
}

// TestQemuNBDNoAllocs: against qemu-nbd too, steady-state requests
// allocate nothing in the client (the server is another process). One
// request at a time: qemu-nbd 7.2 leaves Nagle's algorithm on (newer
// ones set TCP_NODELAY), so sixteen submitted together and waited for
// together wait for a delayed acknowledgement, 40 ms a round.
func TestQemuNBDNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, _ := nbdtest.QEMU(t, 1<<20, "disk")
	c := dial(t, realConfig(p.Addr(), "disk"))
	q := newQueueDepth(c, 1, 4096)
	buf := make([]byte, 4096)
	round := func() {
		if err := q.round(OpWrite); err != nil {
			t.Fatal(err)
		}
		if err := q.round(OpRead); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadAt(buf, 8192); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		round()
	}
	if allocs := testing.AllocsPerRun(500, round); allocs != 0 {
		t.Errorf("%v allocations per 4 requests, want 0", allocs)
	}
}

// BenchmarkQemuNBD4K measures 4 KiB reads and writes against qemu-nbd on
// loopback, one at a time and sixteen in flight.
func BenchmarkQemuNBD4K(b *testing.B) {
	p, _ := nbdtest.QEMU(b, 1<<20, "disk")
	benchServer(b, p.Addr(), "disk")
}

// BenchmarkNbdkit4K measures 4 KiB reads and writes against nbdkit's
// memory plugin on loopback.
func BenchmarkNbdkit4K(b *testing.B) {
	p := startNbdkit(b, "memory", "1M")
	p.Ready()
	benchServer(b, p.Addr(), "")
}

// benchServer runs benchDepths against export on the server at addr.
func benchServer(b *testing.B, addr, export string) {
	c, err := Dial(b.Context(), realConfig(addr, export))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchDepths(b, c)
}

// startNbdkit runs nbdkit on a free port with args after the port, or
// skips the test.
func startNbdkit(t testing.TB, args ...string) *nbdtest.Server {
	bin := nbdtest.Look(t, "nbdkit", "nbdkit")
	argv := append([]string{bin, "-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", "{PORT}"}, args...)
	return nbdtest.Start(t, argv...)
}

// TestNbdkitMemory: reads, writes, flushes and trims against nbdkit's
// memory plugin.
func TestNbdkitMemory(t *testing.T) {
	p := startNbdkit(t, "memory", "64M")
	c := dial(t, realConfig(p.Addr(), ""))
	info, _ := c.Info()
	t.Logf("nbdkit memory: %+v, flags %v", info, info.Flags)
	if info.Size != 64<<20 || info.Fallback || info.Flags&FlagSendTrim == 0 || info.Flags&FlagSendFlush == 0 {
		t.Fatalf("nbdkit export %+v", info)
	}
	w := pattern(3<<20, 12)
	if _, err := c.WriteAt(w, 1<<20); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := c.Trim(2<<20, 1<<20); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	r := make([]byte, len(w))
	if _, err := c.ReadAt(r, 1<<20); err != nil {
		t.Fatalf("ReadAt: %v", err)
	}
	clear(w[1<<20 : 2<<20]) // the memory plugin reads a trimmed range as zeroes
	if !bytes.Equal(r, w) {
		t.Fatal("read back other data than written and trimmed")
	}
	// Many requests in flight: nbdkit's parallel thread model may answer
	// them out of order.
	tr := newTracker(t)
	var reqs []*Request
	for i := range 200 {
		req := tr.req(OpWrite, uint64(i)*8192, pattern(8192, uint64(i)+100), 0)
		reqs = append(reqs, req)
		c.Submit(req)
	}
	tr.wait(10 * time.Second)
	for _, req := range reqs {
		if req.Err != nil {
			t.Fatal(req.Err)
		}
	}
	big := make([]byte, 200*8192)
	if _, err := c.ReadAt(big, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if !bytes.Equal(big[i*8192:(i+1)*8192], pattern(8192, uint64(i)+100)) {
			t.Fatalf("block %d of the parallel writes is wrong", i)
		}
	}
}

// TestNbdkitBlockSize: nbdkit enforcing a 4 KiB minimum block and a 64 KiB
// maximum payload (blocksize-policy filter): the client learns them, obeys
// them and splits larger transfers.
func TestNbdkitBlockSize(t *testing.T) {
	p := startNbdkit(t, "--filter=blocksize-policy", "memory", "4M",
		"blocksize-minimum=4096", "blocksize-preferred=16384", "blocksize-maximum=65536", "blocksize-error-policy=error")
	c := dial(t, realConfig(p.Addr(), ""))
	info, _ := c.Info()
	if info.MinBlock != 4096 || info.PreferredBlock != 16384 || info.MaxPayload != 65536 {
		t.Fatalf("info %+v: want the server's block sizes", info)
	}
	if _, err := c.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrUnaligned) {
		t.Errorf("512-byte write on a 4 KiB export: %v", err)
	}
	w := pattern(1<<20, 13)
	if _, err := c.WriteAt(w, 8192); err != nil {
		t.Fatalf("WriteAt of 1 MiB in 64 KiB pieces: %v", err)
	}
	r := make([]byte, len(w))
	if _, err := c.ReadAt(r, 8192); err != nil || !bytes.Equal(r, w) {
		t.Fatalf("ReadAt: %v, equal %v", err, bytes.Equal(r, w))
	}
}

// TestNbdkitErrors: a read-only export, the server's error replies
// (error filter) and NBD_ESHUTDOWN, which the client answers by
// reconnecting and sending the request again.
func TestNbdkitErrors(t *testing.T) {
	ro := startNbdkit(t, "-r", "memory", "1M")
	c := dial(t, realConfig(ro.Addr(), ""))
	if info, _ := c.Info(); info.Flags&FlagReadOnly == 0 {
		t.Errorf("nbdkit -r: flags %v", info.Flags)
	}
	if _, err := c.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write on a read-only export: %v", err)
	}

	dir := t.TempDir()
	enospc, shutdown := filepath.Join(dir, "enospc"), filepath.Join(dir, "shutdown")
	p := startNbdkit(t, "--filter=error", "memory", "1M",
		"error-pwrite=ENOSPC", "error-pwrite-rate=100%", "error-pwrite-file="+enospc,
		"error-pread=ESHUTDOWN", "error-pread-rate=100%", "error-pread-file="+shutdown)
	cfg := realConfig(p.Addr(), "")
	cfg.Timeout = 2 * time.Second
	c = dial(t, cfg)
	if err := os.WriteFile(enospc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.WriteAt(make([]byte, 4096), 0)
	var errno Errno
	if !errors.As(err, &errno) || errno != ENOSPC {
		t.Errorf("write with ENOSPC injected: %v", err)
	}
	_ = os.Remove(enospc)
	if _, err := c.WriteAt(pattern(4096, 14), 0); err != nil {
		t.Errorf("write after the injection: %v", err)
	}
	if err := os.WriteFile(shutdown, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = os.Remove(shutdown)
	}()
	r := make([]byte, 4096)
	if _, err := c.ReadAt(r, 0); err != nil || !bytes.Equal(r, pattern(4096, 14)) {
		t.Errorf("read across 300 ms of NBD_ESHUTDOWN: %v", err)
	}
	if st := c.Status(); st.Reconnects == 0 || !strings.Contains(st.LastError.Error(), "ESHUTDOWN") {
		t.Errorf("status %+v: want reconnects after NBD_ESHUTDOWN", st)
	}
	if err := os.WriteFile(shutdown, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(r, 0); !errors.Is(err, ErrTimeout) {
		t.Errorf("read while the server answers only NBD_ESHUTDOWN: %v, want ErrTimeout", err)
	}
}
