// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package multiboot

// The loader side of Multiboot 1 (0.6.96): Load places a Multiboot image,
// its boot modules and the boot information structure in a guest's
// physical memory, the way GRUB or QEMU's -kernel do for a real machine.
// Everything is planned and checked first; only a plan that passed every
// check is written.

import (
	"fmt"
	"math"
	"slices"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// Memory is the guest memory Load writes into, addressed by guest-physical
// address. The hypervisor's guest memory satisfies it. WriteAt must not
// keep p.
type Memory interface {
	WriteAt(p []byte, addr uint64) error
}

// GuestModule is a boot module for the guest and the string the guest
// sees with it (for GRUB, the `module` command's arguments).
type GuestModule struct {
	// Data is the module's content; it may be empty.
	Data []byte
	// Cmdline is the module's string, at most MaxStringLen bytes, no NUL.
	Cmdline string
}

// LoadConfig is what Load loads.
type LoadConfig struct {
	// Kernel is the Multiboot image: an ELF32 or ELF64 executable with
	// program headers, or any image whose header has the address fields
	// (the "a.out kludge", flag 16).
	Kernel []byte
	// Cmdline is the kernel's command line. It is always passed (InfoCmdline
	// is set even when it is empty): at most MaxStringLen bytes, no NUL.
	Cmdline string
	// Modules are the boot modules, at most MaxModules.
	Modules []GuestModule
	// RAM is the guest's physical memory map as the guest will see it:
	// usable RAM and the rest. Everything Load writes lies in its usable
	// regions, below 4 GiB.
	RAM memmap.Map
	// Name is the boot loader name given to the guest, e.g. "big-iron".
	Name string
}

// Loaded says where Load put things and how to start the guest.
type Loaded struct {
	// Entry is EIP at entry.
	Entry uint32
	// Info is EBX at entry: the address of the boot information structure.
	Info uint32
	// KernelStart and KernelEnd bound the kernel's extent in guest-physical
	// memory, zero-filled (bss) parts included; KernelEnd is exclusive.
	KernelStart, KernelEnd uint64
	// Modules says where each module of LoadConfig.Modules went, in order.
	Modules []Module
}

// Placement of what Load writes besides the kernel and the modules
// (the boot information block: the information structure, the module
// list, the memory map and the strings).
const (
	// LowInfoAddr is where Load puts the boot information block when it
	// fits below LowMemoryEnd in usable RAM without touching the kernel or
	// a module. Otherwise the block goes to the first page-aligned usable
	// space after the last module (or the kernel when there is none).
	// Below LowInfoAddr Load writes only for a kernel that asks to be
	// loaded there (its segments, and the modules after them), so the
	// hypervisor may keep, say, a GDT or a trampoline there otherwise.
	LowInfoAddr = 0x9000
	// LowMemoryEnd is the end of conventional memory (640 KiB): the low
	// placement of the boot information block stays below it.
	LowMemoryEnd = 0xA0000
	// ModuleAlign is the alignment of every module's start: Load always
	// page-aligns modules, which satisfies HeaderPageAlign (3.1.2).
	ModuleAlign = 4096
	// MaxProgramHeaders bounds an ELF image's program header count.
	MaxProgramHeaders = 128
)

// Machine state at entry for a hypervisor that starts the guest's boot
// processor directly (Multiboot 0.6.96, 3.2 "Machine state"); EBX holds
// Loaded.Info and EIP Loaded.Entry.
const (
	// BootMagic is EAX at entry: the value that tells the image a
	// Multiboot loader started it (3.2). It is BootloaderMagic, named
	// for the loader side.
	BootMagic = BootloaderMagic
	// EntryCR0 has PE (bit 0) and ET (bit 4) set and PG (bit 31) clear:
	// 32-bit protected mode without paging.
	EntryCR0 uint64 = 1<<0 | 1<<4
	// EntryEFLAGS has only the always-one bit 1 set: VM (bit 17) and IF
	// (bit 9) clear.
	EntryEFLAGS uint64 = 1 << 1
	// FlatCodeDescriptor is a GDT descriptor for CS: base 0, limit
	// 0xFFFFFFFF (4 KiB granularity), 32-bit, present, execute/read,
	// accessed.
	FlatCodeDescriptor uint64 = 0x00CF9B000000FFFF
	// FlatDataDescriptor is a GDT descriptor for DS, ES, FS, GS and SS:
	// base 0, limit 0xFFFFFFFF, 32-bit, present, read/write, accessed.
	FlatDataDescriptor uint64 = 0x00CF93000000FFFF
)

// loaderSupported are the header flags 0-15 this loader understands
// (3.1.2): page-aligned modules (always done), memory information (always
// given) and the video mode (a request; no framebuffer is reported).
const loaderSupported = HeaderPageAlign | HeaderMemoryInfo | HeaderVideoMode

// limit4G is the first address beyond what 32-bit fields can reach.
const limit4G = 1 << 32

// write is one step of a load plan: data at addr, or zero bytes of zeros
// at addr when data is nil.
type write struct {
	what string
	addr uint64
	data []byte
	zero uint64
}

func (w write) size() uint64 {
	if w.data != nil {
		return uint64(len(w.data))
	}
	return w.zero
}

// Load checks cfg, plans where the kernel's segments, the modules and the
// boot information go, and writes them into mem. Nothing is written unless
// the whole plan is valid: a refused image leaves mem untouched and the
// error says what is wrong and where. An error from mem itself can leave a
// partial load.
//
// The kernel is placed where it asks: by the header's address fields when
// flag 16 is set (3.1.3), otherwise at the physical addresses (p_paddr) of
// its ELF PT_LOAD segments, with the part beyond p_filesz zeroed. The
// modules follow the kernel's end, each page-aligned. The information
// block goes to LowInfoAddr (see there for the fallback). Header flags 0
// (page-aligned modules), 1 (memory information) and 2 (video mode, a
// request that is ignored) are supported; any other of bits 0-15 makes
// Load refuse the image (3.1.2).
//
// The caller starts the boot processor in the state of 3.2 "Machine
// state": 32-bit protected mode with paging off (CR0 = EntryCR0); CS a
// flat 4 GiB execute/read code segment and DS, ES, FS, GS and SS flat
// 4 GiB read/write data segments (base 0, limit 0xFFFFFFFF; see
// FlatCodeDescriptor and FlatDataDescriptor); the A20 gate on; EFLAGS with
// VM and IF clear (EntryEFLAGS); EAX = BootMagic, EBX = Info and
// EIP = Entry. The GDTR, IDTR and ESP are the guest's to set up.
func Load(mem Memory, cfg LoadConfig) (Loaded, error) {
	writes, ld, err := plan(cfg)
	if err != nil {
		return Loaded{}, err
	}
	var zeros []byte
	for _, w := range writes {
		if err := w.do(mem, &zeros); err != nil {
			return Loaded{}, err
		}
	}
	return ld, nil
}

// do carries out w; zeros is a buffer of zeros shared between writes.
func (w write) do(mem Memory, zeros *[]byte) error {
	if w.data != nil {
		if err := mem.WriteAt(w.data, w.addr); err != nil {
			return fmt.Errorf("multiboot: writing %s at %#x: %w", w.what, w.addr, err)
		}
		return nil
	}
	if *zeros == nil {
		*zeros = make([]byte, 64<<10)
	}
	for off := uint64(0); off < w.zero; {
		n := min(w.zero-off, uint64(len(*zeros)))
		if err := mem.WriteAt((*zeros)[:n], w.addr+off); err != nil {
			return fmt.Errorf("multiboot: zeroing %s at %#x: %w", w.what, w.addr+off, err)
		}
		off += n
	}
	return nil
}

// plan validates cfg and returns the writes that load it.
func plan(cfg LoadConfig) ([]write, Loaded, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, Loaded{}, err
	}
	ram := cfg.RAM.Normalize()
	if len(ram) > maxMmapEntries {
		return nil, Loaded{}, fmt.Errorf("multiboot: the memory map has %d regions once normalized, the limit is %d", len(ram), maxMmapEntries)
	}
	usable := cfg.RAM.Subtract()
	img, err := decodeKernel(cfg.Kernel)
	if err != nil {
		return nil, Loaded{}, err
	}
	if err := checkSegments(img.segs, usable); err != nil {
		return nil, Loaded{}, err
	}
	ld := Loaded{Entry: img.entry}
	ld.KernelStart, ld.KernelEnd = extent(img.segs)
	writes := segmentWrites(img.segs)

	mods, mw, next, err := placeModules(cfg.Modules, usable, ld.KernelEnd)
	if err != nil {
		return nil, Loaded{}, err
	}
	ld.Modules = mods
	writes = append(writes, mw...)

	blk := newInfoBlock(cfg, mods, ram, usable)
	base, err := placeInfo(blk.size(), usable, writes, next)
	if err != nil {
		return nil, Loaded{}, err
	}
	ld.Info = uint32(base)
	writes = append(writes, write{what: "boot information", addr: base, data: blk.encode(base)})
	if err := checkPlan(writes, usable); err != nil {
		return nil, Loaded{}, err
	}
	return writes, ld, nil
}

