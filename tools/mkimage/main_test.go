// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/multiboot"
)

// buildELF links a tiny Go program the way the bare-metal image is linked.
func buildELF(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"go.mod":  "module tiny\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() { println(\"big-iron\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "bigiron.elf")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath",
		"-ldflags", "-T 0x10010000 -R 0x1000", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func TestRunMultibootAndPXE(t *testing.T) {
	if testing.Short() {
		t.Skip("links a Go program")
	}
	dir := t.TempDir()
	elfPath := buildELF(t, dir)
	mbPath := filepath.Join(dir, "build", "bigiron.mb")
	pxeDir := filepath.Join(dir, "pxe")
	if err := run(true, mbPath, pxeDir, "console=ttyS0 bigiron.peers=3", []string{elfPath}); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(mbPath)
	if err != nil {
		t.Fatal(err)
	}
	h, off, err := multiboot.FindHeader(mb)
	if err != nil || off != 0 || h.EntryAddr == 0 {
		t.Fatalf("multiboot header %+v at %d: %v", h, off, err)
	}
	elfBytes, _ := os.ReadFile(elfPath)
	for name, want := range map[string][]byte{"bigiron.elf": elfBytes, "bigiron.mb": mb} {
		got, err := os.ReadFile(filepath.Join(pxeDir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("pxe/%s differs from the expected content (%v)", name, err)
		}
	}
	ipxe, _ := os.ReadFile(filepath.Join(pxeDir, "boot.ipxe"))
	if !strings.HasPrefix(string(ipxe), "#!ipxe\n") || !strings.Contains(string(ipxe), "kernel bigiron.mb console=ttyS0 bigiron.peers=3 ") {
		t.Errorf("boot.ipxe:\n%s", ipxe)
	}
	grub, _ := os.ReadFile(filepath.Join(pxeDir, "grub.cfg"))
	if !strings.Contains(string(grub), "multiboot /bigiron.mb console=ttyS0 bigiron.peers=3 ") {
		t.Errorf("grub.cfg:\n%s", grub)
	}
	leftovers, _ := filepath.Glob(filepath.Join(pxeDir, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		mb   bool
		out  string
		pxe  string
		args []string
	}{
		{true, "x.mb", "", nil},
		{false, "", "", []string{"a.elf"}},
		{true, "", "", []string{"a.elf"}},
		{true, "x.mb", "", []string{filepath.Join(t.TempDir(), "missing.elf")}},
	} {
		if err := run(tc.mb, tc.out, tc.pxe, "", tc.args); err == nil {
			t.Errorf("run(%v, %q, %q, %q) succeeded", tc.mb, tc.out, tc.pxe, tc.args)
		}
	}
}
