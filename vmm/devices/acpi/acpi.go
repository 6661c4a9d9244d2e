// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package acpi writes the ACPI tables a guest's firmware would: an RSDP
// (revision 2), an XSDT, a MADT listing the vCPUs' local APICs, a FADT,
// a DSDT with the guest's serial ports and virtio-mmio devices and,
// for a machine described as NUMA, an SRAT and a SLIT (ACPI 6.5,
// chapter 5 "ACPI Software Programming Model"). The FADT declares a hardware-reduced ACPI platform (5.2.9,
// flag HW_REDUCED_ACPI): no PM1 blocks, PM timer, SCI or legacy 8259/8254
// are implied, so the guest times itself with the local APIC's
// TSC-deadline timer.
package acpi

import (
	"encoding/binary"
	"fmt"
)

// Table signatures and sizes (ACPI 6.5, 5.2.5-5.2.12).
const (
	rsdpSize   = 36
	headerSize = 36
	fadtSize   = 276 // revision 6
	fadtRev    = 6
	fadtMinor  = 5
	madtRev    = 5
	dsdtRev    = 2
	xsdtRev    = 1
	sratRev    = 3
	slitRev    = 1

	// SRAT (5.2.16): after the header a reserved word that must be 1
	// and 8 reserved bytes, then affinity structures.
	sratHeaderSize  = headerSize + 12
	sratLocalAPIC   = 0 // Processor Local APIC/SAPIC Affinity, 16 bytes
	sratMemory      = 1 // Memory Affinity, 40 bytes
	sratLocalX2APIC = 2 // Processor Local x2APIC Affinity, 24 bytes
	sratEnabled     = 1
	slitLocal       = 10 // SLIT (5.2.17): a locality's distance to itself
	slitMaxDistance = 254
	slitHeaderSize  = headerSize + 8

	// MADT (5.2.12): local APIC address and flags, then entries.
	madtLocalAPIC      = 0 // Processor Local APIC structure, 8 bytes
	madtIOAPIC         = 1 // I/O APIC structure, 12 bytes
	madtLocalAPICNMI   = 4 // Local APIC NMI structure, 6 bytes
	madtLocalX2APIC    = 9 // Processor Local x2APIC structure, 16 bytes
	madtLocalX2APICNMI = 10
	lapicEnabled       = 1

	// FADT offsets (5.2.9, Table 5.9).
	fadtFlagsOff     = 112
	fadtIAPCBootArch = 109
	fadtMinorOff     = 131
	fadtXDSDTOff     = 140
	fadtDSDTOff      = 40
	fadtHypervisorID = 268

	fadtResetRegOff   = 116 // Generic Address Structure, 12 bytes
	fadtPMTimerOff    = 76  // PM_TMR_BLK
	fadtPMTimerLen    = 91  // PM_TMR_LEN
	fadtXPMTimerOff   = 208 // X_PM_TMR_BLK, a Generic Address Structure
	fadtResetValueOff = 128

	flagResetRegSupported = 1 << 10
	flagForceAPICPhysical = 1 << 19
	flagHWReducedACPI     = 1 << 20
	gasSystemIO           = 1 // Generic Address Structure address space (5.2.3.2)
	gasAccessByte         = 1
	gasAccessDword        = 3
	// IAPC_BOOT_ARCH (Table 5.11): bit 2 "VGA not present", bit 4 "MSI
	// not supported", bit 5 "PCIe ASPM controls"; no legacy devices, no
	// 8042.
	bootArchVGANotPresent = 1 << 2

	// DefaultLocalAPIC is the local APIC address the MADT reports.
	DefaultLocalAPIC = 0xFEE00000
)

// OEM identification in every table header.
const (
	oemID      = "BIGIRN"
	oemTableID = "BIGIRON "
	creatorID  = "BIGI"
)

