package membership

import (
	"bytes"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

func TestContextRoundTrip(t *testing.T) {
	m := Member{MAC: mac(4), IP: "192.0.2.4", Incarnation: 0x1ac413320374c045}
	kind, got, err := decodeContext(encodeContext(Failed, m))
	if err != nil || kind != Failed || got != m {
		t.Fatalf("got %v %+v %v", kind, got, err)
	}
	if _, _, err := decodeContext([]byte{1, 2, 3}); err == nil {
		t.Fatal("short record accepted")
	}
}

// FuzzDecodeContext checks the change-record decoder on arbitrary bytes.
func FuzzDecodeContext(f *testing.F) {
	f.Add(encodeContext(Joined, Member{ID: 1, MAC: mac(1), IP: "10.0.0.1"}))
	f.Add(encodeContext(Left, Member{ID: 2}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, m, err := decodeContext(b)
		if err != nil {
			return
		}
		again := encodeContext(kind, m)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

// FuzzHandleInput feeds arbitrary hellos, datagrams and Raft messages to a
// member (the leader of a one-node cluster, which admits joiners).
func FuzzHandleInput(f *testing.F) {
	f.Add(byte(0), []byte{1, 8, '1', '0', '.', '0', '.', '0', '.', '9'})
	f.Add(byte(1), []byte{dgHeartbeat})
	f.Add(byte(1), []byte{dgRemoved})
	f.Add(byte(1), []byte{dgRemoved, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(byte(2), []byte{0, 0, 0, 0, 0, 0, 0, 1, 0x08, 0x01, 0x10, 0x01, 0x18, 0x02})
	f.Fuzz(func(t *testing.T, kind byte, payload []byte) {
		s := newSim(t, 1)
		n := s.add(1, bootstrapList(1))
		s.run(200 * DefaultTickInterval / 10)
		switch kind % 3 {
		case 0:
			n.HandleHello(2, link.MAC{2, 0, 0, 0, 0, 2}, payload)
		case 1:
			n.HandleDatagram(2, payload)
		case 2:
			n.HandleMessage(cluster.NodeID(2), payload)
		}
		s.run(5 * DefaultTickInterval)
		_ = n.Status().String()
	})
}
