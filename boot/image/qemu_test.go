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

// TestQEMULoadsImage boots a built image with QEMU's Multiboot loader
// (-kernel), which honours the address fields, and checks that control
// reaches the ELF entry point with the Multiboot magic in EAX. Skipped when
// qemu-system-x86_64 is not installed.
func TestQEMULoadsImage(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	code := append(make([]byte, 0x40), probe32...) // entry 0x40 into the text
	elfBytes := makeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, 0x200040, []seg{
		{elf.PT_LOAD, elf.PF_R | elf.PF_X, 0x200000, 0x200000, code, uint64(len(code))},
		{elf.PT_LOAD, elf.PF_R | elf.PF_W, 0x202000, 0x202000, []byte("data"), 0x3000},
	})
	img, _, err := BuildMultiboot(elfBytes)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "probe.mb")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-machine", "pc", "-m", "64", "-display", "none",
		"-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", path)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("qemu: %v (want exit status 1 from isa-debug-exit); output %q", err, out)
	}
	if !strings.Contains(string(out), "MB") {
		t.Fatalf("serial output %q, want MB", out)
	}
}