// checkConfig bounds the counts and strings of cfg (3.3: the strings are
// NUL-terminated, so they cannot hold a NUL).
func checkConfig(cfg LoadConfig) error {
	if n := len(cfg.Modules); n > MaxModules {
		return fmt.Errorf("multiboot: %d modules, the limit is %d", n, MaxModules)
	}
	if n := len(cfg.RAM); n > maxMmapEntries {
		return fmt.Errorf("multiboot: the memory map has %d regions, the limit is %d", n, maxMmapEntries)
	}
	if err := checkString("command line", cfg.Cmdline); err != nil {
		return err
	}
	if err := checkString("boot loader name", cfg.Name); err != nil {
		return err
	}
	for i, m := range cfg.Modules {
		if err := checkString(fmt.Sprintf("module %d string", i), m.Cmdline); err != nil {
			return err
		}
		if uint64(len(m.Data)) >= limit4G {
			return fmt.Errorf("multiboot: module %d: %d bytes do not fit 32-bit addresses", i, len(m.Data))
		}
	}
	return nil
}

func checkString(what, s string) error {
	if len(s) > MaxStringLen {
		return fmt.Errorf("multiboot: %s of %d bytes exceeds the limit of %d", what, len(s), MaxStringLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return fmt.Errorf("multiboot: %s holds a NUL byte at offset %d", what, i)
		}
	}
	return nil
}

