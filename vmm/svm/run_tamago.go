// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago && amd64

package svm

import (
	"errors"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// MSRs of AMD-V (AMD APM Vol. 2, 15.30 "SVM-Related MSRs"; EFER: 3.1.7).
const (
	msrEFER    = 0xC0000080
	msrVMCR    = 0xC0010114
	msrHSavePA = 0xC0010117
	eferSVME   = 1 << 12
	vmcrSVMDIS = 1 << 4
)

// defined in svm_amd64.s
func run(vmcb, host uint64, regs *vmx.GuestRegs)

// ErrDisabled is returned where the firmware turned SVM off (VM_CR.SVMDIS).
var ErrDisabled = errors.New("svm: SVM is disabled by the firmware (VM_CR.SVMDIS)")

// Enable turns SVM on for the calling core: EFER.SVME, and the host save
// area (a 4 KiB page at physical address hsave) where VMRUN keeps the
// host's state (APM 15.4 "Enabling SVM", 15.30.4 "VM_HSAVE_PA MSR"). The
// caller stays on the core (pinned) across the call.
func Enable(hsave uint64) error {
	if vmx.ReadMSR(msrVMCR)&vmcrSVMDIS != 0 {
		return ErrDisabled
	}
	if efer := vmx.ReadMSR(msrEFER); efer&eferSVME == 0 {
		vmx.WriteMSR(msrEFER, efer|eferSVME)
	}
	vmx.WriteMSR(msrHSavePA, hsave)
	return nil
}

// Run runs the guest of the VMCB at physical address vmcb until its next
// #VMEXIT, its GPRs but RAX and RSP in regs; host is a 4 KiB page, in
// VMCB layout, where the host's hidden segment and MSR state waits while
// the guest runs. The caller is pinned to a core where Enable ran.
func Run(vmcb, host uint64, regs *vmx.GuestRegs) { run(vmcb, host, regs) }
