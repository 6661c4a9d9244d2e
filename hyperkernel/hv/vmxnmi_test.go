// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"testing"

	"github.com/big-iron/big-iron/vmm/vmx"
)

func TestVMXWindows(t *testing.T) {
	const (
		iw    = uint64(vmx.ProcInterruptWindowExiting)
		nw    = uint64(vmx.ProcNMIWindowExiting)
		other = uint64(vmx.ProcHLTExiting | vmx.ProcUseIOBitmaps)
		sti   = uint64(vmx.BlockingSTI)
		movss = uint64(vmx.BlockingMovSS)
		nmi   = uint64(vmx.BlockingNMI)
	)
	tests := []struct {
		name             string
		proc             uint64
		intr, nmi, vnmi  bool
		interruptibility uint64
		want             uint64
	}{
		{"nothing asked clears both", other | iw | nw, false, false, true, 0, other},
		{"interrupt window", other, true, false, true, 0, other | iw},
		{"NMI window with virtual NMIs", other, false, true, true, nmi, other | nw},
		{"NMI window under MOV SS blocking", other, false, true, true, movss, other | nw},
		{"NMI window in an STI shadow waits for the shadow", other, false, true, true, sti | nmi, other | iw},
		{"NMI window without virtual NMIs", other, false, true, false, nmi, other | iw},
		{"both windows", other, true, true, true, nmi, other | iw | nw},
		{"both without virtual NMIs", other | nw, true, true, false, 0, other | iw},
	}
	for _, tc := range tests {
		if got := vmxWindows(tc.proc, tc.intr, tc.nmi, tc.vnmi, tc.interruptibility); got != tc.want {
			t.Errorf("%s: vmxWindows = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

func TestIRETUnblockedNMIs(t *testing.T) {
	const (
		valid = 1 << 31
		unblk = 1 << 12
		hwExc = 3 << 8
		nmi   = 2 << 8
	)
	tests := []struct {
		name        string
		reason      vmx.ExitReason
		qual, info  uint64
		interrupted bool
		want        bool
	}{
		{"EPT violation in an IRET", vmx.ExitEPTViolation, unblk | 1, 0, false, true},
		{"EPT violation elsewhere", vmx.ExitEPTViolation, 1, 0, false, false},
		{"EPT violation delivering an event", vmx.ExitEPTViolation, unblk | 1, 0, true, false},
		{"#PF in an IRET", vmx.ExitExceptionOrNMI, 0, valid | unblk | hwExc | 14, false, true},
		{"#PF elsewhere", vmx.ExitExceptionOrNMI, 0, valid | hwExc | 14, false, false},
		{"#DF says nothing", vmx.ExitExceptionOrNMI, 0, valid | unblk | hwExc | 8, false, false},
		{"NMI exit in an IRET", vmx.ExitExceptionOrNMI, 0, valid | unblk | nmi | 2, false, true},
		{"invalid information", vmx.ExitExceptionOrNMI, 0, unblk | hwExc | 14, false, false},
		{"other exits ignore bit 12", vmx.ExitIOInstruction, unblk, 0, false, false},
	}
	for _, tc := range tests {
		if got := iretUnblockedNMIs(tc.reason, tc.qual, tc.info, tc.interrupted); got != tc.want {
			t.Errorf("%s: iretUnblockedNMIs = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHostNMI(t *testing.T) {
	for info, want := range map[uint64]bool{
		1<<31 | 2<<8 | 2:  true,  // NMI
		1<<31 | 3<<8 | 14: false, // #PF
		2<<8 | 2:          false, // not valid
		1<<31 | 0<<8 | 32: false, // external interrupt
	} {
		if got := hostNMI(info); got != want {
			t.Errorf("hostNMI(%#x) = %v, want %v", info, got, want)
		}
	}
}