// Config describes the machine the tables describe.
type Config struct {
	// APICIDs lists the vCPUs' APIC ids, boot processor first.
	APICIDs []uint32
	// IOAPICs lists the I/O APICs; none is a machine with only local
	// APICs.
	IOAPICs []IOAPIC
	// ResetPort, if not zero, is the I/O port of the FADT reset register
	// (a byte write of ResetValue resets the machine).
	ResetPort  uint16
	ResetValue uint8
	// PMTimerPort, if not zero, is the port of an ACPI PM timer (24
	// bits, ACPI 6.5 4.8.3.3), described in the FADT.
	PMTimerPort uint16
	// Serial lists the 16550 UARTs and Virtio the virtio-mmio devices,
	// both described in the DSDT.
	Serial []SerialPort
	Virtio []VirtioMMIO
	// NUMA, if set, describes the machine's proximity domains in an SRAT
	// and a SLIT; nil describes one uniform machine.
	NUMA *NUMA
}

// NUMA is the node topology the SRAT and SLIT describe.
type NUMA struct {
	// CPUDomain is the proximity domain of each processor, in the order
	// of Config.APICIDs.
	CPUDomain []uint32
	// Memory lists the ranges of guest-physical memory and their
	// domains.
	Memory []MemoryAffinity
	// Distance[i][j] is the relative distance from domain i to domain j
	// (10 for i == j, 11 to 254 otherwise), for domains 0..len-1.
	Distance [][]uint8
}

// MemoryAffinity places a range of memory in a proximity domain.
type MemoryAffinity struct {
	Base, Length uint64
	Domain       uint32
}

// IOAPIC describes one I/O APIC in the MADT.
type IOAPIC struct {
	ID      uint8
	Address uint32
	GSIBase uint32
}

// Tables is the laid-out table set: Bytes go at guest-physical Base, and
// the RSDP is at RSDP (the Linux zero page's acpi_rsdp_addr).
type Tables struct {
	Base  uint64
	Bytes []byte
	RSDP  uint64
}

// Build lays the tables out from base (16-byte aligned, below 4 GiB, as
// the RSDT and FADT 32-bit fields require).
func Build(base uint64, c Config) (*Tables, error) {
	if base%16 != 0 || base >= 1<<32 {
		return nil, fmt.Errorf("acpi: base %#x must be 16-byte aligned and below 4 GiB", base)
	}
	if len(c.APICIDs) == 0 || len(c.APICIDs) > 255 {
		return nil, fmt.Errorf("acpi: %d processors: want 1 to 255", len(c.APICIDs))
	}
	aml, err := dsdtBody(c.Serial, c.Virtio)
	if err != nil {
		return nil, err
	}
	l := &layout{base: base}
	dsdtAt := l.place(buildDSDT(aml))
	tables := []uint64{l.place(buildFADT(c, dsdtAt)), l.place(buildMADT(c))}
	if c.NUMA != nil {
		srat, slit, err := numaTables(c.APICIDs, c.NUMA)
		if err != nil {
			return nil, err
		}
		tables = append(tables, l.place(srat), l.place(slit))
	}
	xsdtAt := l.place(buildXSDT(tables))
	rsdpAt := l.place(buildRSDP(xsdtAt))
	return &Tables{Base: base, Bytes: l.out, RSDP: rsdpAt}, nil
}

// layout lays tables out one after another from guest-physical base.
type layout struct {
	base uint64
	out  []byte
}

// place appends table t at the next 16-byte boundary and returns its
// guest-physical address.
func (l *layout) place(t []byte) uint64 {
	for len(l.out)%16 != 0 {
		l.out = append(l.out, 0)
	}
	at := l.base + uint64(len(l.out))
	l.out = append(l.out, t...)
	return at
}

// buildDSDT wraps the AML definition block aml in the DSDT's header.
func buildDSDT(aml []byte) []byte {
	dsdt := append(header("DSDT", headerSize, dsdtRev), aml...)
	binary.LittleEndian.PutUint32(dsdt[4:], uint32(len(dsdt)))
	checksum(dsdt, 9)
	return dsdt
}

