// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	board "github.com/big-iron/big-iron/machine/board/acpi"
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

func TestPkgLength(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{1}}, {62, []byte{63}}, {63, []byte{0x41, 0x04}}, {0x3FD, []byte{0x4F, 0x3F}},
		{0xFFE, []byte{0x80 | 0x1, 0x00, 0x01}},
	} {
		if got := pkgLength(c.n); !bytes.Equal(got, c.want) {
			t.Errorf("pkgLength(%d) = % x, want % x", c.n, got, c.want)
		}
	}
}

// TestDSDTVirtio checks the DSDT's virtio-mmio devices; where ACPICA's
// iasl is installed, its disassembly too.
func TestDSDTVirtio(t *testing.T) {
	devs := []VirtioMMIO{{Base: 0xD0000000, Size: 0x200, GSI: 5}, {Base: 0xD0000200, Size: 0x200, GSI: 6}}
	tab, err := Build(0xE0000, Config{APICIDs: []uint32{0}, Virtio: devs, Serial: []SerialPort{{Port: 0x3F8, GSI: 4, UID: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint32(tab.Bytes[4:]))
	dsdt := tab.Bytes[:n]
	if string(dsdt[:4]) != "DSDT" || sum(dsdt) != 0 || bytes.Count(dsdt, []byte("LNRO0005")) != 2 {
		t.Fatalf("DSDT % x", dsdt)
	}
	if got := eisaID("PNP0501"); got != 0x0105D041 {
		t.Errorf("EISAID(PNP0501) = %#x, want 0x0105D041", got)
	}
	if _, err := Build(0xE0000, Config{APICIDs: []uint32{0}, Virtio: []VirtioMMIO{{Base: 0xFFFFFF00, Size: 0x200}}}); err == nil {
		t.Error("a window past 4 GiB accepted")
	}
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Log("iasl (acpica-tools) not installed: disassembly not checked")
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsdt.aml"), dsdt, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(iasl, "-d", filepath.Join(dir, "dsdt.aml")).CombinedOutput(); err != nil {
		t.Fatalf("iasl -d: %v\n%s", err, out)
	}
	dsl, err := os.ReadFile(filepath.Join(dir, "dsdt.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Device (VR00)", "Device (VR01)", `Name (_HID, "LNRO0005")`, "0xD0000200,         // Address Base",
		"Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )", "0x00000006,",
		"Device (COM1)", `Name (_HID, EisaId ("PNP0501")`, "IO (Decode16,", "0x03F8,             // Range Minimum",
		"Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )", "0x00000004,"} {
		if !strings.Contains(string(dsl), want) {
			t.Errorf("disassembly lacks %q:\n%s", want, dsl)
		}
	}
}

// TestNUMATables checks the SRAT and SLIT by their layout and, where
// acpica-tools is installed, by iasl's disassembly.
func TestNUMATables(t *testing.T) {
	numa := &NUMA{
		CPUDomain: []uint32{0, 1, 1},
		Memory:    []MemoryAffinity{{Base: 0, Length: 64 << 20, Domain: 0}, {Base: 64 << 20, Length: 64 << 20, Domain: 1}},
		Distance:  [][]uint8{{10, 200}, {200, 10}},
	}
	tab, err := Build(0xE0000, Config{APICIDs: []uint32{0, 1, 300}, NUMA: numa})
	if err != nil {
		t.Fatal(err)
	}
	find := func(sig string) []byte {
		for i := 0; i+headerSize <= len(tab.Bytes); i += 16 {
			if string(tab.Bytes[i:i+4]) == sig {
				n := int(binary.LittleEndian.Uint32(tab.Bytes[i+4:]))
				return tab.Bytes[i : i+n]
			}
		}
		t.Fatalf("no %s", sig)
		return nil
	}
	srat, slit := find("SRAT"), find("SLIT")
	if sum(srat) != 0 || sum(slit) != 0 {
		t.Fatal("bad checksums")
	}
	if len(srat) != sratHeaderSize+16+16+24+40+40 {
		t.Fatalf("SRAT of %d bytes", len(srat))
	}
	e := srat[sratHeaderSize:]
	if e[0] != sratLocalAPIC || e[2] != 0 || e[3] != 0 || e[16+2] != 1 || e[16+3] != 1 {
		t.Errorf("processor affinities % x", e[:32])
	}
	if x := e[32:]; x[0] != sratLocalX2APIC || binary.LittleEndian.Uint32(x[4:]) != 1 || binary.LittleEndian.Uint32(x[8:]) != 300 {
		t.Errorf("x2APIC affinity % x", x[:24])
	}
	if m := e[56+40:]; m[0] != sratMemory || binary.LittleEndian.Uint32(m[2:]) != 1 || binary.LittleEndian.Uint64(m[8:]) != 64<<20 || binary.LittleEndian.Uint64(m[16:]) != 64<<20 || m[28] != 1 {
		t.Errorf("memory affinity % x", m[:40])
	}
	if got := slit[slitHeaderSize:]; binary.LittleEndian.Uint64(slit[headerSize:]) != 2 || !bytes.Equal(got, []byte{10, 200, 200, 10}) {
		t.Errorf("SLIT % x", slit[headerSize:])
	}
	// The XSDT lists all four tables.
	xsdt := find("XSDT")
	if (len(xsdt)-headerSize)/8 != 4 {
		t.Errorf("XSDT lists %d tables, want 4", (len(xsdt)-headerSize)/8)
	}

	for _, bad := range []*NUMA{
		{CPUDomain: []uint32{0, 0}, Distance: [][]uint8{{10}}},                                           // a CPU short
		{CPUDomain: []uint32{0, 0, 2}, Distance: [][]uint8{{10, 20}, {20, 10}}},                          // domain out of range
		{CPUDomain: []uint32{0, 0, 1}, Distance: [][]uint8{{10, 10}, {20, 10}}},                          // remote as local
		{CPUDomain: []uint32{0, 0, 0}, Distance: [][]uint8{{10}}, Memory: []MemoryAffinity{{Length: 0}}}, // empty range
	} {
		if _, err := Build(0xE0000, Config{APICIDs: []uint32{0, 1, 300}, NUMA: bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}

	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Log("iasl (acpica-tools) not installed: disassembly not checked")
		return
	}
	dir := t.TempDir()
	for name, table := range map[string][]byte{"srat": srat, "slit": slit} {
		path := filepath.Join(dir, name+".dat")
		if err := os.WriteFile(path, table, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(iasl, "-d", path).CombinedOutput(); err != nil {
			t.Fatalf("iasl -d %s: %v\n%s", name, err, out)
		}
	}
	dsl, err := os.ReadFile(filepath.Join(dir, "srat.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Proximity Domain Low(8) : 01", "Apic ID : 01", "Apic ID : 0000012C", "Base Address : 0000000004000000", "Address Length : 0000000004000000"} {
		if !strings.Contains(strings.Join(strings.Fields(string(dsl)), " "), want) {
			t.Errorf("SRAT disassembly lacks %q:\n%s", want, dsl)
		}
	}
	dsl, err = os.ReadFile(filepath.Join(dir, "slit.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dsl), "Localities : 0000000000000002") || !strings.Contains(string(dsl), "Locality   0 : 0A C8") {
		t.Errorf("SLIT disassembly:\n%s", dsl)
	}
}
