// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package node

import (
	"errors"

	"github.com/big-iron/big-iron/netstack/cluster"
)

// developmentKey is the published cluster key of nodes booted without
// bigiron.key: fine for emulators on one host, never for a real network.
const developmentKey = "big-iron development cluster key"

// ErrNoKey refuses the development key on a machine that is not an
// emulator without bigiron.insecure=1.
var ErrNoKey = errors.New("no bigiron.key on a machine that is not an emulator: the cluster stays down; give bigiron.key=<64 hex digits>, or bigiron.insecure=1 to use the published development key")

// ClusterKey returns the cluster key to use and how the shell names it:
// by fingerprint only. Without a key given (key nil) the published
// development key is used on an emulator (emulator says why the machine
// is one; empty on bare metal) or with insecure, and refused elsewhere,
// since anyone who has read this source could join.
func ClusterKey(key []byte, insecure bool, emulator string) ([]byte, string, error) {
	switch {
	case key != nil:
		return key, "fingerprint " + cluster.KeyFingerprint(key), nil
	case insecure:
		return []byte(developmentKey), "development key (bigiron.insecure=1: anyone can join)", nil
	case emulator != "":
		return []byte(developmentKey), "development key (emulator: " + emulator + "; anyone can join)", nil
	}
	return nil, "", ErrNoKey
}
