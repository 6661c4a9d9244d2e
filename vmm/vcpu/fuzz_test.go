package vcpu

import (
	"bytes"
	"math/rand"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	var reset State
	reset.Reset(0, true)
	f.Add(reset.MarshalAppend(nil))
	f.Add(typicalState().MarshalAppend(nil))
	f.Add(avxGuestState().MarshalAppend(nil))
	r := rand.New(rand.NewSource(99))
	for i := 0; i < 4; i++ {
		f.Add(randomState(r).MarshalAppend(nil))
	}
	f.Add([]byte{})
	f.Add([]byte("BIvc\x01\x00\x00\x00"))
}

// checkDecoded verifies the decoder's contract for one input: no panic,
// and an accepted input is valid and re-encodes to exactly itself.
func checkDecoded(t *testing.T, b []byte) {
	var s State
	if err := s.UnmarshalBinary(b); err != nil {
		if !s.Equal(&State{}) {
			t.Fatal("state not reset after a failed decode")
		}
		return
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("accepted state fails Validate: %v", err)
	}
	if out := s.MarshalAppend(nil); !bytes.Equal(out, b) {
		t.Fatalf("accepted input re-encodes differently:\n in %x\nout %x", b, out)
	}
}

// FuzzUnmarshalBinary feeds raw bytes to the decoder.
func FuzzUnmarshalBinary(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(checkDecoded)
}

// FuzzUnmarshalFields repairs the length and checksum of the mutated input
// before decoding, so that the fuzzer reaches the field validation instead
// of stopping at the checksum.
func FuzzUnmarshalFields(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= headerSize+checksumSize {
			b[8], b[9], b[10], b[11] = byte(len(b)), byte(len(b)>>8), byte(len(b)>>16), byte(len(b)>>24)
			fixCRC(b)
		}
		checkDecoded(t, b)
	})
}
