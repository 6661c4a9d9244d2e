// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderMagic identifies the Multiboot header inside an image
// (Multiboot 0.6.96, 3.1.2 "The magic fields of Multiboot header").
const HeaderMagic uint32 = 0x1BADB002

// HeaderSearchLimit is how far into the image a loader looks for the
// header: it must lie entirely within the first 8192 bytes, 32-bit aligned
// (Multiboot 0.6.96, 3.1.1 "OS image format").
const HeaderSearchLimit = 8192

// HeaderFlags is the flags field of the Multiboot header: what the image
// requires or requests from the loader (Multiboot 0.6.96, 3.1.2).
type HeaderFlags uint32

// Header flags (Multiboot 0.6.96, 3.1.2).
const (
	// HeaderPageAlign asks that boot modules be aligned on 4 KiB pages.
	HeaderPageAlign HeaderFlags = 1 << 0
	// HeaderMemoryInfo asks for mem_* and, if available, the memory map.
	HeaderMemoryInfo HeaderFlags = 1 << 1
	// HeaderVideoMode asks for a video mode (mode_type and following).
	HeaderVideoMode HeaderFlags = 1 << 2
	// HeaderAddressFields says the address fields at offsets 12-28 are
	// valid and must be used instead of parsing the image as ELF (the
	// "a.out kludge", 3.1.3).
	HeaderAddressFields HeaderFlags = 1 << 16

	// headerRequiredMask holds the bits 0-15 a loader must understand;
	// a loader refuses an image with an unknown one set (3.1.2).
	headerRequiredMask HeaderFlags = 0xffff
	// headerKnownRequired is the subset of bits 0-15 this spec defines.
	headerKnownRequired = HeaderPageAlign | HeaderMemoryInfo | HeaderVideoMode
)

// Header sizes in bytes (Multiboot 0.6.96, 3.1.1): the magic fields, then
// the address fields, then the graphics fields.
const (
	headerMagicSize   = 12
	headerAddressSize = 32
	headerVideoSize   = 48
)

// Header is the Multiboot header of an image (Multiboot 0.6.96, 3.1.1).
// The address fields are physical addresses and are meaningful only with
// HeaderAddressFields; the graphics fields only with HeaderVideoMode.
type Header struct {
	// Flags is what the image asks of the loader.
	Flags HeaderFlags
	// HeaderAddr is the physical address the header's magic is loaded at.
	HeaderAddr uint32
	// LoadAddr is the physical address of the first byte loaded; the file
	// offset it comes from is the header's offset minus
	// (HeaderAddr - LoadAddr).
	LoadAddr uint32
	// LoadEndAddr is the physical address one past the last byte loaded
	// from the file; 0 means the rest of the file.
	LoadEndAddr uint32
	// BSSEndAddr is the physical address one past the zero-filled area
	// that follows the loaded bytes; 0 means no such area.
	BSSEndAddr uint32
	// EntryAddr is the physical address the loader jumps to.
	EntryAddr uint32
	// ModeType is 0 for a linear graphics mode, 1 for EGA text.
	ModeType uint32
	// Width is the preferred number of columns (pixels or characters).
	Width uint32
	// Height is the preferred number of lines.
	Height uint32
	// Depth is the preferred number of bits per pixel.
	Depth uint32
}

// Size returns the encoded size of h: it depends on which optional field
// groups the flags announce.
func (h Header) Size() int {
	switch {
	case h.Flags&HeaderVideoMode != 0:
		return headerVideoSize
	case h.Flags&HeaderAddressFields != 0:
		return headerAddressSize
	}
	return headerMagicSize
}

// checksum is the value that makes magic + flags + checksum zero modulo
// 2^32 (3.1.2).
func checksum(f HeaderFlags) uint32 { return -(HeaderMagic + uint32(f)) }

// AppendBinary appends the little-endian encoding of h (magic, flags,
// checksum and the field groups the flags announce) to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = le.AppendUint32(b, HeaderMagic)
	b = le.AppendUint32(b, uint32(h.Flags))
	b = le.AppendUint32(b, checksum(h.Flags))
	if h.Size() >= headerAddressSize {
		for _, v := range []uint32{h.HeaderAddr, h.LoadAddr, h.LoadEndAddr, h.BSSEndAddr, h.EntryAddr} {
			b = le.AppendUint32(b, v)
		}
	}
	if h.Size() >= headerVideoSize {
		for _, v := range []uint32{h.ModeType, h.Width, h.Height, h.Depth} {
			b = le.AppendUint32(b, v)
		}
	}
	return b, nil
}

// MarshalBinary returns the encoding of h; see AppendBinary.
func (h Header) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, h.Size()))
}

