package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
)

func testKey() []byte {
	k := make([]byte, KeyLen)
	for i := range k {
		k[i] = byte(i * 7)
	}
	return k
}

// sealTestFrame seals a cluster frame from node MAC 1 to node MAC 2.
func sealTestFrame(t testing.TB, c *Cipher, h Header, payload []byte) []byte {
	t.Helper()
	b := make([]byte, link.HeaderLen+FrameLen(len(payload)))
	link.PutHeader(b, nodeMAC(2), nodeMAC(1), link.EtherTypeCluster)
	copy(b[link.HeaderLen+HeaderLen:], payload)
	h.PayloadLen = uint16(len(payload))
	f, err := c.Seal(b, &h)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return f
}

func TestHeaderRoundTrip(t *testing.T) {
	in := Header{Type: TypeData, Channel: 3, Src: 7, Dst: 9, Counter: 1<<40 + 5, Seq: 100,
		Ack: 0xfffffff0, SACK: 0xdeadbeefcafef00d, FragIndex: 2, FragCount: 3, PayloadLen: 10, Window: 64}
	b := make([]byte, FrameLen(10))
	in.Put(b)
	out, err := ParseHeader(b)
	if err != nil {
		t.Fatalf("ParseHeader: %v", err)
	}
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := Header{Type: TypeData, Src: 1, Dst: 2, Counter: 1, FragCount: 1, PayloadLen: 4}
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"short", func(b []byte) []byte { return b[:Overhead-1] }, ErrShort},
		{"version", func(b []byte) []byte { b[offVersion] = 1; return b }, ErrVersion},
		{"flags", func(b []byte) []byte { b[offFlags] = 1; return b }, ErrFlags},
		{"type", func(b []byte) []byte { b[offType] = 99; return b }, ErrType},
		{"source", func(b []byte) []byte { copy(b[offSrc:], []byte{0, 0, 0, 0}); return b }, ErrSource},
		{"length", func(b []byte) []byte { b[offLen+1] = 5; return b }, ErrLength},
		{"fragcount", func(b []byte) []byte { b[offFragCount+1] = 0; return b }, ErrFragment},
		{"fragindex", func(b []byte) []byte { b[offFragIndex+1] = 1; return b }, ErrFragment},
		{"ackpayload", func(b []byte) []byte { b[offType] = byte(TypeAck); b[offFragCount+1] = 0; return b }, ErrLength},
	}
	for _, tc := range cases {
		b := make([]byte, FrameLen(4))
		good.Put(b)
		_, err := ParseHeader(tc.mutate(b))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestSealOpen(t *testing.T) {
	c, err := NewCipher(testKey())
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("a page of guest memory")
	h := Header{Type: TypeData, Channel: 1, Src: 4, Dst: 5, Counter: 77, Seq: 3, FragCount: 1}
	f := sealTestFrame(t, c, h, payload)
	if bytes.Contains(f, payload) {
		t.Fatal("payload travels in clear")
	}
	got, pt, err := c.Open(bytes.Clone(f))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(pt, payload) || got.Seq != 3 || got.Src != 4 {
		t.Fatalf("Open: header %+v payload %q", got, pt)
	}
	// A copy with another Ethernet source does not open (issue 16,
	// finding 5: version 1 let it through and the receiver moved the
	// peer to the forged address).
	forged := bytes.Clone(f)
	copy(forged[6:12], []byte{0x02, 0xee, 0xee, 0xee, 0xee, 0xee})
	if _, _, err := c.Open(forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("rewritten Ethernet source: %v, want ErrAuth", err)
	}
	// Every single-bit flip anywhere in the frame but the Ethernet
	// destination must fail authentication or parsing: the source
	// address and EtherType are authenticated with the header.
	for i := 6 * 8; i < len(f)*8; i++ {
		b := bytes.Clone(f)
		b[i/8] ^= 1 << (i % 8)
		if _, _, err := c.Open(b); err == nil {
			t.Fatalf("bit %d flipped: frame accepted", i)
		}
	}
	// A different key must not open the frame.
	k2 := testKey()
	k2[0] ^= 1
	c2, _ := NewCipher(k2)
	if _, _, err := c2.Open(bytes.Clone(f)); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: got %v, want ErrAuth", err)
	}
	if _, err := NewCipher(make([]byte, 16)); err == nil {
		t.Fatal("NewCipher accepted a short key")
	}
}

