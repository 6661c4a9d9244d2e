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
