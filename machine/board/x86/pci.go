// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"fmt"

	"github.com/usbarmory/tamago/soc/intel/pci"

	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// PCI configuration space offset of the class code register (PCI Local Bus
// Specification 3.0, 6.2.1).
const pciClassRevision = 0x08

// PCINICs lists the network controllers on PCI buses 0-3 (function 0).
func PCINICs() []board.NIC {
	var nics []board.NIC
	for bus := 0; bus < 4; bus++ {
		for _, d := range pci.Devices(bus) {
			if d.Read(0, pciClassRevision)>>24 != board.PCIClassNetwork {
				continue
			}
			nics = append(nics, board.NIC{
				Kind:   board.NICKind(d.Vendor, d.Device),
				Where:  fmt.Sprintf("pci %02x:%02x.0", d.Bus, d.Slot),
				Vendor: d.Vendor,
				Device: d.Device,
				PCI:    true,
				Bus:    uint8(d.Bus),
				Slot:   uint8(d.Slot),
			})
		}
	}
	return nics
}

// VirtioMMIONICs probes n virtio-mmio transports spaced stride bytes apart
// from base and lists the network devices.
func VirtioMMIONICs(base uint64, n int, stride uint64) []board.NIC {
	var nics []board.NIC
	for i := 0; i < n; i++ {
		a := base + uint64(i)*stride
		if *(*uint32)(physPtr(a + spec.RegMagic)) != spec.MagicValue {
			continue
		}
		if *(*uint32)(physPtr(a + spec.RegDeviceID)) != spec.DeviceNet {
			continue
		}
		nics = append(nics, board.NIC{
			Kind:   "virtio-net",
			Where:  fmt.Sprintf("virtio-mmio %#x", a),
			Vendor: uint16(*(*uint32)(physPtr(a + spec.RegVendorID))),
			Device: spec.DeviceNet,
			MMIO:   a,
		})
	}
	return nics
}
