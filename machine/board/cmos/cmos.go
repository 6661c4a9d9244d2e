// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package cmos decodes the PC's real-time clock, the MC146818-compatible
// CMOS clock behind I/O ports 0x70 and 0x71: seconds, minutes, hours,
// day, month and year registers in BCD or binary, 12- or 24-hour, as
// status register B says, and the century register the ACPI FADT names
// (0x32 on most machines). Reading the ports is the board's business.
package cmos

import (
	"errors"
	"fmt"
	"time"
)

// Register indexes (written to port 0x70).
const (
	RegSeconds = 0x00
	RegMinutes = 0x02
	RegHours   = 0x04
	RegDay     = 0x07
	RegMonth   = 0x08
	RegYear    = 0x09
	RegStatusA = 0x0A
	RegStatusB = 0x0B
	// RegCentury is the century register of most PCs (ACPI FADT
	// CENTURY names it; 0 there means none).
	RegCentury = 0x32

	// StatusAUpdating is set while the clock updates its registers.
	StatusAUpdating = 0x80
	// StatusB24Hour and StatusBBinary select the hour and number formats.
	StatusB24Hour = 0x02
	StatusBBinary = 0x04
	// hourPM marks an afternoon hour in 12-hour mode.
	hourPM = 0x80
)

// Registers is one reading of the clock.
type Registers struct {
	Seconds, Minutes, Hours, Day, Month, Year byte
	// Century is the century register, 0 if the machine has none.
	Century byte
	StatusB byte
}

// ErrInvalid says the registers do not hold a date: an unset clock, or
// a read that raced an update.
var ErrInvalid = errors.New("cmos: the clock does not hold a valid date")

// Time decodes r as a UTC time. Without a century register years 00-69
// are 2000-2069 and 70-99 are 1970-1999.
func (r Registers) Time() (time.Time, error) {
	conv := func(b byte) (int, bool) {
		if r.StatusB&StatusBBinary != 0 {
			return int(b), true
		}
		hi, lo := b>>4, b&0x0F
		return int(hi)*10 + int(lo), hi <= 9 && lo <= 9
	}
	pm := r.StatusB&StatusB24Hour == 0 && r.Hours&hourPM != 0
	var v [7]int
	for i, b := range []byte{r.Seconds, r.Minutes, r.Hours &^ hourPM, r.Day, r.Month, r.Year, r.Century} {
		n, ok := conv(b)
		if !ok {
			return time.Time{}, fmt.Errorf("%w: register %d is %#x, not BCD", ErrInvalid, i, b)
		}
		v[i] = n
	}
	sec, min, hour, day, month, year, century := v[0], v[1], v[2], v[3], v[4], v[5], v[6]
	if r.StatusB&StatusB24Hour == 0 {
		if hour < 1 || hour > 12 {
			return time.Time{}, fmt.Errorf("%w: 12-hour clock at hour %d", ErrInvalid, hour)
		}
		hour %= 12
		if pm {
			hour += 12
		}
	}
	switch {
	case century != 0:
		year += 100 * century
	case year < 70:
		year += 2000
	default:
		year += 1900
	}
	if sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || month < 1 || month > 12 || year < 1970 || year > 2999 {
		return time.Time{}, fmt.Errorf("%w: %04d-%02d-%02d %02d:%02d:%02d", ErrInvalid, year, month, day, hour, min, sec)
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("%w: day %d of month %d", ErrInvalid, day, month)
	}
	return t, nil
}
