// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// TestGuestRegsOffsets checks the G_ defines of svm_amd64.s against
// vmx.GuestRegs, the register file it shares with the VT-x entry code.
func TestGuestRegsOffsets(t *testing.T) {
	var r vmx.GuestRegs
	offsets := map[string]uintptr{
		"RAX": unsafe.Offsetof(r.RAX), "RCX": unsafe.Offsetof(r.RCX), "RDX": unsafe.Offsetof(r.RDX), "RBX": unsafe.Offsetof(r.RBX),
		"RBP": unsafe.Offsetof(r.RBP), "RSI": unsafe.Offsetof(r.RSI), "RDI": unsafe.Offsetof(r.RDI),
		"R8": unsafe.Offsetof(r.R8), "R9": unsafe.Offsetof(r.R9), "R10": unsafe.Offsetof(r.R10), "R11": unsafe.Offsetof(r.R11),
		"R12": unsafe.Offsetof(r.R12), "R13": unsafe.Offsetof(r.R13), "R14": unsafe.Offsetof(r.R14), "R15": unsafe.Offsetof(r.R15),
		"FPU": unsafe.Offsetof(r.FPU), "HOSTFPU": unsafe.Offsetof(r.HostFPU),
		"XCR0": unsafe.Offsetof(r.XCR0), "HOSTXCR0": unsafe.Offsetof(r.HostXCR0), "XCR0MAX": unsafe.Offsetof(r.XCR0Max),
		"PKRU": unsafe.Offsetof(r.PKRU), "SWITCHPKRU": unsafe.Offsetof(r.SwitchPKRU),
	}
	src, err := os.ReadFile("svm_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	defs := regexp.MustCompile(`(?m)^#define G_([A-Z0-9]+) (\d+)$`).FindAllStringSubmatch(string(src), -1)
	if len(defs) == 0 {
		t.Fatal("no G_ defines in svm_amd64.s")
	}
	for _, d := range defs {
		off, _ := strconv.Atoi(d[2])
		want, ok := offsets[d[1]]
		if !ok || uintptr(off) != want {
			t.Errorf("G_%s = %d, struct offset %d (known %v)", d[1], off, want, ok)
		}
	}
}
