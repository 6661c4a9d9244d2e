// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleOrder reads the dependencies of Debian's virtio modules
// (make guest extracts them) and checks each comes after what it needs.
func TestModuleOrder(t *testing.T) {
	dirs, _ := filepath.Glob("../../build/guest/root/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("missing: Debian's kernel modules (make guest extracts them to build/guest/root)")
	}
	order, err := moduleOrder(dirs[0], modules)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range order {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".ko"))
	}
	t.Logf("load order: %v", names)
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	for _, p := range order {
		deps, err := moduleDepends(p)
		if err != nil {
			t.Fatal(err)
		}
		me := strings.TrimSuffix(filepath.Base(p), ".ko")
		for _, d := range deps {
			if i, ok := pos[d]; !ok || i > pos[me] {
				t.Errorf("%s needs %s, which is not loaded before it", me, d)
			}
		}
	}
	if pos["virtio_ring"] > pos["virtio"] || len(names) < 5 {
		t.Errorf("order %v", names)
	}
}
