// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/console/shell"
)

// testValues is what testArgs declares.
type testValues struct {
	VCPUs   int
	Mem     uint64
	Cmdline string
	Force   bool
	Place   string
	Iters   int
	Guest   string
}

// testArgs declares one key of each kind, with defaults.
func testArgs(v *testValues) *Args {
	*v = testValues{VCPUs: 1, Mem: 128 << 20, Place: "spread", Iters: 10}
	var a Args
	a.Int("vcpus", &v.VCPUs, 1, 64)
	a.Size("mem", &v.Mem)
	a.String("cmdline", &v.Cmdline)
	a.Flag("force", &v.Force)
	a.Choice("place", &v.Place, "spread", "node0")
	a.Int("iters", &v.Iters, 1, math.MaxInt)
	a.Func("guest", func(s string) error {
		if s != "linux" && s != "counter" {
			return errors.New("want linux or counter")
		}
		v.Guest = s
		return nil
	})
	return &a
}

func TestArgsParse(t *testing.T) {
	def := testValues{VCPUs: 1, Mem: 128 << 20, Place: "spread", Iters: 10}
	with := func(f func(*testValues)) testValues { v := def; f(&v); return v }
	for _, tc := range []struct {
		words []string
		want  testValues
		rest  []string // ParseMixed's other words
		err   string   // "" for none; else a part of the error
	}{
		{words: nil, want: def},
		{words: []string{"vcpus=2", "mem=512M"}, want: with(func(v *testValues) { v.VCPUs, v.Mem = 2, 512<<20 })},
		{words: []string{"mem=4096"}, want: with(func(v *testValues) { v.Mem = 4096 })},
		{words: []string{"mem=64K"}, want: with(func(v *testValues) { v.Mem = 64 << 10 })},
		{words: []string{"mem=2G"}, want: with(func(v *testValues) { v.Mem = 2 << 30 })},
		{words: []string{"cmdline=console=ttyS0 quiet"}, want: with(func(v *testValues) { v.Cmdline = "console=ttyS0 quiet" })},
		{words: []string{"cmdline="}, want: def},
		{words: []string{"force"}, want: with(func(v *testValues) { v.Force = true })},
		{words: []string{"force=on"}, want: with(func(v *testValues) { v.Force = true })},
		{words: []string{"force=off"}, want: def},
		{words: []string{"force=yes"}, want: with(func(v *testValues) { v.Force = true })},
		{words: []string{"place=node0"}, want: with(func(v *testValues) { v.Place = "node0" })},
		{words: []string{"iters=200000000"}, want: with(func(v *testValues) { v.Iters = 200000000 })},
		{words: []string{"guest=linux", "vcpus=64"}, want: with(func(v *testValues) { v.Guest, v.VCPUs = "linux", 64 })},
		{words: []string{"1", "vcpus=3", "x"}, want: with(func(v *testValues) { v.VCPUs = 3 }), rest: []string{"1", "x"}},

		{words: []string{"vcpus"}, err: `"vcpus" is not key=value`, rest: []string{"vcpus"}, want: def},
		{words: []string{"=2"}, err: `"=2" is not key=value`},
		{words: []string{"cpus=2"}, err: `unknown key "cpus" (known: vcpus, mem, cmdline, force, place, iters, guest)`},
		{words: []string{"vcpus=1", "vcpus=2"}, err: `"vcpus" given twice`},
		{words: []string{"force", "force=off"}, err: `"force" given twice`},
		{words: []string{"vcpus=0"}, err: `vcpus="0": want a number from 1 to 64`},
		{words: []string{"vcpus=65"}, err: `vcpus="65": want a number from 1 to 64`},
		{words: []string{"vcpus=x"}, err: `vcpus="x": want a number from 1 to 64`},
		{words: []string{"iters=0"}, err: `iters="0": want a number from 1 up`},
		{words: []string{"mem=0"}, err: `mem="0": want a number of bytes`},
		{words: []string{"mem=12Q"}, err: `mem="12Q"`},
		{words: []string{"mem="}, err: `mem=""`},
		{words: []string{"mem=M"}, err: `mem="M"`},
		{words: []string{"mem=-1M"}, err: `mem="-1M"`},
		{words: []string{"mem=1T"}, err: `mem="1T"`},
		{words: []string{"mem=99999999999G"}, err: `mem="99999999999G"`},
		{words: []string{"force=maybe"}, err: `force="maybe": want on or off`},
		{words: []string{"place=everywhere"}, err: `place="everywhere": want spread or node0`},
		{words: []string{"guest=doom"}, err: `guest="doom": want linux or counter`},
	} {
		for _, mixed := range []bool{false, true} {
			var got testValues
			a := testArgs(&got)
			var rest []string
			var err error
			if mixed {
				rest, err = a.ParseMixed(tc.words)
			} else {
				err = a.Parse(tc.words)
			}
			wantErr, wantRest := tc.err, tc.rest
			if mixed && tc.err != "" && len(tc.rest) > 0 {
				wantErr = "" // the word that is no key=value is one of the others
			}
			if !mixed && len(tc.rest) > 0 && tc.err == "" {
				wantErr = "is not key=value"
			}
			if !mixed {
				wantRest = nil
			}
			switch {
			case wantErr == "" && err != nil:
				t.Errorf("Parse(%q) mixed=%v: %v", tc.words, mixed, err)
			case wantErr != "" && err == nil:
				t.Errorf("Parse(%q) mixed=%v accepted, want %q", tc.words, mixed, wantErr)
			case wantErr != "" && (!errors.Is(err, shell.ErrUsage) || !strings.Contains(err.Error(), wantErr)):
				t.Errorf("Parse(%q) mixed=%v: error %q, want a usage error with %q", tc.words, mixed, err, wantErr)
			case wantErr == "":
				if got != tc.want {
					t.Errorf("Parse(%q) mixed=%v = %+v, want %+v", tc.words, mixed, got, tc.want)
				}
				if !reflect.DeepEqual(rest, wantRest) {
					t.Errorf("ParseMixed(%q) others = %q, want %q", tc.words, rest, wantRest)
				}
			}
		}
	}
}