// buildFADT returns the FADT (5.2.9) of a hardware-reduced machine whose
// DSDT is at dsdtAt, with c's reset register if it has one.
func buildFADT(c Config, dsdtAt uint64) []byte {
	le := binary.LittleEndian
	fadt := header("FACP", fadtSize, fadtRev)
	le.PutUint32(fadt[fadtDSDTOff:], uint32(dsdtAt))
	le.PutUint64(fadt[fadtXDSDTOff:], dsdtAt)
	// Hardware-reduced ACPI (no PM timer, no SCI, no 8259), physical
	// APIC destination mode for the OS (x2APIC without interrupt
	// remapping addresses an IOAPIC by 8-bit physical ids).
	flags := uint32(flagHWReducedACPI | flagForceAPICPhysical)
	if c.ResetPort != 0 {
		flags |= flagResetRegSupported
		gas := fadt[fadtResetRegOff:]
		gas[0], gas[1], gas[2], gas[3] = gasSystemIO, 8, 0, gasAccessByte
		le.PutUint64(gas[4:], uint64(c.ResetPort))
		fadt[fadtResetValueOff] = c.ResetValue
	}
	if c.PMTimerPort != 0 {
		le.PutUint32(fadt[fadtPMTimerOff:], uint32(c.PMTimerPort))
		fadt[fadtPMTimerLen] = 4
		gas := fadt[fadtXPMTimerOff:]
		gas[0], gas[1], gas[2], gas[3] = gasSystemIO, 32, 0, gasAccessDword
		le.PutUint64(gas[4:], uint64(c.PMTimerPort))
	}
	le.PutUint32(fadt[fadtFlagsOff:], flags)
	le.PutUint16(fadt[fadtIAPCBootArch:], bootArchVGANotPresent)
	fadt[fadtMinorOff] = fadtMinor
	copy(fadt[fadtHypervisorID:], "BigIron\x00")
	checksum(fadt, 9)
	return fadt
}

