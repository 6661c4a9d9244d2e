package vcpu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"testing/quick"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// fixCRC recomputes the checksum of an encoding after a test changed it.
func fixCRC(b []byte) {
	if len(b) < checksumSize {
		return
	}
	n := len(b) - checksumSize
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], crc32.MakeTable(crc32.Castagnoli)))
}

func roundTrip(t *testing.T, s *State) []byte {
	t.Helper()
	b := s.MarshalAppend(nil)
	if len(b) != s.Size() {
		t.Fatalf("encoded %d bytes, Size says %d", len(b), s.Size())
	}
	var d State
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if !d.Equal(s) {
		t.Fatalf("decoded state differs from the original")
	}
	if b2 := d.MarshalAppend(nil); !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs")
	}
	return b
}

func TestRoundTripFixed(t *testing.T) {
	var reset State
	reset.Reset(0, true)
	var empty State
	empty.Reset(5, false)
	empty.XSAVELen = 0
	clear(empty.XSAVE[:])
	for name, s := range map[string]*State{"reset": &reset, "no-xsave": &empty, "typical": typicalState()} {
		t.Run(name, func(t *testing.T) { roundTrip(t, s) })
	}
}

func TestEncodedSizes(t *testing.T) {
	var min State
	min.Reset(0, true)
	min.XSAVELen = 0
	clear(min.XSAVE[:])
	typ := typicalState()
	typNoMSR := typ.Clone()
	typNoMSR.NumMSRs = 0
	minLen := len(roundTrip(t, &min))
	typLen := len(roundTrip(t, typ))
	typNoMSRLen := len(roundTrip(t, typNoMSR))
	if minLen != MinEncodedSize {
		t.Errorf("minimal encoding is %d bytes, MinEncodedSize = %d", minLen, MinEncodedSize)
	}
	// Every 64-byte block of the typical area holds data: the area
	// travels whole, after its 8-byte block map.
	if typNoMSRLen != MinEncodedSize+xsaveMapLen(MaxXSAVE)+MaxXSAVE {
		t.Errorf("encoding with 4096-byte XSAVE is %d bytes, want %d", typNoMSRLen, MinEncodedSize+xsaveMapLen(MaxXSAVE)+MaxXSAVE)
	}
	if typLen != typNoMSRLen+typ.NumMSRs*12 {
		t.Errorf("encoding with %d MSRs is %d bytes, want %d", typ.NumMSRs, typLen, typNoMSRLen+typ.NumMSRs*12)
	}
	t.Logf("encoded vCPU state: minimal %d bytes; with 4096-byte XSAVE %d bytes; plus %d MSRs %d bytes; maximum %d bytes",
		minLen, typNoMSRLen, typ.NumMSRs, typLen, MaxEncodedSize)
}

func TestRoundTripRandom(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewSource(seed))
		for i := 0; i < 500; i++ {
			roundTrip(t, randomState(r))
		}
	}
}

// stateGen adapts randomState to testing/quick.
type stateGen struct{ s *State }

// Generate implements quick.Generator.
func (stateGen) Generate(r *rand.Rand, _ int) reflect.Value {
	return reflect.ValueOf(stateGen{randomState(r)})
}

