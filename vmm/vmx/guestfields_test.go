package vmx

import (
	"fmt"
	"testing"
)

func TestGuestStateFieldsRoundTrip(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	g := longModeGuest(t, c)
	fields := g.Fields()
	vmcs := map[Field]uint64{}
	for _, fv := range fields {
		if !fv.Field.Valid() {
			t.Errorf("invalid field %v", fv.Field)
		}
		if _, dup := vmcs[fv.Field]; dup {
			t.Errorf("%v written twice", fv.Field)
		}
		if fv.Value&^fv.Field.Mask() != 0 {
			t.Errorf("%v value %#x wider than the field", fv.Field, fv.Value)
		}
		vmcs[fv.Field] = fv.Value
	}
	for _, f := range []Field{GuestRIP, GuestCSAccessRights, GuestTRBase, EPTPointer, VirtualProcessorID, VMCSEntryControls, GuestEFER} {
		if _, ok := vmcs[f]; !ok {
			t.Errorf("%v not written", f)
		}
	}
	if vmcs[GuestRIP] != g.RIP || vmcs[GuestCSAccessRights] != uint64(g.CS.AccessRights) || vmcs[VMCSProcBasedControls2] != uint64(g.Controls.Proc2) {
		t.Error("values differ")
	}
	back, err := ReadGuestState(func(f Field) (uint64, error) {
		v, ok := vmcs[f]
		if !ok {
			return 0, fmt.Errorf("%v not in VMCS", f)
		}
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if back != g {
		t.Errorf("round trip:\n%+v\n%+v", back, g)
	}

	// Without secondary controls, EPTP/VPID/secondary are not written or read.
	g.Controls.Proc &^= ProcActivateSecondary
	for _, fv := range g.Fields() {
		if fv.Field == EPTPointer || fv.Field == VirtualProcessorID || fv.Field == VMCSProcBasedControls2 {
			t.Errorf("%v written without secondary controls", fv.Field)
		}
	}
}
