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

	resMemory32Fixed = 0x86 // large item, 9 bytes of data (6.4.3.4)
	resExtIRQ        = 0x89 // large item (6.4.3.6)
	resEndTag        = 0x79 // small item, 1 byte (6.4.2.9)

	extIRQConsumer   = 1 << 0
	extIRQEdge       = 1 << 1
	memReadWrite     = 1
	virtioMMIOHID    = "LNRO0005" // Linux's virtio-mmio ACPI id
	virtioDevicePref = "VR"
)

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

// dsdtBody is the AML of the DSDT: \_SB with one device per virtio-mmio
// window.
func dsdtBody(devs []VirtioMMIO) ([]byte, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	if len(devs) > 256 {
		return nil, fmt.Errorf("acpi: %d virtio devices: at most 256", len(devs))
	}
	var sb []byte
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
