// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago && guestlinux

package main

import (
	"embed"
	"io/fs"
)

// guestImage is the guest operating system this image carries (`make
// image GUEST=linux` puts Debian's kernel and our u-root initramfs in
// build/guest/image first).
//
//go:embed build/guest/image
var guestImage embed.FS

// guestFiles returns the embedded kernel and initramfs (nil if absent).
func guestFiles() (kernel, initrd []byte) {
	kernel, _ = fs.ReadFile(guestImage, "build/guest/image/vmlinuz")
	initrd, _ = fs.ReadFile(guestImage, "build/guest/image/initramfs.cpio.gz")
	return kernel, initrd
}
