// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package spec

import "testing"

// TestNetLayout checks the network device's numbers against each other:
// the header's fields tile its 12 bytes, the configuration's its size.
func TestNetLayout(t *testing.T) {
	hdr := []struct{ off, size int }{{NetHdrFlags, 1}, {NetHdrGSOType, 1}, {NetHdrHdrLen, 2},
		{NetHdrGSOSize, 2}, {NetHdrCsumStart, 2}, {NetHdrCsumOffset, 2}, {NetHdrNumBuffers, 2}}
	at := 0
	for _, f := range hdr {
		if f.off != at {
			t.Errorf("header field at %d, want %d", f.off, at)
		}
		at += f.size
	}
	if at != NetHdrLen {
		t.Errorf("header fields end at %d, NetHdrLen is %d", at, NetHdrLen)
	}
	cfg := []struct{ off, size uint64 }{{NetConfigMAC, 6}, {NetConfigStatus, 2}, {NetConfigMaxPairs, 2}, {NetConfigMTU, 2}}
	var end uint64
	for _, f := range cfg {
		if f.off != end {
			t.Errorf("config field at %d, want %d", f.off, end)
		}
		end += f.size
	}
	if end != NetConfigSize {
		t.Errorf("config fields end at %d, NetConfigSize is %d", end, NetConfigSize)
	}
	for _, f := range []uint64{NetFeatureCSUM, NetFeatureGuestCSUM, NetFeatureMTU, NetFeatureMAC, NetFeatureMergeRxBuf, NetFeatureStatus} {
		if f == 0 || f&(f-1) != 0 || f >= FeatureVersion1 {
			t.Errorf("feature %#x is not one device-specific bit", f)
		}
	}
}