// buildMADT returns the MADT (5.2.12): a local APIC (or, for ids from
// 255, a local x2APIC) per processor, c's I/O APICs, and NMI on LINT1.
func buildMADT(c Config) []byte {
	le := binary.LittleEndian
	madt := header("APIC", headerSize+8, madtRev)
	le.PutUint32(madt[36:], DefaultLocalAPIC)
	le.PutUint32(madt[40:], 0) // no PC-AT 8259 pair (PCAT_COMPAT clear)
	for uid, id := range c.APICIDs {
		if id < 255 {
			madt = append(madt, madtLocalAPIC, 8, byte(uid), byte(id), lapicEnabled, 0, 0, 0)
		} else {
			e := make([]byte, 16)
			e[0], e[1] = madtLocalX2APIC, 16
			le.PutUint32(e[4:], id)
			le.PutUint32(e[8:], lapicEnabled)
			le.PutUint32(e[12:], uint32(uid))
			madt = append(madt, e...)
		}
	}
	for _, io := range c.IOAPICs {
		e := []byte{madtIOAPIC, 12, io.ID, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		le.PutUint32(e[4:], io.Address)
		le.PutUint32(e[8:], io.GSIBase)
		madt = append(madt, e...)
	}
	// NMI on LINT1 of every processor (flags: conforming polarity/trigger).
	madt = append(madt, madtLocalAPICNMI, 6, 0xFF, 0, 0, 1)
	le.PutUint32(madt[4:], uint32(len(madt)))
	checksum(madt, 9)
	return madt
}

// buildXSDT returns the XSDT (5.2.8) listing the tables at the given
// addresses.
func buildXSDT(tables []uint64) []byte {
	xsdt := header("XSDT", headerSize+8*len(tables), xsdtRev)
	for i, at := range tables {
		binary.LittleEndian.PutUint64(xsdt[headerSize+8*i:], at)
	}
	checksum(xsdt, 9)
	return xsdt
}

// buildRSDP returns the revision 2 RSDP (5.2.5) pointing at the XSDT at
// xsdtAt, with both its checksums.
func buildRSDP(xsdtAt uint64) []byte {
	rsdp := make([]byte, rsdpSize)
	copy(rsdp, "RSD PTR ")
	copy(rsdp[9:15], oemID)
	rsdp[15] = 2 // revision: ACPI 2.0+
	binary.LittleEndian.PutUint32(rsdp[20:], rsdpSize)
	binary.LittleEndian.PutUint64(rsdp[24:], xsdtAt)
	rsdp[8] = -sum(rsdp[:20])
	rsdp[32] = -sum(rsdp)
	return rsdp
}

// numaTables returns the SRAT and the SLIT of n.
func numaTables(apicIDs []uint32, n *NUMA) (srat, slit []byte, err error) {
	domains := len(n.Distance)
	if domains == 0 || domains > 255 {
		return nil, nil, fmt.Errorf("acpi: %d proximity domains: want 1 to 255", domains)
	}
	if len(n.CPUDomain) != len(apicIDs) {
		return nil, nil, fmt.Errorf("acpi: %d processor domains for %d processors", len(n.CPUDomain), len(apicIDs))
	}
	for i, row := range n.Distance {
		if len(row) != domains {
			return nil, nil, fmt.Errorf("acpi: distance row %d has %d entries, want %d", i, len(row), domains)
		}
		for j, d := range row {
			if i == j && d != slitLocal || i != j && (d <= slitLocal || d > slitMaxDistance) {
				return nil, nil, fmt.Errorf("acpi: distance %d from domain %d to %d: want 10 to itself, 11 to 254 to another", d, i, j)
			}
		}
	}
	le := binary.LittleEndian
	srat = header("SRAT", sratHeaderSize, sratRev)
	le.PutUint32(srat[headerSize:], 1) // reserved, 1 for compatibility
	for i, id := range apicIDs {
		dom := n.CPUDomain[i]
		if int(dom) >= domains {
			return nil, nil, fmt.Errorf("acpi: processor %d in domain %d of %d", i, dom, domains)
		}
		if id < 255 {
			e := make([]byte, 16)
			e[0], e[1], e[2], e[3] = sratLocalAPIC, 16, byte(dom), byte(id)
			le.PutUint32(e[4:], sratEnabled)
			e[9], e[10], e[11] = byte(dom>>8), byte(dom>>16), byte(dom>>24)
			srat = append(srat, e...)
			continue
		}
		e := make([]byte, 24)
		e[0], e[1] = sratLocalX2APIC, 24
		le.PutUint32(e[4:], dom)
		le.PutUint32(e[8:], id)
		le.PutUint32(e[12:], sratEnabled)
		srat = append(srat, e...)
	}
	for _, m := range n.Memory {
		if int(m.Domain) >= domains || m.Length == 0 || m.Base+m.Length < m.Base {
			return nil, nil, fmt.Errorf("acpi: memory %#x+%#x in domain %d of %d", m.Base, m.Length, m.Domain, domains)
		}
		e := make([]byte, 40)
		e[0], e[1] = sratMemory, 40
		le.PutUint32(e[2:], m.Domain)
		le.PutUint64(e[8:], m.Base)
		le.PutUint64(e[16:], m.Length)
		le.PutUint32(e[28:], sratEnabled)
		srat = append(srat, e...)
	}
	le.PutUint32(srat[4:], uint32(len(srat)))
	checksum(srat, 9)

	slit = header("SLIT", slitHeaderSize+domains*domains, slitRev)
	le.PutUint64(slit[headerSize:], uint64(domains))
	for i, row := range n.Distance {
		copy(slit[slitHeaderSize+i*domains:], row)
	}
	checksum(slit, 9)
	return srat, slit, nil
}

// header returns a table of n bytes with its standard header (5.2.6).
func header(sig string, n int, rev byte) []byte {
	t := make([]byte, n)
	copy(t, sig)
	binary.LittleEndian.PutUint32(t[4:], uint32(n))
	t[8] = rev
	copy(t[10:16], oemID)
	copy(t[16:24], oemTableID)
	binary.LittleEndian.PutUint32(t[24:], 1)
	copy(t[28:32], creatorID)
	binary.LittleEndian.PutUint32(t[32:], 1)
	return t
}

// checksum sets byte off so that the table's bytes sum to zero.
func checksum(t []byte, off int) {
	t[off] = 0
	t[off] = -sum(t)
}

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}
