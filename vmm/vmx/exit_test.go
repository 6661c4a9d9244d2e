package vmx

import (
	"errors"
	"strings"
	"testing"
)

func TestExitReasonNames(t *testing.T) {
	for r, want := range map[ExitReason]string{
		ExitCPUID:             "CPUID",
		ExitEPTViolation:      "EPT violation",
		ExitIOInstruction:     "I/O instruction",
		ExitInvalidGuestState: "VM-entry failure due to invalid guest state",
		ExitTripleFault:       "triple fault",
		ExitReason(35):        "exit reason 35",
		ExitReason(65535):     "exit reason 65535",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d: %q, want %q", uint16(r), got, want)
		}
	}
	info := DecodeExitReason(0x80000021)
	if info.Reason != ExitInvalidGuestState || !info.EntryFailure {
		t.Errorf("DecodeExitReason = %+v", info)
	}
}

func TestDecodeIOExit(t *testing.T) {
	// OUT DX, AL to 0xE9: size 0, out, DX operand.
	e, err := DecodeIOExit(0xE9 << 16)
	if err != nil || e != (IOExit{Port: 0xE9, Size: 1}) {
		t.Errorf("out dx,al: %+v %v", e, err)
	}
	// REP INSD from port 0x1F0: size 3, in, string, rep.
	e, err = DecodeIOExit(0x1F0<<16 | 1<<5 | 1<<4 | 1<<3 | 3)
	if err != nil || e != (IOExit{Port: 0x1F0, Size: 4, In: true, String: true, Rep: true}) {
		t.Errorf("rep insd: %+v %v", e, err)
	}
	// IN AX, 0x60 (immediate).
	e, err = DecodeIOExit(0x60<<16 | 1<<6 | 1<<3 | 1)
	if err != nil || e != (IOExit{Port: 0x60, Size: 2, In: true, Immediate: true}) {
		t.Errorf("in ax,imm: %+v %v", e, err)
	}
	if _, err := DecodeIOExit(2); !errors.Is(err, ErrBadQualification) {
		t.Errorf("size code 2: err %v", err)
	}
}

func TestDecodeCRAccess(t *testing.T) {
	// MOV CR3, RBX: CR 3, type 0, reg 3.
	a, err := DecodeCRAccess(3 | 3<<8)
	if err != nil || a.CR != 3 || a.Type != MovToCR || a.Reg != RBX {
		t.Errorf("mov cr3,rbx: %+v %v", a, err)
	}
	// MOV R12, CR8.
	a, err = DecodeCRAccess(8 | 1<<4 | 12<<8)
	if err != nil || a.CR != 8 || a.Type != MovFromCR || a.Reg != R12 {
		t.Errorf("mov r12,cr8: %+v %v", a, err)
	}
	// LMSW with memory operand and source 0x1234.
	a, err = DecodeCRAccess(0x1234<<16 | 1<<6 | 3<<4)
	if err != nil || a.Type != LMSW || !a.LMSWMemory || a.LMSWSource != 0x1234 {
		t.Errorf("lmsw: %+v %v", a, err)
	}
	if _, err := DecodeCRAccess(2); !errors.Is(err, ErrBadQualification) {
		t.Errorf("CR2: %v", err)
	}
	if _, err := DecodeCRAccess(4 | 2<<4); !errors.Is(err, ErrBadQualification) {
		t.Errorf("CLTS on CR4: %v", err)
	}
}

func TestDecodeDRAndEPT(t *testing.T) {
	d := DecodeDRAccess(7 | 1<<4 | 9<<8)
	if d != (DRAccess{DR: 7, From: true, Reg: R9}) {
		t.Errorf("DR: %+v", d)
	}
	v := DecodeEPTViolation(1<<1 | 1<<3 | 1<<7 | 1<<8)
	if !v.Write || v.Read || !v.Readable || v.Writable || !v.LinearValid || !v.Translated {
		t.Errorf("EPT violation %+v", v)
	}
	// Bit 8 without bit 7 is not meaningful.
	if v := DecodeEPTViolation(1 << 8); v.Translated {
		t.Error("Translated without LinearValid")
	}
}

func TestInterruption(t *testing.T) {
	gp := DecodeInterruption(uint64(InjectGP()))
	if gp.Vector != VectorGP || gp.Type != IntrHardwareExc || !gp.ErrorCodeValid || !gp.Valid {
		t.Errorf("InjectGP = %+v", gp)
	}
	if InjectGP() != 0x80000B0D {
		t.Errorf("InjectGP = %#x", InjectGP())
	}
}

func TestInstructionError(t *testing.T) {
	if got := InstructionError(7).String(); got != "VM entry with invalid control field(s)" {
		t.Errorf("7: %q", got)
	}
	if got := InstructionError(8).Error(); !strings.Contains(got, "host-state") {
		t.Errorf("8: %q", got)
	}
	if got := InstructionError(99).String(); !strings.Contains(got, "unknown") {
		t.Errorf("99: %q", got)
	}
}

func FuzzDecodeExit(f *testing.F) {
	for _, s := range []uint64{0, 0xE9 << 16, 3 | 3<<8, 0x80000021, ^uint64(0), 1 << 63} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, reason, qual uint64) {
		info := DecodeExitReason(reason)
		_ = info.Reason.String()
		_ = InstructionError(reason).String()
		if io, err := DecodeIOExit(qual); err == nil && io.Size != 1 && io.Size != 2 && io.Size != 4 {
			t.Fatalf("size %d", io.Size)
		}
		if cr, err := DecodeCRAccess(qual); err == nil {
			_ = cr.Reg.String()
		}
		_ = DecodeDRAccess(qual).Reg.String()
		_ = DecodeEPTViolation(qual)
		_ = DecodeInterruption(qual)
		_ = Field(reason).String()
		_ = Field(reason).Valid()
	})
}

// TestGPRNumbers checks the register numbering against the ModRM/REX
// encoding (SDM Vol. 2A, Table 2-2) and the names.
func TestGPRNumbers(t *testing.T) {
	for _, c := range []struct {
		g    GPR
		n    int
		name string
	}{{RAX, 0, "RAX"}, {RSP, 4, "RSP"}, {RDI, 7, "RDI"}, {R8, 8, "R8"}, {R15, 15, "R15"}} {
		if int(c.g) != c.n || c.g.String() != c.name {
			t.Errorf("%s = %d (%q), want %d", c.name, c.g, c.g.String(), c.n)
		}
	}
	if R15+1 != NumGPRs {
		t.Errorf("NumGPRs = %d, want %d", NumGPRs, R15+1)
	}
	if s := GPR(NumGPRs).String(); s != "GPR(16)" {
		t.Errorf("GPR(16) = %q", s)
	}
}
