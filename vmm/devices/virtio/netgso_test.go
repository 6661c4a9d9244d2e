// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/virtio/spec"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tsoFeatures are what Linux's virtio-net negotiates for TSO.
const tsoFeatures = spec.FeatureVersion1 | spec.NetFeatureMAC | spec.NetFeatureCSUM | spec.NetFeatureHostTSO4 | spec.NetFeatureHostTSO6

// tcpPacket builds a TCP segment of payload bytes over IPv4 or IPv6 (a
// VLAN tag first if tagged) as Linux hands one to virtio-net for TSO:
// gso_type and gso_size in the header, the checksum partial.
func tcpPacket(v6, tagged bool, payload, mss int, flags byte) (frame, hdr []byte) {
	ipLen := ipv4MinLen
	if v6 {
		ipLen = ipv6Len
	}
	l3 := link.HeaderLen
	if tagged {
		l3 += vlanTagLen
	}
	const tcpLen = 32 // with 12 bytes of options (timestamps)
	f := make([]byte, l3+ipLen+tcpLen+payload)
	copy(f[0:], otherMAC[:])
	copy(f[6:], guestMAC[:])
	et := etherTypeIPv4
	if v6 {
		et = etherTypeIPv6
	}
	if tagged {
		binary.BigEndian.PutUint16(f[12:], uint16(tpidCVLAN))
		binary.BigEndian.PutUint16(f[14:], 7)
	}
	binary.BigEndian.PutUint16(f[l3-2:], uint16(et))
	ip := f[l3:]
	if v6 {
		ip[0], ip[6], ip[7] = 0x60, protoTCP, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(tcpLen+payload))
		ip[8], ip[23] = 0xfd, 1
		ip[24], ip[39] = 0xfd, 2
	} else {
		ip[0], ip[8], ip[9] = 0x45, 64, protoTCP
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+tcpLen+payload))
		binary.BigEndian.PutUint16(ip[4:], 0xfff0) // wraps
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		copy(ip[12:], []byte{10, 0, 2, 16, 10, 0, 2, 2})
	}
	tcp := ip[ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0xFFFFF000) // the sequence wraps too
	binary.BigEndian.PutUint32(tcp[8:], 77)
	tcp[12], tcp[13] = tcpLen/4<<4, flags
	binary.BigEndian.PutUint16(tcp[14:], 502)
	binary.BigEndian.PutUint16(tcp[16:], 0x1234) // Linux leaves a partial sum here
	for i := range tcp[tcpLen:] {
		tcp[tcpLen+i] = byte(i * 7)
	}
	hdr = make([]byte, netHdrLen)
	hdr[spec.NetHdrFlags] = spec.NetHdrNeedsCsum
	hdr[spec.NetHdrGSOType] = spec.NetGSOTCPv4
	if v6 {
		hdr[spec.NetHdrGSOType] = spec.NetGSOTCPv6
	}
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrHdrLen:], uint16(l3+ipLen+tcpLen))
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrGSOSize:], uint16(mss))
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrCsumStart:], uint16(l3+ipLen))
	binary.LittleEndian.PutUint16(hdr[spec.NetHdrCsumOffset:], 16)
	return f, hdr
}

