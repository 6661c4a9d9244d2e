// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"github.com/big-iron/big-iron/board"
	"github.com/big-iron/big-iron/hyperkernel/shell"
)

// startNetwork brings up the NICs the board found and returns the shell
// commands of the network layer.
func startNetwork(p *board.Platform) []*shell.Command {
	return nil
}
