// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build linux

package main

import (
	"slices"
	"testing"
)

func TestRootDevice(t *testing.T) {
	for _, c := range []struct {
		cmdline, want string
		bad           bool
	}{
		{cmdline: "console=ttyS0 nokaslr tsc=reliable"},
		{cmdline: "console=ttyS0 bigiron.root=/dev/vda tsc=reliable", want: "/dev/vda"},
		{cmdline: "bigiron.root=vdb", want: "/dev/vdb"},
		{cmdline: "bigiron.root=vda bigiron.root=/dev/vdc\n", want: "/dev/vdc"},
		// root= is the kernel's own, not ours.
		{cmdline: "root=/dev/vda"},
		{cmdline: "bigiron.root=", bad: true},
		{cmdline: "bigiron.root=/dev/", bad: true},
		{cmdline: "bigiron.root=/etc/passwd", bad: true},
		{cmdline: "bigiron.root=/dev/../etc/x", bad: true},
		{cmdline: "bigiron.root=../vda", bad: true},
	} {
		got, err := RootDevice(c.cmdline)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("RootDevice(%q) = %q, %v; want %q, error %v", c.cmdline, got, err, c.want, c.bad)
		}
	}
}

func TestModulePaths(t *testing.T) {
	got := ModulePaths("# virtio\n/lib/bigiron/virtio.ko\n\n  /lib/bigiron/virtio_ring.ko \n")
	if want := []string{"/lib/bigiron/virtio.ko", "/lib/bigiron/virtio_ring.ko"}; !slices.Equal(got, want) {
		t.Errorf("ModulePaths = %q, want %q", got, want)
	}
}
