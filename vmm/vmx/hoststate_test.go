package vmx

import (
	"strings"
	"testing"
)

func validHost() HostState {
	return HostState{
		CR0: CR0PE | CR0NE | CR0ET | CR0PG | CR0MP, CR3: 0x1000, CR4: CR4PAE | CR4VMXE,
		CS: 0x08, SS: 0x10, DS: 0x10, ES: 0x10, TR: 0x28,
		FSBase: 0x7F0000001000, TRBase: 0x5000, GDTRBase: 0x6000, IDTRBase: 0x7000,
		EFER: EFERLME | EFERLMA | EFERNXE | EFERSCE, PAT: 0x0007040600070406,
	}
}

func TestCheckHostState(t *testing.T) {
	c := mustCaps(t, bochsHaswell4770)
	exit := ExitHostAddressSpaceSize | ExitLoadEFER | ExitLoadPAT
	h := validHost()
	if v := c.CheckHostState(&h, exit, 39); len(v) != 0 {
		t.Fatalf("valid host: %v", v)
	}
	for _, m := range []struct {
		name   string
		mutate func(h *HostState)
		text   string
	}{
		{"CR0.NE", func(h *HostState) { h.CR0 &^= CR0NE }, "host CR0 bits 0x20 must be 1"},
		{"CR4.VMXE", func(h *HostState) { h.CR4 &^= CR4VMXE }, "host CR4 bits 0x2000 must be 1"},
		{"CR4.PAE", func(h *HostState) { h.CR4 &^= CR4PAE }, "CR4.PAE must be 1"},
		{"CR3", func(h *HostState) { h.CR3 = 1 << 50 }, "CR3 bits beyond"},
		{"TR zero", func(h *HostState) { h.TR = 0 }, "TR selector must not be 0"},
		{"CS zero", func(h *HostState) { h.CS = 0 }, "CS selector must not be 0"},
		{"RPL", func(h *HostState) { h.DS = 0x13 }, "DS selector 0x13 must have RPL 0"},
		{"FS base", func(h *HostState) { h.FSBase = 1 << 47 }, "FS base must be canonical"},
		{"EFER", func(h *HostState) { h.EFER &^= EFERLMA }, "LMA and LME must equal"},
		{"PAT", func(h *HostState) { h.PAT = 3 }, "invalid memory type 3"},
		{"sysenter", func(h *HostState) { h.SysenterEIP = 1 << 60 }, "SYSENTER"},
	} {
		h := validHost()
		m.mutate(&h)
		vs := c.CheckHostState(&h, exit, 39)
		found := false
		for _, v := range vs {
			found = found || strings.Contains(v.Text, m.text)
		}
		if !found {
			t.Errorf("%s: want %q, got %v", m.name, m.text, vs)
		}
	}
	if n := len(h.Fields(exit)); n != 20 {
		t.Errorf("%d host fields with EFER and PAT, want 20", n)
	}
	for _, fv := range h.Fields(0) {
		if fv.Field == HostEFER || fv.Field == HostPAT || fv.Field.Type() != TypeHost {
			t.Errorf("unexpected %v", fv.Field)
		}
	}
}
