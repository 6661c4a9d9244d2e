package ept

import "fmt"

// MisconfigReason says why an entry is malformed: for EPT, why it causes
// an EPT misconfiguration (Intel SDM Vol. 3C, 28.3.3.1); for NPT, why
// every nested walk through it fails, with a nested page fault that has
// RSV=1 for reserved bits (AMD APM Vol. 2, 15.25.6). NPT has no
// misconfiguration exit; its entries can only have ReservedBits,
// LargePageUnsupported or NotUser.
type MisconfigReason int

// Reasons for a malformed entry.
const (
	// WriteWithoutRead: bits 2:0 are 010b or 110b.
	WriteWithoutRead MisconfigReason = iota + 1
	// ExecuteOnlyUnsupported: bits 2:0 are 100b on a processor without
	// execute-only support.
	ExecuteOnlyUnsupported
	// ReservedBits: a reserved bit is set (including address bits at or
	// above MAXPHYADDR).
	ReservedBits
	// LargePageUnsupported: bit 7 is set in a PDE or PDPTE but the
	// processor does not support 2-MiB or 1-GiB pages (bit 7 is then
	// reserved).
	LargePageUnsupported
	// InvalidMemType: a leaf entry holds memory type 2, 3 or 7.
	InvalidMemType
	// NotUser (NPT): U/S is clear. Every access in a nested walk is a
	// user access (AMD APM Vol. 2, 15.25.5), so every guest access
	// through the entry causes a nested page fault.
	NotUser
)

// String describes the reason.
func (r MisconfigReason) String() string {
	switch r {
	case WriteWithoutRead:
		return "write access without read access"
	case ExecuteOnlyUnsupported:
		return "execute-only access not supported"
	case ReservedBits:
		return "reserved bits set"
	case LargePageUnsupported:
		return "page size not supported"
	case InvalidMemType:
		return "reserved memory type"
	case NotUser:
		return "U/S clear: nested accesses are user accesses"
	}
	return fmt.Sprintf("MisconfigReason(%d)", int(r))
}

// MisconfigError describes an EPT entry that would cause an EPT
// misconfiguration VM exit, or an NPT entry through which every nested
// walk faults.
type MisconfigError struct {
	Format Format
	Level  Level
	Entry  uint64
	Reason MisconfigReason
	// Bits holds the offending bits for ReservedBits and
	// LargePageUnsupported.
	Bits uint64
}

// Error implements error.
func (e *MisconfigError) Error() string {
	s := fmt.Sprintf("ept: misconfigured %v %#016x: %v", e.Level, e.Entry, e.Reason)
	if e.Format == NPT {
		s = fmt.Sprintf("ept: NPT %v %#016x faults: %v", e.Level, e.Entry, e.Reason)
	}
	switch e.Reason {
	case ReservedBits, LargePageUnsupported:
		s += fmt.Sprintf(" (%#x)", e.Bits)
	case InvalidMemType:
		s += fmt.Sprintf(" (%d)", entryMemType(e.Entry))
	}
	return s
}

// reservedBits returns the bits that are reserved in a present entry e at
// level l (Intel SDM Vol. 3C, 28.3.2, Tables 28-1 to 28-6), and whether
// the entry uses a page size caps does not support.
func reservedBits(e uint64, l Level, caps *Caps) (rsvd uint64, badSize bool) {
	rsvd = caps.reservedAddrBits()
	switch l {
	case LevelPML4:
		rsvd |= 0xF8 // bits 7:3
	case LevelPDPT, LevelPD:
		if e&EntryLarge == 0 {
			rsvd |= 0xF8 // bits 7:3 (bit 7 is clear)
			break
		}
		if (l == LevelPDPT && !caps.Pages1G) || (l == LevelPD && !caps.Pages2M) {
			return rsvd | EntryLarge, true
		}
		// Address bits below the page size: 29:12 or 20:12.
		rsvd |= (l.span() - 1) &^ (PageSize4K - 1)
	}
	return rsvd, false
}

// CheckEntry is EPT.CheckEntry.
func CheckEntry(e uint64, l Level, caps Caps) error {
	return checkEntry(&formats[EPT], e, l, &caps)
}

// CheckEntry reports whether e, met as a level-l entry while translating
// a guest-physical address on a processor described by caps, is
// malformed. For EPT that is whether the processor would take an
// EPT-misconfiguration exit (Intel SDM Vol. 3C, 28.3.3.1); for NPT,
// whether the walk would fail whatever the access: reserved bits set
// (AMD APM Vol. 2, 5.4.1 and 15.25.6, a nested page fault with RSV=1) or
// U/S clear (15.25.5). A not-present entry is never malformed. The result
// is nil or a *MisconfigError.
func (f Format) CheckEntry(e uint64, l Level, caps Caps) error {
	if f != EPT && f != NPT {
		return fmt.Errorf("ept: CheckEntry: unknown %v", f)
	}
	return checkEntry(&formats[f], e, l, &caps)
}

