package link

import (
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, HeaderLen)
	dst := MAC{1, 2, 3, 4, 5, 6}
	src := MAC{0x02, 0, 0, 0, 0, 9}
	PutHeader(b, dst, src, EtherTypeCluster)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dst != dst || h.Src != src || h.Type != EtherTypeCluster {
		t.Fatalf("got %+v", h)
	}
	if b[12] != 0x88 || b[13] != 0xB5 {
		t.Fatalf("EtherType bytes %x %x", b[12], b[13])
	}
	if _, err := ParseHeader(b[:13]); !errors.Is(err, ErrFrameTooShort) {
		t.Fatalf("short header: %v", err)
	}
}

func TestMAC(t *testing.T) {
	if !Broadcast.IsBroadcast() || !Broadcast.IsMulticast() {
		t.Fatal("broadcast not recognised")
	}
	m := MAC{0x02, 0xab, 0, 0, 0, 1}
	if m.IsMulticast() || m.IsBroadcast() {
		t.Fatal("unicast taken for group address")
	}
	if got := m.String(); got != "02:ab:00:00:00:01" {
		t.Fatalf("String = %q", got)
	}
}

// FuzzParseHeader checks the Ethernet header decoder on arbitrary bytes.
func FuzzParseHeader(f *testing.F) {
	b := make([]byte, HeaderLen)
	PutHeader(b, Broadcast, MAC{2, 0, 0, 0, 0, 1}, EtherTypeCluster)
	f.Add(b)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if len(b) >= HeaderLen {
				t.Fatalf("rejected %d bytes: %v", len(b), err)
			}
			return
		}
		out := make([]byte, HeaderLen)
		PutHeader(out, h.Dst, h.Src, h.Type)
		if string(out) != string(b[:HeaderLen]) {
			t.Fatalf("round trip %x != %x", out, b[:HeaderLen])
		}
	})
}

func TestCheckFrame(t *testing.T) {
	for _, c := range []struct {
		n, mtu int
		want   error
	}{
		{HeaderLen - 1, DefaultMTU, ErrFrameTooShort},
		{HeaderLen, DefaultMTU, nil},
		{HeaderLen + DefaultMTU, DefaultMTU, nil},
		{HeaderLen + DefaultMTU + 1, DefaultMTU, ErrFrameTooLong},
		{HeaderLen + 100, 99, ErrFrameTooLong},
	} {
		if err := CheckFrame(make([]byte, c.n), c.mtu); err != c.want {
			t.Errorf("CheckFrame(%d bytes, MTU %d) = %v, want %v", c.n, c.mtu, err, c.want)
		}
	}
}
