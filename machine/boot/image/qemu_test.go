// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package image

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probe32 is 32-bit protected-mode code for the image's entry point: it
// prints "MB" on COM1 if EAX holds the Multiboot magic ("!" otherwise) and
// leaves QEMU through the isa-debug-exit device.
var probe32 = []byte{
	0x3d, 0x02, 0xb0, 0xad, 0x2b, // cmp eax, 0x2badb002
	0x75, 0x0c, //                   jne bad
	0x66, 0xba, 0xf8, 0x03, //       mov dx, 0x3f8
	0xb0, 'M', 0xee, //              mov al, 'M'; out dx, al
	0xb0, 'B', 0xee, //              mov al, 'B'; out dx, al
	0xeb, 0x07, //                   jmp exit
	0x66, 0xba, 0xf8, 0x03, //       bad: mov dx, 0x3f8
	0xb0, '!', 0xee, //              mov al, '!'; out dx, al
	0x66, 0xba, 0xf4, 0x00, //       exit: mov dx, 0xf4
	0xb0, 0x00, 0xee, //             mov al, 0; out dx, al
	0xf4, 0xeb, 0xfd, //             hlt; jmp hlt
}

// probeImage builds a Multiboot image whose entry point runs probe32, with
// its text at base.
func probeImage(t *testing.T, base uint64) []byte {
	t.Helper()
	code := append(make([]byte, 0x40), probe32...) // entry 0x40 into the text
	elfBytes := makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, base+0x40, []seg{
		{elf.PT_LOAD, elf.PF_R | elf.PF_X, base, base, code, uint64(len(code))},
		{elf.PT_LOAD, elf.PF_R | elf.PF_W, base + 0x2000, base + 0x2000, []byte("data"), 0x3000},
	})
	img, _, err := BuildMultiboot(elfBytes)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// runQEMU boots a PC with the extra arguments and checks that the probe
// reported the Multiboot magic and exited through isa-debug-exit.
func runQEMU(t *testing.T, qemu string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"-m", "512", "-display", "none", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}
	out, err := exec.CommandContext(ctx, qemu, append(base, args...)...).Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("qemu: %v (want exit status 1 from isa-debug-exit); output %q", err, out)
	}
	if !strings.Contains(string(out), "MB") {
		t.Fatalf("serial output %q, want MB", out)
	}
}

// TestQEMULoadsImage boots a built image with QEMU's Multiboot loader
// (-kernel), which honours the address fields, and checks that control
// reaches the ELF entry point with the Multiboot magic in EAX. Skipped when
// qemu-system-x86_64 is not installed.
func TestQEMULoadsImage(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	path := filepath.Join(t.TempDir(), "probe.mb")
	if err := os.WriteFile(path, probeImage(t, 0x200000), 0o644); err != nil {
		t.Fatal(err)
	}
	runQEMU(t, qemu, "-machine", "pc", "-kernel", path)
}

// TestGRUBLoadsImage boots a built image, linked at the bare-metal image's
// address (0x10010000), through GRUB 2's `multiboot` command from a BIOS
// GRUB rescue ISO under QEMU. Skipped unless qemu-system-x86_64,
// grub-mkrescue (with the i386-pc platform) and xorriso are installed.
func TestGRUBLoadsImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a GRUB ISO")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	mkrescue, err := exec.LookPath("grub-mkrescue")
	if err != nil {
		t.Skip("grub-mkrescue not installed")
	}
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso not installed")
	}
	if _, err := os.Stat("/usr/lib/grub/i386-pc"); err != nil {
		t.Skip("GRUB i386-pc platform files not installed")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "iso")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "probe.mb"), probeImage(t, 0x10010000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := "set timeout=0\nmenuentry probe {\n\tmultiboot /probe.mb bigiron.test=1\n\tboot\n}\n"
	if err := os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "probe.iso")
	if out, err := exec.Command(mkrescue, "-o", iso, root).CombinedOutput(); err != nil {
		t.Skipf("grub-mkrescue failed (incomplete GRUB install?): %v\n%s", err, out)
	}
	runQEMU(t, qemu, "-machine", "q35", "-cdrom", iso)
}
