package cluster

import (
	"encoding/binary"
	"testing"
)

// FuzzHandleFrame drives an endpoint's receive path with authenticated
// frames whose header fields and payloads come from the fuzzer, as a
// faulty or hostile member holding the key could send them. The endpoint
// must not panic, must never deliver more bytes than MaxMessage, and must
// keep its ack state inside the window.
func FuzzHandleFrame(f *testing.F) {
	seed := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = append(b, fr...)
		}
		return b
	}
	// Each record: type, channel, seq(4), ack(4), sack(8), fragIndex(2),
	// fragCount(2), window(2), payload length(1), payload.
	rec := func(typ FrameType, seq uint32, idx, cnt uint16, payload string) []byte {
		b := []byte{byte(typ), 1}
		b = binary.BigEndian.AppendUint32(b, seq)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint16(b, idx)
		b = binary.BigEndian.AppendUint16(b, cnt)
		b = binary.BigEndian.AppendUint16(b, 64)
		b = append(b, byte(len(payload)))
		return append(b, payload...)
	}
	f.Add(seed(rec(TypeData, 0, 0, 1, "hello")))
	f.Add(seed(rec(TypeData, 1, 1, 2, "b"), rec(TypeData, 0, 0, 2, "a"), rec(TypeAck, 0, 0, 0, "")))
	f.Add(seed(rec(TypeData, 0, 0, 3, "x"), rec(TypeData, 1, 2, 3, "y"), rec(TypeData, 2, 1, 5, "z")))
	f.Add(seed(rec(TypeHello, 0, 0, 0, "12345678hi"), rec(TypeDatagram, 0, 0, 0, "hb")))
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newTestNode(t, 1, testKey())
		b := newTestNode(t, 2, testKey())
		b.ep.cfg.MaxMessage = 4096
		a.ep.AddPeer(2, b.link.mac)
		b.ep.AddPeer(1, a.link.mac)
		delivered := 0
		b.ep.cfg.OnMessage = func(_ NodeID, _ uint8, m []byte) {
			if len(m) > 4096 {
				t.Fatalf("delivered %d bytes", len(m))
			}
			delivered++
		}
		// Ensure the channel exists with the reduced reassembly limit.
		p := b.ep.peers[1]
		for ch := range p.chans {
			c := b.ep.chanFor(p, uint8(ch))
			c.reasm = c.reasm[:4096]
		}
		buf := make([]byte, 14+HeaderLen+300+TagLen)
		for len(data) >= 25 {
			h := Header{
				Type:      FrameType(data[0]),
				Channel:   data[1] % 8,
				Dst:       2,
				Seq:       binary.BigEndian.Uint32(data[2:]),
				Ack:       binary.BigEndian.Uint32(data[6:]),
				SACK:      binary.BigEndian.Uint64(data[10:]),
				FragIndex: binary.BigEndian.Uint16(data[18:]),
				FragCount: binary.BigEndian.Uint16(data[20:]),
				Window:    binary.BigEndian.Uint16(data[22:]),
			}
			n := min(int(data[24]), len(data)-25)
			copy(buf[14+HeaderLen:], data[25:25+n])
			data = data[25+n:]
			h.PayloadLen = uint16(n)
			h.Src = 1
			h.Counter = a.ep.nextCounter()
			copy(buf, a.link.mac[:]) // Ethernet header: any addresses
			buf[12], buf[13] = 0x88, 0xB5
			fr, err := a.ep.cipher.Seal(buf, &h)
			if err != nil {
				t.Fatal(err)
			}
			b.ep.HandleFrame(fr)
		}
		b.ep.Tick()
		for _, c := range p.chans {
			if c == nil {
				continue
			}
			if c.reasmLen > len(c.reasm) {
				t.Fatalf("reassembly length %d over buffer %d", c.reasmLen, len(c.reasm))
			}
			if int32(c.nxt-c.una) < 0 || int32(c.end-c.nxt) < 0 {
				t.Fatalf("send window inverted: una %d nxt %d end %d", c.una, c.nxt, c.end)
			}
		}
	})
}
