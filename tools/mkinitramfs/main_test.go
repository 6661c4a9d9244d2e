// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"os"
	"path/filepath"
	"slices"
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

// TestModuleFiles writes the two load lists from Debian's modules: ext4
// and what it needs only in the root file system's list, crc32c_generic
// (which ext4 asks the crypto API for) before it, nothing in both.
func TestModuleFiles(t *testing.T) {
	dirs, _ := filepath.Glob("../../build/guest/root/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("missing: Debian's kernel modules (make guest extracts them to build/guest/root)")
	}
	tmp := t.TempDir()
	files, err := moduleFiles(tmp, dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, filepath.Join(tmp, "modules.root")+":lib/bigiron/modules.root") {
		t.Fatalf("no lib/bigiron/modules.root in %q", files)
	}
	base, _ := os.ReadFile(filepath.Join(tmp, "modules"))
	root, _ := os.ReadFile(filepath.Join(tmp, "modules.root"))
	t.Logf("modules:\n%smodules.root:\n%s", base, root)
	var names []string
	for _, l := range strings.Fields(string(root)) {
		names = append(names, strings.TrimSuffix(filepath.Base(l), ".ko"))
		if strings.Contains(string(base), l) {
			t.Errorf("%s is in both lists", l)
		}
	}
	pos := func(n string) int { return slices.Index(names, n) }
	if pos("ext4") < 0 || pos("crc32c_generic") > pos("ext4") || pos("jbd2") > pos("ext4") || pos("mbcache") > pos("ext4") {
		t.Errorf("root modules in the wrong order or missing: %v", names)
	}
	if !strings.Contains(string(base), "/lib/bigiron/virtio_blk.ko\n") {
		t.Errorf("virtio_blk is not in the modules list:\n%s", base)
	}
}
