// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// goldenConfigs are machines whose tables TestGoldenTables pins: one
// processor and nothing else; the Linux VM's shape (reset register,
// serial ports, virtio-mmio devices, an I/O APIC); an x2APIC id beyond
// 254; and a NUMA machine with an SRAT and a SLIT.
var goldenConfigs = map[string]struct {
	base uint64
	c    Config
}{
	"minimal": {0xE0000, Config{APICIDs: []uint32{0}}},
	"linux": {0x9F000, Config{
		APICIDs:    []uint32{0, 1},
		IOAPICs:    []IOAPIC{{ID: 2, Address: 0xFEC00000}},
		ResetPort:  0xCF9,
		ResetValue: 0x06,
		Serial:     []SerialPort{{Port: 0x3F8, GSI: 4, UID: 0}, {Port: 0x2F8, GSI: 3, UID: 1}},
		Virtio:     []VirtioMMIO{{Base: 0xD0000000, Size: 0x200, GSI: 5}, {Base: 0xD0000200, Size: 0x200, GSI: 6}},
	}},
	"x2apic": {0xE0000, Config{APICIDs: []uint32{0, 1, 2, 300}, IOAPICs: []IOAPIC{{ID: 4, Address: 0xFEC00000, GSIBase: 0}, {ID: 5, Address: 0xFEC01000, GSIBase: 24}}}},
	"numa": {0xE0000, Config{
		APICIDs:   []uint32{0, 1, 300},
		ResetPort: 0x64, ResetValue: 0xFE,
		Serial: []SerialPort{{Port: 0x3F8, GSI: 4}},
		NUMA: &NUMA{
			CPUDomain: []uint32{0, 1, 1},
			Memory:    []MemoryAffinity{{Base: 0, Length: 64 << 20, Domain: 0}, {Base: 64 << 20, Length: 64 << 20, Domain: 1}},
			Distance:  [][]uint8{{10, 200}, {200, 10}},
		},
	}},
}

// goldenTables are the SHA-256 of each golden config's Tables (base,
// RSDP address and bytes), as Build made them before it was split into
// one function per table.
var goldenTables = map[string]string{
	"minimal": "60909b330be1fe5a87bcc4abe7d63e6be7e10291af19a021a6efc386fb08d212",
	"linux":   "2a476e20d2eae2814f49bead476c1e57355eef36fa77a2e9a413b0b41a21f0f8",
	"x2apic":  "fb13b4717f9f581fcbb014135ab896eafc6ebc772b1699875c05ffd75969a2a7",
	"numa":    "bdef2dbad8df82b0c08e7975c6cdc839028acb5371d144f5ca4ab41a6d778980",
}

// TestGoldenTables checks that Build still lays out the pinned tables
// byte for byte.
func TestGoldenTables(t *testing.T) {
	for name, g := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			tab, err := Build(g.base, g.c)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			fmt.Fprintf(h, "base %#x rsdp %#x\n", tab.Base, tab.RSDP)
			h.Write(tab.Bytes)
			if got := hex.EncodeToString(h.Sum(nil)); got != goldenTables[name] {
				t.Errorf("SHA-256 of the %s tables = %s, want %s", name, got, goldenTables[name])
			}
		})
	}
	if len(goldenTables) != len(goldenConfigs) {
		t.Errorf("%d golden hashes for %d configs", len(goldenTables), len(goldenConfigs))
	}
}
