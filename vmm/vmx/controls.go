package vmx

import (
	"fmt"
	"math/bits"
	"strings"
)

// PinControls are the pin-based VM-execution controls (SDM Vol. 3C, 24.6.1,
// Table 24-5).
type PinControls uint32

// Pin-based VM-execution controls.
const (
	PinExternalInterruptExiting PinControls = 1 << 0
	PinNMIExiting               PinControls = 1 << 3
	PinVirtualNMIs              PinControls = 1 << 5
	PinPreemptionTimer          PinControls = 1 << 6
	PinPostedInterrupts         PinControls = 1 << 7
)

var pinNames = [32]string{
	0: "external-interrupt exiting",
	3: "NMI exiting",
	5: "virtual NMIs",
	6: "activate VMX-preemption timer",
	7: "process posted interrupts",
}

// ProcControls are the primary processor-based VM-execution controls (SDM
// Vol. 3C, 24.6.2, Table 24-6).
type ProcControls uint32

// Primary processor-based VM-execution controls.
const (
	ProcInterruptWindowExiting ProcControls = 1 << 2
	ProcUseTSCOffsetting       ProcControls = 1 << 3
	ProcHLTExiting             ProcControls = 1 << 7
	ProcINVLPGExiting          ProcControls = 1 << 9
	ProcMWAITExiting           ProcControls = 1 << 10
	ProcRDPMCExiting           ProcControls = 1 << 11
	ProcRDTSCExiting           ProcControls = 1 << 12
	ProcCR3LoadExiting         ProcControls = 1 << 15
	ProcCR3StoreExiting        ProcControls = 1 << 16
	ProcActivateTertiary       ProcControls = 1 << 17
	ProcCR8LoadExiting         ProcControls = 1 << 19
	ProcCR8StoreExiting        ProcControls = 1 << 20
	ProcUseTPRShadow           ProcControls = 1 << 21
	ProcNMIWindowExiting       ProcControls = 1 << 22
	ProcMOVDRExiting           ProcControls = 1 << 23
	ProcUnconditionalIOExiting ProcControls = 1 << 24
	ProcUseIOBitmaps           ProcControls = 1 << 25
	ProcMonitorTrapFlag        ProcControls = 1 << 27
	ProcUseMSRBitmaps          ProcControls = 1 << 28
	ProcMONITORExiting         ProcControls = 1 << 29
	ProcPAUSEExiting           ProcControls = 1 << 30
	ProcActivateSecondary      ProcControls = 1 << 31
)

var procNames = [32]string{
	2:  "interrupt-window exiting",
	3:  "use TSC offsetting",
	7:  "HLT exiting",
	9:  "INVLPG exiting",
	10: "MWAIT exiting",
	11: "RDPMC exiting",
	12: "RDTSC exiting",
	15: "CR3-load exiting",
	16: "CR3-store exiting",
	17: "activate tertiary controls",
	19: "CR8-load exiting",
	20: "CR8-store exiting",
	21: "use TPR shadow",
	22: "NMI-window exiting",
	23: "MOV-DR exiting",
	24: "unconditional I/O exiting",
	25: "use I/O bitmaps",
	27: "monitor trap flag",
	28: "use MSR bitmaps",
	29: "MONITOR exiting",
	30: "PAUSE exiting",
	31: "activate secondary controls",
}

// Proc2Controls are the secondary processor-based VM-execution controls
// (SDM Vol. 3C, 24.6.2, Table 24-7).
type Proc2Controls uint32

