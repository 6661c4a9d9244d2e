// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package board

// PCI ids of the network controllers big-iron has drivers for or plans
// them (PCI-SIG vendor ids: Intel 0x8086, Red Hat/virtio 0x1af4).
var knownNICs = map[[2]uint16]string{
	{0x8086, 0x100e}: "e1000",      // 82540EM (QEMU, Bochs)
	{0x8086, 0x100f}: "e1000",      // 82545EM
	{0x8086, 0x10d3}: "e1000e",     // 82574L (QEMU q35 default)
	{0x8086, 0x10c9}: "igb",        // 82576
	{0x8086, 0x1533}: "igb",        // I210
	{0x8086, 0x1521}: "igb",        // I350
	{0x8086, 0x10fb}: "ixgbe",      // 82599ES
	{0x8086, 0x1563}: "ixgbe",      // X550
	{0x1af4, 0x1000}: "virtio-net", // transitional
	{0x1af4, 0x1041}: "virtio-net", // modern
}

// PCIClassNetwork is the PCI base class of network controllers (PCI Code
// and ID Assignment Specification, base class 02h).
const PCIClassNetwork = 0x02

// NICKind names the driver family of a PCI network controller, or
// "unsupported" for one big-iron has no driver for.
func NICKind(vendor, device uint16) string {
	if k, ok := knownNICs[[2]uint16{vendor, device}]; ok {
		return k
	}
	return "unsupported"
}
