// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"encoding/binary"
	"errors"
)

// rdrand64 executes RDRAND with a 64-bit destination and reports the
// carry flag: false means no random number was ready (Intel SDM Vol. 1,
// 7.3.17.1 "RDRAND Instruction").
func rdrand64() (v uint64, ok bool)

// rdrandRetries is how often RDRAND is retried before the RNG counts as
// failed (Intel's Digital Random Number Generator guide recommends 10).
const rdrandRetries = 10

// ErrNoRNG says the CPU gives no random numbers: no RDRAND, or RDRAND
// that keeps failing or returns a constant.
var ErrNoRNG = errors.New("this CPU has no working random number generator (RDRAND)")

// Random fills b from RDRAND, checking CPUID first and the carry flag of
// every result; the runtime's own source (crypto/rand on tamago) ignores
// the flag. cpuid is the board's CPUID.
func Random(cpuid func(leaf, sub uint32) (a, b, c, d uint32), b []byte) error {
	if _, _, ecx, _ := cpuid(1, 0); ecx&(1<<30) == 0 {
		return ErrNoRNG
	}
	var last uint64
	for i := 0; i < len(b); i += 8 {
		v, err := rdrandRetry()
		if err != nil {
			return err
		}
		if i > 0 && v == last {
			return ErrNoRNG // two equal 64-bit draws: a stuck generator
		}
		last = v
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], v)
		copy(b[i:], w[:])
	}
	return nil
}

func rdrandRetry() (uint64, error) {
	for range rdrandRetries {
		if v, ok := rdrand64(); ok {
			return v, nil
		}
	}
	return 0, ErrNoRNG
}
