// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package acpi reads the firmware's ACPI tables from physical memory: it
// finds and checks the RSDP, follows the XSDT (or RSDT) to the system
// description tables, validates each table's checksum, and decodes the
// MADT, which tells the board code which processors and I/O APICs exist.
//
// All memory is read through a ReadFunc, so the same code runs on bare
// metal (over the identity map) and in hosted tests (over a fake memory).
// Table contents are untrusted: every length is checked against its
// container and bad input yields an error, never a panic.
//
// References are to the ACPI Specification, version 6.5.
package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread"
)

// ReadFunc returns the n bytes of physical memory starting at addr. It must
// return exactly n bytes or an error. The package does not keep the slice.
type ReadFunc = memread.ReadFunc

// RSDP layout (ACPI 6.5, 5.2.5.3 "Root System Description Pointer (RSDP)
// Structure", Table 5.3).
const (
	rsdpSignature = "RSD PTR "
	// rsdpV1Size is the ACPI 1.0 structure, covered by the checksum.
	rsdpV1Size = 20
	// rsdpV2Size is the ACPI 2.0+ structure, covered by the extended
	// checksum.
	rsdpV2Size = 36

	rsdpOffOEMID    = 9
	rsdpOffRevision = 15
	rsdpOffRSDT     = 16
	rsdpOffLength   = 20
	rsdpOffXSDT     = 24
)

// Where the RSDP may lie on a BIOS system (ACPI 6.5, 5.2.5.1 "Finding the
// RSDP on IA-PC Systems"): on a 16-byte boundary in the first KiB of the
// EBDA, whose real-mode segment is the 16-bit word at 0x40E of the BIOS
// data area, or in the BIOS read-only area 0xE0000-0xFFFFF.
const (
	ebdaPointerAddr = 0x40e
	ebdaSearchLen   = 1024
	biosAreaStart   = 0xe0000
	biosAreaEnd     = 0x100000
	rsdpAlign       = 16
)

// RSDP is a validated Root System Description Pointer.
type RSDP struct {
	// Addr is the physical address the RSDP was read from.
	Addr uint64
	// Revision is 0 for ACPI 1.0 (RSDT only), 2 or more for ACPI 2.0+.
	Revision uint8
	// OEMID names the firmware vendor.
	OEMID string
	// RSDTAddr is the physical address of the 32-bit RSDT (0 if none).
	RSDTAddr uint32
	// XSDTAddr is the physical address of the 64-bit XSDT (0 if none or
	// revision 0).
	XSDTAddr uint64
}

// ParseRSDP validates and decodes an RSDP held in b, which must start at
// the signature; addr is recorded in the result. It checks the ACPI 1.0
// checksum and, for revision 2 and later, the length and extended checksum.
func ParseRSDP(b []byte, addr uint64) (RSDP, error) {
	if len(b) < rsdpV1Size {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: %d bytes, need %d", addr, len(b), rsdpV1Size)
	}
	if string(b[:8]) != rsdpSignature {
		return RSDP{}, fmt.Errorf("acpi: no RSDP signature at %#x", addr)
	}
	if s := sum(b[:rsdpV1Size]); s != 0 {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: checksum of the first 20 bytes is %#02x, want 0", addr, s)
	}
	le := binary.LittleEndian
	r := RSDP{
		Addr:     addr,
		Revision: b[rsdpOffRevision],
		OEMID:    trimID(b[rsdpOffOEMID : rsdpOffOEMID+6]),
		RSDTAddr: le.Uint32(b[rsdpOffRSDT:]),
	}
	if r.Revision >= 2 {
		if len(b) < rsdpV2Size {
			return RSDP{}, fmt.Errorf("acpi: revision %d RSDP at %#x: %d bytes, need %d", r.Revision, addr, len(b), rsdpV2Size)
		}
		n := le.Uint32(b[rsdpOffLength:])
		if n < rsdpV2Size || uint64(n) > uint64(len(b)) {
			return RSDP{}, fmt.Errorf("acpi: revision %d RSDP at %#x: length %d outside [%d, %d]", r.Revision, addr, n, rsdpV2Size, len(b))
		}
		if s := sum(b[:n]); s != 0 {
			return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: extended checksum is %#02x, want 0", addr, s)
		}
		r.XSDTAddr = le.Uint64(b[rsdpOffXSDT:])
	}
	if r.RSDTAddr == 0 && r.XSDTAddr == 0 {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x points to neither an RSDT nor an XSDT", addr)
	}
	return r, nil
}

