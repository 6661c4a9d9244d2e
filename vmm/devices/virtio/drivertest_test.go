// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"encoding/binary"

	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// The register and ring steps every test driver of this package takes,
// written once: the block, console and network drivers and the fuzzers.

// writeFeatures takes a reset device through 3.1.1's steps 2-5:
// ACKNOWLEDGE and DRIVER, the driver's features in two halves,
// FEATURES_OK (which the caller checks the device kept).
func writeFeatures(w func(off uint64, v uint32), features uint64) {
	w(spec.RegStatus, spec.StatusAcknowledge)
	w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver)
	w(spec.RegDriverFeatSel, 0)
	w(spec.RegDriverFeatures, uint32(features))
	w(spec.RegDriverFeatSel, 1)
	w(spec.RegDriverFeatures, uint32(features>>32))
	w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK)
}

// setQueue configures queue q (4.2.3.2): num entries, its descriptor
// table, driver and device areas, then ready.
func setQueue(w func(off uint64, v uint32), q, num uint32, desc, avail, used uint64) {
	w(spec.RegQueueSel, q)
	w(spec.RegQueueNum, num)
	w(spec.RegQueueDescLow, uint32(desc))
	w(spec.RegQueueDrvLow, uint32(avail))
	w(spec.RegQueueDevLow, uint32(used))
	w(spec.RegQueueReady, 1)
}

// putDesc encodes b as a split-ring descriptor (2.7.5) into e's 16
// bytes, chained to descriptor next unless next is negative.
func putDesc(e []byte, b Buffer, next int) {
	binary.LittleEndian.PutUint64(e[0:], b.Addr)
	binary.LittleEndian.PutUint32(e[8:], b.Len)
	flags := uint16(0)
	if b.Write {
		flags |= spec.DescWrite
	}
	binary.LittleEndian.PutUint16(e[14:], 0)
	if next >= 0 {
		flags |= spec.DescNext
		binary.LittleEndian.PutUint16(e[14:], uint16(next))
	}
	binary.LittleEndian.PutUint16(e[12:], flags)
}
