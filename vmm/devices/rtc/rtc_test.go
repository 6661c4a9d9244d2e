// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package rtc

import (
	"testing"
	"time"
)

func read(r *RTC, idx uint8) uint8 {
	r.Out(PortIndex, 1, uint32(idx))
	return uint8(r.In(PortData, 1))
}

func write(r *RTC, idx, v uint8) {
	r.Out(PortIndex, 1, uint32(idx))
	r.Out(PortData, 1, uint32(v))
}

func TestReadsTheClock(t *testing.T) {
	now := time.Date(2026, 11, 25, 21, 7, 9, 0, time.UTC)
	r := New(func() time.Time { return now })
	for _, c := range []struct {
		idx  uint8
		want uint8
	}{{regSeconds, 0x09}, {regMinutes, 0x07}, {regHours, 0x21}, {regDay, 0x25}, {regMonth, 0x11}, {regYear, 0x26}, {regCentury, 0x20}, {regWeekday, 0x04}, {regD, dValid}, {regA, aDiv}} {
		if got := read(r, c.idx|0x80); got != c.want { // NMI-mask bit ignored
			t.Errorf("register %#x = %#x, want %#x", c.idx, got, c.want)
		}
	}
	write(r, regB, bBinary) // binary, 12-hour
	if got := read(r, regHours); got != 9|pmFlag {
		t.Errorf("12-hour binary hour %#x, want %#x", got, 9|pmFlag)
	}
	if got := read(r, regYear); got != 26 {
		t.Errorf("binary year %d", got)
	}
}

func TestSettingMovesTheGuestClock(t *testing.T) {
	host := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := New(func() time.Time { return host })
	write(r, regYear, 0x30)
	write(r, regMonth, 0x06)
	write(r, regHours, 0x13)
	host = host.Add(time.Minute) // the clock keeps running from there
	if y, m, h, mi := read(r, regYear), read(r, regMonth), read(r, regHours), read(r, regMinutes); y != 0x30 || m != 0x06 || h != 0x13 || mi != 0x01 {
		t.Errorf("after setting: year %#x month %#x hour %#x minute %#x", y, m, h, mi)
	}
	write(r, regMonth, 0x13) // month 13: ignored
	if read(r, regMonth) != 0x06 {
		t.Error("an invalid month changed the clock")
	}
	write(r, 0x40, 0xAB)
	if read(r, 0x40) != 0xAB {
		t.Error("CMOS RAM lost a byte")
	}
	write(r, regD, 0)
	if read(r, regD) != dValid {
		t.Error("register D is writable")
	}
}

func FuzzPorts(f *testing.F) {
	f.Add([]byte{0x70, 0x0B, 0x71, 0x04, 0x70, 0x04, 0x71, 0x99})
	f.Fuzz(func(t *testing.T, ops []byte) {
		r := New(func() time.Time { return time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC) })
		for i := 0; i+1 < len(ops); i += 2 {
			port := uint16(PortIndex + ops[i]&1)
			if ops[i]&2 != 0 {
				r.Out(port, 1, uint32(ops[i+1]))
			} else {
				_ = r.In(port, 1)
			}
		}
		if y := r.time().Year(); y < 0 || y > 9999 {
			t.Fatalf("year %d", y)
		}
	})
}
