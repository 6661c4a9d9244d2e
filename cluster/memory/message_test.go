package memory

import (
	"bytes"
	"errors"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	var data Page
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, m := range []Message{
		{Kind: KindReadReq, Src: 1, Dst: 0, Requester: 1, GPA: 0x3000, Version: 9},
		{Kind: KindWriteGrant, Flags: FlagHasData, Src: 0, Dst: 63, Requester: 63, GPA: 0xFFFFF000, Version: 1 << 40, Data: &data},
		{Kind: KindFetchReply, Flags: FlagHasData | FlagKeptShared, Src: 2, Dst: 0, Requester: 5, GPA: 0, Version: 3, Data: &data},
	} {
		b := make([]byte, MaxMessageSize)
		n, err := m.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		var buf Page
		if err := got.Unmarshal(b[:n], &buf); err != nil {
			t.Fatalf("%v: %v", &m, err)
		}
		if got.Kind != m.Kind || got.Flags != m.Flags || got.Src != m.Src || got.Dst != m.Dst || got.Requester != m.Requester || got.GPA != m.GPA || got.Version != m.Version {
			t.Fatalf("round trip: got %v, want %v", &got, &m)
		}
		if (m.Data == nil) != (got.Data == nil) || m.Data != nil && *got.Data != *m.Data {
			t.Fatalf("%v: data mismatch", &m)
		}
	}
}

