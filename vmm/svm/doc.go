// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package svm holds the platform-independent mechanics of AMD-V, AMD's
// Secure Virtual Machine extensions with nested paging: the capability
// bits of CPUID Fn8000_0001/Fn8000_000A and the VM_CR MSR in words, the
// layout of the Virtual Machine Control Block (VMCB) with typed accessors,
// the #VMEXIT codes and a decoder of the exits the hyperkernel handles,
// the EVENTINJ/EXITINTINFO encoding and its mapping to the run loop's
// events, the I/O and MSR permission maps, and a software model of the
// consistency checks VMRUN makes before it enters a guest.
//
// It is the groundwork of an SVM backend of vmm/runloop's CPU interface,
// as package vmx is for VT-x; the bare-metal part (EFER.SVME on every
// core, VM_HSAVE_PA, VMRUN/VMLOAD/VMSAVE) is not here yet. Everything is
// tested hosted.
//
// References are to the AMD64 Architecture Programmer's Manual, Volume 2:
// System Programming (publication 24593), chapter 15 "Secure Virtual
// Machine", Appendix B "Layout of VMCB" (Tables B-1 control area, B-2
// state save area) and Appendix C "SVM Intercept Exit Codes"; offsets and
// bit positions were checked against Linux's arch/x86/include/asm/svm.h
// and uapi/asm/svm.h and QEMU's target/i386/svm.h.
package svm