// TestNetTSO: a TCP packet of 20000 bytes goes out as MTU-sized
// segments that a receiver takes: valid IP and TCP checksums (checked by
// gVisor's header package), lengths, sequence numbers that wrap, IPv4
// identifications counting up, FIN and PSH on the last segment alone,
// CWR on the first alone, the payload whole.
func TestNetTSO(t *testing.T) {
	for _, c := range []struct {
		name       string
		v6, tagged bool
	}{{"IPv4", false, false}, {"IPv6", true, false}, {"IPv4 in a VLAN", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			d := newNetDriver(t, NetConfig{}, nil)
			d.init(tsoFeatures, 8)
			const payload = 20000
			mss := 1448 // 1500 less IPv4's, TCP's and the timestamps' 52 bytes
			if c.v6 {
				mss = 1428
			}
			frame, hdr := tcpPacket(c.v6, c.tagged, payload, mss, tcpFlagFIN|tcpFlagPSH|tcpFlagCWR|0x10)
			d.send(hdr, frame, 1)
			d.healthy()
			segs := d.up.frames
			if want := (payload + mss - 1) / mss; len(segs) != want {
				t.Fatalf("%d segments, want %d; drops %v", len(segs), want, d.net.Status().Drops)
			}
			l3 := link.HeaderLen
			if c.tagged {
				l3 += vlanTagLen
			}
			var got []byte
			for i, s := range segs {
				if len(s) > l3+1500 {
					t.Errorf("segment %d: %d bytes, over the MTU", i, len(s))
				}
				var tcp header.TCP
				var src, dst = header.IPv4(s[l3:]).SourceAddress(), header.IPv4(s[l3:]).DestinationAddress()
				if c.v6 {
					ip := header.IPv6(s[l3:])
					if int(ip.PayloadLength()) != len(s)-l3-ipv6Len {
						t.Errorf("segment %d: IPv6 payload length %d in %d bytes", i, ip.PayloadLength(), len(s))
					}
					tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
				} else {
					ip := header.IPv4(s[l3:])
					if !ip.IsChecksumValid() || int(ip.TotalLength()) != len(s)-l3 || ip.ID() != uint16(0xfff0+i) {
						t.Errorf("segment %d: IPv4 checksum valid %v, length %d in %d bytes, id %#x", i, ip.IsChecksumValid(), ip.TotalLength(), len(s), ip.ID())
					}
					tcp = header.TCP(ip.Payload())
				}
				data := tcp.Payload()
				if !tcp.IsChecksumValid(src, dst, checksum.Checksum(data, 0), uint16(len(data))) {
					t.Errorf("segment %d: bad TCP checksum", i)
				}
				if want := uint32(0xFFFFF000) + uint32(i*mss); tcp.SequenceNumber() != want {
					t.Errorf("segment %d: sequence %#x, want %#x", i, tcp.SequenceNumber(), want)
				}
				last := i == len(segs)-1
				f := tcp.Flags()
				if f.Contains(header.TCPFlagFin) != last || f.Contains(header.TCPFlagPsh) != last || f.Contains(header.TCPFlagCwr) != (i == 0) || !f.Contains(header.TCPFlagAck) {
					t.Errorf("segment %d of %d: flags %v", i, len(segs), f)
				}
				got = append(got, data...)
			}
			if want := frame[len(frame)-payload:]; !bytes.Equal(got, want) {
				t.Errorf("the segments carry %d bytes, not the %d sent", len(got), len(want))
			}
			if st := d.net.Status(); st.TxFrames != uint64(len(segs)) {
				t.Errorf("%d frames counted, %d sent", st.TxFrames, len(segs))
			}
		})
	}
}

