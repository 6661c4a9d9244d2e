// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package netdisk

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/netstack/nbd/nbdtest"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

// qemuNBD serves a file of size bytes with Debian's qemu-nbd on
// loopback and returns its address and the file; kill stops the server.
func qemuNBD(t *testing.T, size int64, extra ...string) (addr, file string, kill func()) {
	t.Helper()
	s, file := nbdtest.QEMU(t, size, "d", extra...)
	return s.Addr(), file, s.Kill
}

// dialTCP dials as the image does, with the address alone.
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func open(t *testing.T, addr string) *Disk {
	t.Helper()
	c, err := nbd.Dial(context.Background(), nbd.Config{Dial: dialTCP, Addr: addr, Export: "d", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	disk, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return disk
}

// do submits r and waits for it.
func do(t *testing.T, d *Disk, r *virtio.DiskRequest) error {
	t.Helper()
	done := make(chan struct{})
	r.Done = func(*virtio.DiskRequest) { close(done) }
	d.Submit(r)
	select {
	case <-done:
		return r.Err
	case <-time.After(30 * time.Second):
		t.Fatal("the request did not complete")
		return nil
	}
}

// TestQEMUNBD writes, flushes, reads back and discards through the disk
// against qemu-nbd, and finds the data in the server's file.
func TestQEMUNBD(t *testing.T) {
	addr, file, _ := qemuNBD(t, 4<<20)
	d := open(t, addr)
	if d.Size() != 4<<20 || d.ReadOnly() || !d.Caps().Flush || !d.Caps().Discard {
		t.Fatalf("size %d, read-only %v, caps %+v", d.Size(), d.ReadOnly(), d.Caps())
	}
	data := make([]byte, 64<<10)
	rand.Read(data)
	if err := do(t, d, &virtio.DiskRequest{Op: virtio.DiskWrite, Offset: 1 << 20, Length: uint64(len(data)), Data: data}); err != nil {
		t.Fatal(err)
	}
	if err := do(t, d, &virtio.DiskRequest{Op: virtio.DiskFlush}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := do(t, d, &virtio.DiskRequest{Op: virtio.DiskRead, Offset: 1 << 20, Length: uint64(len(got)), Data: got}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
	}
	onDisk, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(onDisk[1<<20:1<<20+len(data)], data) {
		t.Fatalf("the server's file does not hold the write (%v)", err)
	}
	if err := do(t, d, &virtio.DiskRequest{Op: virtio.DiskDiscard, Offset: 1 << 20, Length: 4096}); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnly: a read-only export is a read-only disk, and a server that
// refuses a write fails the request rather than losing it silently.
func TestReadOnly(t *testing.T) {
	addr, _, _ := qemuNBD(t, 1<<20, "-r")
	d := open(t, addr)
	if !d.ReadOnly() {
		t.Error("a read-only export is writable")
	}
	buf := make([]byte, 4096)
	if err := do(t, d, &virtio.DiskRequest{Op: virtio.DiskWrite, Length: 4096, Data: buf}); err == nil {
		t.Error("a write to a read-only export succeeded")
	}
}

// TestServerGone: requests to a server that went away fail, after the
// client's timeout, with its error.
func TestServerGone(t *testing.T) {
	addr, _, kill := qemuNBD(t, 1<<20)
	c, err := nbd.Dial(context.Background(), nbd.Config{Dial: dialTCP, Addr: addr, Export: "d", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	kill()
	buf := make([]byte, 4096)
	err = do(t, d, &virtio.DiskRequest{Op: virtio.DiskRead, Length: 4096, Data: buf})
	if !errors.Is(err, nbd.ErrTimeout) {
		t.Errorf("a read from a dead server: %v, want ErrTimeout", err)
	}
}

// TestSubmitAllocs: a request through the disk allocates nothing once
// its op exists.
func TestSubmitAllocs(t *testing.T) {
	addr, _, _ := qemuNBD(t, 1<<20)
	d := open(t, addr)
	buf := make([]byte, 4096)
	done := make(chan struct{}, 1)
	r := &virtio.DiskRequest{Op: virtio.DiskRead, Length: 4096, Data: buf, Done: func(*virtio.DiskRequest) { done <- struct{}{} }}
	d.Submit(r)
	<-done
	if a := testing.AllocsPerRun(50, func() { d.Submit(r); <-done }); a > 0 {
		t.Errorf("%v allocations per request", a)
	}
}
