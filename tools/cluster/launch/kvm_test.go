// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKVM(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dev     bool
		modules []string
		want    string // "" for usable, else part of the error
	}{
		{"no device", false, []string{"kvm", "kvm_intel"}, "no such file"},
		{"intel", true, []string{"kvm", "kvm_intel"}, ""},
		{"amd", true, []string{"kvm", "kvm_amd"}, ""},
		{"pvm", true, []string{"kvm", "kvm_pvm"}, "kvm_pvm"},
		{"no vendor module", true, []string{"kvm"}, "neither kvm_intel nor kvm_amd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dev := filepath.Join(root, "kvm")
			if tc.dev {
				if err := os.WriteFile(dev, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range tc.modules {
				if err := os.MkdirAll(filepath.Join(root, "sys", "module", m), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			err := KVM(dev, filepath.Join(root, "sys"))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("KVM = %v, want usable", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("KVM = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
