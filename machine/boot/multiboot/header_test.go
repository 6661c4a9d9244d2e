// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// testImage places the encoding of h at file offset off of an image of n
// bytes.
func testImage(t *testing.T, h Header, off, n int) []byte {
	t.Helper()
	img := make([]byte, n)
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copy(img[off:], b)
	return img
}

func TestHeaderEncoding(t *testing.T) {
	h := Header{
		Flags:       HeaderMemoryInfo | HeaderAddressFields,
		HeaderAddr:  0x1000f000,
		LoadAddr:    0x1000f000,
		LoadEndAddr: 0x10100000,
		BSSEndAddr:  0x10200000,
		EntryAddr:   0x10010000,
	}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 32 {
		t.Fatalf("encoded %d bytes, want 32", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0x1BADB002 || le.Uint32(b[4:]) != 0x00010002 {
		t.Fatalf("magic/flags = %#x/%#x", le.Uint32(b[0:]), le.Uint32(b[4:]))
	}
	if sum := le.Uint32(b[0:]) + le.Uint32(b[4:]) + le.Uint32(b[8:]); sum != 0 {
		t.Fatalf("magic+flags+checksum = %#x, want 0", sum)
	}
	for i, want := range []uint32{0x1000f000, 0x1000f000, 0x10100000, 0x10200000, 0x10010000} {
		if got := le.Uint32(b[12+4*i:]); got != want {
			t.Errorf("address field %d = %#x, want %#x", i, got, want)
		}
	}
	if n := (Header{Flags: HeaderPageAlign}).Size(); n != 12 {
		t.Errorf("size without address fields = %d", n)
	}
	if n := (Header{Flags: HeaderVideoMode}).Size(); n != 48 {
		t.Errorf("size with video fields = %d", n)
	}
}

func TestFindHeaderRoundTrip(t *testing.T) {
	const load = 0x100000
	for _, off := range []int{0, 4, 0x100, 8192 - 48} {
		h := Header{
			Flags:       HeaderPageAlign | HeaderMemoryInfo | HeaderVideoMode | HeaderAddressFields,
			HeaderAddr:  load + uint32(off),
			LoadAddr:    load,
			LoadEndAddr: load + 0x3000,
			BSSEndAddr:  load + 0x5000,
			EntryAddr:   load + 0x2000,
			Width:       1024, Height: 768, Depth: 32,
		}
		img := testImage(t, h, off, 0x3000)
		got, gotOff, err := FindHeader(img)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		if got != h || gotOff != off {
			t.Fatalf("offset %d: got %+v at %d, want %+v", off, got, gotOff, h)
		}
		if lo := got.LoadOffset(gotOff); lo != 0 {
			t.Fatalf("LoadOffset = %d, want 0", lo)
		}
	}
}

func TestFindHeaderRejects(t *testing.T) {
	good := Header{
		Flags:      HeaderMemoryInfo | HeaderAddressFields,
		HeaderAddr: 0x101000, LoadAddr: 0x100000, LoadEndAddr: 0x103000,
		BSSEndAddr: 0x104000, EntryAddr: 0x102000,
	}
	for _, tc := range []struct {
		name string
		img  func(t *testing.T) []byte
		want string
	}{
		{"none", func(t *testing.T) []byte { return make([]byte, 10000) }, "no header"},
		{"beyond 8 KiB", func(t *testing.T) []byte { return testImage(t, good, 8192, 12000) }, "no header"},
		{"unaligned", func(t *testing.T) []byte { return testImage(t, good, 0x1002, 0x3000) }, "no header"},
		{"bad checksum", func(t *testing.T) []byte {
			img := testImage(t, good, 0x1000, 0x3000)
			img[0x1008]++
			return img
		}, "no header"},
		{"truncated", func(t *testing.T) []byte { return testImage(t, good, 0, 0x3000)[:20] }, "does not fit"},
		{"unknown required flag", func(t *testing.T) []byte {
			h := good
			h.Flags |= 1 << 5
			return testImage(t, h, 0x1000, 0x3000)
		}, "unknown required flags"},
		{"load before file", func(t *testing.T) []byte {
			h := good
			h.HeaderAddr = 0x102000
			return testImage(t, h, 0x1000, 0x3000)
		}, "before the file"},
		{"load_addr above header_addr", func(t *testing.T) []byte {
			h := good
			h.LoadAddr = 0x101004
			return testImage(t, h, 0x1000, 0x3000)
		}, "above header_addr"},
		{"load past image", func(t *testing.T) []byte {
			h := good
			h.LoadEndAddr = 0x104000
			h.BSSEndAddr = 0
			return testImage(t, h, 0x1000, 0x3000)
		}, "runs past"},
		{"bss below load end", func(t *testing.T) []byte {
			h := good
			h.BSSEndAddr = 0x102000
			return testImage(t, h, 0x1000, 0x3000)
		}, "bss_end_addr"},
		{"entry outside", func(t *testing.T) []byte {
			h := good
			h.EntryAddr = 0x103000
			return testImage(t, h, 0x1000, 0x3000)
		}, "entry_addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := FindHeader(tc.img(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, _, err := FindHeader(nil); !errors.Is(err, ErrNoHeader) {
		t.Fatalf("empty image: %v", err)
	}
}

func TestFindHeaderLoadEndZero(t *testing.T) {
	h := Header{
		Flags:      HeaderAddressFields,
		HeaderAddr: 0x200000, LoadAddr: 0x200000, EntryAddr: 0x200100,
	}
	img := testImage(t, h, 0, 0x800)
	if _, _, err := FindHeader(img); err != nil {
		t.Fatalf("load_end_addr 0 (load whole file): %v", err)
	}
}

// FuzzFindHeader checks that FindHeader never panics, and that whatever it
// accepts re-encodes to the bytes it was found in.
func FuzzFindHeader(f *testing.F) {
	h := Header{
		Flags:      HeaderMemoryInfo | HeaderAddressFields,
		HeaderAddr: 0x1000f000, LoadAddr: 0x1000f000, LoadEndAddr: 0x10011000,
		BSSEndAddr: 0x10012000, EntryAddr: 0x10010000,
	}
	b, _ := h.MarshalBinary()
	img := make([]byte, 0x2000)
	copy(img, b)
	f.Add(img)
	f.Add(b)
	f.Add([]byte{0x02, 0xb0, 0xad, 0x1b, 0, 0, 0, 0, 0xfe, 0x4f, 0x52, 0xe4})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, off, err := FindHeader(data)
		if err != nil {
			return
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 || off%4 != 0 || off+len(enc) > len(data) || !bytes.Equal(data[off:off+len(enc)], enc) {
			t.Fatalf("header %+v at %d does not re-encode to the image bytes", h, off)
		}
	})
}
