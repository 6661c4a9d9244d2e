// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import "github.com/big-iron/big-iron/vmm/vmx"

// vmxWindows returns the primary processor-based controls proc with
// interrupt-window and NMI-window exiting set as the loop asks (intr,
// nmi; SDM Vol. 3C, 26.7.5, 26.7.6). With virtual NMIs (vnmi) an NMI
// window is the NMI-window exit, at the end of the guest's NMI blocking,
// right after its handler's IRET. That exit does not wait for the end of
// blocking by STI (26.7.6), under which the processor may refuse to
// inject an NMI (26.3.1.5), so during an STI shadow the interrupt window,
// which opens when the shadow ends, serves. Without virtual NMIs the
// interrupt window stands in for the NMI window, as KVM does: the guest
// returns from its NMI handler and takes interrupts again soon after,
// though an NMI then may wait for as long as the guest keeps IF clear.
func vmxWindows(proc uint64, intr, nmi, vnmi bool, interruptibility uint64) uint64 {
	p := proc &^ uint64(vmx.ProcInterruptWindowExiting|vmx.ProcNMIWindowExiting)
	if intr {
		p |= uint64(vmx.ProcInterruptWindowExiting)
	}
	if nmi {
		if vnmi && uint32(interruptibility)&vmx.BlockingSTI == 0 {
			p |= uint64(vmx.ProcNMIWindowExiting)
		} else {
			p |= uint64(vmx.ProcInterruptWindowExiting)
		}
	}
	return p
}

// iretUnblockedNMIs reports whether an exit cut short an IRET that had
// already ended the guest's virtual-NMI blocking, which the hypervisor
// must then set again before the guest re-runs the IRET (SDM Vol. 3C,
// 28.2.3 "Information About NMI Unblocking Due to IRET"): an EPT violation
// with bit 12 of its qualification set (qual), or an exception (other
// than #DF) or NMI exit with bit 12 of its interruption information set
// (intrInfo, read only for those exits). Neither counts while an event was
// being delivered (interrupted): the IRET had not run then.
func iretUnblockedNMIs(reason vmx.ExitReason, qual, intrInfo uint64, interrupted bool) bool {
	if interrupted {
		return false
	}
	switch reason {
	case vmx.ExitEPTViolation:
		return vmx.DecodeEPTViolation(qual).NMIUnblocking
	case vmx.ExitExceptionOrNMI:
		i := vmx.DecodeInterruption(intrInfo)
		return i.Valid && i.NMIUnblocking && i.Vector != vmx.VectorDF
	}
	return false
}

// hostNMI reports whether an exception-or-NMI exit's interruption
// information (intrInfo) is an NMI: with "NMI exiting", an NMI that
// reaches the core in guest mode exits instead of entering the guest
// (SDM Vol. 3C, 26.2).
func hostNMI(intrInfo uint64) bool {
	i := vmx.DecodeInterruption(intrInfo)
	return i.Valid && i.Type == vmx.IntrNMI
}