func TestQuickRoundTrip(t *testing.T) {
	f := func(g stateGen) bool {
		b := g.s.MarshalAppend(nil)
		var d State
		return d.UnmarshalBinary(b) == nil && d.Equal(g.s) && bytes.Equal(d.MarshalAppend(nil), b)
	}
	cfg := &quick.Config{MaxCount: 300, Rand: rand.New(rand.NewSource(42))}
	if err := quick.Check(f, cfg); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalAppendKeepsPrefix(t *testing.T) {
	s := typicalState()
	prefix := []byte("prefix")
	b := s.MarshalAppend(append([]byte(nil), prefix...))
	if !bytes.Equal(b[:len(prefix)], prefix) {
		t.Fatal("prefix overwritten")
	}
	var d State
	if err := d.UnmarshalBinary(b[len(prefix):]); err != nil || !d.Equal(s) {
		t.Fatalf("decode after prefix: %v", err)
	}
	if n, err := EncodedLen(b[len(prefix):]); err != nil || n != s.Size() {
		t.Fatalf("EncodedLen = %d, %v; want %d", n, err, s.Size())
	}
}

func TestUnmarshalRejectsCorruption(t *testing.T) {
	s := typicalState()
	good := s.MarshalAppend(nil)
	// Every single-bit flip is caught (by the header checks or the CRC).
	for i := 0; i < len(good); i++ {
		for bit := 0; bit < 8; bit += 3 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			var d State
			if err := d.UnmarshalBinary(b); err == nil {
				t.Fatalf("flip of byte %d bit %d accepted", i, bit)
			}
		}
	}
	// Every truncation and an extension are refused.
	for n := 0; n < len(good); n += 7 {
		var d State
		if err := d.UnmarshalBinary(good[:n]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", n)
		}
	}
	var d State
	if err := d.UnmarshalBinary(append(bytes.Clone(good), 0)); !errors.Is(err, ErrLength) {
		t.Fatalf("trailing byte: %v, want ErrLength", err)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := typicalState().MarshalAppend(nil)
	xsaveLenOff := headerSize + fixedSize
	mapOff := xsaveLenOff + 2
	msrCountOff := mapOff + xsaveMapLen(MaxXSAVE) + MaxXSAVE
	for _, tc := range []struct {
		name string
		mut  func(b []byte) []byte
		want error
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrTruncated},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrMagic},
		{"version", func(b []byte) []byte { b[4] = 1; return b }, ErrVersion},
		{"flags", func(b []byte) []byte { b[6] = 1; return b }, ErrInvalid},
		{"length too small", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 16); return b }, ErrLength},
		{"length too large", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<20); return b }, ErrLength},
		{"length mismatch", func(b []byte) []byte { return b[:len(b)-1] }, ErrLength},
		{"checksum", func(b []byte) []byte { b[len(b)-1] ^= 0xFF; return b }, ErrChecksum},
		{"event flags", func(b []byte) []byte { b[xsaveLenOff-24] |= 0x80; fixCRC(b); return b }, ErrInvalid},
		{"old NMI flag", func(b []byte) []byte { b[xsaveLenOff-24] |= 8; fixCRC(b); return b }, ErrInvalid},
		{"three NMIs pending", func(b []byte) []byte { b[xsaveLenOff-21] = MaxPendingNMIs + 1; fixCRC(b); return b }, ErrInvalid},
		{"XSAVE length > 4096", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[xsaveLenOff:], MaxXSAVE+1)
			fixCRC(b)
			return b
		}, ErrLength},
		{"XSAVE block map overruns", func(b []byte) []byte {
			b = b[:mapOff+3+checksumSize]
			binary.LittleEndian.PutUint32(b[8:], uint32(len(b)))
			fixCRC(b)
			return b
		}, ErrTruncated},
		{"XSAVE block map past the area", func(b []byte) []byte {
			// An area of 100 bytes has two blocks: bit 2 names none.
			binary.LittleEndian.PutUint16(b[xsaveLenOff:], 100)
			b[mapOff] = 0b111
			fixCRC(b)
			return b
		}, ErrInvalid},
		{"XSAVE overruns", func(b []byte) []byte {
			b = b[:xsaveLenOff+2+100+checksumSize]
			binary.LittleEndian.PutUint32(b[8:], uint32(len(b)))
			fixCRC(b)
			return b
		}, ErrTruncated},
		{"MSR count > 64", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[msrCountOff:], MaxMSRs+1)
			fixCRC(b)
			return b
		}, ErrLength},
		{"MSR list overruns", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[msrCountOff:], 9)
			fixCRC(b)
			return b
		}, ErrTruncated},
		{"bytes after MSRs", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[msrCountOff:], 7)
			fixCRC(b)
			return b
		}, ErrLength},
		{"RFLAGS reserved", func(b []byte) []byte {
			b[headerSize+vmx.NumGPRs*8+8] |= 1 << 3
			fixCRC(b)
			return b
		}, ErrInvalid},
	} {
		b := tc.mut(bytes.Clone(good))
		d := typicalState()
		err := d.UnmarshalBinary(b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && !d.Equal(&State{}) {
			t.Errorf("%s: state not reset after failure", tc.name)
		}
	}
}

func TestMarshalBinaryValidates(t *testing.T) {
	s := typicalState()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d State
	if err := d.UnmarshalBinary(b); err != nil || !d.Equal(s) {
		t.Fatalf("MarshalBinary output does not decode: %v", err)
	}
	s.CR8 = 99
	if _, err := s.MarshalBinary(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MarshalBinary of invalid state: %v, want ErrInvalid", err)
	}
}

func TestMarshalClampsBadLengths(t *testing.T) {
	s := typicalState()
	s.XSAVELen = 1 << 20
	s.NumMSRs = -3
	b := s.MarshalAppend(nil) // must not panic
	if want := MinEncodedSize + xsaveMapLen(MaxXSAVE) + MaxXSAVE; len(b) != want {
		t.Fatalf("clamped encoding is %d bytes, want %d", len(b), want)
	}
}

