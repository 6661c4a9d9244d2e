package vcpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// Encoding format, version 4 (version 1 had a flag for one pending NMI
// where version 2 counts them; version 3 adds PKRU after XCR0; version 4
// leaves out the XSAVE area's zero blocks). All integers are little
// endian.
//
//	offset  size  field
//	0       4     magic "BIvc"
//	4       2     version (4)
//	6       2     flags, reserved, zero
//	8       4     total length in bytes, header and checksum included
//	12      ...   body: the fixed-size fields in the order of State, then
//	              the XSAVE length (2 bytes) and area, then the MSR count
//	              (2 bytes) and 12-byte entries (index 4, value 8)
//	len-4   4     CRC-32C (Castagnoli) of all preceding bytes
//
// The exact layout of the body is given by State.encode. The XSAVE area
// of length n > 0 travels as a map of its 64-byte blocks (the last one
// shorter if n is not a multiple of 64), one bit per block from bit 0 of
// the first byte, (blocks+7)/8 bytes, a bit set for every block holding
// a non-zero byte, followed by those blocks in order; the blocks left out
// are zero. A standard-format area has room for every component the
// processor supports, and a guest using AVX but not AVX-512 or AMX
// leaves most of it zero.
const (
	// Magic starts every encoded State.
	Magic uint32 = 'B' | 'I'<<8 | 'v'<<16 | 'c'<<24
	// Version is the encoding version this package writes and reads.
	Version uint16 = 4

	headerSize   = 12
	checksumSize = 4

	segmentSize = 2 + 8 + 4 + 4
	lapicSize   = 8 + 6*4 + 3*32 + NumLVT*4 + 3*4 + 8
	eventsSize  = 4 + 4 + 4 + 8
	fixedSize   = vmx.NumGPRs*8 + 2*8 + NumSegs*segmentSize + 2*(8+2) +
		5*8 + 6*8 + 8*8 + 4 + 2*8 + 4*8 + 4 + lapicSize + eventsSize + 4
	msrEntrySize = 4 + 8

	// MinEncodedSize is the size of an encoded State with no XSAVE area
	// and no extra MSRs.
	MinEncodedSize = headerSize + fixedSize + 2 + 2 + checksumSize
	// MaxEncodedSize is the largest size of an encoded State.
	MaxEncodedSize = MinEncodedSize + MaxXSAVE + MaxXSAVE/xsaveBlock/8 + MaxMSRs*msrEntrySize

	// xsaveBlock is the unit in which the encoding leaves out the XSAVE
	// area's zeros.
	xsaveBlock = 64
)

// Event flag bits in the encoding.
const (
	evInterruptValid = 1 << iota
	evExceptionValid
	evErrorCodeValid
	evDefined = evInterruptValid | evExceptionValid | evErrorCodeValid
)

