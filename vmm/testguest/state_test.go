package testguest

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/vmm/vmx"
	"github.com/big-iron/big-iron/vmm/vmx/captured"
)

func TestInitialStatePassesEntryChecks(t *testing.T) {
	for name, msrs := range map[string]map[uint32]uint64{
		"bochs":     captured.BochsHaswell4770(),
		"e3-1270v2": captured.XeonE31270v2(),
		"9980xe":    captured.SkylakeSP9980XE(),
	} {
		c, err := vmx.ReadCapabilities(captured.Reader(msrs))
		if err != nil {
			t.Fatal(err)
		}
		ctl, err := c.ComputeControls(vmx.Controls{
			Pin:   vmx.PinExternalInterruptExiting,
			Proc:  vmx.ProcHLTExiting,
			Proc2: vmx.Proc2EnableEPT | vmx.Proc2UnrestrictedGuest,
			Exit:  vmx.ExitHostAddressSpaceSize | vmx.ExitSaveEFER | vmx.ExitLoadEFER,
			Entry: vmx.EntryLoadEFER,
		}, vmx.Controls{Proc2: vmx.Proc2EnableVPID})
		if err != nil {
			t.Fatal(err)
		}
		g, err := InitialState(c, ctl, 0x100000|3<<3|vmx.MemTypeWB, 1)
		if err != nil {
			t.Fatal(err)
		}
		if v := c.CheckGuestState(&g, 39); len(v) != 0 {
			t.Errorf("%s: %v", name, v)
		}
		if g.CR0&vmx.CR0NE == 0 || g.CR0Shadow&vmx.CR0NE != 0 || g.CR4&vmx.CR4VMXE == 0 {
			t.Errorf("%s: CR0 %#x shadow %#x CR4 %#x", name, g.CR0, g.CR0Shadow, g.CR4)
		}
		// The payload's first mode switch (OR CR0 with PE, via the shadow)
		// changes no host-owned bit, so it does not exit.
		if newCR0 := g.CR0Shadow | vmx.CR0PE; (newCR0^g.CR0Shadow)&g.CR0Mask != 0 {
			t.Errorf("%s: setting CR0.PE would exit", name)
		}
		if newCR4 := g.CR4Shadow | vmx.CR4PAE; (newCR4^g.CR4Shadow)&g.CR4Mask != 0 {
			t.Errorf("%s: setting CR4.PAE would exit", name)
		}
	}
	c, _ := vmx.ReadCapabilities(captured.Reader(captured.BochsHaswell4770()))
	if _, err := InitialState(c, vmx.Controls{}, 0, 0); err == nil || !strings.Contains(err.Error(), "unrestricted") {
		t.Errorf("no unrestricted guest: %v", err)
	}
}
