package vmx

import "fmt"

// FieldValue is one VMCS field and its value.
type FieldValue struct {
	Field Field
	Value uint64
}

type fieldRef struct {
	f   Field
	u64 *uint64
	u32 *uint32
	u16 *uint16
	ctl *uint32 // control words, stored as typed uint32s
}

func (r fieldRef) get() uint64 {
	switch {
	case r.u64 != nil:
		return *r.u64
	case r.u32 != nil:
		return uint64(*r.u32)
	case r.u16 != nil:
		return uint64(*r.u16)
	}
	return uint64(*r.ctl)
}

func (r fieldRef) set(v uint64) {
	switch {
	case r.u64 != nil:
		*r.u64 = v
	case r.u32 != nil:
		*r.u32 = uint32(v)
	case r.u16 != nil:
		*r.u16 = uint16(v)
	default:
		*r.ctl = uint32(v)
	}
}

func segRefs(s *Segment, sel, base, limit, ar Field) []fieldRef {
	return []fieldRef{{f: sel, u16: &s.Selector}, {f: base, u64: &s.Base}, {f: limit, u32: &s.Limit}, {f: ar, u32: &s.AccessRights}}
}

// refs maps every GuestState member to its VMCS field.
func (g *GuestState) refs() []fieldRef {
	r := []fieldRef{
		{f: GuestCR0, u64: &g.CR0}, {f: GuestCR3, u64: &g.CR3}, {f: GuestCR4, u64: &g.CR4}, {f: GuestDR7, u64: &g.DR7},
		{f: GuestRSP, u64: &g.RSP}, {f: GuestRIP, u64: &g.RIP}, {f: GuestRFLAGS, u64: &g.RFLAGS},
		{f: GuestGDTRBase, u64: &g.GDTRBase}, {f: GuestIDTRBase, u64: &g.IDTRBase},
		{f: GuestGDTRLimit, u32: &g.GDTRLimit}, {f: GuestIDTRLimit, u32: &g.IDTRLimit},
		{f: GuestDebugCtl, u64: &g.DebugCtl}, {f: GuestSysenterESP, u64: &g.SysenterESP}, {f: GuestSysenterEIP, u64: &g.SysenterEIP},
		{f: GuestPAT, u64: &g.PAT}, {f: GuestEFER, u64: &g.EFER},
		{f: GuestActivityState, u32: &g.ActivityState}, {f: GuestInterruptibility, u32: &g.Interruptibility},
		{f: GuestPendingDebugExceptions, u64: &g.PendingDebug}, {f: VMCSLinkPointer, u64: &g.VMCSLinkPointer},
		{f: VMCSPinBasedControls, ctl: (*uint32)(&g.Controls.Pin)}, {f: VMCSProcBasedControls, ctl: (*uint32)(&g.Controls.Proc)},
		{f: VMCSProcBasedControls2, ctl: (*uint32)(&g.Controls.Proc2)}, {f: VMCSExitControls, ctl: (*uint32)(&g.Controls.Exit)},
		{f: VMCSEntryControls, ctl: (*uint32)(&g.Controls.Entry)},
		{f: EPTPointer, u64: &g.EPTP}, {f: VirtualProcessorID, u16: &g.VPID}, {f: CR3TargetCount, u32: &g.CR3TargetCount},
		{f: EntryInterruptionInfo, u32: &g.EntryInterruptionInfo}, {f: EntryExceptionErrorCode, u32: &g.EntryErrorCode},
		{f: CR0GuestHostMask, u64: &g.CR0Mask}, {f: CR0ReadShadow, u64: &g.CR0Shadow},
		{f: CR4GuestHostMask, u64: &g.CR4Mask}, {f: CR4ReadShadow, u64: &g.CR4Shadow},
	}
	r = append(r, segRefs(&g.ES, GuestESSelector, GuestESBase, GuestESLimit, GuestESAccessRights)...)
	r = append(r, segRefs(&g.CS, GuestCSSelector, GuestCSBase, GuestCSLimit, GuestCSAccessRights)...)
	r = append(r, segRefs(&g.SS, GuestSSSelector, GuestSSBase, GuestSSLimit, GuestSSAccessRights)...)
	r = append(r, segRefs(&g.DS, GuestDSSelector, GuestDSBase, GuestDSLimit, GuestDSAccessRights)...)
	r = append(r, segRefs(&g.FS, GuestFSSelector, GuestFSBase, GuestFSLimit, GuestFSAccessRights)...)
	r = append(r, segRefs(&g.GS, GuestGSSelector, GuestGSBase, GuestGSLimit, GuestGSAccessRights)...)
	r = append(r, segRefs(&g.LDTR, GuestLDTRSelector, GuestLDTRBase, GuestLDTRLimit, GuestLDTRAccessRights)...)
	r = append(r, segRefs(&g.TR, GuestTRSelector, GuestTRBase, GuestTRLimit, GuestTRAccessRights)...)
	return r
}

// Fields returns the VMCS writes that establish g: guest-state fields,
// the five control words, EPTP, VPID, CR3-target count and the VM-entry
// event fields. Fields whose feature is off (EPTP without "enable EPT",
// VPID without "enable VPID", the secondary controls without "activate
// secondary controls") are left out, since the processor may not have
// them. Setup-time code: it allocates.
func (g *GuestState) Fields() []FieldValue {
	proc2 := g.Controls.Proc&ProcActivateSecondary != 0
	var out []FieldValue
	for _, r := range g.refs() {
		switch r.f {
		case VMCSProcBasedControls2:
			if !proc2 {
				continue
			}
		case EPTPointer:
			if !proc2 || g.Controls.Proc2&Proc2EnableEPT == 0 {
				continue
			}
		case VirtualProcessorID:
			if !proc2 || g.Controls.Proc2&Proc2EnableVPID == 0 {
				continue
			}
		}
		out = append(out, FieldValue{Field: r.f, Value: r.get()})
	}
	return out
}

// ReadGuestState reads a GuestState back from the current VMCS through
// read (VMREAD on bare metal), e.g. to run CheckGuestState after a failed
// VM entry. Fields the controls make irrelevant are not read.
func ReadGuestState(read func(Field) (uint64, error)) (GuestState, error) {
	var g GuestState
	refs := g.refs()
	get := func(r fieldRef) error {
		v, err := read(r.f)
		if err != nil {
			return fmt.Errorf("reading %v: %w", r.f, err)
		}
		r.set(v)
		return nil
	}
	var deferred []fieldRef
	for _, r := range refs {
		switch r.f {
		case VMCSProcBasedControls2, EPTPointer, VirtualProcessorID:
			deferred = append(deferred, r)
			continue
		}
		if err := get(r); err != nil {
			return g, err
		}
	}
	if g.Controls.Proc&ProcActivateSecondary == 0 {
		return g, nil
	}
	for _, r := range deferred {
		if r.f == VMCSProcBasedControls2 {
			if err := get(r); err != nil {
				return g, err
			}
		}
	}
	for _, r := range deferred {
		if r.f == EPTPointer && g.Controls.Proc2&Proc2EnableEPT != 0 || r.f == VirtualProcessorID && g.Controls.Proc2&Proc2EnableVPID != 0 {
			if err := get(r); err != nil {
				return g, err
			}
		}
	}
	return g, nil
}