// ErrNoHeader is returned by FindHeader when the image has no valid
// Multiboot header in its first HeaderSearchLimit bytes.
var ErrNoHeader = errors.New("multiboot: no header in the first 8192 bytes")

// FindHeader looks for the Multiboot header the way a loader does: at a
// 32-bit aligned offset within the first HeaderSearchLimit bytes, with the
// magic and a matching checksum. It returns the decoded header and its file
// offset. A header that is found but malformed (truncated, unknown required
// flags, address fields inconsistent with the image) yields an error that
// says why.
func FindHeader(image []byte) (Header, int, error) {
	le := binary.LittleEndian
	limit := min(len(image), HeaderSearchLimit)
	for off := 0; off+headerMagicSize <= limit; off += 4 {
		if le.Uint32(image[off:]) != HeaderMagic {
			continue
		}
		flags := HeaderFlags(le.Uint32(image[off+4:]))
		if le.Uint32(image[off+8:]) != checksum(flags) {
			continue
		}
		h := Header{Flags: flags}
		if off+h.Size() > limit {
			return Header{}, off, fmt.Errorf("multiboot: header at offset %d: %d-byte header does not fit in the first %d bytes of the %d-byte image",
				off, h.Size(), HeaderSearchLimit, len(image))
		}
		if unknown := flags & headerRequiredMask &^ headerKnownRequired; unknown != 0 {
			return Header{}, off, fmt.Errorf("multiboot: header at offset %d: unknown required flags %#x", off, uint32(unknown))
		}
		f := func(i int) uint32 { return le.Uint32(image[off+headerMagicSize+4*i:]) }
		if h.Size() >= headerAddressSize {
			h.HeaderAddr, h.LoadAddr, h.LoadEndAddr, h.BSSEndAddr, h.EntryAddr = f(0), f(1), f(2), f(3), f(4)
		}
		if h.Size() >= headerVideoSize {
			h.ModeType, h.Width, h.Height, h.Depth = f(5), f(6), f(7), f(8)
		}
		if h.Flags&HeaderAddressFields != 0 {
			if err := h.checkLayout(off, len(image)); err != nil {
				return Header{}, off, fmt.Errorf("multiboot: header at offset %d: %w", off, err)
			}
		}
		return h, off, nil
	}
	return Header{}, -1, ErrNoHeader
}

// LoadOffset returns the file offset the loader starts copying from, given
// the header's file offset (3.1.3: the header offset minus
// header_addr - load_addr).
func (h Header) LoadOffset(headerOffset int) int64 {
	return int64(headerOffset) - int64(h.HeaderAddr) + int64(h.LoadAddr)
}

// checkLayout applies the constraints of 3.1.3 to the address fields of a
// header found at file offset off in an image of imageLen bytes.
func (h Header) checkLayout(off, imageLen int) error {
	if h.LoadAddr > h.HeaderAddr {
		return fmt.Errorf("load_addr %#x is above header_addr %#x", h.LoadAddr, h.HeaderAddr)
	}
	start := h.LoadOffset(off)
	if start < 0 {
		return fmt.Errorf("load_addr %#x would start %d bytes before the file", h.LoadAddr, -start)
	}
	end := h.LoadEndAddr
	if end == 0 {
		rest := int64(imageLen) - start
		if int64(h.LoadAddr)+rest > 1<<32 {
			return fmt.Errorf("image of %d bytes loaded at %#x would cross 4 GiB", imageLen, h.LoadAddr)
		}
		end = h.LoadAddr + uint32(rest)
	}
	if end <= h.LoadAddr {
		return fmt.Errorf("load_end_addr %#x is not above load_addr %#x", end, h.LoadAddr)
	}
	if int64(end-h.LoadAddr) > int64(imageLen)-start {
		return fmt.Errorf("load area of %d bytes from file offset %d runs past the %d-byte image", end-h.LoadAddr, start, imageLen)
	}
	if uint64(h.HeaderAddr)+uint64(h.Size()) > uint64(end) {
		return fmt.Errorf("header at %#x lies outside the loaded area [%#x, %#x)", h.HeaderAddr, h.LoadAddr, end)
	}
	if h.BSSEndAddr != 0 && h.BSSEndAddr < end {
		return fmt.Errorf("bss_end_addr %#x is below the end of the loaded area %#x", h.BSSEndAddr, end)
	}
	if h.EntryAddr < h.LoadAddr || h.EntryAddr >= end {
		return fmt.Errorf("entry_addr %#x is outside the loaded area [%#x, %#x)", h.EntryAddr, h.LoadAddr, end)
	}
	return nil
}
