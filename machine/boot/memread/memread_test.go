// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package memread_test

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/memread"
	"github.com/big-iron/big-iron/machine/boot/memread/memreadtest"
)

const maxLen = 64 << 10

func TestCString(t *testing.T) {
	mem := memreadtest.Mem{}
	long := strings.Repeat("x", 1000)
	mem[0x10fd] = []byte(long + "\x00") // unaligned, crosses 256-byte boundaries
	s, err := memread.CString(mem.Read, 0x10fd, maxLen)
	if err != nil || s != long {
		t.Fatalf("CString = %d bytes, %v", len(s), err)
	}
	mem[0x100000] = make([]byte, maxLen+1024) // all NUL: empty string
	if s, err := memread.CString(mem.Read, 0x100000, maxLen); err != nil || s != "" {
		t.Fatalf("empty string: %q, %v", s, err)
	}
	mem[0x200000] = []byte(strings.Repeat("y", maxLen+600))
	if _, err := memread.CString(mem.Read, 0x200000, maxLen); err == nil || !strings.Contains(err.Error(), "not terminated") {
		t.Fatalf("overlong string: err = %v", err)
	}
	// A string that ends 3 bytes before the end of readable memory: the
	// 256-byte piece cannot be read, single bytes can.
	mem[0x300010] = []byte("abc\x00")
	if s, err := memread.CString(mem.Read, 0x300010, maxLen); err != nil || s != "abc" {
		t.Fatalf("string at the end of memory: %q, %v", s, err)
	}
	mem[0x400000] = []byte("abc")
	if _, err := memread.CString(mem.Read, 0x400000, maxLen); err == nil || !strings.Contains(err.Error(), "reading string at 0x400000") {
		t.Fatalf("string running off memory: err = %v", err)
	}
	if _, err := memread.CString(mem.Read, 0, maxLen); err == nil {
		t.Fatal("string at address 0 read")
	}
}

func TestExact(t *testing.T) {
	mem := memreadtest.Mem{0x1000: []byte("0123456789")}
	if b, err := memread.Exact(mem.Read, 0x1002, 3); err != nil || string(b) != "234" {
		t.Fatalf("Exact = %q, %v", b, err)
	}
	short := func(addr uint64, n int) ([]byte, error) { return make([]byte, n-1), nil }
	for _, c := range []struct {
		name string
		read memread.ReadFunc
		addr uint64
		n    int
		want string
	}{
		{"negative length", mem.Read, 0x1000, -1, "negative"},
		{"wraps", mem.Read, ^uint64(0) - 1, 3, "wraps around"},
		{"unbacked", mem.Read, 0x2000, 1, "no memory"},
		{"short read", short, 0x1000, 4, "returned 3"},
	} {
		if _, err := memread.Exact(c.read, c.addr, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// The last bytes of the address space are readable.
	top := func(addr uint64, n int) ([]byte, error) { return make([]byte, n), nil }
	if _, err := memread.Exact(top, ^uint64(0)-1, 2); err != nil {
		t.Errorf("read of the top 2 bytes: %v", err)
	}
}
