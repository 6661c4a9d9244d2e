package ept

import (
	"errors"
	"testing"
)

func TestCheckEntry(t *testing.T) {
	noXO := testCaps
	noXO.ExecuteOnly = false
	no1G := testCaps
	no1G.Pages1G = false
	no2M := testCaps
	no2M.Pages2M, no2M.Pages1G = false, false
	const addr = 0x1234_5000
	wb := uint64(WriteBack) << EntryMemTypeSh
	for _, tc := range []struct {
		name string
		e    uint64
		l    Level
		caps Caps
		want MisconfigReason // 0: well formed
		bits uint64
	}{
		{"not present, garbage", 0xFFFF_FFFF_FFFF_FFF8, LevelPT, testCaps, 0, 0},
		{"PTE rw wb", addr | 3 | wb, LevelPT, testCaps, 0, 0},
		{"PTE write only", addr | 2 | wb, LevelPT, testCaps, WriteWithoutRead, 0},
		{"PTE write+exec", addr | 6 | wb, LevelPT, testCaps, WriteWithoutRead, 0},
		{"PDE write only", addr | 2, LevelPD, testCaps, WriteWithoutRead, 0},
		{"PTE exec only, supported", addr | 4 | wb, LevelPT, testCaps, 0, 0},
		{"PTE exec only, unsupported", addr | 4 | wb, LevelPT, noXO, ExecuteOnlyUnsupported, 0},
		{"PTE memory type 2", addr | 1 | 2<<3, LevelPT, testCaps, InvalidMemType, 0},
		{"PTE memory type 3", addr | 1 | 3<<3, LevelPT, testCaps, InvalidMemType, 0},
		{"PTE memory type 7", addr | 1 | 7<<3, LevelPT, testCaps, InvalidMemType, 0},
		{"PTE memory type UC", addr | 1, LevelPT, testCaps, 0, 0},
		{"PTE bit 7 ignored", addr | 1 | wb | 1<<7, LevelPT, testCaps, 0, 0},
		{"PTE ignored high bits", addr | 1 | wb | 0x7FF<<52 | EntrySuppressVE, LevelPT, testCaps, 0, 0},
		{"PTE address beyond MAXPHYADDR", 1<<46 | 1 | wb, LevelPT, testCaps, ReservedBits, 1 << 46},
		{"PTE bit 51", 1<<51 | 1 | wb, LevelPT, testCaps, ReservedBits, 1 << 51},
		{"PML4E rwx", addr | 7 | EntryAccessed, LevelPML4, testCaps, 0, 0},
		{"PML4E bit 7", addr | 7 | 1<<7, LevelPML4, testCaps, ReservedBits, 1 << 7},
		{"PML4E memory type bits", addr | 7 | wb, LevelPML4, testCaps, ReservedBits, wb},
		{"PDE table with memory type bits", addr | 7 | 1<<3, LevelPD, testCaps, ReservedBits, 1 << 3},
		{"PDPTE table ignore-PAT bit", addr | 7 | 1<<6, LevelPDPT, testCaps, ReservedBits, 1 << 6},
		{"PDE 2M ok", 0x20_0000 | 7 | wb | EntryLarge | EntryDirty, LevelPD, testCaps, 0, 0},
		{"PDE 2M bit 12", 0x20_1000 | 7 | wb | EntryLarge, LevelPD, testCaps, ReservedBits, 1 << 12},
		{"PDE 2M bit 20", 0x30_0000 | 7 | wb | EntryLarge, LevelPD, testCaps, ReservedBits, 1 << 20},
		{"PDE 2M memory type 7", 0x20_0000 | 7 | 7<<3 | EntryLarge, LevelPD, testCaps, InvalidMemType, 0},
		{"PDE 2M unsupported", 0x20_0000 | 7 | wb | EntryLarge, LevelPD, no2M, LargePageUnsupported, EntryLarge},
		{"PDPTE 1G ok", 0x4000_0000 | 3 | wb | EntryLarge, LevelPDPT, testCaps, 0, 0},
		{"PDPTE 1G bit 29", 0x2000_0000 | 3 | wb | EntryLarge, LevelPDPT, testCaps, ReservedBits, 1 << 29},
		{"PDPTE 1G unsupported", 0x4000_0000 | 3 | wb | EntryLarge, LevelPDPT, no1G, LargePageUnsupported, EntryLarge},
		{"PDPTE table memory type bits ok as count", addr | 7 | 0x3FF<<52, LevelPDPT, testCaps, 0, 0},
	} {
		err := CheckEntry(tc.e, tc.l, tc.caps)
		if tc.want == 0 {
			if err != nil {
				t.Errorf("%s: %v, want no misconfiguration", tc.name, err)
			}
			continue
		}
		var me *MisconfigError
		if !errors.As(err, &me) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if me.Reason != tc.want || me.Level != tc.l || me.Entry != tc.e || (tc.bits != 0 && me.Bits != tc.bits) {
			t.Errorf("%s: got %+v (%v), want reason %v bits %#x", tc.name, *me, me, tc.want, tc.bits)
		}
	}
}

