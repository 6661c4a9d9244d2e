package testguest

import (
	"fmt"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// InitialState returns the vCPU state that starts the payload: 16-bit
// real mode with CS base 0 and IP LoadAddress, flat 64 KiB data segments,
// interrupts off, no paging. ctl must include "unrestricted guest" and
// "enable EPT" and must not include "IA-32e mode guest"; eptp maps guest
// memory (at least 0..MinGuestMemory, not ProbeAddress). CR0.NE and
// CR4.VMXE, which VMX forces, are owned by the host through the
// guest/host masks, with read shadows showing the guest its reset values.
// The result passes vmx.CheckGuestState; write it with
// GuestState.Fields.
func InitialState(c *vmx.Capabilities, ctl vmx.Controls, eptp uint64, vpid uint16) (vmx.GuestState, error) {
	if ctl.Proc&vmx.ProcActivateSecondary == 0 || ctl.Proc2&vmx.Proc2UnrestrictedGuest == 0 {
		return vmx.GuestState{}, fmt.Errorf("testguest: the payload starts in real mode and needs \"unrestricted guest\"")
	}
	if ctl.Entry&vmx.EntryIA32eModeGuest != 0 {
		return vmx.GuestState{}, fmt.Errorf("testguest: the payload starts in real mode, not IA-32e mode")
	}
	cr0Mask, cr4Mask := c.GuestHostMasks(true)
	data := vmx.Segment{Limit: 0xFFFF, AccessRights: 0x93} // read/write data, accessed, present
	return vmx.GuestState{
		CR0:             c.GuestCR0(vmx.CR0ET, true),
		CR4:             c.GuestCR4(0),
		CR0Mask:         cr0Mask,
		CR0Shadow:       vmx.CR0ET,
		CR4Mask:         cr4Mask,
		CR4Shadow:       0,
		DR7:             0x400,
		RIP:             LoadAddress,
		RSP:             StackTop,
		RFLAGS:          vmx.RFLAGSFixed1,
		CS:              vmx.Segment{Limit: 0xFFFF, AccessRights: 0x9B}, // execute/read code, accessed, present
		SS:              data,
		DS:              data,
		ES:              data,
		FS:              data,
		GS:              data,
		LDTR:            vmx.Segment{AccessRights: vmx.ARUnusable},
		TR:              vmx.Segment{Limit: 0xFFFF, AccessRights: 0x8B}, // busy 32-bit TSS, present
		GDTRLimit:       0xFFFF,
		IDTRLimit:       0xFFFF,
		PAT:             0x0007040600070406, // power-on value
		VMCSLinkPointer: ^uint64(0),
		Controls:        ctl,
		EPTP:            eptp,
		VPID:            vpid,
	}, nil
}
