// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package cmos

import (
	"errors"
	"testing"
	"time"
)

func TestTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Registers
		want time.Time
	}{
		{"BCD 24h with century", Registers{0x59, 0x07, 0x23, 0x02, 0x12, 0x26, 0x20, StatusB24Hour}, time.Date(2026, 12, 2, 23, 7, 59, 0, time.UTC)},
		{"binary 24h", Registers{5, 4, 3, 29, 2, 24, 20, StatusB24Hour | StatusBBinary}, time.Date(2024, 2, 29, 3, 4, 5, 0, time.UTC)},
		{"BCD 12h pm", Registers{0, 0, 0x80 | 0x11, 0x01, 0x01, 0x00, 0, 0}, time.Date(2000, 1, 1, 23, 0, 0, 0, time.UTC)},
		{"BCD 12h midnight", Registers{0, 0, 0x12, 0x01, 0x01, 0x99, 0, 0}, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"BCD 12h noon", Registers{0, 0, 0x80 | 0x12, 0x15, 0x06, 0x30, 0, 0}, time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)},
	} {
		got, err := tc.r.Time()
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for name, r := range map[string]Registers{
		"not BCD":      {0x5A, 0, 0, 1, 1, 0, 0x20, StatusB24Hour},
		"month 13":     {0, 0, 0, 1, 0x13, 0, 0x20, StatusB24Hour},
		"day 0":        {0, 0, 0, 0, 1, 0, 0x20, StatusB24Hour},
		"31 February":  {0, 0, 0, 0x31, 0x02, 0x26, 0x20, StatusB24Hour},
		"hour 0 of 12": {0, 0, 0, 1, 1, 0, 0, 0},
		"all ones":     {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0},
		"century 10":   {0x30, 0x30, 0x02, 0x30, 0x10, 0x30, 0x10, 0x30}, // found by FuzzTime: year 1030
	} {
		if got, err := r.Time(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, %v; want ErrInvalid", name, got, err)
		}
	}
}

func FuzzTime(f *testing.F) {
	f.Add([]byte{0x59, 0x07, 0x23, 0x02, 0x12, 0x26, 0x20, StatusB24Hour})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 8 {
			return
		}
		r := Registers{b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]}
		got, err := r.Time()
		if err == nil && (got.Year() < 1970 || got.Year() > 2999) {
			t.Fatalf("%+v decoded to %v", r, got)
		}
	})
}
