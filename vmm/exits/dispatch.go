package exits

import "github.com/big-iron/big-iron/vmm/vmx"

// Exit is what the bare-metal loop reads from the VMCS after a VM exit
// (VMREAD of the fields named in the comments). Fields a given reason does
// not use may be left zero.
type Exit struct {
	Reason            uint64 // VMCSExitReason
	Qualification     uint64 // VMCSExitQualification
	InstructionLength uint32 // ExitInstructionLength
	GuestPhysical     uint64 // GuestPhysicalAddress (EPT violations)
	GuestLinear       uint64 // GuestLinearAddress
}

// ActionKind says what the loop must do next.
type ActionKind uint8

// Actions.
const (
	// ActionResume: advance RIP by Action.AdvanceRIP and re-enter.
	ActionResume ActionKind = iota
	// ActionInject: advance RIP by AdvanceRIP (0 for a fault), write
	// Action.Inject to the VM-entry interruption-information field and
	// Action.ErrorCode to the VM-entry exception error code, re-enter.
	ActionInject
	// ActionHalt: the guest executed HLT; advance RIP and wait for an
	// event before re-entering.
	ActionHalt
	// ActionShutdown: triple fault; the guest is dead (or must be reset).
	ActionShutdown
	// ActionEPTViolation: hand Exit.GuestPhysical and Action.EPT to the
	// memory layer (fetch the page, or fail the guest).
	ActionEPTViolation
	// ActionEntryFailed: VM entry failed; Action.Reason says why (run
	// vmx.CheckGuestState for details).
	ActionEntryFailed
	// ActionUnhandled: an exit this dispatcher does not handle (string
	// I/O, unknown reason, bad qualification); the loop decides.
	ActionUnhandled
)

var actionNames = [...]string{"resume", "inject", "halt", "shutdown", "EPT violation", "entry failed", "unhandled"}

// String names the action.
func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return "action?"
}

// Action is the outcome of handling one exit.
type Action struct {
	Kind       ActionKind
	Reason     vmx.ExitReason
	AdvanceRIP uint32
	Inject     uint32 // VM-entry interruption information
	ErrorCode  uint32
	EPT        vmx.EPTViolation
	IO         vmx.IOExit // for ActionUnhandled string I/O
}

// Dispatcher handles the exits of one vCPU with shared, read-only tables
// and its own statistics.
type Dispatcher struct {
	CPUID  *CPUIDPolicy
	IO     *IOBus
	MSR    *MSRTable
	VCPU   int    // index passed to MSR handlers
	APICID uint32 // reported by CPUID
	// APICEnabled, if set, says whether the vCPU's local APIC is
	// globally enabled: CPUID's APIC feature flag follows it (SDM Vol.
	// 3A, 11.4.3: "CPUID.01H:EDX[bit 9] ... reports the APIC as absent"
	// while IA32_APIC_BASE.EN is 0; AMD APM Vol. 3, CPUID Fn8000_0001
	// likewise). Without it the flag is the policy's.
	APICEnabled func() bool
	// CR4 and CPL, if set, read the vCPU's CR4 as the guest sees it and
	// its privilege level: CPUID's OSXSAVE follows CR4.OSXSAVE, and
	// XSETBV outside ring 0 takes #GP. Without them OSXSAVE reads 0 and
	// the processor's own privilege check is relied on.
	CR4   func() uint64
	CPL   func() int
	Stats ExitStats
}