// segment is one piece of the kernel in guest memory: data at addr, then
// zeros up to memsz. vaddr and exec serve the ELF entry point.
type segment struct {
	addr, vaddr uint64
	data        []byte
	memsz       uint64
	exec        bool
}

func (s segment) end() uint64 { return s.addr + s.memsz }

// layout is the kernel as Load places it.
type layout struct {
	segs  []segment
	entry uint32
}

// decodeKernel finds the Multiboot header (3.1.1) and decodes the image by
// its address fields (3.1.3) or as ELF.
func decodeKernel(kernel []byte) (layout, error) {
	h, off, err := FindHeader(kernel)
	if err != nil {
		return layout{}, err // already "multiboot: ..." with the offset
	}
	if bad := h.Flags & headerRequiredMask &^ loaderSupported; bad != 0 {
		return layout{}, fmt.Errorf("multiboot: header at offset %d: required flags %#x are not supported", off, uint32(bad))
	}
	if h.Flags&HeaderAddressFields != 0 {
		return aoutImage(kernel, h, off), nil
	}
	return elfImage(kernel)
}

// aoutImage lays out an image by the header's address fields (3.1.3);
// FindHeader has checked them against the image (checkLayout).
func aoutImage(kernel []byte, h Header, off int) layout {
	start := h.LoadOffset(off)
	end := uint64(h.LoadEndAddr)
	if end == 0 {
		end = uint64(h.LoadAddr) + uint64(int64(len(kernel))-start)
	}
	n := end - uint64(h.LoadAddr)
	memEnd := max(end, uint64(h.BSSEndAddr))
	s := segment{
		addr:  uint64(h.LoadAddr),
		vaddr: uint64(h.LoadAddr),
		data:  kernel[start : start+int64(n)],
		memsz: memEnd - uint64(h.LoadAddr),
		exec:  true,
	}
	return layout{segs: []segment{s}, entry: h.EntryAddr}
}

