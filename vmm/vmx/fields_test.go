package vmx

import (
	"strings"
	"testing"
)

func TestFieldEncodings(t *testing.T) {
	seen := map[Field]bool{}
	for _, f := range AllFields() {
		if !f.Valid() {
			t.Errorf("%v (%#x) is not a valid encoding", f, uint32(f))
		}
		if seen[f] {
			t.Errorf("%v listed twice", f)
		}
		seen[f] = true
		if f.IsHigh() {
			t.Errorf("%v is a high-half encoding in the table", f)
		}
		name := f.String()
		if strings.HasPrefix(name, "VMCS field") {
			t.Errorf("%#x has no name", uint32(f))
		}
		// The SDM groups fields by width and type; the names say which.
		switch f.Type() {
		case TypeGuest:
			if !strings.Contains(name, "guest") && f != VMCSLinkPointer && f != PMLIndex && f != PreemptionTimerValue {
				t.Errorf("%v has guest type", f)
			}
		case TypeHost:
			if !strings.HasPrefix(name, "host") {
				t.Errorf("%v has host type", f)
			}
		}
	}
	if len(seen) < 150 {
		t.Errorf("only %d fields named", len(seen))
	}
	for _, tc := range []struct {
		f     Field
		width FieldWidth
		typ   FieldType
		bits  int
	}{
		{VirtualProcessorID, Width16, TypeControl, 16},
		{GuestCSSelector, Width16, TypeGuest, 16},
		{EPTPointer, Width64, TypeControl, 64},
		{EPTPointer.High(), Width64, TypeControl, 32},
		{GuestPhysicalAddress, Width64, TypeReadOnly, 64},
		{VMCSExitReason, Width32, TypeReadOnly, 32},
		{GuestCSAccessRights, Width32, TypeGuest, 32},
		{HostSysenterCS, Width32, TypeHost, 32},
		{VMCSExitQualification, WidthNatural, TypeReadOnly, 64},
		{GuestRIP, WidthNatural, TypeGuest, 64},
		{HostRIP, WidthNatural, TypeHost, 64},
	} {
		if tc.f.Width() != tc.width || tc.f.Type() != tc.typ || tc.f.Bits() != tc.bits {
			t.Errorf("%v: width %d type %d bits %d, want %d %d %d", tc.f, tc.f.Width(), tc.f.Type(), tc.f.Bits(), tc.width, tc.typ, tc.bits)
		}
	}
	if (GuestRIP.High()).Valid() {
		t.Error("high half of a natural-width field accepted")
	}
	if Field(0x8000).Valid() {
		t.Error("reserved bit 15 accepted")
	}
	if got := EPTPointer.High().String(); got != "EPT pointer (high)" {
		t.Errorf("high name %q", got)
	}
	if GuestCSSelector.Mask() != 0xFFFF || GuestRIP.Mask() != ^uint64(0) {
		t.Error("Mask wrong")
	}
}