func TestDiagnoseFindsCorruptEntry(t *testing.T) {
	e := newEnv(t, testCaps, false, 64)
	gpa := uint64(0x8_0060_3000)
	if err := e.tb.Map(gpa, guestHPA, PageSize4K, PermRW, WriteBack); err != nil {
		t.Fatal(err)
	}
	if err := e.tb.Diagnose(gpa); err != nil {
		t.Fatalf("healthy path: %v", err)
	}
	w := e.tb.Walk(gpa)
	if w.Depth != 4 {
		t.Fatalf("walk depth %d, want 4", w.Depth)
	}
	// Corrupt the PDE as a stray write would: set memory-type bits, which
	// are reserved in an entry that references a page table.
	pdpt := e.tb.mem.Frame(w.Entries[0] & EntryAddr)
	pd := e.tb.mem.Frame(pdpt[LevelPDPT.index(gpa)] & EntryAddr)
	pd[LevelPD.index(gpa)] |= 2 << EntryMemTypeSh
	err := e.tb.Diagnose(gpa)
	var me *MisconfigError
	if !errors.As(err, &me) || me.Level != LevelPD || me.Reason != ReservedBits || me.Bits != 2<<EntryMemTypeSh {
		t.Fatalf("Diagnose = %v, want reserved bits in the PDE", err)
	}
	if w := e.tb.Walk(gpa); w.Depth != 3 {
		t.Fatalf("walk went past the corrupt entry: depth %d", w.Depth)
	}
	// Write-only at the leaf.
	pd[LevelPD.index(gpa)] &^= 2 << EntryMemTypeSh
	pt := e.tb.mem.Frame(pd[LevelPD.index(gpa)] & EntryAddr)
	pt[LevelPT.index(gpa)] = pt[LevelPT.index(gpa)]&^EntryPermMask | EntryWrite
	if err := e.tb.Diagnose(gpa); !errors.As(err, &me) || me.Reason != WriteWithoutRead || me.Level != LevelPT {
		t.Fatalf("Diagnose = %v, want write without read in the PTE", err)
	}
}

func TestMisconfigErrorMessages(t *testing.T) {
	for _, e := range []*MisconfigError{
		{Level: LevelPT, Entry: 0x12 | 2<<3, Reason: InvalidMemType},
		{Level: LevelPD, Entry: 0x1007, Reason: ReservedBits, Bits: 0x1000},
		{Level: LevelPML4, Entry: 2, Reason: WriteWithoutRead},
	} {
		if msg := e.Error(); msg == "" || !contains(msg, e.Level.String()) || !contains(msg, e.Reason.String()) {
			t.Errorf("message %q lacks level or reason", msg)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
