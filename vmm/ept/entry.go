// Package ept builds and maintains the 4-level second-stage page tables
// that translate guest-physical to host-physical addresses, in either of
// two entry formats chosen at New (Config.Format):
//
//   - EPT, Intel's extended page tables (Intel SDM Vol. 3C, 28.3 "The
//     Extended Page Table Mechanism (EPT)"), referenced by the VMCS EPT
//     pointer; the default.
//   - NPT, AMD's nested page tables (AMD APM Vol. 2, 15.25 "Nested
//     Paging"), which are ordinary long-mode page tables (5.3 "Long-Mode
//     Page Translation", 5.4 "Page-Translation-Table Entry Fields")
//     referenced by the VMCB's N_CR3.
//
// The package keeps the name ept for its callers; one copy of the table
// code serves both formats, which differ only in how an entry encodes
// presence, rights, memory type and the accessed and dirty flags (see
// Format).
//
// The package is pure logic. Table frames come from a FrameAllocator, are
// reached through a PhysMem (the direct map on bare metal, a slice in
// tests), and TLB invalidation (INVEPT, or an ASID flush for NPT) goes
// through an Invalidator, so the same code runs hosted under stock Go and
// on the bare-metal image.
package ept

import (
	"fmt"

	"github.com/big-iron/big-iron/machine/page"
)

// Geometry of 4-level EPT (Intel SDM Vol. 3C, 28.3.2), which 4-level
// nested page tables share (AMD APM Vol. 2, 5.3).
const (
	// PageSize4K, PageSize2M and PageSize1G are the page sizes a leaf
	// entry can map.
	PageSize4K uint64 = page.Size
	PageSize2M uint64 = 1 << 21
	PageSize1G uint64 = 1 << 30

	// EntriesPerTable is the number of 8-byte entries in a 4-KiB table.
	EntriesPerTable = 512

	// GPALimit is the size of the guest-physical address space that
	// 4-level EPT translates (48 bits).
	GPALimit uint64 = 1 << 48

	// MaxPhysAddrBits is the architectural maximum physical-address width.
	MaxPhysAddrBits = 52
)

// Level identifies a paging-structure level. Level 1 is the page table,
// 4 the PML4 table.
type Level int

// Paging-structure levels (Intel SDM Vol. 3C, 28.3.2; AMD APM Vol. 2,
// 5.3 calls them PTE, PDE, PDPE and PML4E).
const (
	LevelPT   Level = 1 // EPT page table: PTEs map 4-KiB pages
	LevelPD   Level = 2 // EPT page directory: PDEs map 2-MiB pages or page tables
	LevelPDPT Level = 3 // EPT page-directory-pointer table: PDPTEs map 1-GiB pages or PDs
	LevelPML4 Level = 4 // EPT PML4 table: PML4Es reference PDPTs
)

// String returns the level's SDM name.
func (l Level) String() string {
	switch l {
	case LevelPT:
		return "PTE"
	case LevelPD:
		return "PDE"
	case LevelPDPT:
		return "PDPTE"
	case LevelPML4:
		return "PML4E"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// shift returns log2 of the span of one entry at level l.
func (l Level) shift() uint { return 12 + 9*uint(l-1) }

// span returns the number of bytes one entry at level l covers.
func (l Level) span() uint64 { return 1 << l.shift() }

// index returns the entry index for gpa in a table at level l.
func (l Level) index(gpa uint64) int { return int(gpa>>l.shift()) & (EntriesPerTable - 1) }

// Perm is a set of access rights. Its values are bits 2:0 of an EPT
// entry; an NPT entry encodes them as P (read), R/W and NX (see Format).
type Perm uint8

// Access rights (Intel SDM Vol. 3C, 28.3.2, Tables 28-1 to 28-6).
const (
	PermRead  Perm = 1 << 0
	PermWrite Perm = 1 << 1
	PermExec  Perm = 1 << 2

	PermRW  = PermRead | PermWrite
	PermRX  = PermRead | PermExec
	PermRWX = PermRead | PermWrite | PermExec
)

// String returns the rights as "rwx" with dashes for missing rights.
func (p Perm) String() string {
	b := []byte("---")
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	if p&^PermRWX != 0 {
		return fmt.Sprintf("Perm(%#x)", uint8(p))
	}
	return string(b)
}

// MemType is a memory type. Its values are those of an EPT leaf's bits
// 5:3 (Intel SDM Vol. 3C, 28.3, "EPT and Memory Typing", and 24.6.11 for
// the EPTP); an NPT leaf selects a host PAT entry instead, and can
// express only some types (see nptMemTypeMask).
type MemType uint8

// EPT memory types. 2, 3 and 7 are reserved.
const (
	Uncacheable    MemType = 0
	WriteCombining MemType = 1
	WriteThrough   MemType = 4
	WriteProtected MemType = 5
	WriteBack      MemType = 6
)

// Valid reports whether t is a memory type a leaf EPT entry may hold.
func (t MemType) Valid() bool {
	switch t {
	case Uncacheable, WriteCombining, WriteThrough, WriteProtected, WriteBack:
		return true
	}
	return false
}

// String returns the memory type's abbreviation.
func (t MemType) String() string {
	switch t {
	case Uncacheable:
		return "UC"
	case WriteCombining:
		return "WC"
	case WriteThrough:
		return "WT"
	case WriteProtected:
		return "WP"
	case WriteBack:
		return "WB"
	}
	return fmt.Sprintf("MemType(%d)", uint8(t))
}

// Bits of EPT paging-structure entries (Intel SDM Vol. 3C, 28.3.2,
// Tables 28-1 to 28-6).
const (
	EntryRead       uint64 = 1 << 0
	EntryWrite      uint64 = 1 << 1
	EntryExec       uint64 = 1 << 2
	EntryPermMask   uint64 = 7
	EntryMemTypeSh         = 3
	EntryMemType    uint64 = 7 << 3  // leaf only: EPT memory type
	EntryIgnorePAT  uint64 = 1 << 6  // leaf only
	EntryLarge      uint64 = 1 << 7  // PDPTE/PDE: maps a 1-GiB/2-MiB page
	EntryAccessed   uint64 = 1 << 8  // set by the processor if EPTP A/D is enabled
	EntryDirty      uint64 = 1 << 9  // leaf only, set on write if EPTP A/D is enabled
	EntryUserExec   uint64 = 1 << 10 // mode-based execute control (unused here)
	EntrySuppressVE uint64 = 1 << 63 // leaf only
	// EntryAddr covers every bit that can hold a physical address
	// (bits 51:12); bits at and above MAXPHYADDR are reserved.
	EntryAddr uint64 = 0x000F_FFFF_FFFF_F000

	// Bits 61:52 of a non-leaf entry are ignored by the processor in
	// both formats (EPT: Tables 28-1, 28-3, 28-5; NPT: "available to
	// software", AMD APM Vol. 2, 5.4.1); the table keeps there the number of present entries in the table the
	// entry references, so that empty tables are found without a scan.
	countShift        = 52
	countMask  uint64 = 0x3FF << countShift
)

// isLeaf reports whether e, a present entry at level l, maps a page. The
// page-size bit is bit 7 in both formats (EntryLarge, NPTLarge).
func isLeaf(e uint64, l Level) bool {
	return l == LevelPT || (l != LevelPML4 && e&EntryLarge != 0)
}

func entryCount(e uint64) int { return int((e & countMask) >> countShift) }

func entryMemType(e uint64) MemType { return MemType((e & EntryMemType) >> EntryMemTypeSh) }
