// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package layering holds tests of the module's import structure: no
// top-level folder imports another that leads back to it (board, boot,
// hyperkernel, netstack, vmx, ept and console form layers, not a
// tangle), and the shell's line interpreter (console/shell) is imported
// only by the command layer (console) and the image's main package.
//
// The tests read `go list -e -deps -json ./...` and, for files the host
// build leaves out (the tamago-only ones), parse their imports, so the
// bare-metal build is held to the same rules.
package layering
