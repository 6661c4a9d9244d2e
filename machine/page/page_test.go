// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package page

import "testing"

func TestSize(t *testing.T) {
	size, shift := Size, Shift
	if size != 4096 || size != 1<<shift {
		t.Errorf("Size = %d, Shift = %d", size, shift)
	}
}