// Secondary processor-based VM-execution controls.
const (
	Proc2VirtualizeAPICAccesses Proc2Controls = 1 << 0
	Proc2EnableEPT              Proc2Controls = 1 << 1
	Proc2DescriptorTableExiting Proc2Controls = 1 << 2
	Proc2EnableRDTSCP           Proc2Controls = 1 << 3
	Proc2VirtualizeX2APIC       Proc2Controls = 1 << 4
	Proc2EnableVPID             Proc2Controls = 1 << 5
	Proc2WBINVDExiting          Proc2Controls = 1 << 6
	Proc2UnrestrictedGuest      Proc2Controls = 1 << 7
	Proc2APICRegisterVirt       Proc2Controls = 1 << 8
	Proc2VirtualInterruptDeliv  Proc2Controls = 1 << 9
	Proc2PAUSELoopExiting       Proc2Controls = 1 << 10
	Proc2RDRANDExiting          Proc2Controls = 1 << 11
	Proc2EnableINVPCID          Proc2Controls = 1 << 12
	Proc2EnableVMFunctions      Proc2Controls = 1 << 13
	Proc2VMCSShadowing          Proc2Controls = 1 << 14
	Proc2ENCLSExiting           Proc2Controls = 1 << 15
	Proc2RDSEEDExiting          Proc2Controls = 1 << 16
	Proc2EnablePML              Proc2Controls = 1 << 17
	Proc2EPTViolationVE         Proc2Controls = 1 << 18
	Proc2ConcealVMXFromPT       Proc2Controls = 1 << 19
	Proc2EnableXSAVES           Proc2Controls = 1 << 20
	Proc2ModeBasedExecute       Proc2Controls = 1 << 22
	Proc2SubPageWrite           Proc2Controls = 1 << 23
	Proc2PTUsesGuestPhysical    Proc2Controls = 1 << 24
	Proc2UseTSCScaling          Proc2Controls = 1 << 25
	Proc2EnableUserWaitPause    Proc2Controls = 1 << 26
)

var proc2Names = [32]string{
	0:  "virtualize APIC accesses",
	1:  "enable EPT",
	2:  "descriptor-table exiting",
	3:  "enable RDTSCP",
	4:  "virtualize x2APIC mode",
	5:  "enable VPID",
	6:  "WBINVD exiting",
	7:  "unrestricted guest",
	8:  "APIC-register virtualization",
	9:  "virtual-interrupt delivery",
	10: "PAUSE-loop exiting",
	11: "RDRAND exiting",
	12: "enable INVPCID",
	13: "enable VM functions",
	14: "VMCS shadowing",
	15: "enable ENCLS exiting",
	16: "RDSEED exiting",
	17: "enable PML",
	18: "EPT-violation #VE",
	19: "conceal VMX from PT",
	20: "enable XSAVES/XRSTORS",
	21: "PASID translation",
	22: "mode-based execute control for EPT",
	23: "sub-page write permissions for EPT",
	24: "Intel PT uses guest physical addresses",
	25: "use TSC scaling",
	26: "enable user wait and pause",
	27: "enable PCONFIG",
	28: "enable ENCLV exiting",
	30: "VMM bus-lock detection",
	31: "instruction timeout",
}

// ExitControls are the primary VM-exit controls (SDM Vol. 3C, 24.7.1,
// Table 24-13).
type ExitControls uint32

// VM-exit controls.
const (
	ExitSaveDebugControls     ExitControls = 1 << 2
	ExitHostAddressSpaceSize  ExitControls = 1 << 9
	ExitLoadPerfGlobalCtrl    ExitControls = 1 << 12
	ExitAckInterruptOnExit    ExitControls = 1 << 15
	ExitSavePAT               ExitControls = 1 << 18
	ExitLoadPAT               ExitControls = 1 << 19
	ExitSaveEFER              ExitControls = 1 << 20
	ExitLoadEFER              ExitControls = 1 << 21
	ExitSavePreemptionTimer   ExitControls = 1 << 22
	ExitClearBNDCFGS          ExitControls = 1 << 23
	ExitConcealVMXFromPT      ExitControls = 1 << 24
	ExitActivateSecondaryCtls ExitControls = 1 << 31
)

var exitCtlNames = [32]string{
	2:  "save debug controls",
	9:  "host address-space size",
	12: "load IA32_PERF_GLOBAL_CTRL",
	15: "acknowledge interrupt on exit",
	18: "save IA32_PAT",
	19: "load IA32_PAT",
	20: "save IA32_EFER",
	21: "load IA32_EFER",
	22: "save VMX-preemption timer value",
	23: "clear IA32_BNDCFGS",
	24: "conceal VMX from PT",
	25: "clear IA32_RTIT_CTL",
	26: "clear IA32_LBR_CTL",
	27: "clear UINV",
	28: "load CET state",
	29: "load PKRS",
	30: "save IA32_PERF_GLOBAL_CTL",
	31: "activate secondary controls",
}

// EntryControls are the VM-entry controls (SDM Vol. 3C, 24.8.1, Table 24-15).
type EntryControls uint32