func TestZeroAllocs(t *testing.T) {
	s := typicalState()
	buf := make([]byte, 0, s.Size())
	if n := testing.AllocsPerRun(100, func() { buf = s.MarshalAppend(buf[:0]) }); n != 0 {
		t.Errorf("MarshalAppend into a sized buffer: %v allocs/op", n)
	}
	var d State
	if n := testing.AllocsPerRun(100, func() {
		if err := d.UnmarshalBinary(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("UnmarshalBinary into an existing State: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Validate() }); n != 0 {
		t.Errorf("Validate: %v allocs/op", n)
	}
}

func BenchmarkMarshalAppend(b *testing.B)         { benchmarkMarshal(b, typicalState()) }
func BenchmarkMarshalAppendAVXGuest(b *testing.B) { benchmarkMarshal(b, avxGuestState()) }

func BenchmarkUnmarshalBinary(b *testing.B)         { benchmarkUnmarshal(b, typicalState()) }
func BenchmarkUnmarshalBinaryAVXGuest(b *testing.B) { benchmarkUnmarshal(b, avxGuestState()) }

func benchmarkMarshal(b *testing.B, s *State) {
	buf := make([]byte, 0, s.Size())
	b.SetBytes(int64(s.Size()))
	b.ReportAllocs()
	for b.Loop() {
		buf = s.MarshalAppend(buf[:0])
	}
}

func benchmarkUnmarshal(b *testing.B, s *State) {
	buf := s.MarshalAppend(nil)
	var d State
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSparseXSAVE: the zero blocks of an XSAVE area stay home and come
// back as zeros. An area as a guest using AVX and protection keys leaves
// it (x87 and SSE state, the header, the upper halves of the YMM
// registers, PKRU at 2688, the room for AVX-512 between them zero)
// travels in about a third of its length, and a non-zero byte anywhere,
// even the last of a short final block, travels.
func TestSparseXSAVE(t *testing.T) {
	s := avxGuestState()
	b := roundTrip(t, s)
	// Blocks 0 (MXCSR), 2-6 (XMM), 8 (header), 9-12 (YMM_Hi128) and
	// the last, 8 bytes long (PKRU), after the 6-byte map.
	want := MinEncodedSize + 6 + 11*64 + 8 + s.NumMSRs*msrEntrySize
	if len(b) != want {
		t.Errorf("AVX guest's state: %d bytes, want %d (the whole area: %d)", len(b), want, want-11*64-8+2696)
	}
	for _, at := range []int{0, 63, 64, 1000, 2047, 2695} {
		c := s.Clone()
		c.XSAVE[at] ^= 0x40
		var d State
		if err := d.UnmarshalBinary(c.MarshalAppend(nil)); err != nil || d.XSAVE != c.XSAVE {
			t.Errorf("byte %d of the area: %v (area equal %v)", at, err, d.XSAVE == c.XSAVE)
		}
	}
	// A zero block named in the map is refused: one State, one
	// encoding.
	bad := bytes.Clone(b)
	bad[headerSize+fixedSize+2] |= 1 << 1 // block 1 is zero
	bad = slices.Insert(bad, headerSize+fixedSize+2+6+64, make([]byte, 64)...)
	binary.LittleEndian.PutUint32(bad[8:], uint32(len(bad)))
	fixCRC(bad)
	var z State
	if err := z.UnmarshalBinary(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("a zero block in the map: %v, want ErrInvalid", err)
	}
	// The zero blocks of the receiving State are cleared, whatever it
	// held before.
	d := typicalState()
	if err := d.UnmarshalBinary(b); err != nil || !d.Equal(s) {
		t.Errorf("decoding into a used State: %v (equal %v)", err, d.Equal(s))
	}
}

// TestUnmarshalIntoUsedState: decoding into a State that held another
// vCPU's (every byte of its XSAVE area set) gives exactly the encoded
// State: the blocks the encoding leaves out, and the area past its
// length, come out zero.
func TestUnmarshalIntoUsedState(t *testing.T) {
	for _, want := range []*State{avxGuestState(), typicalState()} {
		b, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got := avxGuestState()
		for i := range got.XSAVE {
			got.XSAVE[i] = 0xff
		}
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if *got != *want {
			for i := range got.XSAVE {
				if got.XSAVE[i] != want.XSAVE[i] {
					t.Fatalf("XSAVE byte %d is %#x, want %#x (length %d)", i, got.XSAVE[i], want.XSAVE[i], want.XSAVELen)
				}
			}
			t.Fatalf("decoded State differs from the encoded one outside the XSAVE area")
		}
	}
}
