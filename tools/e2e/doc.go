// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package e2e boots the real big-iron image in emulators (QEMU, Bochs) and
// drives its shell over the serial line. Its tests are the end-to-end tier
// of `make test`; they run when BIGIRON_E2E=1 and skip, naming what is
// missing, where the tamago toolchain or an emulator is absent.
package e2e