// VM-entry controls.
const (
	EntryLoadDebugControls  EntryControls = 1 << 2
	EntryIA32eModeGuest     EntryControls = 1 << 9
	EntryToSMM              EntryControls = 1 << 10
	EntryDeactivateDualMon  EntryControls = 1 << 11
	EntryLoadPerfGlobalCtrl EntryControls = 1 << 13
	EntryLoadPAT            EntryControls = 1 << 14
	EntryLoadEFER           EntryControls = 1 << 15
	EntryLoadBNDCFGS        EntryControls = 1 << 16
	EntryConcealVMXFromPT   EntryControls = 1 << 17
)

var entryCtlNames = [32]string{
	2:  "load debug controls",
	9:  "IA-32e mode guest",
	10: "entry to SMM",
	11: "deactivate dual-monitor treatment",
	13: "load IA32_PERF_GLOBAL_CTRL",
	14: "load IA32_PAT",
	15: "load IA32_EFER",
	16: "load IA32_BNDCFGS",
	17: "conceal VMX from PT",
	18: "load IA32_RTIT_CTL",
	19: "load UINV",
	20: "load CET state",
	21: "load guest IA32_LBR_CTL",
	22: "load PKRS",
}

// ControlKind names one of the five 32-bit control words.
type ControlKind int

// The control words, in the order of Controls' fields.
const (
	KindPin ControlKind = iota
	KindProc
	KindProc2
	KindExit
	KindEntry
)

var kindNames = [...]string{"pin-based control", "primary processor-based control", "secondary control", "VM-exit control", "VM-entry control"}
var kindBitNames = [...]*[32]string{&pinNames, &procNames, &proc2Names, &exitCtlNames, &entryCtlNames}

// String returns the kind in words, e.g. "secondary control".
func (k ControlKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("ControlKind(%d)", int(k))
	}
	return kindNames[k]
}

// BitName returns the SDM name of bit b of this control word, or "bit N"
// for bits the SDM leaves reserved or this package does not name.
func (k ControlKind) BitName(b int) string {
	if k >= 0 && int(k) < len(kindBitNames) && b >= 0 && b < 32 && kindBitNames[k][b] != "" {
		return kindBitNames[k][b]
	}
	return fmt.Sprintf("bit %d", b)
}

// BitNames lists the names of the bits set in v for control word k.
func (k ControlKind) BitNames(v uint32) []string {
	var out []string
	for v != 0 {
		b := bits.TrailingZeros32(v)
		out = append(out, k.BitName(b))
		v &^= 1 << b
	}
	return out
}

// Controls are the five VM-execution, VM-exit and VM-entry control words.
// Used both for what the hypervisor asks for and for the computed result.
type Controls struct {
	Pin   PinControls
	Proc  ProcControls
	Proc2 Proc2Controls
	Exit  ExitControls
	Entry EntryControls
}

func (c Controls) word(k ControlKind) uint32 {
	switch k {
	case KindPin:
		return uint32(c.Pin)
	case KindProc:
		return uint32(c.Proc)
	case KindProc2:
		return uint32(c.Proc2)
	case KindExit:
		return uint32(c.Exit)
	default:
		return uint32(c.Entry)
	}
}

func (c *Controls) setWord(k ControlKind, v uint32) {
	switch k {
	case KindPin:
		c.Pin = PinControls(v)
	case KindProc:
		c.Proc = ProcControls(v)
	case KindProc2:
		c.Proc2 = Proc2Controls(v)
	case KindExit:
		c.Exit = ExitControls(v)
	default:
		c.Entry = EntryControls(v)
	}
}

// String lists the set controls in words, one word per line.
func (c Controls) String() string {
	var b strings.Builder
	for k := KindPin; k <= KindEntry; k++ {
		fmt.Fprintf(&b, "%s %#08x: %s\n", k, c.word(k), strings.Join(k.BitNames(c.word(k)), ", "))
	}
	return b.String()
}

// UnsupportedControl names one required control the processor cannot set.
type UnsupportedControl struct {
	Kind ControlKind
	Bit  int
}

// ControlError lists the required controls the processor does not allow.
type ControlError struct {
	Missing []UnsupportedControl
}

