// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

func TestMADTQEMUPC(t *testing.T) {
	m, err := ParseMADT(loadHex(t, "qemu-pc.APIC.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.OEMID != "BOCHS" || m.Header.OEMTableID != "BXPCAPIC" {
		t.Errorf("header %+v", m.Header)
	}
	if m.LocalAPICAddr != 0xfee00000 || m.Flags&PCATCompat == 0 {
		t.Errorf("LocalAPICAddr %#x flags %#x", m.LocalAPICAddr, m.Flags)
	}
	if want := []CPU{{APICID: 0, UID: 0, Enabled: true}}; !slices.Equal(m.CPUs(), want) {
		t.Errorf("CPUs = %+v", m.CPUs())
	}
	if want := []IOAPIC{{ID: 0, Addr: 0xfec00000, GSIBase: 0}}; !slices.Equal(m.IOAPICs(), want) {
		t.Errorf("IOAPICs = %+v", m.IOAPICs())
	}
	wantISO := []InterruptOverride{
		{Source: 0, GSI: 2, Flags: 0},
		{Source: 5, GSI: 5, Flags: 0xd},
		{Source: 9, GSI: 9, Flags: 0xd},
		{Source: 10, GSI: 10, Flags: 0xd},
		{Source: 11, GSI: 11, Flags: 0xd},
	}
	if !slices.Equal(m.InterruptOverrides(), wantISO) {
		t.Errorf("overrides = %+v", m.InterruptOverrides())
	}
	if want := []LocalNMI{{UID: AllProcessors, Flags: 0, LINT: 1}}; !slices.Equal(m.LocalNMIs(), want) {
		t.Errorf("local NMIs = %+v", m.LocalNMIs())
	}
}

func TestMADTAMIDesktop(t *testing.T) {
	m, err := ParseMADT(loadHex(t, "ami-amd-desktop.APIC.hex"))
	if err != nil {
		t.Fatal(err)
	}
	cpus := m.CPUs()
	if len(cpus) != 16 {
		t.Fatalf("%d CPUs", len(cpus))
	}
	var enabledIDs []uint32
	for i, c := range cpus {
		if c.UID != uint32(i+1) || c.X2APIC || c.OnlineCapable {
			t.Errorf("CPU %d = %+v", i, c)
		}
		if c.Enabled {
			enabledIDs = append(enabledIDs, c.APICID)
		}
	}
	if want := []uint32{0, 1, 2, 3, 8, 9, 10, 11}; !slices.Equal(enabledIDs, want) {
		t.Errorf("enabled APIC IDs = %v, want %v", enabledIDs, want)
	}
	wantIO := []IOAPIC{{ID: 9, Addr: 0xfec00000, GSIBase: 0}, {ID: 10, Addr: 0xfec01000, GSIBase: 24}}
	if !slices.Equal(m.IOAPICs(), wantIO) {
		t.Errorf("IOAPICs = %+v", m.IOAPICs())
	}
	wantISO := []InterruptOverride{{Source: 0, GSI: 2}, {Source: 9, GSI: 9, Flags: 0xf}}
	if !slices.Equal(m.InterruptOverrides(), wantISO) {
		t.Errorf("overrides = %+v", m.InterruptOverrides())
	}
	if want := []LocalNMI{{UID: AllProcessors, Flags: 5, LINT: 1}}; !slices.Equal(m.LocalNMIs(), want) {
		t.Errorf("local NMIs = %+v", m.LocalNMIs())
	}
}

func TestMADTDellR820(t *testing.T) {
	m, err := ParseMADT(loadHex(t, "dell-r820.APIC.hex"))
	if err != nil {
		t.Fatal(err)
	}
	cpus := m.CPUs()
	if len(cpus) != 96 {
		t.Fatalf("%d CPUs", len(cpus))
	}
	perPackage := map[uint32]int{}
	seen := map[uint32]bool{}
	enabled := 0
	for i, c := range cpus {
		if c.UID != uint32(i+1) {
			t.Errorf("CPU %d has UID %d", i, c.UID)
		}
		if !c.Enabled {
			if c.APICID < 0xd0 || c.APICID > 0xdf {
				t.Errorf("disabled CPU %+v outside the placeholder range", c)
			}
			continue
		}
		enabled++
		if seen[c.APICID] {
			t.Errorf("APIC ID %#x listed twice", c.APICID)
		}
		seen[c.APICID] = true
		perPackage[c.APICID>>5]++ // E5-4600: package ID in APIC ID bits 5+
	}
	if enabled != 80 || len(perPackage) != 4 {
		t.Fatalf("%d enabled CPUs over %d packages", enabled, len(perPackage))
	}
	for p, n := range perPackage {
		if n != 20 {
			t.Errorf("package %d has %d CPUs, want 20", p, n)
		}
	}
	// The firmware lists one core of each package in turn: the first four
	// entries are on four different packages.
	if got := []uint32{cpus[0].APICID, cpus[1].APICID, cpus[2].APICID, cpus[3].APICID}; !slices.Equal(got, []uint32{0, 0x20, 0x40, 0x60}) {
		t.Errorf("first APIC IDs = %#x", got)
	}
	wantIO := []IOAPIC{
		{ID: 0, Addr: 0xfec00000, GSIBase: 0},
		{ID: 1, Addr: 0xfec3f000, GSIBase: 0x20},
		{ID: 2, Addr: 0xfec7f000, GSIBase: 0x40},
		{ID: 3, Addr: 0xfec80000, GSIBase: 0x60},
		{ID: 4, Addr: 0xfecc0000, GSIBase: 0x80},
	}
	if !slices.Equal(m.IOAPICs(), wantIO) {
		t.Errorf("IOAPICs = %+v", m.IOAPICs())
	}
	if len(m.InterruptOverrides()) != 2 || len(m.LocalNMIs()) != 1 {
		t.Errorf("overrides %+v, local NMIs %+v", m.InterruptOverrides(), m.LocalNMIs())
	}
}

// madtBuilder builds MADTs for tests.
type madtBuilder struct{ body []byte }

func newMADT(lapic uint32, flags MADTFlags) *madtBuilder {
	b := &madtBuilder{}
	b.body = binary.LittleEndian.AppendUint32(b.body, lapic)
	b.body = binary.LittleEndian.AppendUint32(b.body, uint32(flags))
	return b
}

func (b *madtBuilder) raw(e ...byte) *madtBuilder { b.body = append(b.body, e...); return b }

func (b *madtBuilder) lapic(uid, id uint8, flags uint32) *madtBuilder {
	e := []byte{0, 8, uid, id}
	return b.raw(binary.LittleEndian.AppendUint32(e, flags)...)
}

func (b *madtBuilder) x2apic(id, flags, uid uint32) *madtBuilder {
	le := binary.LittleEndian
	e := []byte{9, 16, 0, 0}
	e = le.AppendUint32(e, id)
	e = le.AppendUint32(e, flags)
	return b.raw(le.AppendUint32(e, uid)...)
}

func (b *madtBuilder) ioapic(id uint8, addr, gsi uint32) *madtBuilder {
	le := binary.LittleEndian
	e := []byte{1, 12, id, 0}
	e = le.AppendUint32(e, addr)
	return b.raw(le.AppendUint32(e, gsi)...)
}

func (b *madtBuilder) bytes() []byte { return table(SignatureMADT, 5, b.body) }

// twoSocket is a two-socket server MADT with sparse APIC IDs: socket 0 uses
// IDs 0-0x0e (even: no SMT siblings enabled), socket 1 uses 0x20-0x2e and
// 0x100-0x106 (x2APIC IDs above 254 need x2APIC structures), the boot
// processor (0) is listed in the middle, two hot-pluggable slots are
// disabled but online capable, and there is an I/O APIC per socket.
func twoSocket() []byte {
	b := newMADT(0xfee00000, PCATCompat)
	for i := uint8(0); i < 8; i++ {
		b.lapic(0x10+i, 0x20+2*i, 1)
	}
	for i := uint8(0); i < 8; i++ {
		b.lapic(i, 2*i, 1)
	}
	for i := uint32(0); i < 4; i++ {
		b.x2apic(0x100+2*i, 1, 0x20+i)
	}
	b.x2apic(0x200, 2, 0x30) // hot-pluggable
	b.lapic(0x31, 0xfe, 2)   // hot-pluggable
	b.ioapic(8, 0xfec00000, 0)
	b.ioapic(9, 0xfec01000, 24)
	b.raw(2, 10, 0, 0, 2, 0, 0, 0, 0, 0)         // ISO IRQ0 -> GSI2
	b.raw(3, 8, 0xd, 0, 30, 0, 0, 0)             // NMI source GSI 30
	b.raw(4, 6, 0xff, 5, 0, 1)                   // LAPIC NMI, all, LINT1
	b.raw(0xa, 12, 5, 0, 0xff, 0xff, 0xff, 0xff, // x2APIC NMI, all
		1, 0, 0, 0)
	b.raw(0x7f, 4, 0xaa, 0xbb)                                         // unknown type: skipped
	b.raw(5, 12, 0, 0, 0x00, 0x00, 0xe0, 0xfe, 0x01, 0x00, 0x00, 0x00) // LAPIC at 0x1_fee00000
	return b.bytes()
}

func TestMADTTwoSocketX2APIC(t *testing.T) {
	m, err := ParseMADT(twoSocket())
	if err != nil {
		t.Fatal(err)
	}
	if m.LocalAPICAddr != 0x1fee00000 {
		t.Errorf("LocalAPICAddr = %#x, want the override", m.LocalAPICAddr)
	}
	cpus := m.CPUs()
	if len(cpus) != 22 {
		t.Fatalf("%d CPUs: %+v", len(cpus), cpus)
	}
	if cpus[0].APICID != 0x20 || cpus[8].APICID != 0 {
		t.Errorf("MADT order not preserved: first %+v, ninth %+v", cpus[0], cpus[8])
	}
	var x2 []uint32
	for _, c := range cpus {
		if c.X2APIC && c.Enabled {
			x2 = append(x2, c.APICID)
		}
	}
	if !slices.Equal(x2, []uint32{0x100, 0x102, 0x104, 0x106}) {
		t.Errorf("x2APIC IDs = %#x", x2)
	}
	hot := cpus[len(cpus)-2:]
	for _, c := range hot {
		if c.Enabled || !c.OnlineCapable {
			t.Errorf("hot-pluggable CPU = %+v", c)
		}
	}
	if hot[0] != (CPU{APICID: 0x200, UID: 0x30, OnlineCapable: true, X2APIC: true}) {
		t.Errorf("x2APIC hotplug entry = %+v", hot[0])
	}
	if len(m.IOAPICs()) != 2 || m.IOAPICs()[1] != (IOAPIC{ID: 9, Addr: 0xfec01000, GSIBase: 24}) {
		t.Errorf("IOAPICs = %+v", m.IOAPICs())
	}
	if want := []NMISource{{Flags: 0xd, GSI: 30}}; !slices.Equal(m.NMISources(), want) {
		t.Errorf("NMI sources = %+v", m.NMISources())
	}
	wantNMI := []LocalNMI{{UID: AllProcessors, Flags: 5, LINT: 1}, {UID: AllProcessors, Flags: 5, LINT: 1, X2APIC: true}}
	if !slices.Equal(m.LocalNMIs(), wantNMI) {
		t.Errorf("local NMIs = %+v", m.LocalNMIs())
	}
}

func TestMADTErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"not a MADT", table("FACP", 1, make([]byte, 8)), "is not"},
		{"no fixed fields", table("APIC", 1, make([]byte, 4)), "fixed bytes"},
		{"zero-length entry", newMADT(0, 0).raw(0, 0).bytes(), "length 0"},
		{"entry past end", newMADT(0, 0).raw(0, 8, 1, 2).bytes(), "runs past"},
		{"short lapic", newMADT(0, 0).raw(0, 6, 1, 2, 0, 0).bytes(), "need 8"},
		{"short x2apic", newMADT(0, 0).raw(9, 8, 0, 0, 0, 0, 0, 0).bytes(), "need 16"},
		{"trailing byte", newMADT(0, 0).raw(1).bytes(), "trailing"},
		{"bad checksum", func() []byte { b := twoSocket(); b[50]++; return b }(), "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMADT(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseMADT checks the MADT decoder on arbitrary bytes. Inputs get a
// valid checksum fixed up (when long enough) so that the fuzzer reaches the
// structure parser instead of stopping at the checksum.
func FuzzParseMADT(f *testing.F) {
	for _, name := range []string{"qemu-pc.APIC.hex", "ami-amd-desktop.APIC.hex", "dell-r820.APIC.hex"} {
		f.Add(loadHex(f, name))
	}
	f.Add(twoSocket())
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= HeaderSize {
			n := binary.LittleEndian.Uint32(data[4:])
			if uint64(n) <= uint64(len(data)) && n >= HeaderSize {
				fixChecksum(data[:n], 9)
			}
		}
		m, err := ParseMADT(data)
		if err != nil {
			return
		}
		for _, c := range m.CPUs() {
			if !c.X2APIC && (c.APICID > 0xff || c.UID > 0xff) {
				t.Fatalf("xAPIC entry with wide fields: %+v", c)
			}
		}
	})
}