// TestNetTSORefused: packets the device cannot segment as their header
// says are dropped as bad chains, the queue going on.
func TestNetTSORefused(t *testing.T) {
	for _, c := range []struct {
		name     string
		features uint64
		edit     func(f, hdr []byte)
	}{
		{"TSO not negotiated", tsoFeatures &^ spec.NetFeatureHostTSO4, nil},
		{"gso_size 0", tsoFeatures, func(f, hdr []byte) { binary.LittleEndian.PutUint16(hdr[spec.NetHdrGSOSize:], 0) }},
		{"segments over the MTU", tsoFeatures, func(f, hdr []byte) { binary.LittleEndian.PutUint16(hdr[spec.NetHdrGSOSize:], 1500) }},
		{"ECN without HOST_ECN", tsoFeatures, func(f, hdr []byte) { hdr[spec.NetHdrGSOType] |= spec.NetGSOECN }},
		{"UDP", tsoFeatures, func(f, hdr []byte) { f[14+9] = 17 }},
		{"a fragment", tsoFeatures, func(f, hdr []byte) { f[14+6] |= 0x20 }},
		{"IPv6 type on IPv4", tsoFeatures, func(f, hdr []byte) { hdr[spec.NetHdrGSOType] = spec.NetGSOTCPv6 }},
		{"IP length past the frame", tsoFeatures, func(f, hdr []byte) { binary.BigEndian.PutUint16(f[14+2:], 60000) }},
		{"TCP header past the packet", tsoFeatures, func(f, hdr []byte) { f[14+20+12] = 0xF0 }},
		{"IHL below 5", tsoFeatures, func(f, hdr []byte) { f[14] = 0x44 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newNetDriver(t, NetConfig{}, nil)
			d.init(c.features, 8)
			frame, hdr := tcpPacket(false, false, 5000, 1448, 0x10)
			if c.edit != nil {
				c.edit(frame, hdr)
			}
			d.send(hdr, frame, 0)
			d.healthy()
			if st := d.net.Status(); d.up.count != 0 || st.Drops[DropTxBadChain] != 1 {
				t.Errorf("%d frames out, drops %v; want none out, one bad chain", d.up.count, st.Drops)
			}
			// The queue goes on.
			frame, hdr = tcpPacket(false, false, 3000, 1448, 0x10)
			d.send(hdr, frame, 0)
			if c.features&spec.NetFeatureHostTSO4 != 0 && d.up.count != 3 {
				t.Errorf("a good packet after it: %d segments, want 3", d.up.count)
			}
		})
	}
}

// TestNetTSOAllocs: segmenting allocates nothing.
func TestNetTSOAllocs(t *testing.T) {
	up := &captureUplink{}
	d := newNetDriver(t, NetConfig{Uplink: up, Rate: RateLimit{FramesPerSecond: -1, BytesPerSecond: -1}}, nil)
	d.init(tsoFeatures, 8)
	frame, hdr := tcpPacket(false, false, 30000, 1448, 0x10)
	d.send(hdr, frame, 1)
	if n := testing.AllocsPerRun(100, func() { d.send(hdr, frame, 1) }); n != 0 {
		t.Errorf("%v allocations per 30000-byte TSO packet", n)
	}
	if up.count == 0 {
		t.Error("nothing went out")
	}
}

// FuzzTSO feeds the transmit path packets whose headers ask for
// segmentation, well-formed ones as seeds: whatever the guest writes,
// every frame that goes out is within the MTU and from the guest's
// address, and nothing panics.
func FuzzTSO(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		frame, hdr := tcpPacket(v6, v6, 4000, 1400, 0x19)
		f.Add(append(hdr, frame...), uint8(3))
	}
	f.Fuzz(func(t *testing.T, pkt []byte, feat uint8) {
		if len(pkt) < netHdrLen || len(pkt) > netHdrLen+maxGSOFrame {
			return
		}
		up := &captureUplink{check: func(fr []byte) {
			if len(fr) > link.HeaderLen+vlanTagLen+1500 || !bytes.Equal(fr[6:12], guestMAC[:]) {
				t.Fatalf("a frame of %d bytes from %x went out", len(fr), fr[6:12])
			}
		}}
		n, err := NewNet(NetConfig{MAC: guestMAC, Uplink: up, Rate: RateLimit{FramesPerSecond: -1, BytesPerSecond: -1}})
		if err != nil {
			t.Fatal(err)
		}
		var features uint64
		if feat&1 != 0 {
			features |= spec.NetFeatureHostTSO4
		}
		if feat&2 != 0 {
			features |= spec.NetFeatureHostTSO6
		}
		n.sendPacket(append([]byte(nil), pkt...), features)
		st := n.Status()
		var drops uint64
		for _, d := range st.Drops {
			drops += d
		}
		if st.TxFrames == 0 && drops == 0 {
			t.Fatal("a packet neither sent nor dropped")
		}
	})
}
