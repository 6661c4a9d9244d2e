package vmx

import "fmt"

// HostState is the host-state area of the VMCS except HOST_RSP and
// HOST_RIP, which Enter writes itself (SDM Vol. 3C, 25.5).
type HostState struct {
	CR0, CR3, CR4                              uint64
	CS, SS, DS, ES, FS, GS, TR                 uint16 // selectors
	FSBase, GSBase, TRBase, GDTRBase, IDTRBase uint64
	SysenterCS                                 uint32
	SysenterESP, SysenterEIP                   uint64
	EFER, PAT                                  uint64 // written only when the exit controls load them
}

// Fields returns the VMCS writes that establish h. HOST_IA32_EFER and
// HOST_IA32_PAT are included only if exit loads them.
func (h *HostState) Fields(exit ExitControls) []FieldValue {
	out := []FieldValue{
		{HostCR0, h.CR0}, {HostCR3, h.CR3}, {HostCR4, h.CR4},
		{HostCSSelector, uint64(h.CS)}, {HostSSSelector, uint64(h.SS)}, {HostDSSelector, uint64(h.DS)},
		{HostESSelector, uint64(h.ES)}, {HostFSSelector, uint64(h.FS)}, {HostGSSelector, uint64(h.GS)},
		{HostTRSelector, uint64(h.TR)},
		{HostFSBase, h.FSBase}, {HostGSBase, h.GSBase}, {HostTRBase, h.TRBase},
		{HostGDTRBase, h.GDTRBase}, {HostIDTRBase, h.IDTRBase},
		{HostSysenterCS, uint64(h.SysenterCS)}, {HostSysenterESP, h.SysenterESP}, {HostSysenterEIP, h.SysenterEIP},
	}
	if exit&ExitLoadEFER != 0 {
		out = append(out, FieldValue{HostEFER, h.EFER})
	}
	if exit&ExitLoadPAT != 0 {
		out = append(out, FieldValue{HostPAT, h.PAT})
	}
	return out
}

// CheckHostState runs the VM-entry checks on the host-state area (SDM
// Vol. 3C, 27.2.2 and 27.2.3) and returns every failure in words.
func (c *Capabilities) CheckHostState(h *HostState, exit ExitControls, maxPhysAddr uint8) []Violation {
	var out []Violation
	add := func(sec, format string, a ...any) {
		out = append(out, Violation{Section: sec, Text: fmt.Sprintf(format, a...)})
	}
	const crs, segs = "27.2.2", "27.2.3"
	if miss := c.CR0Fixed0 &^ h.CR0; miss != 0 {
		add(crs, "host CR0 bits %#x must be 1", miss)
	}
	if extra := h.CR0 &^ c.CR0Fixed1; extra != 0 {
		add(crs, "host CR0 bits %#x must be 0", extra)
	}
	if miss := c.CR4Fixed0 &^ h.CR4; miss != 0 {
		add(crs, "host CR4 bits %#x must be 1", miss)
	}
	if extra := h.CR4 &^ c.CR4Fixed1; extra != 0 {
		add(crs, "host CR4 bits %#x must be 0", extra)
	}
	if maxPhysAddr < 64 && h.CR3>>maxPhysAddr != 0 {
		add(crs, "host CR3 bits beyond the physical-address width must be 0")
	}
	if !canonical(h.SysenterESP, 48) || !canonical(h.SysenterEIP, 48) {
		add(crs, "host IA32_SYSENTER_ESP and IA32_SYSENTER_EIP must be canonical")
	}
	long := exit&ExitHostAddressSpaceSize != 0
	if exit&ExitLoadPAT != 0 {
		for i := 0; i < 8; i++ {
			switch t := h.PAT >> (8 * i) & 0xFF; t {
			case 0, 1, 4, 5, 6, 7:
			default:
				add(crs, "host IA32_PAT entry %d has invalid memory type %d", i, t)
			}
		}
	}
	if exit&ExitLoadEFER != 0 {
		if h.EFER&^(EFERSCE|EFERLME|EFERLMA|EFERNXE) != 0 {
			add(crs, "host IA32_EFER reserved bits %#x must be 0", h.EFER&^(EFERSCE|EFERLME|EFERLMA|EFERNXE))
		}
		if (h.EFER&EFERLMA != 0) != long || (h.EFER&EFERLME != 0) != long {
			add(crs, "host IA32_EFER.LMA and LME must equal \"host address-space size\"")
		}
	}
	for _, s := range []struct {
		name string
		sel  uint16
	}{{"CS", h.CS}, {"SS", h.SS}, {"DS", h.DS}, {"ES", h.ES}, {"FS", h.FS}, {"GS", h.GS}, {"TR", h.TR}} {
		if s.sel&7 != 0 {
			add(segs, "host %s selector %#x must have RPL 0 and TI 0", s.name, s.sel)
		}
	}
	if h.CS == 0 {
		add(segs, "host CS selector must not be 0")
	}
	if h.TR == 0 {
		add(segs, "host TR selector must not be 0 (load a TSS)")
	}
	if h.SS == 0 && !long {
		add(segs, "host SS selector must not be 0 without \"host address-space size\"")
	}
	for _, b := range []struct {
		name string
		base uint64
	}{{"FS", h.FSBase}, {"GS", h.GSBase}, {"GDTR", h.GDTRBase}, {"IDTR", h.IDTRBase}, {"TR", h.TRBase}} {
		if !canonical(b.base, 48) {
			add(segs, "host %s base must be canonical", b.name)
		}
	}
	if long {
		if h.CR4&CR4PAE == 0 {
			add(crs, "host CR4.PAE must be 1 with \"host address-space size\"")
		}
	} else if h.CR4&CR4PCIDE != 0 {
		add(crs, "host CR4.PCIDE must be 0 without \"host address-space size\"")
	}
	return out
}
