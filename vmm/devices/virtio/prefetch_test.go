// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"fmt"
	"slices"
	"testing"
)

// prefetchingMemory is guest memory that records, in order, the pages a
// device asks for ahead (devices.Prefetcher) and the copies it makes.
type prefetchingMemory struct {
	flat
	ops []string
}

func (m *prefetchingMemory) Prefetch(gpa, n uint64, write bool) {
	m.ops = append(m.ops, fmt.Sprintf("prefetch %#x+%d write=%v", gpa, n, write))
}

func (m *prefetchingMemory) ReadAt(p []byte, a uint64) error {
	m.ops = append(m.ops, fmt.Sprintf("read %#x+%d", a, len(p)))
	return m.flat.ReadAt(p, a)
}

func (m *prefetchingMemory) WriteAt(p []byte, a uint64) error {
	m.ops = append(m.ops, fmt.Sprintf("write %#x+%d", a, len(p)))
	return m.flat.WriteAt(p, a)
}

// A request's scattered buffers are all handed to a Prefetcher before
// the first is copied, as far as the copy goes: on a distributed VM
// the device node then waits about once for the pages another node
// holds, not once per buffer.
func TestDevicesPrefetchBuffers(t *testing.T) {
	bufs := []Buffer{{Addr: 0x1000, Len: 4096}, {Addr: 0x5000, Len: 4096}, {Addr: 0x3000, Len: 512}}
	for _, tc := range []struct {
		name string
		copy func(m *prefetchingMemory) error
		want []string
	}{
		{"gather", func(m *prefetchingMemory) error { return gather(m, bufs, make([]byte, 4096+100)) }, []string{
			"prefetch 0x1000+4096 write=false", "prefetch 0x5000+100 write=false", "read 0x1000+4096", "read 0x5000+100"}},
		{"scatter", func(m *prefetchingMemory) error {
			_, err := scatter(m, bufs, make([]byte, 4096+4096+512))
			return err
		}, []string{
			"prefetch 0x1000+4096 write=true", "prefetch 0x5000+4096 write=true", "prefetch 0x3000+512 write=true",
			"write 0x1000+4096", "write 0x5000+4096", "write 0x3000+512"}},
	} {
		m := &prefetchingMemory{flat: make(flat, 0x8000)}
		if err := tc.copy(m); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(m.ops, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, m.ops, tc.want)
		}
	}
}