func TestArgsGiven(t *testing.T) {
	var v testValues
	a := testArgs(&v)
	if err := a.Parse([]string{"vcpus=1"}); err != nil {
		t.Fatal(err)
	}
	if !a.Given("vcpus") || a.Given("mem") {
		t.Errorf("Given: vcpus %v, mem %v", a.Given("vcpus"), a.Given("mem"))
	}
	if err := a.Parse(nil); err != nil || a.Given("vcpus") {
		t.Errorf("a second Parse keeps the first's keys: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"4096": 4096, "64K": 64 << 10, "128M": 128 << 20, "2G": 2 << 30, "1024G": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "M", "-1M", "1T", "99999999999G", "0", "1025G", "+", "1.5G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// FuzzParse: no input panics the parser; every failure is a usage error;
// what it accepts holds values in their declared ranges, and parsing the
// same words again gives the same result.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "vcpus=2 mem=512M", "cmdline=a=b", "force", "force=off", "1 x", "=", "mem=1T", "vcpus=1 vcpus=1", "place=node0 iters=9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words := strings.Fields(line)
		var v testValues
		a := testArgs(&v)
		rest, err := a.ParseMixed(words)
		if err != nil {
			if !errors.Is(err, shell.ErrUsage) {
				t.Fatalf("ParseMixed(%q): %v is not a usage error", words, err)
			}
			return
		}
		if v.VCPUs < 1 || v.VCPUs > 64 || v.Mem == 0 || v.Mem > maxSize || v.Iters < 1 ||
			(v.Place != "spread" && v.Place != "node0") || (v.Guest != "" && v.Guest != "linux" && v.Guest != "counter") {
			t.Fatalf("ParseMixed(%q) = %+v: a value out of its range", words, v)
		}
		for _, r := range rest {
			if strings.Contains(r, "=") {
				t.Fatalf("ParseMixed(%q) returned key=value word %q as another", words, r)
			}
		}
		var again testValues
		b := testArgs(&again)
		rest2, err := b.ParseMixed(words)
		if err != nil || again != v || !reflect.DeepEqual(rest, rest2) {
			t.Fatalf("ParseMixed(%q) twice: %+v %q, then %+v %q %v", words, v, rest, again, rest2, err)
		}
		if len(rest) == 0 {
			var w testValues
			if err := testArgs(&w).Parse(words); err != nil || w != v {
				t.Fatalf("Parse(%q) = %+v, %v; ParseMixed gave %+v", words, w, err, v)
			}
		}
	})
}
