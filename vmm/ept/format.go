package ept

import "fmt"

// Format is the layout of the entries a Table writes: Intel EPT or AMD
// nested page tables. Both are 4-level radix trees of 512 8-byte entries
// with the same address bits and the same page-size bit, so one copy of
// the walk, map, unmap, protect, split and prune code serves both; only
// the encoding of presence, rights, memory type, the accessed and dirty
// flags, the reserved bits and the table pointer differ.
type Format uint8

const (
	// EPT is Intel's extended page table format (Intel SDM Vol. 3C,
	// 28.3.2, Tables 28-1 to 28-6), referenced by the VMCS EPT pointer.
	// It is the zero value.
	EPT Format = iota
	// NPT is AMD's nested page table format: ordinary long-mode page
	// tables (AMD APM Vol. 2, 5.3 "Long-Mode Page Translation" and 5.4
	// "Page-Translation-Table Entry Fields") rooted at the VMCB's N_CR3
	// (15.25 "Nested Paging").
	NPT
)

// String returns "EPT" or "NPT".
func (f Format) String() string {
	switch f {
	case EPT:
		return "EPT"
	case NPT:
		return "NPT"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Bits of long-mode page-table entries as nested page tables use them
// (AMD APM Vol. 2, 5.4.1 "Field Definitions", Figures 5-18 to 5-25 for
// 4-KiB, 2-MiB and 1-GiB translations).
//
// In a nested walk every access is a user access (APM 15.25.5 "Nested
// Table Walk"), so every present entry, tables included, has U/S set.
// Reads need only P, writes need R/W at every level, and an instruction
// fetch needs NX clear at every level. NX is bit 63 only when the host's
// EFER.NXE is set; otherwise bit 63 is reserved and a set bit makes the
// walk fail with a nested page fault (APM 15.25.6, RSV=1).
const (
	NPTPresent  uint64 = 1 << 0 // P: present; grants read
	NPTWrite    uint64 = 1 << 1 // R/W
	NPTUser     uint64 = 1 << 2 // U/S
	NPTPWT      uint64 = 1 << 3 // page-level write-through: PAT index bit 0
	NPTPCD      uint64 = 1 << 4 // page-level cache disable: PAT index bit 1
	NPTAccessed uint64 = 1 << 5 // A: set by the processor on any access
	NPTDirty    uint64 = 1 << 6 // D, leaf only: set on write
	NPTLarge    uint64 = 1 << 7 // PS in a PDPE or PDE: maps a 1-GiB/2-MiB page
	NPTPAT4K    uint64 = 1 << 7 // PAT index bit 2 in a PTE
	NPTGlobal   uint64 = 1 << 8 // G, leaf only
	NPTPATLarge uint64 = 1 << 12
	NPTNoExec   uint64 = 1 << 63 // NX, valid when the host's EFER.NXE is set

	// N_CR3 (the VMCB nested-paging root, APM 15.25.3) has the layout of
	// CR3: the PML4 table's address and the PWT and PCD bits that select
	// the memory type of accesses to it.
	NCR3PWT uint64 = 1 << 3
	NCR3PCD uint64 = 1 << 4
)

// Memory types in nested page tables. A nested entry's PAT, PCD and PWT
// bits index the host's PAT, and the type found there is combined with
// the guest's own type for the access (APM Vol. 2, 15.25.8 "Combining
// Nested and Guest Memory Types"; 7.8 "Page-Attribute Table Mechanism").
// The package assumes the host PAT holds its power-on value
// 0x0007040600070406, which neither tamago nor the hyperkernel changes:
// index 0 is write-back, 1 write-through, 3 uncacheable. WriteBack is
// encoded as index 0, WriteThrough as 1 (PWT) and Uncacheable as 3
// (PCD|PWT); WriteCombining and WriteProtected have no entry in that PAT
// and are refused. The PAT bit (index bit 2) is never set, so splitting
// a large page need not move it from bit 12 to bit 7.
const nptMemTypeMask = NPTPWT | NPTPCD

// format is the bit layout of one Format, kept by value in the Table so
// that the table code reads entries with masks rather than a switch.
type format struct {
	kind Format
	// present: any of these bits set makes an entry present.
	present uint64
	// rights: the bits that encode a leaf's access rights.
	rights uint64
	// table: the bits of a non-leaf entry besides its address and count.
	// Non-leaf entries grant every right; the leaf decides.
	table uint64
	// accessed, dirty: the flags the processor sets.
	accessed, dirty uint64
}

var formats = [...]format{
	EPT: {
		kind:     EPT,
		present:  EntryPermMask,
		rights:   EntryPermMask,
		table:    EntryRead | EntryWrite | EntryExec,
		accessed: EntryAccessed,
		dirty:    EntryDirty,
	},
	NPT: {
		kind:     NPT,
		present:  NPTPresent,
		rights:   NPTPresent | NPTWrite | NPTUser | NPTNoExec,
		table:    NPTPresent | NPTWrite | NPTUser,
		accessed: NPTAccessed,
		dirty:    NPTDirty,
	},
}

func (f *format) isPresent(e uint64) bool { return e&f.present != 0 }

// tableEntry returns a non-leaf entry referencing the table at hpa that
// holds count present entries.
func (f *format) tableEntry(hpa uint64, count int) uint64 {
	return hpa | f.table | uint64(count)<<countShift
}

// perm decodes the access rights of entry e.
func (f *format) perm(e uint64) Perm {
	if f.kind == EPT {
		return Perm(e & EntryPermMask)
	}
	if e&NPTPresent == 0 {
		return 0
	}
	p := PermRead
	if e&NPTWrite != 0 {
		p |= PermWrite
	}
	if e&NPTNoExec == 0 {
		p |= PermExec
	}
	return p
}

// permBits encodes rights that checkPerm accepted.
func (f *format) permBits(p Perm) uint64 {
	if f.kind == EPT {
		return uint64(p)
	}
	b := NPTPresent | NPTUser
	if p&PermWrite != 0 {
		b |= NPTWrite
	}
	if p&PermExec == 0 {
		b |= NPTNoExec
	}
	return b
}

// memTypeBits encodes a leaf's memory type; ok is false if the format
// cannot express it.
func (f *format) memTypeBits(mt MemType) (bits uint64, ok bool) {
	if f.kind == EPT {
		return uint64(mt) << EntryMemTypeSh, mt.Valid()
	}
	switch mt {
	case WriteBack:
		return 0, true
	case WriteThrough:
		return NPTPWT, true
	case Uncacheable:
		return NPTPCD | NPTPWT, true
	}
	return 0, false
}

// memType decodes a leaf's memory type. For NPT it reads the PCD and PWT
// bits against the power-on host PAT; index 2 (UC-) reads as
// Uncacheable.
func (f *format) memType(e uint64) MemType {
	if f.kind == EPT {
		return entryMemType(e)
	}
	switch e & nptMemTypeMask {
	case 0:
		return WriteBack
	case NPTPWT:
		return WriteThrough
	}
	return Uncacheable
}

// NPTCaps returns the Caps of a Table in NPT format: maxPhysAddr is the
// physical-address width (CPUID Fn8000_0008 EAX[7:0]); pages1G is
// CPUID Fn8000_0001 EDX[26] (Page1GB); noExecute says whether the host
// runs guests with EFER.NXE set (nested walks use the host's EFER, APM
// Vol. 2, 15.25.5). 2-MiB pages are part of long mode.
func NPTCaps(maxPhysAddr uint, pages1G, noExecute bool) Caps {
	return Caps{MaxPhysAddr: maxPhysAddr, Pages2M: true, Pages1G: pages1G, NoExecute: noExecute}
}

// MakeNCR3 returns the N_CR3 value for a nested page table whose PML4
// table is at root, accessed write-back (PWT = PCD = 0: host PAT index
// 0), AMD APM Vol. 2, 15.25.3 and 3.1.2 "CR3 Register".
func MakeNCR3(root uint64) uint64 { return root & EntryAddr }
