//go:build tamago && amd64

package vmx

import "encoding/binary"

// Assembly in vmx_amd64.s. Each VMX wrapper returns RFLAGS as left by the
// instruction.

func vmxon(pa uint64) (rflags uint64)
func vmxoff() (rflags uint64)
func vmclear(pa uint64) (rflags uint64)
func vmptrld(pa uint64) (rflags uint64)
func vmread(field uint64) (value, rflags uint64)
func vmwrite(field, value uint64) (rflags uint64)
func invept(typ uint64, desc *[2]uint64) (rflags uint64)
func invvpid(typ uint64, desc *[2]uint64) (rflags uint64)
func vmenter(regs *GuestRegs, resume uint64) (rflags uint64)
func vmexitEntry()
func readCR0() uint64
func writeCR0(v uint64)
func readCR3() uint64
func readCR4() uint64
func writeCR4(v uint64)
func writeXCR0(v uint64)
func readMSR(msr uint32) uint64
func writeMSR(msr uint32, v uint64)
func sgdt(dst *[10]byte)
func sidt(dst *[10]byte)
func segments() (cs, ss, ds, es, fs, gs, tr uint16)

// result turns RFLAGS after a VMX instruction into an error. For
// VMfailValid it reads the VM-instruction error field of the current VMCS.
func result(rflags uint64) error {
	switch OutcomeOf(rflags) {
	case VMFailInvalid:
		return ErrVMFailInvalid
	case VMFailValid:
		v, f := vmread(uint64(VMCSVMInstructionError))
		if OutcomeOf(f) != VMSucceed {
			return ErrVMFailValid
		}
		return InstructionError(v)
	}
	return nil
}

// VMXON enters VMX operation with the 4 KiB-aligned VMXON region at
// physical address pa, whose first word must hold the VMCS revision
// identifier. CR0/CR4 must already satisfy the fixed bits (CR4.VMXE set)
// and IA32_FEATURE_CONTROL must allow VMXON (see FeatureControlForVMXON).
// The calling goroutine must stay on this core (runtime.LockOSThread).
func VMXON(pa uint64) error { return result(vmxon(pa)) }

// VMXOFF leaves VMX operation.
func VMXOFF() error { return result(vmxoff()) }

// VMCLEAR clears the VMCS at physical address pa and makes it not current.
func VMCLEAR(pa uint64) error { return result(vmclear(pa)) }

// VMPTRLD makes the VMCS at physical address pa current on this core.
func VMPTRLD(pa uint64) error { return result(vmptrld(pa)) }

// VMREAD reads field f of the current VMCS.
func VMREAD(f Field) (uint64, error) {
	v, fl := vmread(uint64(f))
	return v, result(fl)
}

// VMWRITE writes field f of the current VMCS.
func VMWRITE(f Field, v uint64) error { return result(vmwrite(uint64(f), v)) }

// INVEPT invalidates EPT-derived translations: typ InvEPTSingleContext for
// the given EPTP, InvEPTAllContext for all.
func INVEPT(typ, eptp uint64) error {
	desc := [2]uint64{eptp, 0}
	return result(invept(typ, &desc))
}

// INVVPID invalidates VPID-tagged translations of the given type.
func INVVPID(typ uint64, vpid uint16, linear uint64) error {
	desc := [2]uint64{uint64(vpid), linear}
	return result(invvpid(typ, &desc))
}

// Enter runs the guest of the current VMCS with VMLAUNCH (launched ==
// false) or VMRESUME until the next VM exit, loading and saving the
// guest registers in regs. It returns nil on a VM exit (read the exit
// reason with VMREAD) and an error if the entry instruction itself failed
// (a VM-entry failure during guest-state checks is a VM exit with
// EntryFailure set, not an error here). It writes HOST_RSP and HOST_RIP
// itself; the caller sets every other host-state field. The calling
// goroutine must be locked to its OS thread.
func Enter(regs *GuestRegs, launched bool) error {
	var resume uint64
	if launched {
		resume = 1
	}
	return result(vmenter(regs, resume))
}

// ReadCR0 returns CR0.
func ReadCR0() uint64 { return readCR0() }

// WriteCR0 sets CR0.
func WriteCR0(v uint64) { writeCR0(v) }

