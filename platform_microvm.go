// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago && microvm

package main

import (
	"github.com/big-iron/big-iron/machine/board"
	"github.com/big-iron/big-iron/machine/board/microvm"
)

func platform() *board.Platform { return microvm.Platform() }
