// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memread"
)

// HeaderSize is the size of the header every system description table
// starts with (ACPI 6.5, 5.2.6 "System Description Table Header",
// Table 5.4).
const HeaderSize = 36

// MaxTableLength bounds the length a table header may announce; larger
// values are treated as corruption. Real DSDTs stay well below 1 MiB.
const MaxTableLength = 4 << 20

// Header is a system description table header (ACPI 6.5, 5.2.6).
type Header struct {
	// Signature identifies the table, e.g. "APIC" for the MADT.
	Signature string
	// Length is the length of the whole table, header included.
	Length uint32
	// Revision is the table's revision.
	Revision uint8
	// OEMID names the firmware vendor (trailing spaces removed).
	OEMID string
	// OEMTableID names the table for the vendor (trailing spaces removed).
	OEMTableID string
	// OEMRevision is the vendor's revision of the table.
	OEMRevision uint32
	// CreatorID names the tool that built the table.
	CreatorID string
	// CreatorRevision is the revision of that tool.
	CreatorRevision uint32
}

// ParseTable checks a table held in b (at least its announced length, which
// must lie in [HeaderSize, MaxTableLength]) and its checksum, and returns
// its header and the table bytes (b cut to the announced length).
func ParseTable(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, fmt.Errorf("acpi: table of %d bytes is shorter than its %d-byte header", len(b), HeaderSize)
	}
	le := binary.LittleEndian
	h := Header{
		Signature:       string(b[0:4]),
		Length:          le.Uint32(b[4:]),
		Revision:        b[8],
		OEMID:           trimID(b[10:16]),
		OEMTableID:      trimID(b[16:24]),
		OEMRevision:     le.Uint32(b[24:]),
		CreatorID:       trimID(b[28:32]),
		CreatorRevision: le.Uint32(b[32:]),
	}
	if h.Length < HeaderSize || h.Length > MaxTableLength {
		return Header{}, nil, fmt.Errorf("acpi: table %q: length %d outside [%d, %d]", h.Signature, h.Length, HeaderSize, MaxTableLength)
	}
	if uint64(h.Length) > uint64(len(b)) {
		return Header{}, nil, fmt.Errorf("acpi: table %q: length %d exceeds the %d bytes given", h.Signature, h.Length, len(b))
	}
	b = b[:h.Length]
	if s := sum(b); s != 0 {
		return Header{}, nil, fmt.Errorf("acpi: table %q: checksum is %#02x, want 0", h.Signature, s)
	}
	return h, b, nil
}

// ReadTable reads the table at physical address addr: its header first, to
// learn its length, then the whole table, which it validates. The returned
// bytes are a copy.
func ReadTable(read ReadFunc, addr uint64) (Header, []byte, error) {
	hb, err := memread.Exact(read, addr, HeaderSize)
	if err != nil {
		return Header{}, nil, fmt.Errorf("acpi: reading table header at %#x: %w", addr, err)
	}
	n := binary.LittleEndian.Uint32(hb[4:])
	if n < HeaderSize || n > MaxTableLength {
		return Header{}, nil, fmt.Errorf("acpi: table %q at %#x: length %d outside [%d, %d]", hb[0:4], addr, n, HeaderSize, MaxTableLength)
	}
	b, err := memread.Exact(read, addr, int(n))
	if err != nil {
		return Header{}, nil, fmt.Errorf("acpi: reading %d-byte table at %#x: %w", n, addr, err)
	}
	h, b, err := ParseTable(b)
	if err != nil {
		return Header{}, nil, fmt.Errorf("%w (at %#x)", err, addr)
	}
	return h, append([]byte(nil), b...), nil
}

// Tables is the set of system description tables reachable from an RSDP.
type Tables struct {
	// RSDP is the root pointer the tables were found through.
	RSDP RSDP
	// Root is the header of the root table used (XSDT or RSDT).
	Root Header
	// Addrs are the physical addresses of the tables the root lists, in
	// order (unvalidated: a bad table is reported when it is looked up).
	Addrs []uint64

	read ReadFunc
}

// Load reads the root table the RSDP points to: the XSDT when the RSDP has
// one (revision 2+), falling back to the RSDT if the XSDT is unreadable or
// corrupt, else the RSDT (ACPI 6.5, 5.2.7 and 5.2.8).
func Load(read ReadFunc, rsdp RSDP) (*Tables, error) {
	var errs []error
	if rsdp.XSDTAddr != 0 {
		t, err := loadRoot(read, rsdp, rsdp.XSDTAddr, "XSDT", 8)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
	}
	if rsdp.RSDTAddr != 0 {
		t, err := loadRoot(read, rsdp, uint64(rsdp.RSDTAddr), "RSDT", 4)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("acpi: RSDP has no root table address")
	}
	return nil, errors.Join(errs...)
}

func loadRoot(read ReadFunc, rsdp RSDP, addr uint64, sig string, entrySize int) (*Tables, error) {
	h, b, err := ReadTable(read, addr)
	if err != nil {
		return nil, fmt.Errorf("acpi: %s: %w", sig, err)
	}
	if h.Signature != sig {
		return nil, fmt.Errorf("acpi: table at %#x has signature %q, want %q", addr, h.Signature, sig)
	}
	body := b[HeaderSize:]
	if len(body)%entrySize != 0 {
		return nil, fmt.Errorf("acpi: %s body of %d bytes is not a whole number of %d-byte entries", sig, len(body), entrySize)
	}
	t := &Tables{RSDP: rsdp, Root: h, read: read}
	le := binary.LittleEndian
	for off := 0; off < len(body); off += entrySize {
		var a uint64
		if entrySize == 8 {
			a = le.Uint64(body[off:])
		} else {
			a = uint64(le.Uint32(body[off:]))
		}
		t.Addrs = append(t.Addrs, a)
	}
	return t, nil
}

// Find returns the header and bytes of the n-th (from 0) valid table with
// the given signature, in root-table order. Tables that cannot be read or
// fail their checksum are skipped; if no valid match exists the error says
// why the last candidate failed.
func (t *Tables) Find(sig string, n int) (Header, []byte, error) {
	var lastErr error
	for _, a := range t.Addrs {
		hb, err := memread.Exact(t.read, a, 4)
		if err != nil || string(hb) != sig {
			continue
		}
		h, b, err := ReadTable(t.read, a)
		if err != nil {
			lastErr = err
			continue
		}
		if n == 0 {
			return h, b, nil
		}
		n--
	}
	if lastErr != nil {
		return Header{}, nil, fmt.Errorf("acpi: no valid %q table: %w", sig, lastErr)
	}
	return Header{}, nil, fmt.Errorf("acpi: no %q table", sig)
}

// Headers returns the headers of the tables the root lists, skipping any
// that cannot be read or fail validation.
func (t *Tables) Headers() []Header {
	var hs []Header
	for _, a := range t.Addrs {
		if h, _, err := ReadTable(t.read, a); err == nil {
			hs = append(hs, h)
		}
	}
	return hs
}

// MADT finds and decodes the Multiple APIC Description Table.
func (t *Tables) MADT() (*MADT, error) {
	_, b, err := t.Find(SignatureMADT, 0)
	if err != nil {
		return nil, err
	}
	return ParseMADT(b)
}
