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
		if _, err := m.MarshalTo(b); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{MessageMagic})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		var buf Page
		if err := m.Unmarshal(b, &buf); err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		out := make([]byte, MaxMessageSize)
		n, err := m.MarshalTo(out)
		if err != nil {
			t.Fatalf("re-marshal %v: %v", &m, err)
		}
		if !bytes.Equal(out[:n], b) {
			t.Fatalf("re-encoding differs for %v", &m)
		}
	})
}
