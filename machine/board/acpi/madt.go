// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"encoding/binary"
	"fmt"
)

// SignatureMADT is the signature of the Multiple APIC Description Table
// (ACPI 6.5, 5.2.12, Table 5.19).
const SignatureMADT = "APIC"

// MADT fixed fields after the common header (ACPI 6.5, Table 5.19).
const (
	madtOffLocalAPICAddr = 36
	madtOffFlags         = 40
	madtEntriesStart     = 44
)

// MADTFlags is the flags field of the MADT (ACPI 6.5, Table 5.20).
type MADTFlags uint32

// PCATCompat says the system also has dual 8259 PICs, which must be
// disabled (masked) before the APICs are used (ACPI 6.5, Table 5.20).
const PCATCompat MADTFlags = 1 << 0

// MADTEntryType is the type byte of an interrupt controller structure
// (ACPI 6.5, Table 5.21 "Interrupt Controller Structure Types").
type MADTEntryType uint8

// Interrupt controller structure types (ACPI 6.5, Table 5.21) and the
// minimum lengths the parser requires of each.
const (
	// EntryLocalAPIC is a Processor Local APIC (5.2.12.2), 8 bytes.
	EntryLocalAPIC MADTEntryType = 0
	// EntryIOAPIC is an I/O APIC (5.2.12.3), 12 bytes.
	EntryIOAPIC MADTEntryType = 1
	// EntryInterruptOverride is an Interrupt Source Override (5.2.12.5),
	// 10 bytes.
	EntryInterruptOverride MADTEntryType = 2
	// EntryNMISource is a Non-Maskable Interrupt Source (5.2.12.6), 8 bytes.
	EntryNMISource MADTEntryType = 3
	// EntryLocalAPICNMI is a Local APIC NMI (5.2.12.7), 6 bytes.
	EntryLocalAPICNMI MADTEntryType = 4
	// EntryLocalAPICAddressOverride is a Local APIC Address Override
	// (5.2.12.8), 12 bytes.
	EntryLocalAPICAddressOverride MADTEntryType = 5
	// EntryLocalX2APIC is a Processor Local x2APIC (5.2.12.12), 16 bytes.
	EntryLocalX2APIC MADTEntryType = 9
	// EntryLocalX2APICNMI is a Local x2APIC NMI (5.2.12.13), 12 bytes.
	EntryLocalX2APICNMI MADTEntryType = 0xa
)

// minEntryLength returns the length the parser requires of a structure of
// type t, and whether t is a type it decodes.
func minEntryLength(t MADTEntryType) (int, bool) {
	switch t {
	case EntryLocalAPIC, EntryNMISource:
		return 8, true
	case EntryIOAPIC, EntryLocalAPICAddressOverride, EntryLocalX2APICNMI:
		return 12, true
	case EntryInterruptOverride:
		return 10, true
	case EntryLocalAPICNMI:
		return 6, true
	case EntryLocalX2APIC:
		return 16, true
	}
	return 0, false
}

// Local APIC flags, shared by the Local APIC and Local x2APIC structures
// (ACPI 6.5, Table 5.23 "Local APIC Flags").
const (
	lapicEnabled       = 1 << 0
	lapicOnlineCapable = 1 << 1
)

// AllProcessors is the processor UID that means "every processor" in a
// Local APIC NMI (0xFF) or Local x2APIC NMI (0xFFFFFFFF) structure; both
// are reported as this value.
const AllProcessors uint32 = 0xffffffff

// CPU is one processor the MADT lists.
type CPU struct {
	// APICID is the processor's local APIC ID (8 bits for an xAPIC entry,
	// 32 for an x2APIC entry).
	APICID uint32
	// UID is the ACPI processor UID, which matches a processor object in
	// the namespace.
	UID uint32
	// Enabled says the processor is usable now.
	Enabled bool
	// OnlineCapable says a disabled processor can be brought online later
	// (meaningful only when Enabled is false).
	OnlineCapable bool
	// X2APIC says the entry was a Processor Local x2APIC structure.
	X2APIC bool
}

// IOAPIC is one I/O APIC (ACPI 6.5, 5.2.12.3).
type IOAPIC struct {
	// ID is the I/O APIC's ID.
	ID uint8
	// Addr is the physical address of its registers.
	Addr uint32
	// GSIBase is the first global system interrupt it handles.
	GSIBase uint32
}

// InterruptOverride maps an ISA interrupt to a global system interrupt
// (ACPI 6.5, 5.2.12.5).
type InterruptOverride struct {
	// Bus is 0, meaning ISA.
	Bus uint8
	// Source is the ISA IRQ.
	Source uint8
	// GSI is the global system interrupt it is connected to.
	GSI uint32
	// Flags are the MPS INTI flags: polarity (bits 0-1) and trigger mode
	// (bits 2-3) (ACPI 6.5, Table 5.26).
	Flags uint16
}

// NMISource is a global system interrupt wired to NMI (ACPI 6.5, 5.2.12.6).
type NMISource struct {
	// Flags are the MPS INTI flags.
	Flags uint16
	// GSI is the global system interrupt.
	GSI uint32
}

// LocalNMI says which LINT pin of which processors' local APIC is wired to
// NMI (ACPI 6.5, 5.2.12.7 and 5.2.12.13).
type LocalNMI struct {
	// UID is the ACPI processor UID, or AllProcessors.
	UID uint32
	// Flags are the MPS INTI flags.
	Flags uint16
	// LINT is the local APIC interrupt input, 0 or 1.
	LINT uint8
	// X2APIC says the entry was a Local x2APIC NMI structure.
	X2APIC bool
}

