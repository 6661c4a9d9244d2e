// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"strings"
	"testing"
)

func TestKeepModule(t *testing.T) {
	for rel, want := range map[string]bool{
		"modules.order":                                    true,
		"modules.builtin":                                  true,
		"kernel/fs/ext4/ext4.ko":                           true,
		"kernel/drivers/net/virtio_net.ko":                 true,
		"kernel/drivers/net/tun.ko":                        true,
		"kernel/drivers/net/wireless/ath/ath9k/ath9k.ko":   false,
		"kernel/drivers/net/ethernet/intel/e1000/e1000.ko": false,
		"kernel/drivers/gpu/drm/drm.ko":                    false,
		"kernel/sound/core/snd.ko":                         false,
		"kernel/fsx/y.ko":                                  false,
	} {
		if got := keepModule(rel); got != want {
			t.Errorf("keepModule(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"1G": 1 << 30, "512M": 512 << 20, "67108864": 64 << 20, "2097152K": 2 << 30} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "1T", "-1G", "1M", "G", "1.5G"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) took it", s)
		}
	}
}

// TestRecipe: what makes the image is in its recipe, so that a change
// rebuilds it.
func TestRecipe(t *testing.T) {
	o := options{suite: "bookworm", size: 1 << 30, modules: "build/guest/root/lib/modules/6.1.0-57-amd64"}
	r := o.recipe("ssh-ed25519 AAAA root\n")
	for _, want := range []string{"suite bookworm", "openssh-server", "size 1073741824", "modules 6.1.0-57-amd64", "key ssh-ed25519 AAAA root\n"} {
		if !strings.Contains(r, want) {
			t.Errorf("recipe has no %q:\n%s", want, r)
		}
	}
	if o.recipe("ssh-ed25519 BBBB root") == r {
		t.Error("another key, the same recipe")
	}
}
