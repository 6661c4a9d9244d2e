// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"errors"
	"fmt"
	"time"

	"github.com/big-iron/big-iron/machine/board/cmos"
)

// CMOS clock ports (IBM PC/AT).
const (
	cmosIndex = 0x70
	cmosData  = 0x71
	// cmosNMIOff keeps NMIs masked while a register is selected.
	cmosNMIOff = 0x80
)

func cmosRead(reg byte) byte {
	Out8(cmosIndex, cmosNMIOff|reg)
	return In8(cmosData)
}

// readRTCOnce reads every clock register once, after the update flag
// cleared.
func readRTCOnce() (cmos.Registers, error) {
	for deadline := time.Now().Add(10 * time.Millisecond); cmosRead(cmos.RegStatusA)&cmos.StatusAUpdating != 0; {
		if time.Now().After(deadline) {
			return cmos.Registers{}, errors.New("the clock stays in its update cycle")
		}
	}
	return cmos.Registers{
		Seconds: cmosRead(cmos.RegSeconds), Minutes: cmosRead(cmos.RegMinutes), Hours: cmosRead(cmos.RegHours),
		Day: cmosRead(cmos.RegDay), Month: cmosRead(cmos.RegMonth), Year: cmosRead(cmos.RegYear),
		Century: cmosRead(cmos.RegCentury), StatusB: cmosRead(cmos.RegStatusB),
	}, nil
}

// ReadRTC reads the CMOS real-time clock, twice until two readings agree
// (an update may land between registers), and decodes it.
func ReadRTC() (time.Time, error) {
	prev, err := readRTCOnce()
	if err != nil {
		return time.Time{}, fmt.Errorf("RTC: %w", err)
	}
	for range 5 {
		cur, err := readRTCOnce()
		if err != nil {
			return time.Time{}, fmt.Errorf("RTC: %w", err)
		}
		if cur == prev {
			t, err := cur.Time()
			if err != nil {
				return time.Time{}, fmt.Errorf("RTC: %w", err)
			}
			return t, nil
		}
		prev = cur
	}
	return time.Time{}, errors.New("RTC: readings keep changing")
}