func TestSealOpenAllocs(t *testing.T) {
	c, _ := NewCipher(testKey())
	b := make([]byte, link.HeaderLen+FrameLen(4096))
	h := Header{Type: TypeData, Src: 1, Dst: 2, FragCount: 1, PayloadLen: 4096}
	allocs := testing.AllocsPerRun(100, func() {
		h.Counter++
		f, _ := c.Seal(b, &h)
		if _, _, err := c.Open(f); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("seal+open allocates %v times", allocs)
	}
}

func TestReplayWindow(t *testing.T) {
	var w ReplayWindow
	if w.Accept(0) {
		t.Fatal("counter 0 accepted")
	}
	for _, c := range []uint64{1, 3, 2, 10} {
		if !w.Accept(c) {
			t.Fatalf("fresh counter %d rejected", c)
		}
	}
	for _, c := range []uint64{1, 2, 3, 10} {
		if w.Accept(c) {
			t.Fatalf("replayed counter %d accepted", c)
		}
	}
	if !w.Accept(9) || !w.Accept(4) {
		t.Fatal("in-window fresh counter rejected")
	}
	if !w.Accept(10 + ReplayWindowSize - 1) {
		t.Fatal("jump rejected")
	}
	if w.Check(10) {
		t.Fatal("counter 10 forgotten after jump but still inside window")
	}
	if !w.Check(11) {
		t.Fatal("counter 11 inside window, never seen, rejected")
	}
	if !w.Accept(10 + ReplayWindowSize) {
		t.Fatal("jump rejected")
	}
	if w.Check(10) {
		t.Fatal("counter 10 now below window, accepted")
	}
}

// TestReplayWindowModel compares the window with a set-based model.
func TestReplayWindowModel(t *testing.T) {
	var w ReplayWindow
	seen := map[uint64]bool{}
	var top uint64
	x := uint64(12345)
	for i := 0; i < 20000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		var c uint64
		switch x >> 62 {
		case 0:
			c = top + 1 + (x>>32)%200
		default:
			c = top - (x>>32)%(ReplayWindowSize+20)
		}
		if c > 1<<62 {
			continue
		}
		want := c != 0 && !seen[c] && (c > top || top-c < ReplayWindowSize)
		if got := w.Accept(c); got != want {
			t.Fatalf("step %d counter %d top %d: got %v want %v", i, c, top, got, want)
		}
		if want {
			seen[c] = true
			top = max(top, c)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to the frame decoder and authenticator.
func FuzzOpen(f *testing.F) {
	c, _ := NewCipher(testKey())
	for _, h := range []Header{
		{Type: TypeData, Src: 1, Dst: 2, Counter: 1, FragCount: 1},
		{Type: TypeAck, Src: 1, Dst: 2, Counter: 2, Ack: 5, SACK: 3},
		{Type: TypeHello, Src: 3, Counter: 9},
		{Type: TypeDatagram, Src: 3, Dst: 1, Counter: 10},
	} {
		f.Add(sealTestFrame(f, c, h, []byte("hello")))
	}
	f.Add([]byte{})
	f.Add(make([]byte, link.HeaderLen+Overhead))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < link.HeaderLen {
			if _, _, err := c.Open(b); err == nil {
				t.Fatal("a frame shorter than its Ethernet header opened")
			}
			return
		}
		h, err := ParseHeader(b[link.HeaderLen:])
		if err != nil {
			return
		}
		if int(h.PayloadLen)+Overhead > len(b)-link.HeaderLen {
			t.Fatalf("accepted header with payload %d in %d bytes", h.PayloadLen, len(b))
		}
		_, pt, err := c.Open(b)
		if err == nil && len(pt) != int(h.PayloadLen) {
			t.Fatalf("payload %d bytes, header says %d", len(pt), h.PayloadLen)
		}
	})
}

func TestKeyFingerprint(t *testing.T) {
	a, b := KeyFingerprint(testKey()), KeyFingerprint(testKey())
	k2 := testKey()
	k2[31] ^= 1
	if a != b || len(a) != 16 || a == KeyFingerprint(k2) {
		t.Errorf("fingerprints %s %s %s", a, b, KeyFingerprint(k2))
	}
	if strings.Contains(fmt.Sprintf("%x", testKey()), a) {
		t.Error("the fingerprint is a piece of the key")
	}
}
