// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago && !guestlinux

package main

// guestFiles returns nothing: this image was built without a guest
// operating system (GUEST=linux adds one).
func guestFiles() (kernel, initrd []byte) { return nil, nil }
