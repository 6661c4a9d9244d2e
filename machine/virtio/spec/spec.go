// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package spec holds the numbers of the virtio specification (OASIS
// "Virtual I/O Device (VIRTIO) Version 1.2") that both of its sides use
// here: the device models the hyperkernel gives its guests
// (vmm/devices/virtio) and the drivers of the virtio devices a
// node itself runs on (netstack/virtionet, and machine/board/x86's probe). Only
// constants: what each side does with them stays in its own package.
package spec

// MMIO transport register offsets, version 2 (4.2.2 "MMIO Device Register
// Layout", Table 4.1).
const (
	RegMagic          = 0x000
	RegVersion        = 0x004
	RegDeviceID       = 0x008
	RegVendorID       = 0x00c
	RegDeviceFeatures = 0x010
	RegDeviceFeatSel  = 0x014
	RegDriverFeatures = 0x020
	RegDriverFeatSel  = 0x024
	RegQueueSel       = 0x030
	RegQueueNumMax    = 0x034
	RegQueueNum       = 0x038
	RegQueueReady     = 0x044
	RegQueueNotify    = 0x050
	RegInterrupt      = 0x060 // InterruptStatus
	RegInterruptACK   = 0x064
	RegStatus         = 0x070
	RegQueueDescLow   = 0x080
	RegQueueDescHigh  = 0x084
	RegQueueDrvLow    = 0x090
	RegQueueDrvHigh   = 0x094
	RegQueueDevLow    = 0x0a0
	RegQueueDevHigh   = 0x0a4
	RegSHMLenLow      = 0x0b0
	RegSHMLenHigh     = 0x0b4
	RegConfigGen      = 0x0fc
	RegConfig         = 0x100 // device-specific configuration space
)

// MagicValue is what RegMagic reads: "virt" little-endian.
const MagicValue = 0x74726976

// Device status bits (2.1 "Device Status Field").
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// Interrupt status bits (4.2.2, InterruptStatus).
const (
	InterruptUsedBuffer   = 1
	InterruptConfigChange = 2
)

// FeatureVersion1 is VIRTIO_F_VERSION_1 (6 "Reserved Feature Bits"),
// required of version 2 MMIO devices.
const FeatureVersion1 = 1 << 32

// Split virtqueue descriptor flags (2.7.5 "The Virtqueue Descriptor
// Table").
const (
	DescNext     = 1
	DescWrite    = 2
	DescIndirect = 4
)

// Device IDs (5 "Device Types").
const (
	DeviceNet     = 1
	DeviceBlock   = 2
	DeviceConsole = 3
)
