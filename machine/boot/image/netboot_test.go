// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package image

import (
	"slices"
	"strings"
	"testing"
)

func TestIPXEScript(t *testing.T) {
	s, err := IPXEScript("bigiron.mb", "console=ttyS0 bigiron.peers=${peers}")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if lines[0] != "#!ipxe" {
		t.Errorf("first line %q, want #!ipxe", lines[0])
	}
	if want := "kernel bigiron.mb console=ttyS0 bigiron.peers=${peers} bigiron.mac=${netX/mac}"; !slices.Contains(lines, want) {
		t.Errorf("script lacks %q:\n%s", want, s)
	}
	if lines[len(lines)-1] != "boot" {
		t.Errorf("last line %q, want boot", lines[len(lines)-1])
	}
}

func TestGRUBConfig(t *testing.T) {
	s, err := GRUBConfig("/bigiron.mb", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, "\tmultiboot /bigiron.mb bigiron.mac=$net_default_mac\n\tboot\n") {
		t.Errorf("config:\n%s", s)
	}
	if strings.Count(s, "{") != 1 || strings.Count(s, "}") != 1 {
		t.Errorf("unbalanced menuentry:\n%s", s)
	}
}

func TestNetbootRejectsInjection(t *testing.T) {
	for _, bad := range []string{"a\nboot evil", "x; reboot", `q"uote`, "back\\slash", "tab\there", "\x7f"} {
		if _, err := IPXEScript("bigiron.mb", bad); err == nil {
			t.Errorf("IPXEScript accepted %q", bad)
		}
		if _, err := GRUBConfig("/bigiron.mb", bad); err == nil {
			t.Errorf("GRUBConfig accepted %q", bad)
		}
	}
	if _, err := IPXEScript("two words", ""); err == nil {
		t.Error("file name with a space accepted")
	}
	if _, err := GRUBConfig("", ""); err == nil {
		t.Error("empty path accepted")
	}
}