func checkEntry(f *format, e uint64, l Level, caps *Caps) error {
	if !f.isPresent(e) {
		return nil
	}
	if f.kind == NPT {
		return checkNPTEntry(e, l, caps)
	}
	switch f.perm(e) {
	case PermWrite, PermWrite | PermExec:
		return &MisconfigError{Level: l, Entry: e, Reason: WriteWithoutRead}
	case PermExec:
		if !caps.ExecuteOnly {
			return &MisconfigError{Level: l, Entry: e, Reason: ExecuteOnlyUnsupported}
		}
	}
	rsvd, badSize := reservedBits(e, l, caps)
	if badSize {
		return &MisconfigError{Level: l, Entry: e, Reason: LargePageUnsupported, Bits: EntryLarge}
	}
	if bad := e & rsvd; bad != 0 {
		return &MisconfigError{Level: l, Entry: e, Reason: ReservedBits, Bits: bad}
	}
	if isLeaf(e, l) && !entryMemType(e).Valid() {
		return &MisconfigError{Level: l, Entry: e, Reason: InvalidMemType}
	}
	return nil
}

// nptReservedBits returns the bits that are reserved in a present
// long-mode entry e at level l (AMD APM Vol. 2, 5.4.1 and Figures 5-18
// to 5-25), and whether the entry uses a page size caps does not
// support.
func nptReservedBits(e uint64, l Level, caps *Caps) (rsvd uint64, badSize bool) {
	rsvd = caps.reservedAddrBits()
	if !caps.NoExecute {
		rsvd |= NPTNoExec // reserved unless EFER.NXE
	}
	switch l {
	case LevelPML4:
		rsvd |= NPTLarge // PS must be zero in a PML4E
	case LevelPDPT, LevelPD:
		if e&NPTLarge == 0 {
			break
		}
		if (l == LevelPDPT && !caps.Pages1G) || (l == LevelPD && !caps.Pages2M) {
			return rsvd | NPTLarge, true
		}
		// Address bits below the page size other than PAT (bit 12):
		// 29:13 or 20:13.
		rsvd |= (l.span() - 1) &^ (NPTPATLarge<<1 - 1)
	}
	return rsvd, false
}

func checkNPTEntry(e uint64, l Level, caps *Caps) error {
	rsvd, badSize := nptReservedBits(e, l, caps)
	if badSize {
		return &MisconfigError{Format: NPT, Level: l, Entry: e, Reason: LargePageUnsupported, Bits: NPTLarge}
	}
	if bad := e & rsvd; bad != 0 {
		return &MisconfigError{Format: NPT, Level: l, Entry: e, Reason: ReservedBits, Bits: bad}
	}
	if e&NPTUser == 0 {
		return &MisconfigError{Format: NPT, Level: l, Entry: e, Reason: NotUser}
	}
	return nil
}

// Fields of the extended-page-table pointer (Intel SDM Vol. 3C, 24.6.11).
const (
	EPTPMemTypeMask    uint64 = 7      // bits 2:0: paging-structure memory type
	EPTPWalkLenShift          = 3      // bits 5:3: page-walk length minus 1
	EPTPWalkLenMask    uint64 = 7 << 3 //
	EPTPWalkLen4       uint64 = 3 << 3 // 4-level walk
	EPTPWalkLen5       uint64 = 4 << 3 // 5-level walk
	EPTPAccessDirty    uint64 = 1 << 6 // enable accessed and dirty flags
	EPTPSupervisorSSTK uint64 = 1 << 7 // supervisor shadow-stack access rights
	eptpReserved       uint64 = 0xF00  // bits 11:8
)

// MakeEPTP returns the EPTP value for a 4-level table whose PML4 table is
// at root.
func MakeEPTP(root uint64, mt MemType, accessDirty bool) uint64 {
	v := root&EntryAddr | uint64(mt)&EPTPMemTypeMask | EPTPWalkLen4
	if accessDirty {
		v |= EPTPAccessDirty
	}
	return v
}

// CheckEPTP reports whether VM entry on a processor described by caps
// would accept eptp (Intel SDM Vol. 3C, "Checks on VM-Execution Control
// Fields", the EPTP rules).
func CheckEPTP(eptp uint64, caps Caps) error {
	switch MemType(eptp & EPTPMemTypeMask) {
	case Uncacheable:
		if !caps.UncacheableEPTP {
			return fmt.Errorf("ept: EPTP %#x: uncacheable paging structures not supported", eptp)
		}
	case WriteBack:
		if !caps.WriteBackEPTP {
			return fmt.Errorf("ept: EPTP %#x: write-back paging structures not supported", eptp)
		}
	default:
		return fmt.Errorf("ept: EPTP %#x: invalid memory type %d", eptp, eptp&EPTPMemTypeMask)
	}
	if eptp&EPTPWalkLenMask != EPTPWalkLen4 || !caps.PageWalk4 {
		return fmt.Errorf("ept: EPTP %#x: page-walk length %d not supported",
			eptp, (eptp&EPTPWalkLenMask)>>EPTPWalkLenShift+1)
	}
	if eptp&EPTPAccessDirty != 0 && !caps.AccessDirty {
		return fmt.Errorf("ept: EPTP %#x: accessed/dirty flags not supported", eptp)
	}
	if bad := eptp & (eptpReserved | EPTPSupervisorSSTK | caps.reservedAddrBits() | ^(EntryAddr | 0xFFF)); bad != 0 {
		return fmt.Errorf("ept: EPTP %#x: reserved bits %#x set", eptp, bad)
	}
	return nil
}