// Handle decodes the exit, performs CPUID, port I/O and MSR accesses
// against the tables, updates regs, counts the exit, and says what to do
// next. It never allocates and never panics on guest-controlled values.
func (d *Dispatcher) Handle(e *Exit, regs *vmx.GuestRegs) Action {
	info := vmx.DecodeExitReason(e.Reason)
	d.Stats.Record(info.Reason)
	a := Action{Reason: info.Reason}
	if info.EntryFailure {
		a.Kind = ActionEntryFailed
		return a
	}
	switch info.Reason {
	case vmx.ExitCPUID:
		leaf := uint32(regs.RAX)
		r := d.CPUID.Lookup(leaf, uint32(regs.RCX), d.APICID)
		if (leaf == LeafFeatures || leaf == LeafExtProcFeatures) && d.APICEnabled != nil && !d.APICEnabled() {
			r.EDX &^= Leaf1EDXAPIC
		}
		if leaf == LeafFeatures || leaf == LeafXSAVE {
			var cr4 uint64
			if d.CR4 != nil {
				cr4 = d.CR4()
			}
			r = d.CPUID.GuestBits(r, leaf, uint32(regs.RCX), cr4, regs.XCR0)
		}
		regs.RAX, regs.RBX, regs.RCX, regs.RDX = uint64(r.EAX), uint64(r.EBX), uint64(r.ECX), uint64(r.EDX)
		return d.advance(a, e)
	case vmx.ExitIOInstruction:
		io, err := vmx.DecodeIOExit(e.Qualification)
		a.IO = io
		if err != nil || io.String {
			a.Kind = ActionUnhandled
			return a
		}
		if io.In {
			v := d.IO.In(io.Port, io.Size)
			switch io.Size {
			case 1:
				regs.RAX = regs.RAX&^0xFF | uint64(v&0xFF)
			case 2:
				regs.RAX = regs.RAX&^0xFFFF | uint64(v&0xFFFF)
			default:
				regs.RAX = uint64(v) // a 32-bit write zero-extends
			}
		} else {
			d.IO.Out(io.Port, io.Size, uint32(regs.RAX))
		}
		return d.advance(a, e)
	case vmx.ExitRDMSR:
		v, ok := d.MSR.Read(d.VCPU, uint32(regs.RCX))
		if !ok {
			return injectGP(a)
		}
		regs.RAX, regs.RDX = v&0xFFFFFFFF, v>>32
		return d.advance(a, e)
	case vmx.ExitWRMSR:
		v := regs.RDX<<32 | regs.RAX&0xFFFFFFFF
		if !d.MSR.Write(d.VCPU, uint32(regs.RCX), v) {
			return injectGP(a)
		}
		return d.advance(a, e)
	case vmx.ExitXSETBV:
		return d.xsetbv(a, e, regs)
	case vmx.ExitHLT:
		a = d.advance(a, e)
		a.Kind = ActionHalt
		return a
	case vmx.ExitTripleFault:
		a.Kind = ActionShutdown
		return a
	case vmx.ExitEPTViolation:
		a.Kind = ActionEPTViolation
		a.EPT = vmx.DecodeEPTViolation(e.Qualification)
		return a
	case vmx.ExitVMCALL, vmx.ExitVMCLEAR, vmx.ExitVMLAUNCH, vmx.ExitVMPTRLD, vmx.ExitVMPTRST,
		vmx.ExitVMREAD, vmx.ExitVMRESUME, vmx.ExitVMWRITE, vmx.ExitVMXOFF, vmx.ExitVMXON,
		vmx.ExitINVEPT, vmx.ExitINVVPID, vmx.ExitVMFUNC:
		// The guest sees no VMX (CPUID hides it, CR4.VMXE cannot be
		// set): its VMX instructions raise #UD, as on a processor
		// outside VMX operation (SDM Vol. 3C, 31.3 "VMX Instructions",
		// and 26.1.2), and never reach the host's VMX state.
		a.Kind = ActionInject
		a.Inject = vmx.InjectUD()
		return a
	}
	a.Kind = ActionUnhandled
	return a
}

// xsetbv sets the guest's XCR0 (regs.XCR0, which the entry code loads)
// to EDX:EAX if the policy allows it, or raises #GP (Intel SDM Vol. 2C,
// XSETBV). A vCPU whose FPU is switched without XSAVE (XCR0 0) has no
// XSAVE: #UD, as with CR4.OSXSAVE clear.
func (d *Dispatcher) xsetbv(a Action, e *Exit, regs *vmx.GuestRegs) Action {
	if regs.XCR0 == 0 {
		a.Kind = ActionInject
		a.Inject = vmx.InjectUD()
		return a
	}
	v := regs.RDX<<32 | regs.RAX&0xFFFFFFFF
	if d.CPL != nil && d.CPL() != 0 || !d.CPUID.ValidXCR0(uint32(regs.RCX), v) {
		return injectGP(a)
	}
	regs.XCR0 = v
	return d.advance(a, e)
}

func (d *Dispatcher) advance(a Action, e *Exit) Action {
	a.Kind = ActionResume
	a.AdvanceRIP = e.InstructionLength & 0xF // instructions are at most 15 bytes
	return a
}

// injectGP makes the faulting instruction raise #GP(0): RIP is not
// advanced.
func injectGP(a Action) Action {
	a.Kind = ActionInject
	a.Inject = vmx.InjectGP()
	a.ErrorCode = 0
	return a
}
