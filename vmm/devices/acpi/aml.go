// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package acpi

import (
	"encoding/binary"
	"fmt"
)

// AML encoding of the few objects the DSDT needs (ACPI 6.5, 20.2 "AML
// Grammar Definition"; resource descriptors in 6.4).
const (
	amlZero       = 0x00
	amlNameOp     = 0x08
	amlBytePrefix = 0x0A
	amlString     = 0x0D
	amlDWord      = 0x0C
	amlScopeOp    = 0x10
	amlBufferOp   = 0x11
	amlExtPrefix  = 0x5B
	amlDeviceOp   = 0x82 // after amlExtPrefix
	amlRootChar   = '\\'

	resIO            = 0x47 // small item, 7 bytes of data (6.4.2.5)
	resMemory32Fixed = 0x86 // large item, 9 bytes of data (6.4.3.4)
	resExtIRQ        = 0x89 // large item (6.4.3.6)
	resEndTag        = 0x79 // small item, 1 byte (6.4.2.9)

	extIRQConsumer   = 1 << 0
	extIRQEdge       = 1 << 1
	memReadWrite     = 1
	virtioMMIOHID    = "LNRO0005" // Linux's virtio-mmio ACPI id
	virtioDevicePref = "VR"
)

// SerialPort is a 16550 UART for the DSDT (PNP0501): its I/O ports and
// its global system interrupt (edge-triggered, active high). A
// hardware-reduced platform has no legacy IRQ routing, so an OS finds
// the UART's interrupt only here.
type SerialPort struct {
	Port uint16
	GSI  uint32
	UID  uint32
}

// eisaID compresses a PNP id like "PNP0501" (ACPI 6.5, 19.6.44 EISAID).
func eisaID(id string) uint32 {
	c := func(i int) uint32 { return uint32(id[i]-'@') & 0x1F }
	hex := func(i int) uint32 {
		b := id[i]
		if b >= 'A' {
			return uint32(b-'A') + 10
		}
		return uint32(b - '0')
	}
	mfg := c(0)<<10 | c(1)<<5 | c(2)
	prod := hex(3)<<12 | hex(4)<<8 | hex(5)<<4 | hex(6)
	// bytes: mfg big-endian, then product big-endian
	return mfg>>8 | (mfg&0xFF)<<8 | (prod>>8)<<16 | (prod&0xFF)<<24
}

// serialDevice is the AML of one PNP0501 device.
func serialDevice(name string, sp SerialPort) []byte {
	io := []byte{resIO, 1, byte(sp.Port), byte(sp.Port >> 8), byte(sp.Port), byte(sp.Port >> 8), 1, 8}
	irq := make([]byte, 9)
	irq[0], irq[1], irq[2] = resExtIRQ, 6, 0
	irq[3] = extIRQConsumer | extIRQEdge
	irq[4] = 1
	binary.LittleEndian.PutUint32(irq[5:], sp.GSI)
	crs := append(append(io, irq...), resEndTag, 0)
	hid := []byte{amlDWord, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(hid[1:], eisaID("PNP0501"))
	var body []byte
	body = append(body, name...)
	body = append(body, amlName("_HID", hid)...)
	body = append(body, amlName("_UID", amlInteger(sp.UID))...)
	body = append(body, amlName("_CRS", amlBuffer(crs))...)
	return append(append([]byte{amlExtPrefix, amlDeviceOp}, pkgLength(len(body))...), body...)
}

// VirtioMMIO is a virtio-mmio device for the DSDT: its register window
// and its global system interrupt (level-triggered, active high).
type VirtioMMIO struct {
	Base, Size uint32
	GSI        uint32
}

// pkgLength encodes a PkgLength covering n bytes of content plus the
// PkgLength itself (20.2.4).
func pkgLength(n int) []byte {
	for extra := 0; extra <= 3; extra++ {
		total := n + 1 + extra
		switch {
		case extra == 0 && total < 1<<6:
			return []byte{byte(total)}
		case extra > 0 && total < 1<<(4+8*extra):
			b := []byte{byte(extra<<6) | byte(total&0xF)}
			for i := 0; i < extra; i++ {
				b = append(b, byte(total>>(4+8*i)))
			}
			return b
		}
	}
	panic("acpi: AML package too long")
}

func amlName(name string, value []byte) []byte {
	return append(append([]byte{amlNameOp}, name...), value...)
}

func amlStringValue(s string) []byte {
	return append(append([]byte{amlString}, s...), 0)
}

func amlInteger(v uint32) []byte {
	switch {
	case v == 0:
		return []byte{amlZero}
	case v <= 0xFF:
		return []byte{amlBytePrefix, byte(v)}
	}
	b := []byte{amlDWord, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], v)
	return b
}

// amlBuffer is a Buffer of the bytes b (its size a ByteConst or DWord).
func amlBuffer(b []byte) []byte {
	body := append(amlInteger(uint32(len(b))), b...)
	return append(append([]byte{amlBufferOp}, pkgLength(len(body))...), body...)
}

// virtioResources is the _CRS of a virtio-mmio device.
func virtioResources(d VirtioMMIO) []byte {
	mem := make([]byte, 12)
	mem[0], mem[1], mem[2], mem[3] = resMemory32Fixed, 9, 0, memReadWrite
	binary.LittleEndian.PutUint32(mem[4:], d.Base)
	binary.LittleEndian.PutUint32(mem[8:], d.Size)
	irq := make([]byte, 9)
	irq[0], irq[1], irq[2] = resExtIRQ, 6, 0
	irq[3] = extIRQConsumer // level-triggered, active high, exclusive
	irq[4] = 1              // one interrupt
	binary.LittleEndian.PutUint32(irq[5:], d.GSI)
	out := append(mem, irq...)
	return append(out, resEndTag, 0) // checksum 0: "treated as correct"
}

// dsdtBody is the AML of the DSDT: \_SB with the serial ports and one
// device per virtio-mmio window.
func dsdtBody(serial []SerialPort, devs []VirtioMMIO) ([]byte, error) {
	if len(devs) == 0 && len(serial) == 0 {
		return nil, nil
	}
	if len(serial) > 16 {
		return nil, fmt.Errorf("acpi: %d serial ports: at most 16", len(serial))
	}
	if len(devs) > 256 {
		return nil, fmt.Errorf("acpi: %d virtio devices: at most 256", len(devs))
	}
	var sb []byte
	for i, sp := range serial {
		sb = append(sb, serialDevice(fmt.Sprintf("COM%X", i+1), sp)...)
	}
	for i, d := range devs {
		if d.Size == 0 || uint64(d.Base)+uint64(d.Size) > 1<<32 {
			return nil, fmt.Errorf("acpi: virtio device %d: window %#x+%#x", i, d.Base, d.Size)
		}
		name := fmt.Sprintf("%s%02X", virtioDevicePref, i)
		var body []byte
		body = append(body, name...)
		body = append(body, amlName("_HID", amlStringValue(virtioMMIOHID))...)
		body = append(body, amlName("_UID", amlInteger(uint32(i)))...)
		body = append(body, amlName("_CRS", amlBuffer(virtioResources(d)))...)
		dev := append([]byte{amlExtPrefix, amlDeviceOp}, pkgLength(len(body))...)
		sb = append(sb, append(dev, body...)...)
	}
	scope := append([]byte{amlRootChar}, "_SB_"...)
	scope = append(scope, sb...)
	return append(append([]byte{amlScopeOp}, pkgLength(len(scope))...), scope...), nil
}