// Pages with zero words travel packed; pages without, whole; both come
// back as they were.
func TestPackedPages(t *testing.T) {
	var sparse, dense, zero Page
	sparse[8], sparse[2000], sparse[PageSize-1] = 1, 2, 3
	for i := range dense {
		dense[i] = byte(i | 1)
	}
	for _, c := range []struct {
		name string
		p    *Page
		size int
	}{
		{"zero", &zero, MessageHeaderSize + 4},
		// words 1, 250 and 511: three runs of 1 zero-or-more + 1 literal
		{"sparse", &sparse, MessageHeaderSize + 3*(4+8)},
		{"dense", &dense, MaxMessageSize},
	} {
		m := Message{Kind: KindReadData, Flags: FlagHasData, Src: 0, Dst: 1, Requester: 1, GPA: 0x5000, Version: 4, Data: c.p}
		b := make([]byte, MaxMessageSize)
		n, err := m.MarshalTo(b)
		if err != nil || n != c.size {
			t.Fatalf("%s page: marshal %d bytes, %v", c.name, n, err)
		}
		var got Message
		var buf Page
		for i := range buf {
			buf[i] = 0xEE // stale contents must not survive
		}
		if err := got.Unmarshal(b[:n], &buf); err != nil {
			t.Fatalf("%s page: %v", c.name, err)
		}
		if got.Flags != FlagHasData || *got.Data != *c.p {
			t.Errorf("%s page: decoded flags %#x, data equal %v", c.name, got.Flags, *got.Data == *c.p)
		}
		if c.name == "sparse" {
			for name, bad := range map[string][]byte{
				"short":    b[:n-1],
				"trailing": append(bytes.Clone(b[:n]), 0, 0, 0, 0),
				"emptyRun": append(append(bytes.Clone(b[:MessageHeaderSize]), 0, 0, 0, 0), b[MessageHeaderSize:n]...),
				"overrun":  func() []byte { x := bytes.Clone(b[:n]); x[MessageHeaderSize] = 0xFF; return x }(),
			} {
				if err := got.Unmarshal(bad, &buf); !errors.Is(err, ErrBadMessage) {
					t.Errorf("packed page %s: %v, want ErrBadMessage", name, err)
				}
			}
		}
	}
	var wire [MaxMessageSize]byte
	var rx Page
	var got Message
	if n := testing.AllocsPerRun(100, func() {
		m := Message{Kind: KindReadData, Flags: FlagHasData, Data: &sparse}
		k, _ := m.MarshalTo(wire[:])
		got.Unmarshal(wire[:k], &rx)
	}); n != 0 {
		t.Errorf("%v allocations per packed round trip", n)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good := make([]byte, MessageHeaderSize)
	m := Message{Kind: KindInv, Src: 1, Dst: 2, GPA: 0x1000}
	if _, err := m.MarshalTo(good); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"short":      good[:10],
		"magic":      mod(func(b []byte) []byte { b[0] = 0; return b }),
		"kind0":      mod(func(b []byte) []byte { b[1] = 0; return b }),
		"kindHigh":   mod(func(b []byte) []byte { b[1] = 200; return b }),
		"node":       mod(func(b []byte) []byte { b[3] = 64; return b }),
		"flags":      mod(func(b []byte) []byte { b[5] = 0x80; return b }),
		"reserved":   mod(func(b []byte) []byte { b[7] = 1; return b }),
		"unaligned":  mod(func(b []byte) []byte { b[8] = 8; return b }),
		"trailing":   append(bytes.Clone(good), 0),
		"dataMissed": mod(func(b []byte) []byte { b[5] = FlagHasData; return b }),
	} {
		var got Message
		var buf Page
		err := got.Unmarshal(b, &buf)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrShortMessage) {
			t.Errorf("%s: error %v does not wrap ErrBadMessage/ErrShortMessage", name, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	var data Page
	data[0], data[PageSize-1] = 1, 2
	for _, m := range []Message{
		{Kind: KindReadReq, Src: 1, Dst: 0, Requester: 1, GPA: 0x3000},
		{Kind: KindReadData, Flags: FlagHasData, Src: 0, Dst: 1, Requester: 1, GPA: 0x3000, Version: 2, Data: &data},
	} {
		b := make([]byte, m.Size())
		n, err := m.MarshalTo(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:n])
	}
	f.Add([]byte{MessageMagic})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		var buf Page
		if err := m.Unmarshal(b, &buf); err != nil {
			return
		}
		// Whatever decodes must re-encode to a message that decodes the
		// same (a page may travel packed or not), no longer than it came.
		out := make([]byte, MaxMessageSize)
		n, err := m.MarshalTo(out)
		if err != nil {
			t.Fatalf("re-marshal %v: %v", &m, err)
		}
		if n > len(b) {
			t.Fatalf("re-encoding of %v grew from %d to %d bytes", &m, len(b), n)
		}
		var again Message
		var buf2 Page
		if err := again.Unmarshal(out[:n], &buf2); err != nil {
			t.Fatalf("re-encoding of %v does not decode: %v", &m, err)
		}
		if again.Kind != m.Kind || again.Flags != m.Flags || again.GPA != m.GPA || again.Version != m.Version ||
			again.Src != m.Src || again.Dst != m.Dst || again.Requester != m.Requester ||
			(m.Data == nil) != (again.Data == nil) || m.Data != nil && *m.Data != *again.Data {
			t.Fatalf("re-encoding of %v decodes as %v", &m, &again)
		}
	})
}

// BenchmarkMarshalPage measures encoding and decoding one page message:
// a zero page, a sparse one and a dense one (which travels whole).
func BenchmarkMarshalPage(b *testing.B) {
	var zero, sparse, dense Page
	for i := 0; i < PageSize; i += 64 {
		sparse[i] = byte(i>>6 | 1)
	}
	for i := range dense {
		dense[i] = byte(i | 1)
	}
	for _, c := range []struct {
		name string
		p    *Page
	}{{"zero", &zero}, {"sparse", &sparse}, {"dense", &dense}} {
		b.Run(c.name, func(b *testing.B) {
			var wire [MaxMessageSize]byte
			var rx Page
			var got Message
			m := Message{Kind: KindReadData, Flags: FlagHasData, Src: 0, Dst: 1, GPA: 0x1000, Data: c.p}
			b.SetBytes(PageSize)
			b.ReportAllocs()
			n := 0
			for i := 0; i < b.N; i++ {
				n, _ = m.MarshalTo(wire[:])
				if err := got.Unmarshal(wire[:n], &rx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "wire-bytes")
		})
	}
}
