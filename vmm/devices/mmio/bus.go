// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package mmio

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/devices"
)

// window is one device's register range.
type window struct {
	base, size uint64
	name       string
	dev        devices.MMIODevice
}

// Bus maps guest-physical register windows to device models. A VM has a
// handful of windows, so lookup is a linear scan; it never allocates.
type Bus struct {
	windows []window
}

// Register claims [base, base+size) for dev. Windows may not overlap.
func (b *Bus) Register(base, size uint64, name string, dev devices.MMIODevice) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("mmio: %s: bad window %#x+%#x", name, base, size)
	}
	for _, w := range b.windows {
		if base < w.base+w.size && w.base < base+size {
			return fmt.Errorf("mmio: %s at %#x+%#x overlaps %s at %#x+%#x", name, base, size, w.name, w.base, w.size)
		}
	}
	b.windows = append(b.windows, window{base, size, name, dev})
	return nil
}

// Lookup returns the device whose window holds gpa, and gpa's offset in
// it.
func (b *Bus) Lookup(gpa uint64) (devices.MMIODevice, uint64, bool) {
	for i := range b.windows {
		w := &b.windows[i]
		if gpa >= w.base && gpa-w.base < w.size {
			return w.dev, gpa - w.base, true
		}
	}
	return nil, 0, false
}