// Errors wrapped by UnmarshalBinary and EncodedLen.
var (
	ErrTruncated = errors.New("truncated vCPU state")
	ErrMagic     = errors.New("not an encoded vCPU state")
	ErrVersion   = errors.New("unsupported vCPU state version")
	ErrLength    = errors.New("bad vCPU state length")
	ErrChecksum  = errors.New("vCPU state checksum mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// xsaveLen and msrCount return the lengths MarshalAppend uses, clamped to
// the capacity of the arrays so that encoding never panics.
func (s *State) xsaveLen() int { return int(min(s.XSAVELen, MaxXSAVE)) }

func (s *State) msrCount() int { return min(max(s.NumMSRs, 0), MaxMSRs) }

// Size returns the number of bytes MarshalAppend appends for s.
func (s *State) Size() int {
	return MinEncodedSize + s.xsaveEncodedLen() + s.msrCount()*msrEntrySize
}

// xsaveMapLen is the length of the block map of an XSAVE area of x bytes.
func xsaveMapLen(x int) int { return (x + xsaveBlock*8 - 1) / (xsaveBlock * 8) }

// xsaveBlockAt returns block i of the XSAVE area's first x bytes.
func (s *State) xsaveBlockAt(i, x int) []byte {
	return s.XSAVE[i*xsaveBlock : min((i+1)*xsaveBlock, x)]
}

// xsaveEncodedLen returns the bytes the XSAVE area takes after its
// length: the block map and the blocks that are not zero.
func (s *State) xsaveEncodedLen() int {
	x := s.xsaveLen()
	if x == 0 {
		return 0
	}
	n := xsaveMapLen(x)
	for i := 0; i*xsaveBlock < x; i++ {
		if b := s.xsaveBlockAt(i, x); !zero(b) {
			n += len(b)
		}
	}
	return n
}

// zero reports whether every byte of b is zero.
func zero(b []byte) bool {
	if len(b) == xsaveBlock {
		// A whole block: eight loads ORed, no branch per word.
		p := (*[xsaveBlock]byte)(b)
		le := binary.LittleEndian
		return le.Uint64(p[0:])|le.Uint64(p[8:])|le.Uint64(p[16:])|le.Uint64(p[24:])|
			le.Uint64(p[32:])|le.Uint64(p[40:])|le.Uint64(p[48:])|le.Uint64(p[56:]) == 0
	}
	for ; len(b) >= 8; b = b[8:] {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// MarshalAppend appends the encoding of s to dst and returns the extended
// slice. It allocates only when dst lacks capacity for Size() more bytes.
// It encodes s as it is; a State that fails Validate produces an encoding
// that UnmarshalBinary rejects.
func (s *State) MarshalAppend(dst []byte) []byte {
	n := s.Size()
	dst = slices.Grow(dst, n)
	start := len(dst)
	dst = dst[:start+n]
	b := dst[start:]
	w := writer{b: b}
	w.u32(Magic)
	w.u16(Version)
	w.u16(0)
	w.u32(uint32(n))
	s.encode(&w)
	binary.LittleEndian.PutUint32(b[n-checksumSize:], crc32.Checksum(b[:n-checksumSize], castagnoli))
	return dst
}

// MarshalBinary validates s and returns its encoding. It implements
// encoding.BinaryMarshaler.
func (s *State) MarshalBinary() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("vcpu: marshal: %w", err)
	}
	return s.MarshalAppend(make([]byte, 0, s.Size())), nil
}

// EncodedLen reads the header at the start of b and returns the total
// length of the encoded State it announces, so that a stream reader knows
// how many bytes to collect. It needs only the first 12 bytes.
func EncodedLen(b []byte) (int, error) {
	if len(b) < headerSize {
		return 0, fmt.Errorf("vcpu: header needs %d bytes, have %d: %w", headerSize, len(b), ErrTruncated)
	}
	if m := binary.LittleEndian.Uint32(b); m != Magic {
		return 0, fmt.Errorf("vcpu: magic %#08x, want %#08x: %w", m, Magic, ErrMagic)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != Version {
		return 0, fmt.Errorf("vcpu: version %d, want %d: %w", v, Version, ErrVersion)
	}
	if f := binary.LittleEndian.Uint16(b[6:]); f != 0 {
		return 0, fmt.Errorf("vcpu: header flags %#x: reserved bits set: %w", f, ErrInvalid)
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n < MinEncodedSize || n > MaxEncodedSize {
		return 0, fmt.Errorf("vcpu: length %d outside %d..%d: %w", n, MinEncodedSize, MaxEncodedSize, ErrLength)
	}
	return int(n), nil
}

// UnmarshalBinary decodes b, which must hold exactly one encoded State,
// into s and validates the result (see Validate). It does not allocate
// unless it fails. On failure s is reset to the zero State. It implements
// encoding.BinaryUnmarshaler.
func (s *State) UnmarshalBinary(b []byte) error {
	if err := s.unmarshal(b); err != nil {
		*s = State{}
		return err
	}
	return nil
}

func (s *State) unmarshal(b []byte) error {
	n, err := EncodedLen(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("vcpu: header announces %d bytes, have %d: %w", n, len(b), ErrLength)
	}
	body := b[:n-checksumSize]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[n-checksumSize:]); got != want {
		return fmt.Errorf("vcpu: CRC-32C %#08x, stored %#08x: %w", got, want, ErrChecksum)
	}
	r := reader{b: body, off: headerSize}
	if err := s.decode(&r); err != nil {
		return err
	}
	if r.off != len(body) {
		return fmt.Errorf("vcpu: %d bytes after the MSR list: %w", len(body)-r.off, ErrLength)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	return nil
}

// encode writes the body. The space is known to be sufficient.
func (s *State) encode(w *writer) {
	for _, v := range s.GPR {
		w.u64(v)
	}
	w.u64(s.RIP)
	w.u64(s.RFLAGS)
	for i := range s.Seg {
		g := &s.Seg[i]
		w.u16(g.Selector)
		w.u64(g.Base)
		w.u32(g.Limit)
		w.u32(g.Access)
	}
	w.u64(s.GDTR.Base)
	w.u16(s.GDTR.Limit)
	w.u64(s.IDTR.Base)
	w.u16(s.IDTR.Limit)
	for _, v := range [...]uint64{s.CR0, s.CR2, s.CR3, s.CR4, s.CR8,
		s.DR[0], s.DR[1], s.DR[2], s.DR[3], s.DR6, s.DR7,
		s.EFER, s.STAR, s.LSTAR, s.CSTAR, s.SFMASK, s.FSBase, s.GSBase, s.KernelGSBase} {
		w.u64(v)
	}
	w.u32(s.SysenterCS)
	w.u64(s.SysenterESP)
	w.u64(s.SysenterEIP)
	w.u64(s.PAT)
	w.u64(s.TSCOffset)
	w.u64(s.TSCDeadline)
	w.u64(s.XCR0)
	w.u32(s.PKRU)

	a := &s.LAPIC
	w.u64(a.Base)
	for _, v := range [...]uint32{a.ID, a.TPR, a.LDR, a.DFR, a.SVR, a.ESR} {
		w.u32(v)
	}
	for _, set := range [...]*Vec256{&a.ISR, &a.TMR, &a.IRR} {
		for _, v := range set {
			w.u64(v)
		}
	}
	for _, v := range a.LVT {
		w.u32(v)
	}
	w.u32(a.TimerInitial)
	w.u32(a.TimerCurrent)
	w.u32(a.TimerDivide)
	w.u64(a.ICR)

	e := &s.Events
	var flags uint8
	if e.InterruptValid {
		flags |= evInterruptValid
	}
	if e.ExceptionValid {
		flags |= evExceptionValid
	}
	if e.ErrorCodeValid {
		flags |= evErrorCodeValid
	}
	w.u8(flags)
	w.u8(e.InterruptVector)
	w.u8(e.ExceptionVector)
	w.u8(e.PendingNMIs)
	w.u32(e.ErrorCode)
	w.u32(e.Interruptibility)
	w.u64(e.PendingDebug)
	w.u32(uint32(s.Activity))

	s.encodeXSAVE(w)
	m := s.msrCount()
	w.u16(uint16(m))
	for _, r := range s.MSRs[:m] {
		w.u32(r.Index)
		w.u64(r.Value)
	}
}

// decode reads the body. The fixed part is known to be present (the total
// length is at least MinEncodedSize); the variable parts are checked.
func (s *State) decode(r *reader) error {
	for i := range s.GPR {
		s.GPR[i] = r.u64()
	}
	s.RIP = r.u64()
	s.RFLAGS = r.u64()
	for i := range s.Seg {
		g := &s.Seg[i]
		g.Selector = r.u16()
		g.Base = r.u64()
		g.Limit = r.u32()
		g.Access = r.u32()
	}
	s.GDTR.Base = r.u64()
	s.GDTR.Limit = r.u16()
	s.IDTR.Base = r.u64()
	s.IDTR.Limit = r.u16()
	for _, p := range [...]*uint64{&s.CR0, &s.CR2, &s.CR3, &s.CR4, &s.CR8,
		&s.DR[0], &s.DR[1], &s.DR[2], &s.DR[3], &s.DR6, &s.DR7,
		&s.EFER, &s.STAR, &s.LSTAR, &s.CSTAR, &s.SFMASK, &s.FSBase, &s.GSBase, &s.KernelGSBase} {
		*p = r.u64()
	}
	s.SysenterCS = r.u32()
	s.SysenterESP = r.u64()
	s.SysenterEIP = r.u64()
	s.PAT = r.u64()
	s.TSCOffset = r.u64()
	s.TSCDeadline = r.u64()
	s.XCR0 = r.u64()
	s.PKRU = r.u32()

	a := &s.LAPIC
	a.Base = r.u64()
	for _, p := range [...]*uint32{&a.ID, &a.TPR, &a.LDR, &a.DFR, &a.SVR, &a.ESR} {
		*p = r.u32()
	}
	for _, set := range [...]*Vec256{&a.ISR, &a.TMR, &a.IRR} {
		for i := range set {
			set[i] = r.u64()
		}
	}
	for i := range a.LVT {
		a.LVT[i] = r.u32()
	}
	a.TimerInitial = r.u32()
	a.TimerCurrent = r.u32()
	a.TimerDivide = r.u32()
	a.ICR = r.u64()

	e := &s.Events
	flags := r.u8()
	if flags&^evDefined != 0 {
		return fmt.Errorf("vcpu: event flags %#x: reserved bits set: %w", flags, ErrInvalid)
	}
	e.InterruptValid = flags&evInterruptValid != 0
	e.ExceptionValid = flags&evExceptionValid != 0
	e.ErrorCodeValid = flags&evErrorCodeValid != 0
	e.InterruptVector = r.u8()
	e.ExceptionVector = r.u8()
	if e.PendingNMIs = r.u8(); e.PendingNMIs > MaxPendingNMIs {
		return fmt.Errorf("vcpu: %d NMIs pending, at most %d: %w", e.PendingNMIs, MaxPendingNMIs, ErrInvalid)
	}
	e.ErrorCode = r.u32()
	e.Interruptibility = r.u32()
	e.PendingDebug = r.u64()
	s.Activity = ActivityState(r.u32())

	if err := s.decodeXSAVE(r); err != nil {
		return err
	}

	m := int(r.u16())
	if m > MaxMSRs {
		return fmt.Errorf("vcpu: %d MSRs exceed %d: %w", m, MaxMSRs, ErrLength)
	}
	if r.left() < m*msrEntrySize {
		return fmt.Errorf("vcpu: list of %d MSRs: %w", m, ErrTruncated)
	}
	s.NumMSRs = m
	for i := range s.MSRs[:m] {
		s.MSRs[i].Index = r.u32()
		s.MSRs[i].Value = r.u64()
	}
	clear(s.MSRs[m:])
	return nil
}

// encodeXSAVE writes the XSAVE area's length, block map and non-zero
// blocks.
func (s *State) encodeXSAVE(w *writer) {
	x := s.xsaveLen()
	w.u16(uint16(x))
	if x == 0 {
		return
	}
	m := w.b[w.off : w.off+xsaveMapLen(x)]
	clear(m)
	w.off += len(m)
	// Runs of non-zero blocks are copied at once.
	run := 0 // the offset where the current run began
	for i := 0; i*xsaveBlock < x; i++ {
		if zero(s.xsaveBlockAt(i, x)) {
			w.bytes(s.XSAVE[run : i*xsaveBlock])
			run = (i + 1) * xsaveBlock
			continue
		}
		m[i/8] |= 1 << (i % 8)
	}
	if run < x {
		w.bytes(s.XSAVE[run:x])
	}
}

// decodeXSAVE reads what encodeXSAVE wrote, checking it against what is
// left of the body (the MSR count, 2 bytes, follows).
func (s *State) decodeXSAVE(r *reader) error {
	x := int(r.u16())
	if x > MaxXSAVE {
		return fmt.Errorf("vcpu: XSAVE length %d exceeds %d: %w", x, MaxXSAVE, ErrLength)
	}
	s.XSAVELen = uint32(x)
	clear(s.XSAVE[x:]) // the blocks left out are cleared below
	if x == 0 {
		return nil
	}
	ml := xsaveMapLen(x)
	if r.left() < ml+2 {
		return fmt.Errorf("vcpu: XSAVE block map of %d bytes: %w", ml, ErrTruncated)
	}
	m := r.b[r.off : r.off+ml]
	r.off += ml
	blocks := (x + xsaveBlock - 1) / xsaveBlock
	for i := blocks; i < ml*8; i++ {
		if m[i/8]&(1<<(i%8)) != 0 {
			return fmt.Errorf("vcpu: XSAVE block map %x: a bit past block %d set: %w", m, blocks-1, ErrInvalid)
		}
	}
	// Runs of blocks in the map are copied at once.
	for i := 0; i < blocks; {
		if m[i/8]&(1<<(i%8)) == 0 {
			clear(s.xsaveBlockAt(i, x))
			i++
			continue
		}
		j := i + 1
		for j < blocks && m[j/8]&(1<<(j%8)) != 0 {
			j++
		}
		run := s.XSAVE[i*xsaveBlock : min(j*xsaveBlock, x)]
		if r.left() < len(run)+2 {
			return fmt.Errorf("vcpu: XSAVE blocks %d-%d of an area of %d bytes: %w", i, j-1, x, ErrTruncated)
		}
		r.read(run)
		for ; i < j; i++ {
			if zero(s.xsaveBlockAt(i, x)) {
				// One State, one encoding: a zero block is left out.
				return fmt.Errorf("vcpu: XSAVE block %d is in the block map but zero: %w", i, ErrInvalid)
			}
		}
	}
	return nil
}

// writer puts little-endian values into a buffer known to be large enough.
type writer struct {
	b   []byte
	off int
}

func (w *writer) u8(v uint8) { w.b[w.off] = v; w.off++ }

func (w *writer) u16(v uint16) {
	binary.LittleEndian.PutUint16(w.b[w.off:], v)
	w.off += 2
}

func (w *writer) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.b[w.off:], v)
	w.off += 4
}

func (w *writer) u64(v uint64) {
	binary.LittleEndian.PutUint64(w.b[w.off:], v)
	w.off += 8
}

func (w *writer) bytes(p []byte) { w.off += copy(w.b[w.off:], p) }

// reader takes little-endian values from a buffer whose length the caller
// has checked.
type reader struct {
	b   []byte
	off int
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) u8() uint8 { v := r.b[r.off]; r.off++; return v }

func (r *reader) u16() uint16 {
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) read(p []byte) { r.off += copy(p, r.b[r.off:]) }