// Error names every unsupported feature, e.g. "secondary control 'enable
// EPT' not supported by this CPU".
func (e *ControlError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("%s '%s' not supported by this CPU", m.Kind, m.Kind.BitName(m.Bit))
	}
	return strings.Join(parts, "; ")
}

// ComputeControls computes the control words to write into the VMCS: every
// required control is set (an error names each one the processor does not
// allow), each optional control is set if the processor allows it, and
// every control the processor fixes to 1 (the default1 bits) is set.
// Asking for any secondary control sets "activate secondary controls"; if
// secondary controls end up empty it is cleared again unless required.
// SDM Vol. 3D, A.3-A.5; Vol. 3C, 26.2.1.
func (c *Capabilities) ComputeControls(required, optional Controls) (Controls, error) {
	if required.Proc2 != 0 {
		required.Proc |= ProcActivateSecondary
	}
	if optional.Proc2 != 0 {
		optional.Proc |= ProcActivateSecondary
	}
	var out Controls
	var cerr ControlError
	for k := KindPin; k <= KindEntry; k++ {
		allowed := c.allowed(k)
		req, opt := required.word(k), optional.word(k)
		for missing := req &^ allowed.Allowed1; missing != 0; missing &= missing - 1 {
			cerr.Missing = append(cerr.Missing, UnsupportedControl{Kind: k, Bit: bits.TrailingZeros32(missing)})
		}
		v := (req | opt) & allowed.Allowed1
		v |= allowed.Allowed0
		out.setWord(k, v)
	}
	if len(cerr.Missing) > 0 {
		return Controls{}, &cerr
	}
	// Activate secondary controls only when some secondary control is on,
	// unless the caller insisted or the processor forces it.
	if out.Proc2 == 0 && required.Proc&ProcActivateSecondary == 0 && c.Proc.Allowed0&uint32(ProcActivateSecondary) == 0 {
		out.Proc &^= ProcActivateSecondary
	}
	if out.Proc&ProcActivateSecondary == 0 {
		out.Proc2 = 0
	}
	return out, nil
}

// allowed returns the allowed settings of control word k.
func (c *Capabilities) allowed(k ControlKind) AllowedSettings {
	switch k {
	case KindPin:
		return c.Pin
	case KindProc:
		return c.Proc
	case KindProc2:
		return c.Proc2
	case KindExit:
		return c.Exit
	default:
		return c.Entry
	}
}

// CheckControls reports every bit of the control words that violates the
// allowed settings (SDM Vol. 3C, 26.2.1.1-26.2.1.3: VM entry fails with
// VM-instruction error 7 on any of these).
func (c *Capabilities) CheckControls(ctl Controls) []string {
	var out []string
	for k := KindPin; k <= KindEntry; k++ {
		if k == KindProc2 && ctl.Proc&ProcActivateSecondary == 0 {
			continue
		}
		a := c.allowed(k)
		v := ctl.word(k)
		for m := a.Allowed0 &^ v; m != 0; m &= m - 1 {
			out = append(out, fmt.Sprintf("%s '%s' must be 1 on this CPU", k, k.BitName(bits.TrailingZeros32(m))))
		}
		for m := v &^ a.Allowed1; m != 0; m &= m - 1 {
			out = append(out, fmt.Sprintf("%s '%s' must be 0 on this CPU", k, k.BitName(bits.TrailingZeros32(m))))
		}
	}
	return out
}

// VirtualNMIs returns the pin-based controls that give a guest NMI
// blocking of its own: "NMI exiting" and "virtual NMIs" (the second
// requires the first, SDM Vol. 3C, 27.2.1.1). With them, the guest's
// interruptibility state holds virtual-NMI blocking, set by an injected
// NMI and cleared by the guest's IRET, and "NMI-window exiting" exits
// when it ends (26.3, 26.7.6). It returns them only when the processor
// allows all three (Vol. 3D, A.3.1, A.3.2); otherwise none.
func (c *Capabilities) VirtualNMIs() Controls {
	pin := uint32(PinNMIExiting | PinVirtualNMIs)
	if !c.Pin.CanBeOne(pin) || !c.Proc.CanBeOne(uint32(ProcNMIWindowExiting)) {
		return Controls{}
	}
	return Controls{Pin: PinControls(pin)}
}
