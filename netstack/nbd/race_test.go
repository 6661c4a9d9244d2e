// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build race

package nbd

// raceEnabled: the race detector allocates, so allocation counts mean
// nothing under it.
const raceEnabled = true
