// Package vmx holds the mechanics of Intel VT-x: the VMX capability MSRs
// and their decoding, the VMCS field encodings, the computation of the
// VM-execution, VM-exit and VM-entry control words from what the
// hypervisor wants and what the processor allows, the CR0/CR4 fixed bits,
// the decoding of VM exits into typed values, a software model of the
// VM-entry checks on the guest-state area, and (on GOOS=tamago only) the
// VMX instructions themselves and the VMLAUNCH/VMRESUME entry routine.
//
// Everything except the bare-metal primitives is platform independent and
// tested hosted with captured MSR values. The package holds mechanism, no
// policy: which controls to ask for is the caller's business.
//
// References are to the Intel 64 and IA-32 Architectures Software
// Developer's Manual (SDM), Volume 3C chapters 24-28 and Volume 3D
// appendices A-C.
package vmx