// ReadCR3 returns CR3.
func ReadCR3() uint64 { return readCR3() }

// ReadCR4 returns CR4.
func ReadCR4() uint64 { return readCR4() }

// WriteCR4 sets CR4.
func WriteCR4(v uint64) { writeCR4(v) }

// cr4OSXSAVE is CR4.OSXSAVE (SDM Vol. 3A, 2.5).
const cr4OSXSAVE = 1 << 18

// EnableXSAVE turns on the XSAVE feature set for the calling core, to
// which the caller is pinned: CR4.OSXSAVE, then XCR0 = xcr0 (SDM Vol. 1,
// 13.3). The processor must offer XSAVE (CPUID.1:ECX.XSAVE) and every
// component of xcr0, or the write faults. Until it runs, the core
// knows no XSAVE instruction.
func EnableXSAVE(xcr0 uint64) {
	if cr4 := readCR4(); cr4&cr4OSXSAVE == 0 {
		writeCR4(cr4 | cr4OSXSAVE)
	}
	writeXCR0(xcr0)
}

// cr4PKE is CR4.PKE (SDM Vol. 3A, 2.5).
const cr4PKE = 1 << 22

// EnableProtectionKeys sets CR4.PKE on the calling core, to which the
// caller is pinned, so that RDPKRU and WRPKRU work there (SDM Vol. 3A,
// 4.6.2): the entry routine switches each guest's PKRU with them. Keys
// govern only user-mode pages and the host maps none, so the host's own
// accesses are unaffected. The processor must offer PKU
// (CPUID.7.0:ECX.PKU), or the write faults.
func EnableProtectionKeys() {
	if cr4 := readCR4(); cr4&cr4PKE == 0 {
		writeCR4(cr4 | cr4PKE)
	}
}

// ReadMSR executes RDMSR. Reading an MSR that does not exist raises #GP:
// call it only for MSRs known to exist.
func ReadMSR(msr MSR) uint64 { return readMSR(uint32(msr)) }

// WriteMSR executes WRMSR.
func WriteMSR(msr MSR, v uint64) { writeMSR(uint32(msr), v) }

// HardwareMSRReader is an MSRReader over RDMSR for ReadCapabilities.
func HardwareMSRReader(msr uint32) (uint64, error) { return readMSR(msr), nil }

// HostTables returns the bases of the current GDT and IDT, for the
// HOST_GDTR_BASE and HOST_IDTR_BASE fields.
func HostTables() (gdtBase, idtBase uint64) {
	var g, i [10]byte
	sgdt(&g)
	sidt(&i)
	return binary.LittleEndian.Uint64(g[2:]), binary.LittleEndian.Uint64(i[2:])
}

// HostSelectors returns the current segment selectors and TR, for the
// HOST_*_SELECTOR fields (which require RPL and TI 0, SDM 26.2.3).
func HostSelectors() (cs, ss, ds, es, fs, gs, tr uint16) { return segments() }

// CurrentHostState captures this core's state for the host-state area:
// control registers, selectors, descriptor-table bases, FS/GS bases (FS
// holds the tamago runtime's TLS pointer: capture it on the thread that
// will run the guest), SYSENTER MSRs, EFER and PAT. TRBase is left 0:
// tamago loads no TSS, so the caller must provide one (HOST_TR_SELECTOR
// must not be 0) and set TR and TRBase; CheckHostState reports it.
func CurrentHostState() HostState {
	var h HostState
	h.CR0, h.CR3, h.CR4 = readCR0(), readCR3(), readCR4()
	h.CS, h.SS, h.DS, h.ES, h.FS, h.GS, h.TR = segments()
	h.GDTRBase, h.IDTRBase = HostTables()
	h.FSBase = readMSR(uint32(MSRFSBase))
	h.GSBase = readMSR(uint32(MSRGSBase))
	h.SysenterCS = uint32(readMSR(uint32(MSRSysenterCS)))
	h.SysenterESP = readMSR(uint32(MSRSysenterESP))
	h.SysenterEIP = readMSR(uint32(MSRSysenterEIP))
	h.EFER = readMSR(uint32(MSREFER))
	h.PAT = readMSR(uint32(MSRPAT))
	return h
}
