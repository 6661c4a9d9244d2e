package ept

// FrameAllocator supplies and takes back 4-KiB host-physical frames for
// EPT paging structures. The table clears every frame it receives, so the
// allocator need not. On bare metal these frames must come from memory the
// guest can never reach (typically the hyperkernel's own reserved ranges).
type FrameAllocator interface {
	// AllocFrame returns the host-physical address of a free 4-KiB
	// aligned frame.
	AllocFrame() (hpa uint64, err error)
	// FreeFrame returns a frame obtained from AllocFrame.
	FreeFrame(hpa uint64)
}

// PhysMem gives the table access to the contents of its table frames.
type PhysMem interface {
	// Frame returns the 512 entries of the table frame at hpa, an address
	// AllocFrame returned. On bare metal this is the frame's address in
	// the hyperkernel's direct map.
	Frame(hpa uint64) *[EntriesPerTable]uint64
}

// Invalidator invalidates cached EPT translations: the INVEPT instruction
// (Intel SDM Vol. 3C, VMX instruction reference, "INVEPT"; 28.4.3.1 for
// when it is needed). An
// implementation must invalidate on every logical processor that may hold
// translations derived from the table (for example by IPI), and return
// only when that is done.
type Invalidator interface {
	// InvalidateSingle invalidates mappings derived from the EPT paging
	// structures referenced by eptp (single-context INVEPT, type 1).
	InvalidateSingle(eptp uint64)
	// InvalidateGlobal invalidates mappings for all EPTPs (global
	// INVEPT, type 2).
	InvalidateGlobal()
}
