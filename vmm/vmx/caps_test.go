package vmx

import (
	"errors"
	"strings"
	"testing"
)

func mustCaps(t testing.TB, m map[uint32]uint64) *Capabilities {
	t.Helper()
	c, err := ReadCapabilities(reader(m))
	if err != nil {
		t.Fatalf("ReadCapabilities: %v", err)
	}
	return c
}

func TestReadCapabilities(t *testing.T) {
	tests := []struct {
		name          string
		msrs          map[uint32]uint64
		rev, size     uint32
		timerRate     uint8
		cr3Targets    uint16
		shutdown      bool
		ug, ept1G, ad bool
		invvpidAll    bool
		vmfunc        uint64
		vmfuncUnread  bool
		cr4Fixed1     uint64
		maxMSRs       uint32
		preemptTimer  bool
		postedIntr    bool
		entryAllowed1 uint32
	}{
		{name: "bochs-haswell", msrs: bochsHaswell4770, rev: 0x2B, size: 4096, timerRate: 0, cr3Targets: 4, shutdown: true,
			ug: true, ept1G: true, ad: true, invvpidAll: true, vmfunc: 1, cr4Fixed1: 0x1727FF, maxMSRs: 512, preemptTimer: true, entryAllowed1: 0xFFFF},
		{name: "xeon-e3-1270v2", msrs: xeonE31270v2, rev: 0x10, size: 1024, timerRate: 5, cr3Targets: 4, shutdown: true,
			ug: true, ept1G: false, ad: false, invvpidAll: true, cr4Fixed1: 0x1767FF, maxMSRs: 512, preemptTimer: true, entryAllowed1: 0xFFFF},
		{name: "skylake-sp-9980xe", msrs: skylakeSP9980XE, rev: 0x4, size: 1024, timerRate: 7, cr3Targets: 4, shutdown: true,
			ug: true, ept1G: true, ad: true, invvpidAll: true, vmfuncUnread: true, cr4Fixed1: 0x3727FF, maxMSRs: 512, preemptTimer: true, postedIntr: true, entryAllowed1: 0x3FFFF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCaps(t, tc.msrs)
			if c.Basic.Revision != tc.rev || c.Basic.VMCSSize != tc.size {
				t.Errorf("revision %#x size %d, want %#x %d", c.Basic.Revision, c.Basic.VMCSSize, tc.rev, tc.size)
			}
			if c.Basic.MemoryType != MemTypeWB || !c.Basic.TrueControls || !c.Basic.InsOutsInfo {
				t.Errorf("basic = %+v, want WB, TRUE controls, INS/OUTS info", c.Basic)
			}
			if c.Misc.PreemptionTimerRate != tc.timerRate || c.Misc.CR3Targets != tc.cr3Targets || c.Misc.ActivityShutdown != tc.shutdown || !c.Misc.ActivityHLT {
				t.Errorf("misc = %+v", c.Misc)
			}
			if c.Misc.MaxMSRListEntries != tc.maxMSRs {
				t.Errorf("max MSR list %d, want %d", c.Misc.MaxMSRListEntries, tc.maxMSRs)
			}
			if got := c.Proc2.CanBeOne(uint32(Proc2UnrestrictedGuest)); got != tc.ug {
				t.Errorf("unrestricted guest %v, want %v", got, tc.ug)
			}
			if !c.EPTVPID.Has(EPTWalkLength4 | EPTMemTypeWB | EPTPages2M | EPTINVEPT | EPTINVEPTSingle | EPTINVEPTAll) {
				t.Errorf("EPT caps %v lack the basics", c.EPTVPID)
			}
			if c.EPTVPID.Has(EPTPages1G) != tc.ept1G || c.EPTVPID.Has(EPTAccessDirty) != tc.ad {
				t.Errorf("EPT caps %v: 1G want %v, A/D want %v", c.EPTVPID, tc.ept1G, tc.ad)
			}
			if c.EPTVPID.Has(VPIDINVVPID|VPIDINVVPIDAll|VPIDINVVPIDSingle) != tc.invvpidAll {
				t.Errorf("VPID caps %v", c.EPTVPID)
			}
			if c.VMFunc != tc.vmfunc || c.VMFuncUnreadable != tc.vmfuncUnread {
				t.Errorf("VMFunc %#x unreadable %v, want %#x %v", c.VMFunc, c.VMFuncUnreadable, tc.vmfunc, tc.vmfuncUnread)
			}
			if c.CR4Fixed1 != tc.cr4Fixed1 || c.CR0Fixed0 != 0x80000021 || c.CR4Fixed0 != CR4VMXE {
				t.Errorf("fixed bits cr0f0 %#x cr4f0 %#x cr4f1 %#x", c.CR0Fixed0, c.CR4Fixed0, c.CR4Fixed1)
			}
			if c.Pin.CanBeOne(uint32(PinPreemptionTimer)) != tc.preemptTimer || c.Pin.CanBeOne(uint32(PinPostedInterrupts)) != tc.postedIntr {
				t.Errorf("pin allowed %+v", c.Pin)
			}
			// TRUE controls: CR3-load/store exiting may be 0.
			if c.Proc.MustBeOne(uint32(ProcCR3LoadExiting | ProcCR3StoreExiting)) {
				t.Errorf("TRUE procbased must-be-one %#x includes CR3 exiting", c.Proc.Allowed0)
			}
			if c.Entry.Allowed1 != tc.entryAllowed1 {
				t.Errorf("entry allowed1 %#x, want %#x", c.Entry.Allowed1, tc.entryAllowed1)
			}
			s := c.String()
			for _, want := range []string{"enable EPT", "unrestricted guest", "4-level walk", "VMCS revision", "HLT"} {
				if !strings.Contains(s, want) {
					t.Errorf("String() lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

func TestReadCapabilitiesNonTrue(t *testing.T) {
	// Without TRUE controls, the default1 bits (CR3 exiting) must be 1 and
	// the TRUE MSRs must not be read.
	m := map[uint32]uint64{}
	for k, v := range xeonE31270v2 {
		if k < 0x48D || k > 0x490 {
			m[k] = v
		}
	}
	m[0x480] &^= 1 << 55
	c := mustCaps(t, m)
	if !c.Proc.MustBeOne(uint32(ProcCR3LoadExiting)) {
		t.Errorf("non-TRUE procbased allowed0 %#x lacks CR3-load exiting", c.Proc.Allowed0)
	}
	got, err := c.ComputeControls(Controls{Proc: ProcHLTExiting}, Controls{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Proc&(ProcCR3LoadExiting|ProcCR3StoreExiting) == 0 {
		t.Errorf("default1 CR3 exiting not forced: %#x", got.Proc)
	}
}

func TestReadCapabilitiesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[uint32]uint64)
		want string
	}{
		{"missing basic", func(m map[uint32]uint64) { delete(m, 0x480) }, "IA32_VMX_BASIC"},
		{"missing procbased2", func(m map[uint32]uint64) { delete(m, 0x48B) }, "IA32_VMX_PROCBASED_CTLS2"},
		{"missing ept cap", func(m map[uint32]uint64) { delete(m, 0x48C) }, "IA32_VMX_EPT_VPID_CAP"},
		{"zero vmcs size", func(m map[uint32]uint64) { m[0x480] &^= 0x1FFF << 32 }, "VMCS size"},
		{"inconsistent ctls", func(m map[uint32]uint64) { m[0x48D] = 0x0000000000000016 }, "must be 1 but may not be 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[uint32]uint64{}
			for k, v := range xeonE31270v2 {
				m[k] = v
			}
			tc.edit(m)
			_, err := ReadCapabilities(reader(m))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// hypervisorWants is what big-iron asks for: a realistic request used on
// all three CPUs.
var (
	wantRequired = Controls{
		Pin:   PinExternalInterruptExiting | PinNMIExiting,
		Proc:  ProcHLTExiting | ProcUseIOBitmaps | ProcUseMSRBitmaps,
		Proc2: Proc2EnableEPT | Proc2UnrestrictedGuest,
		Exit:  ExitHostAddressSpaceSize | ExitAckInterruptOnExit | ExitSaveEFER | ExitLoadEFER,
		Entry: EntryLoadEFER,
	}
	wantOptional = Controls{
		Pin:   PinPreemptionTimer,
		Proc2: Proc2EnableVPID | Proc2EnableRDTSCP | Proc2EnableINVPCID | Proc2EnableXSAVES,
		Exit:  ExitSavePreemptionTimer,
	}
)

func TestComputeControls(t *testing.T) {
	// Expected words computed independently as ((req|opt) & allowed1) |
	// allowed0 from the raw TRUE MSR values.
	tests := []struct {
		name string
		msrs map[uint32]uint64
		want Controls
	}{
		{"bochs-haswell", bochsHaswell4770, Controls{Pin: 0x5f, Proc: 0x960061f2, Proc2: 0x10aa, Exit: 0x73effb, Entry: 0x91fb}},
		{"xeon-e3-1270v2", xeonE31270v2, Controls{Pin: 0x5f, Proc: 0x960061f2, Proc2: 0xaa, Exit: 0x73effb, Entry: 0x91fb}},
		{"skylake-sp-9980xe", skylakeSP9980XE, Controls{Pin: 0x5f, Proc: 0x960061f2, Proc2: 0x1010aa, Exit: 0x73effb, Entry: 0x91fb}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCaps(t, tc.msrs)
			got, err := c.ComputeControls(wantRequired, wantOptional)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
			if bad := c.CheckControls(got); len(bad) != 0 {
				t.Errorf("computed controls fail CheckControls: %v", bad)
			}
		})
	}
}

func TestComputeControlsRefusesUnsupported(t *testing.T) {
	c := mustCaps(t, xeonE31270v2)
	_, err := c.ComputeControls(Controls{Proc2: Proc2EnableEPT | Proc2EnableXSAVES, Pin: PinPostedInterrupts}, Controls{})
	var cerr *ControlError
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *ControlError", err)
	}
	msg := err.Error()
	for _, want := range []string{"secondary control 'enable XSAVES/XRSTORS' not supported by this CPU", "pin-based control 'process posted interrupts' not supported by this CPU"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "enable EPT") {
		t.Errorf("error %q names a supported control", msg)
	}

	// A CPU without secondary controls refuses EPT by name.
	m := map[uint32]uint64{}
	for k, v := range xeonE31270v2 {
		m[k] = v
	}
	m[0x48E] &^= uint64(ProcActivateSecondary) << 32
	c = mustCaps(t, m)
	_, err = c.ComputeControls(Controls{Proc2: Proc2EnableEPT}, Controls{})
	if err == nil || !strings.Contains(err.Error(), "secondary control 'enable EPT' not supported by this CPU") {
		t.Errorf("err = %v", err)
	}
	// Optional secondary controls on such a CPU are dropped silently.
	got, err := c.ComputeControls(Controls{}, Controls{Proc2: Proc2EnableVPID})
	if err != nil || got.Proc2 != 0 || got.Proc&ProcActivateSecondary != 0 {
		t.Errorf("got %+v, %v; want no secondary controls", got, err)
	}
}

func TestCheckControls(t *testing.T) {
	c := mustCaps(t, xeonE31270v2)
	bad := c.CheckControls(Controls{Proc: ProcActivateSecondary, Proc2: Proc2EnableXSAVES})
	joined := strings.Join(bad, "\n")
	for _, want := range []string{"pin-based control 'bit 1' must be 1", "secondary control 'enable XSAVES/XRSTORS' must be 0"} {
		if !strings.Contains(joined, want) {
			t.Errorf("CheckControls = %q, lacks %q", joined, want)
		}
	}
}

func TestFixedBits(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	if got := c.VMXONCR0(0x11); got != 0x80000031 {
		t.Errorf("VMXONCR0(0x11) = %#x, want PE|NE|ET|PG", got)
	}
	if got := c.VMXONCR4(0x20 | 1<<22); got != 0x2020 {
		t.Errorf("VMXONCR4 = %#x, want PAE|VMXE with PKE (unsupported) cleared", got)
	}
	if got := c.GuestCR0(0, true); got != CR0NE {
		t.Errorf("unrestricted GuestCR0(0) = %#x, want NE only", got)
	}
	if got := c.GuestCR0(0, false); got != CR0NE|CR0PE|CR0PG {
		t.Errorf("restricted GuestCR0(0) = %#x", got)
	}
	if got := c.GuestCR0(1<<40, true); got != CR0NE {
		t.Errorf("GuestCR0 keeps bit 40: %#x", got)
	}
}

func TestFeatureControl(t *testing.T) {
	if v, w, err := FeatureControlForVMXON(0); err != nil || !w || v != 5 {
		t.Errorf("unlocked: %#x %v %v", v, w, err)
	}
	if _, w, err := FeatureControlForVMXON(5); err != nil || w {
		t.Errorf("locked enabled: %v %v", w, err)
	}
	if _, _, err := FeatureControlForVMXON(1); err == nil {
		t.Error("locked disabled: no error")
	}
}

func TestGuestHostMasks(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	cr0, cr4 := c.GuestHostMasks(true)
	if cr0&CR0NE == 0 || cr0&(CR0PE|CR0PG) != 0 || cr0&(1<<32) == 0 {
		t.Errorf("unrestricted CR0 mask %#x", cr0)
	}
	if cr4&CR4VMXE == 0 || cr4&CR4PAE != 0 || cr4&(1<<22) == 0 {
		t.Errorf("CR4 mask %#x", cr4)
	}
	if cr0, _ := c.GuestHostMasks(false); cr0&(CR0PE|CR0PG) != CR0PE|CR0PG {
		t.Errorf("restricted CR0 mask %#x", cr0)
	}
}

func TestVirtualNMIs(t *testing.T) {
	want := Controls{Pin: PinNMIExiting | PinVirtualNMIs}
	for name, msrs := range map[string]map[uint32]uint64{
		"bochs-haswell": bochsHaswell4770, "xeon-e3-1270v2": xeonE31270v2, "skylake-sp-9980xe": skylakeSP9980XE,
	} {
		c := mustCaps(t, msrs)
		got := c.VirtualNMIs()
		if got != want {
			t.Errorf("%s: VirtualNMIs = %v, want %v", name, got, want)
		}
		ctl, err := c.ComputeControls(got, Controls{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bad := c.CheckControls(ctl); len(bad) != 0 {
			t.Errorf("%s: %v", name, bad)
		}
	}
	// A processor that lacks any one of the three gets none of them.
	for _, cut := range []struct {
		msr uint32
		bit uint64
	}{
		{0x48D, uint64(PinNMIExiting)},
		{0x48D, uint64(PinVirtualNMIs)},
		{0x48E, uint64(ProcNMIWindowExiting)},
	} {
		m := map[uint32]uint64{}
		for k, v := range xeonE31270v2 {
			m[k] = v
		}
		m[cut.msr] &^= cut.bit << 32
		if got := mustCaps(t, m).VirtualNMIs(); got != (Controls{}) {
			t.Errorf("MSR %#x without bit %#x: VirtualNMIs = %v, want none", cut.msr, cut.bit, got)
		}
	}
}
