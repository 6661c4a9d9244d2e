package memory

import "github.com/big-iron/big-iron/machine/page"

// PageSize is the coherence granule: one guest page, the smallest EPT
// mapping.
const PageSize = page.Size

// pageShift is log2(PageSize).
const pageShift = page.Shift

// MaxNodes is the largest cluster the directory can describe: sharer sets
// are 64-bit masks.
const MaxNodes = 64

// NodeID names a node of a distributed VM by its index, 0 <= NodeID <
// MaxNodes (a VM of n nodes has 0..n-1). Package migrate numbers nodes
// with it too. It is not the node's cluster member id (cluster.NodeID,
// from 1): package dvm translates between the two.
type NodeID uint8

// NoNode marks "no node" in directory fields.
const NoNode NodeID = 0xFF

// Page is the data of one guest page.
type Page [PageSize]byte

// Access is the permission a node's second-level page tables grant the
// guest on one page. It maps onto the EPT R/W bits (Intel SDM Vol. 3C,
// 29.3.2, Table 29-6: bit 0 read, bit 1 write).
type Access uint8

// Access values.
const (
	AccessNone      Access = 0 // not present: any access exits (EPT violation)
	AccessRead      Access = 1 // read-only: writes exit
	AccessReadWrite Access = 3 // read and write
)

// String returns a short name of the access.
func (a Access) String() string {
	switch a {
	case AccessNone:
		return "none"
	case AccessRead:
		return "ro"
	case AccessReadWrite:
		return "rw"
	}
	return "invalid"
}

// Allows reports whether a grants a read (write false) or a write.
func (a Access) Allows(write bool) bool {
	if write {
		return a == AccessReadWrite
	}
	return a != AccessNone
}

// Permissions is the interface through which the engine drives the guest's
// second-level page tables (EPT on VT-x). The simulator implements it with a
// slice; the hyperkernel implements it over package ept. frame is this
// node's copy of the page (nil when a is AccessNone): second-level tables
// map gpa to it. SetAccess must take effect before the engine call that
// made it returns; where a running vCPU may still hold a stale
// translation, the caller keeps vCPUs out of guest mode while it drives
// the engine (see cluster/dvm).
type Permissions interface {
	SetAccess(gpa uint64, frame *Page, a Access)
}

// FrameSource supplies the frames that hold this node's copies of guest
// pages. The simulator leaves it nil (frames come from the Go heap); the
// hyperkernel hands out host frames that its EPT tables may map, which
// the Go heap never is.
type FrameSource interface {
	// AllocPage returns a zero-filled frame.
	AllocPage() (*Page, error)
	// FreePage takes a frame back.
	FreePage(*Page)
}

// HomeFrameSource is a FrameSource that places the frames of the pages
// this node homes. NewEngine asks it for every home page in increasing
// page order, so that it can back neighbouring pages with neighbouring
// frames: a guest range whose pages all sit in one aligned run of frames
// can be mapped with a large page (ept.PageMap).
type HomeFrameSource interface {
	FrameSource
	// AllocHomePage returns a zero-filled frame for page p.
	AllocHomePage(p uint64) (*Page, error)
}

// State is the coherence state of a page at one node.
type State uint8

// Page states (MSI).
const (
	Invalid  State = iota // no valid copy
	Shared                // valid read-only copy; others may also hold one
	Modified              // the only valid copy, writable
)

// String returns the state's initial as used in protocol descriptions.
func (s State) String() string {
	switch s {
	case Invalid:
		return "I"
	case Shared:
		return "S"
	case Modified:
		return "M"
	}
	return "?"
}

// access returns the EPT permission that mirrors a coherence state.
func (s State) access() Access {
	switch s {
	case Shared:
		return AccessRead
	case Modified:
		return AccessReadWrite
	}
	return AccessNone
}
