// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"encoding/binary"
	"fmt"
	"testing"

	board "github.com/big-iron/big-iron/board/acpi"
)

// TestParsedByOurFirmwareReader reads the tables back with the parser
// that reads real firmware's tables at boot.
func TestParsedByOurFirmwareReader(t *testing.T) {
	ids := []uint32{0, 1, 2, 300}
	tab, err := Build(0xE0000, Config{APICIDs: ids, IOAPICs: []IOAPIC{{ID: 4, Address: 0xFEC00000}}})
	if err != nil {
		t.Fatal(err)
	}
	read := func(addr uint64, n int) ([]byte, error) {
		if addr < tab.Base || addr+uint64(n) > tab.Base+uint64(len(tab.Bytes)) {
			return nil, fmt.Errorf("read of %d at %#x outside the tables", n, addr)
		}
		return tab.Bytes[addr-tab.Base : addr-tab.Base+uint64(n)], nil
	}
	rsdp, err := board.ReadRSDP(read, tab.RSDP)
	if err != nil {
		t.Fatal(err)
	}
	all, err := board.Load(read, rsdp)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []string
	for _, h := range all.Headers() {
		sigs = append(sigs, h.Signature)
	}
	if fmt.Sprint(sigs) != "[FACP APIC]" && fmt.Sprint(sigs) != "[XSDT FACP APIC]" {
		t.Errorf("tables %v", sigs)
	}
	madt, err := all.MADT()
	if err != nil {
		t.Fatal(err)
	}
	cpus := madt.CPUs()
	if len(cpus) != len(ids) {
		t.Fatalf("%d CPUs in the MADT, want %d", len(cpus), len(ids))
	}
	for i, c := range cpus {
		if c.APICID != ids[i] || !c.Enabled || c.UID != uint32(i) || c.X2APIC != (ids[i] >= 255) {
			t.Errorf("CPU %d: %+v", i, c)
		}
	}
	if io := madt.IOAPICs(); len(io) != 1 || io[0] != (board.IOAPIC{ID: 4, Addr: 0xFEC00000}) {
		t.Errorf("IOAPICs %+v", io)
	}
	_, fadt, err := all.Find("FACP", 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = fadt
}

func TestFADTFields(t *testing.T) {
	tab, err := Build(0x100000, Config{APICIDs: []uint32{0}, ResetPort: 0xCF9, ResetValue: 6})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	b := tab.Bytes
	// the DSDT comes first, the FADT right after (16-byte aligned)
	dsdt := b[:36]
	if string(dsdt[:4]) != "DSDT" || sum(dsdt) != 0 {
		t.Fatalf("DSDT %q checksum %d", dsdt[:4], sum(dsdt))
	}
	fadt := b[48 : 48+fadtSize]
	if string(fadt[:4]) != "FACP" || le.Uint32(fadt[4:]) != fadtSize || fadt[8] != 6 || sum(fadt) != 0 {
		t.Fatalf("FADT header wrong")
	}
	if f := le.Uint32(fadt[fadtFlagsOff:]); f&flagHWReducedACPI == 0 || f&flagForceAPICPhysical == 0 || f&flagResetRegSupported == 0 {
		t.Errorf("flags %#x: want hardware-reduced, physical APIC mode, reset register", f)
	}
	if gas := fadt[fadtResetRegOff:]; gas[0] != gasSystemIO || gas[1] != 8 || le.Uint64(gas[4:]) != 0xCF9 || fadt[fadtResetValueOff] != 6 {
		t.Errorf("reset register % x value %d", gas[:12], fadt[fadtResetValueOff])
	}
	if le.Uint64(fadt[fadtXDSDTOff:]) != 0x100000 || le.Uint32(fadt[fadtDSDTOff:]) != 0x100000 {
		t.Error("FADT does not point at the DSDT")
	}
	rsdp := b[tab.RSDP-tab.Base:]
	if sum(rsdp[:20]) != 0 || sum(rsdp[:36]) != 0 || rsdp[15] != 2 {
		t.Error("RSDP checksums or revision wrong")
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		base uint64
		ids  int
	}{{0xE0001, 1}, {1 << 32, 1}, {0xE0000, 0}, {0xE0000, 256}} {
		if _, err := Build(c.base, Config{APICIDs: make([]uint32, c.ids)}); err == nil {
			t.Errorf("Build(%#x, %d CPUs) accepted", c.base, c.ids)
		}
	}
}