// ReadRSDP reads and validates the RSDP at physical address addr (for
// example the rsdp_paddr of the PVH start info, or the address an EFI
// configuration table gives).
func ReadRSDP(read ReadFunc, addr uint64) (RSDP, error) {
	b, err := memread.Exact(read, addr, rsdpV1Size)
	if err != nil {
		return RSDP{}, fmt.Errorf("acpi: reading RSDP at %#x: %w", addr, err)
	}
	if b[rsdpOffRevision] >= 2 {
		if b, err = memread.Exact(read, addr, rsdpV2Size); err != nil {
			return RSDP{}, fmt.Errorf("acpi: reading RSDP at %#x: %w", addr, err)
		}
		// The length field may announce a longer structure.
		if n := binary.LittleEndian.Uint32(b[rsdpOffLength:]); n > rsdpV2Size && n <= 4096 {
			if b, err = memread.Exact(read, addr, int(n)); err != nil {
				return RSDP{}, fmt.Errorf("acpi: reading %d-byte RSDP at %#x: %w", n, addr, err)
			}
		}
	}
	return ParseRSDP(b, addr)
}

// ErrNoRSDP is returned by FindRSDP when no valid RSDP is in the BIOS areas.
var ErrNoRSDP = errors.New("acpi: no RSDP in the EBDA or the BIOS area 0xE0000-0xFFFFF")

// FindRSDP scans the places a BIOS puts the RSDP (ACPI 6.5, 5.2.5.1): the
// first KiB of the EBDA, then 0xE0000-0xFFFFF, on 16-byte boundaries, and
// returns the first candidate whose checksums are valid.
func FindRSDP(read ReadFunc) (RSDP, error) {
	if b, err := memread.Exact(read, ebdaPointerAddr, 2); err == nil {
		if ebda := uint64(binary.LittleEndian.Uint16(b)) << 4; ebda != 0 {
			if r, ok := scanRSDP(read, ebda, ebda+ebdaSearchLen); ok {
				return r, nil
			}
		}
	}
	if r, ok := scanRSDP(read, biosAreaStart, biosAreaEnd); ok {
		return r, nil
	}
	return RSDP{}, ErrNoRSDP
}

// ErrNoRSDPInRegions is returned by FindRSDPInRegions when none of the
// regions holds a valid RSDP.
var ErrNoRSDPInRegions = errors.New("acpi: no RSDP in the firmware's ACPI memory")

// maxRegionScan bounds how much of one region FindRSDPInRegions reads.
const maxRegionScan = 16 << 20

// FindRSDPInRegions scans regions (physical ranges, typically those the
// memory map marks ACPI reclaimable or NVS) for a valid RSDP on 16-byte
// boundaries. On a UEFI machine the RSDP is not in the BIOS areas
// FindRSDP scans: the EFI system table says where it is, but a Multiboot 1
// loader does not pass that on, and the firmware keeps it in its ACPI
// memory with the tables.
func FindRSDPInRegions(read ReadFunc, regions []memmap.Range) (RSDP, error) {
	for _, r := range regions {
		start := (r.Start + rsdpAlign - 1) &^ (rsdpAlign - 1)
		end := r.Start + min(r.Size, maxRegionScan)
		if end < start+rsdpV1Size {
			continue
		}
		if found, ok := scanRSDP(read, start, end); ok {
			return found, nil
		}
	}
	return RSDP{}, ErrNoRSDPInRegions
}

// scanRSDP looks for a valid RSDP starting in [start, end).
func scanRSDP(read ReadFunc, start, end uint64) (RSDP, bool) {
	area, err := memread.Exact(read, start, int(end-start))
	if err != nil {
		return RSDP{}, false
	}
	for off := 0; off+rsdpV1Size <= len(area); off += rsdpAlign {
		if string(area[off:off+8]) != rsdpSignature {
			continue
		}
		// Re-read through ReadRSDP: a revision 2 structure may extend past
		// the end of the scanned area.
		if r, err := ReadRSDP(read, start+uint64(off)); err == nil {
			return r, true
		}
	}
	return RSDP{}, false
}

// sum returns the 8-bit sum of b; ACPI structures sum to zero.
func sum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s
}

// trimID returns an OEM identifier without its trailing spaces and NULs.
func trimID(b []byte) string {
	n := len(b)
	for n > 0 && (b[n-1] == ' ' || b[n-1] == 0) {
		n--
	}
	return string(b[:n])
}