// checkSegments refuses segments that do not lie inside usable RAM below
// 4 GiB or that overlap one another.
func checkSegments(segs []segment, usable memmap.Map) error {
	for i, s := range segs {
		if s.addr >= limit4G || s.memsz > limit4G-s.addr {
			return fmt.Errorf("multiboot: kernel segment %d [%#x, +%#x) is not below 4 GiB", i, s.addr, s.memsz)
		}
		if !inUsable(usable, s.addr, s.end()) {
			return fmt.Errorf("multiboot: kernel segment %d [%#x, %#x) is not inside usable RAM", i, s.addr, s.end())
		}
	}
	order := make([]int, len(segs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmpUint(segs[a].addr, segs[b].addr) })
	for k := 1; k < len(order); k++ {
		a, b := segs[order[k-1]], segs[order[k]]
		if b.addr < a.end() {
			return fmt.Errorf("multiboot: kernel segments %d [%#x, %#x) and %d [%#x, %#x) overlap",
				order[k-1], a.addr, a.end(), order[k], b.addr, b.end())
		}
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// extent returns the lowest start and highest end of segs.
func extent(segs []segment) (start, end uint64) {
	start = math.MaxUint64
	for _, s := range segs {
		start, end = min(start, s.addr), max(end, s.end())
	}
	return start, end
}

// segmentWrites turns segments into writes: the file bytes, then zeros.
func segmentWrites(segs []segment) []write {
	var ws []write
	for i, s := range segs {
		what := fmt.Sprintf("kernel segment %d", i)
		if len(s.data) > 0 {
			ws = append(ws, write{what: what, addr: s.addr, data: s.data})
		}
		if bss := s.memsz - uint64(len(s.data)); bss > 0 {
			ws = append(ws, write{what: what + " bss", addr: s.addr + uint64(len(s.data)), zero: bss})
		}
	}
	return ws
}

// placeModules puts each module at the first page-aligned address at or
// after from (and after the previous module) where it fits in usable RAM
// below 4 GiB. It returns the modules, their writes and the end of the
// last one (or from, aligned, when there are none).
func placeModules(gm []GuestModule, usable memmap.Map, from uint64) ([]Module, []write, uint64, error) {
	next, ok := alignUp(from, ModuleAlign)
	if !ok {
		return nil, nil, 0, fmt.Errorf("multiboot: kernel end %#x leaves no room for modules", from)
	}
	var mods []Module
	var ws []write
	for i, m := range gm {
		size := uint64(len(m.Data))
		addr, ok := fit(usable, next, size, ModuleAlign)
		if !ok {
			at, _ := alignUp(next, ModuleAlign)
			return nil, nil, 0, fmt.Errorf("multiboot: no room for module %d (%d bytes) in usable RAM between %#x and 4 GiB", i, size, at)
		}
		mods = append(mods, Module{Start: addr, End: addr + size, Cmdline: m.Cmdline})
		if size > 0 {
			ws = append(ws, write{what: fmt.Sprintf("module %d", i), addr: addr, data: m.Data})
		}
		next = addr + size
	}
	return mods, ws, next, nil
}

// placeInfo chooses the address of the size-byte information block: at
// LowInfoAddr when it fits there below LowMemoryEnd in usable RAM and
// clear of the writes so far, else page-aligned at or after from.
func placeInfo(size uint64, usable memmap.Map, writes []write, from uint64) (uint64, error) {
	lo, hi := uint64(LowInfoAddr), uint64(LowInfoAddr)+size
	if hi <= LowMemoryEnd && inUsable(usable, lo, hi) && !overlapsAny(writes, lo, hi) {
		return lo, nil
	}
	addr, ok := fit(usable, from, size, ModuleAlign)
	if !ok {
		return 0, fmt.Errorf("multiboot: no room for the %d-byte boot information in usable RAM at %#x or between %#x and 4 GiB",
			size, LowInfoAddr, from)
	}
	return addr, nil
}

// checkPlan is the last line of defence before anything is written: every
// write lies in usable RAM below 4 GiB and no two overlap.
func checkPlan(writes []write, usable memmap.Map) error {
	ws := slices.Clone(writes)
	slices.SortFunc(ws, func(a, b write) int { return cmpUint(a.addr, b.addr) })
	var prev *write
	for i := range ws {
		w := &ws[i]
		n := w.size()
		if n == 0 {
			continue
		}
		if w.addr >= limit4G || n > limit4G-w.addr || !inUsable(usable, w.addr, w.addr+n) {
			return fmt.Errorf("multiboot: %s [%#x, +%#x) is not inside usable RAM below 4 GiB", w.what, w.addr, n)
		}
		if prev != nil && w.addr < prev.addr+prev.size() {
			return fmt.Errorf("multiboot: %s [%#x, %#x) overlaps %s [%#x, %#x)",
				w.what, w.addr, w.addr+n, prev.what, prev.addr, prev.addr+prev.size())
		}
		prev = w
	}
	return nil
}

// overlapsAny reports whether [lo, hi) meets any write.
func overlapsAny(writes []write, lo, hi uint64) bool {
	for _, w := range writes {
		if n := w.size(); n > 0 && w.addr < hi && lo < w.addr+n {
			return true
		}
	}
	return false
}

// inUsable reports whether [lo, hi) lies inside one region of usable, a
// normalized map of usable regions (adjacent ones merged).
func inUsable(usable memmap.Map, lo, hi uint64) bool {
	for _, r := range usable {
		if r.Start <= lo && hi <= r.End() {
			return true
		}
	}
	return false
}

// fit returns the lowest address >= from, aligned to align, where size
// bytes fit inside one usable region and end below 4 GiB (so that the end
// fits a 32-bit field such as mod_end).
func fit(usable memmap.Map, from, size, align uint64) (uint64, bool) {
	for _, r := range usable {
		a, ok := alignUp(max(from, r.Start), align)
		if !ok {
			return 0, false
		}
		top := min(r.End(), limit4G-1)
		if a <= top && size <= top-a {
			return a, true
		}
	}
	return 0, false
}

// alignUp rounds x up to a multiple of align (a power of two), reporting
// false on overflow.
func alignUp(x, align uint64) (uint64, bool) {
	y := (x + align - 1) &^ (align - 1)
	return y, y >= x
}