// MADT is a decoded Multiple APIC Description Table (ACPI 6.5, 5.2.12).
type MADT struct {
	// Header is the table header.
	Header Header
	// LocalAPICAddr is the physical address of the local APICs: the
	// table's 32-bit field, or the Local APIC Address Override if present.
	LocalAPICAddr uint64
	// Flags holds PCATCompat.
	Flags MADTFlags

	cpus      []CPU
	ioapics   []IOAPIC
	overrides []InterruptOverride
	nmis      []NMISource
	localNMIs []LocalNMI
}

// CPUs returns the processors in MADT order. The order is the firmware's:
// the boot processor is not guaranteed to come first, so callers should
// match entries against their own APIC ID.
func (m *MADT) CPUs() []CPU { return m.cpus }

// IOAPICs returns the I/O APICs in MADT order.
func (m *MADT) IOAPICs() []IOAPIC { return m.ioapics }

// InterruptOverrides returns the interrupt source overrides in MADT order.
func (m *MADT) InterruptOverrides() []InterruptOverride { return m.overrides }

// NMISources returns the NMI sources in MADT order.
func (m *MADT) NMISources() []NMISource { return m.nmis }

// LocalNMIs returns the local APIC and x2APIC NMI entries in MADT order.
func (m *MADT) LocalNMIs() []LocalNMI { return m.localNMIs }

// ParseMADT decodes a MADT held in b, validating its header and checksum
// (see ParseTable) and the length of every interrupt controller structure.
// Structures of types this package does not know are skipped.
func ParseMADT(b []byte) (*MADT, error) {
	h, b, err := ParseTable(b)
	if err != nil {
		return nil, err
	}
	if h.Signature != SignatureMADT {
		return nil, fmt.Errorf("acpi: table signature %q is not %q", h.Signature, SignatureMADT)
	}
	if len(b) < madtEntriesStart {
		return nil, fmt.Errorf("acpi: MADT of %d bytes is shorter than its %d fixed bytes", len(b), madtEntriesStart)
	}
	le := binary.LittleEndian
	m := &MADT{
		Header:        h,
		LocalAPICAddr: uint64(le.Uint32(b[madtOffLocalAPICAddr:])),
		Flags:         MADTFlags(le.Uint32(b[madtOffFlags:])),
	}
	for off := madtEntriesStart; off < len(b); {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("acpi: MADT offset %d: 1 trailing byte", off)
		}
		typ, n := MADTEntryType(b[off]), int(b[off+1])
		if n < 2 {
			return nil, fmt.Errorf("acpi: MADT offset %d: structure type %d has length %d", off, typ, n)
		}
		if n > len(b)-off {
			return nil, fmt.Errorf("acpi: MADT offset %d: structure type %d of length %d runs past the table end", off, typ, n)
		}
		if need, ok := minEntryLength(typ); ok && n < need {
			return nil, fmt.Errorf("acpi: MADT offset %d: structure type %d has length %d, need %d", off, typ, n, need)
		}
		e := b[off : off+n]
		switch typ {
		case EntryLocalAPIC:
			// UID (u8), APIC ID (u8), flags (u32).
			f := le.Uint32(e[4:])
			m.cpus = append(m.cpus, CPU{
				UID:           uint32(e[2]),
				APICID:        uint32(e[3]),
				Enabled:       f&lapicEnabled != 0,
				OnlineCapable: f&lapicOnlineCapable != 0,
			})
		case EntryIOAPIC:
			// ID (u8), reserved (u8), address (u32), GSI base (u32).
			m.ioapics = append(m.ioapics, IOAPIC{ID: e[2], Addr: le.Uint32(e[4:]), GSIBase: le.Uint32(e[8:])})
		case EntryInterruptOverride:
			// bus (u8), source (u8), GSI (u32), flags (u16).
			m.overrides = append(m.overrides, InterruptOverride{Bus: e[2], Source: e[3], GSI: le.Uint32(e[4:]), Flags: le.Uint16(e[8:])})
		case EntryNMISource:
			// flags (u16), GSI (u32).
			m.nmis = append(m.nmis, NMISource{Flags: le.Uint16(e[2:]), GSI: le.Uint32(e[4:])})
		case EntryLocalAPICNMI:
			// UID (u8, 0xFF = all), flags (u16), LINT# (u8).
			uid := uint32(e[2])
			if uid == 0xff {
				uid = AllProcessors
			}
			m.localNMIs = append(m.localNMIs, LocalNMI{UID: uid, Flags: le.Uint16(e[3:]), LINT: e[5]})
		case EntryLocalAPICAddressOverride:
			// reserved (u16), address (u64).
			m.LocalAPICAddr = le.Uint64(e[4:])
		case EntryLocalX2APIC:
			// reserved (u16), x2APIC ID (u32), flags (u32), UID (u32).
			f := le.Uint32(e[8:])
			m.cpus = append(m.cpus, CPU{
				APICID:        le.Uint32(e[4:]),
				UID:           le.Uint32(e[12:]),
				Enabled:       f&lapicEnabled != 0,
				OnlineCapable: f&lapicOnlineCapable != 0,
				X2APIC:        true,
			})
		case EntryLocalX2APICNMI:
			// flags (u16), UID (u32, 0xFFFFFFFF = all), LINT# (u8), reserved.
			m.localNMIs = append(m.localNMIs, LocalNMI{UID: le.Uint32(e[4:]), Flags: le.Uint16(e[2:]), LINT: e[8], X2APIC: true})
		}
		off += n
	}
	return m, nil
}
