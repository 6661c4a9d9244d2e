// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"github.com/big-iron/big-iron/machine/boot/memmap"
	"github.com/big-iron/big-iron/machine/boot/memread/memreadtest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// loadHex reads a testdata table in the "offset: hex bytes" form of
// acpidump output ('#' lines are comments).
func loadHex(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		off, rest, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		if o, err := strconv.ParseUint(off, 16, 32); err != nil || int(o) != len(b) {
			t.Fatalf("%s: line %q at offset %d", name, line, len(b))
		}
		for _, tok := range strings.Fields(rest) {
			v, err := strconv.ParseUint(tok, 16, 8)
			if err != nil {
				t.Fatalf("%s: bad byte %q", name, tok)
			}
			b = append(b, byte(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return b
}

// table builds a system description table with a valid checksum.
func table(sig string, rev uint8, body []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	copy(b[0:4], sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(HeaderSize+len(body)))
	b[8] = rev
	copy(b[10:16], "BIGIRN")
	copy(b[16:24], "TESTTBL ")
	binary.LittleEndian.PutUint32(b[24:], 1)
	copy(b[28:32], "BIRN")
	binary.LittleEndian.PutUint32(b[32:], 1)
	b = append(b, body...)
	fixChecksum(b, 9)
	return b
}

// fixChecksum sets b[at] so that b sums to zero.
func fixChecksum(b []byte, at int) {
	b[at] = 0
	b[at] = -sum(b)
}

// rsdp builds an RSDP; revision 2 structures get a length, an XSDT address
// and the extended checksum.
func rsdp(rev uint8, rsdt uint32, xsdt uint64) []byte {
	b := make([]byte, rsdpV2Size)
	copy(b, rsdpSignature)
	copy(b[rsdpOffOEMID:], "BOCHS ")
	b[rsdpOffRevision] = rev
	binary.LittleEndian.PutUint32(b[rsdpOffRSDT:], rsdt)
	if rev < 2 {
		b = b[:rsdpV1Size]
		fixChecksum(b, 8)
		return b
	}
	binary.LittleEndian.PutUint32(b[rsdpOffLength:], rsdpV2Size)
	binary.LittleEndian.PutUint64(b[rsdpOffXSDT:], xsdt)
	fixChecksum(b[:rsdpV1Size], 8)
	fixChecksum(b, 32)
	return b
}

const (
	rsdtAddr = 0x7ffe1000
	xsdtAddr = 0x7ffe2000
	facpAddr = 0x7ffe3000
	madtAddr = 0x7ffe4000
	badAddr  = 0x7ffe5000
	rsdpAddr = 0xf5a40
)

// machine lays out a firmware's tables in fake memory: the RSDP in the BIOS
// area, an XSDT and an RSDT listing a FACP, a table with a bad checksum and
// the Dell R820 MADT.
func machine(t testing.TB) memreadtest.Mem {
	mem := memreadtest.Mem{}
	bios := make([]byte, biosAreaEnd-biosAreaStart)
	copy(bios[rsdpAddr-biosAreaStart:], rsdp(2, rsdtAddr, xsdtAddr))
	mem[biosAreaStart] = bios
	mem[0x400] = make([]byte, 0x100) // BIOS data area, EBDA pointer 0
	addrs := []uint64{facpAddr, badAddr, madtAddr}
	var x, r []byte
	for _, a := range addrs {
		x = binary.LittleEndian.AppendUint64(x, a)
		r = binary.LittleEndian.AppendUint32(r, uint32(a))
	}
	mem[xsdtAddr] = table("XSDT", 1, x)
	mem[rsdtAddr] = table("RSDT", 1, r)
	mem[facpAddr] = table("FACP", 6, make([]byte, 240))
	bad := table("APIC", 1, make([]byte, 8))
	bad[20]++ // breaks the checksum
	mem[badAddr] = bad
	mem[madtAddr] = loadHex(t, "dell-r820.APIC.hex")
	return mem
}

func TestFindRSDPInBIOSArea(t *testing.T) {
	mem := machine(t)
	r, err := FindRSDP(mem.Read)
	if err != nil {
		t.Fatal(err)
	}
	want := RSDP{Addr: rsdpAddr, Revision: 2, OEMID: "BOCHS", RSDTAddr: rsdtAddr, XSDTAddr: xsdtAddr}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
}

func TestFindRSDPInEBDA(t *testing.T) {
	mem := machine(t)
	const ebda = 0x9fc00
	binary.LittleEndian.PutUint16(mem[0x400][0xe:], ebda>>4)
	e := make([]byte, 0x400)
	// A decoy with the signature but a bad checksum comes first.
	decoy := rsdp(0, 0x1234, 0)
	decoy[8]++
	copy(e[0x10:], decoy)
	copy(e[0x40:], rsdp(0, rsdtAddr, 0))
	mem[ebda] = e
	r, err := FindRSDP(mem.Read)
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr != ebda+0x40 || r.Revision != 0 || r.XSDTAddr != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestFindRSDPAbsentOrUnaligned(t *testing.T) {
	mem := machine(t)
	bios := mem[biosAreaStart]
	// Move the RSDP to an address that is not 16-byte aligned.
	copy(bios[rsdpAddr-biosAreaStart+4:], bios[rsdpAddr-biosAreaStart:rsdpAddr-biosAreaStart+rsdpV2Size])
	copy(bios[rsdpAddr-biosAreaStart:], "XXXX")
	if _, err := FindRSDP(mem.Read); !errors.Is(err, ErrNoRSDP) {
		t.Fatalf("err = %v, want ErrNoRSDP", err)
	}
}

func TestParseRSDPErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    func() []byte
		want string
	}{
		{"short", func() []byte { return rsdp(0, 1, 0)[:19] }, "need 20"},
		{"signature", func() []byte { b := rsdp(0, 1, 0); b[0] = 'X'; return b }, "no RSDP signature"},
		{"checksum", func() []byte { b := rsdp(0, 1, 0); b[16]++; return b }, "checksum"},
		{"extended checksum", func() []byte { b := rsdp(2, 1, 2); b[24]++; return b }, "extended checksum"},
		{"v2 short", func() []byte { b := rsdp(2, 1, 2); return b[:30] }, "need 36"},
		{"v2 bad length", func() []byte {
			b := rsdp(2, 1, 2)
			binary.LittleEndian.PutUint32(b[rsdpOffLength:], 20)
			fixChecksum(b[:rsdpV1Size], 8)
			return b
		}, "length 20"},
		{"no tables", func() []byte { return rsdp(2, 0, 0) }, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRSDP(tc.b(), 0xe0000)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadPrefersXSDT(t *testing.T) {
	mem := machine(t)
	r, err := ReadRSDP(mem.Read, rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tabs, err := Load(mem.Read, r)
	if err != nil {
		t.Fatal(err)
	}
	if tabs.Root.Signature != "XSDT" || len(tabs.Addrs) != 3 || tabs.Addrs[2] != madtAddr {
		t.Fatalf("root %+v addrs %#x", tabs.Root, tabs.Addrs)
	}
	hs := tabs.Headers()
	if len(hs) != 2 || hs[0].Signature != "FACP" || hs[1].Signature != "APIC" || hs[1].OEMID != "DELL" || hs[1].OEMTableID != "PE_SC3" {
		t.Fatalf("Headers = %+v", hs)
	}
	// The corrupt APIC comes first in the XSDT and must be skipped.
	h, b, err := tabs.Find("APIC", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Length != 0x382 || len(b) != 0x382 || h.OEMID != "DELL" {
		t.Fatalf("found %+v (%d bytes)", h, len(b))
	}
	if _, _, err := tabs.Find("APIC", 1); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("second APIC: err = %v, want the corrupt table's checksum error", err)
	}
	if _, _, err := tabs.Find("SRAT", 0); err == nil || !strings.Contains(err.Error(), `no "SRAT" table`) {
		t.Fatalf("SRAT: err = %v", err)
	}
	m, err := tabs.MADT()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.CPUs()) != 96 {
		t.Fatalf("MADT via tables: %d CPUs", len(m.CPUs()))
	}
}

func TestLoadFallsBackToRSDT(t *testing.T) {
	mem := machine(t)
	mem[xsdtAddr][40]++ // corrupt the XSDT's checksum
	r, err := ReadRSDP(mem.Read, rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tabs, err := Load(mem.Read, r)
	if err != nil {
		t.Fatal(err)
	}
	if tabs.Root.Signature != "RSDT" || len(tabs.Addrs) != 3 {
		t.Fatalf("root %+v", tabs.Root)
	}
	if _, _, err := tabs.Find("APIC", 0); err != nil {
		t.Fatal(err)
	}
	mem[rsdtAddr][40]++
	_, err = Load(mem.Read, r)
	if err == nil || !strings.Contains(err.Error(), "XSDT") || !strings.Contains(err.Error(), "RSDT") {
		t.Fatalf("both roots corrupt: err = %v", err)
	}
}

func TestLoadRootErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(mem memreadtest.Mem)
		want   string
	}{
		{"wrong signature", func(mem memreadtest.Mem) { mem[xsdtAddr] = table("FACP", 1, make([]byte, 8)) }, "want \"XSDT\""},
		{"ragged body", func(mem memreadtest.Mem) { mem[xsdtAddr] = table("XSDT", 1, make([]byte, 12)) }, "whole number"},
		{"huge length", func(mem memreadtest.Mem) {
			binary.LittleEndian.PutUint32(mem[xsdtAddr][4:], 1<<30)
		}, "outside"},
		{"past memory", func(mem memreadtest.Mem) {
			binary.LittleEndian.PutUint32(mem[xsdtAddr][4:], 0x10000)
		}, "reading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := machine(t)
			tc.mutate(mem)
			_, err := Load(mem.Read, RSDP{Revision: 2, XSDTAddr: xsdtAddr})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseTable(t *testing.T) {
	b := table("SSDT", 2, []byte("body"))
	h, got, err := ParseTable(append(b, 0xaa, 0xbb)) // trailing bytes are cut
	if err != nil {
		t.Fatal(err)
	}
	if h.Signature != "SSDT" || h.Length != 40 || h.Revision != 2 || h.OEMID != "BIGIRN" || h.OEMTableID != "TESTTBL" || h.CreatorID != "BIRN" || len(got) != 40 {
		t.Fatalf("got %+v, %d bytes", h, len(got))
	}
	if _, _, err := ParseTable(b[:30]); err == nil {
		t.Error("short table accepted")
	}
	if _, _, err := ParseTable(b[:39]); err == nil {
		t.Error("truncated table accepted")
	}
}

// FuzzParseTable checks the header/checksum validator on arbitrary bytes.
func FuzzParseTable(f *testing.F) {
	f.Add(table("FACP", 6, make([]byte, 20)))
	f.Add(loadHex(f, "qemu-pc.APIC.hex"))
	f.Add([]byte("APIC"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, b, err := ParseTable(data)
		if err != nil {
			return
		}
		if int(h.Length) != len(b) || len(b) < HeaderSize || sum(b) != 0 {
			t.Fatalf("accepted table %+v of %d bytes, sum %d", h, len(b), sum(b))
		}
	})
}

// FuzzTables treats the fuzz input as memory at 0x1000 holding an RSDP and
// everything it leads to, and walks it as the board code does.
func FuzzTables(f *testing.F) {
	const base = 0x1000
	// Seed: RSDP, XSDT with one entry, QEMU MADT, laid out contiguously.
	madt := loadHex(f, "qemu-pc.APIC.hex")
	seed := make([]byte, 0x80+HeaderSize+8+len(madt))
	copy(seed, rsdp(2, 0, base+0x40))
	x := table("XSDT", 1, binary.LittleEndian.AppendUint64(nil, base+0x80))
	copy(seed[0x40:], x)
	copy(seed[0x80:], madt)
	f.Add(seed)
	f.Add(rsdp(0, base+0x20, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memreadtest.Mem{base: data}
		r, err := ReadRSDP(mem.Read, base)
		if err != nil {
			return
		}
		tabs, err := Load(mem.Read, r)
		if err != nil {
			return
		}
		tabs.Headers()
		if m, err := tabs.MADT(); err == nil {
			_ = m.CPUs()
		}
	})
}

// On a UEFI machine the RSDP sits in the firmware's ACPI memory, not in
// the BIOS areas.
func TestFindRSDPInRegions(t *testing.T) {
	mem := machine(t)
	const reclaim = 0x3f77e000
	area := make([]byte, 0x2000)
	copy(area[0x14+0xc:], rsdp(2, rsdtAddr, xsdtAddr)) // 16-byte aligned at 0x3f77e020
	mem[reclaim] = area
	biosOnly := memreadtest.Mem{0x400: mem[0x400], biosAreaStart: make([]byte, biosAreaEnd-biosAreaStart)}
	for k, v := range mem {
		if k != biosAreaStart && k != 0x400 {
			biosOnly[k] = v
		}
	}
	if _, err := FindRSDP(biosOnly.Read); !errors.Is(err, ErrNoRSDP) {
		t.Fatalf("FindRSDP with an empty BIOS area: %v", err)
	}
	r, err := FindRSDPInRegions(biosOnly.Read, []memmap.Range{{Start: 0x1000, Size: 0x10}, {Start: reclaim, Size: 0x2000}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr != reclaim+0x20 || r.XSDTAddr != xsdtAddr {
		t.Fatalf("found %+v, want the RSDP at %#x", r, reclaim+0x20)
	}
	if _, err := FindRSDPInRegions(biosOnly.Read, []memmap.Range{{Start: reclaim, Size: 0x10}}); !errors.Is(err, ErrNoRSDPInRegions) {
		t.Fatalf("a region too small to hold it: %v", err)
	}
}
