// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e1000

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/machine/nic/nictest"
)

// model is a small 8254x: registers, reset, MAC in RAL/RAH or EEPROM,
// and legacy descriptor rings over DMA memory.
type model struct {
	t      testing.TB
	mem    *nictest.Memory
	regs   map[Reg]uint32
	eeprom [64]uint16
	resetN int // reads of CTRL before RST clears
	sent   [][]byte
	stuck  bool // never clears RST
	// discard drops sent frames instead of recording them
	discard bool
}

func newModel(t testing.TB, macInRAL bool) (*model, nic.Hardware) {
	m := &model{t: t, mem: nictest.NewMemory(0x4000_0000, 4<<20), regs: map[Reg]uint32{STATUS: StatusLU}, resetN: 2}
	mac := link.MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	for i := 0; i < 3; i++ {
		m.eeprom[i] = uint16(mac[2*i]) | uint16(mac[2*i+1])<<8
	}
	if macInRAL {
		m.regs[RAL0] = binary.LittleEndian.Uint32(mac[:4])
		m.regs[RAH0] = uint32(mac[4]) | uint32(mac[5])<<8 | rahAV
	}
	regs := &nictest.Regs{
		Read: func(off uint32, size int) uint64 {
			r := Reg(off)
			switch r {
			case CTRL:
				if m.regs[CTRL]&CtrlRST != 0 && !m.stuck {
					if m.resetN--; m.resetN <= 0 {
						m.regs[CTRL] &^= CtrlRST
					}
				}
			case EERD:
				v := m.regs[EERD]
				if v&1 != 0 {
					w := (v >> 8) & 0x3f
					return uint64(uint32(m.eeprom[w])<<16 | 1<<4)
				}
			}
			return uint64(m.regs[r])
		},
		Write: func(off uint32, size int, v uint64) {
			r := Reg(off)
			m.regs[r] = uint32(v)
			if r == TDT {
				m.transmit()
			}
		},
	}
	return m, nic.Hardware{Regs: regs, DMA: m.mem}
}

func (m *model) ring(base, length Reg) []byte {
	addr := uint64(m.regs[base]) | uint64(m.regs[base+4])<<32
	b, err := m.mem.Slice(addr, int(m.regs[length]))
	if err != nil {
		m.t.Fatalf("ring: %v", err)
	}
	return b
}

// transmit sends every descriptor from TDH to TDT.
func (m *model) transmit() {
	ring := m.ring(TDBAL, TDLEN)
	n := uint32(len(ring) / descSize)
	for m.regs[TDH] != m.regs[TDT] {
		d := ring[m.regs[TDH]*descSize:][:descSize]
		l := int(binary.LittleEndian.Uint16(d[txLen:]))
		buf, err := m.mem.Slice(binary.LittleEndian.Uint64(d), l)
		if err != nil {
			m.t.Fatalf("tx: %v", err)
		}
		if d[txCmd]&(txEOP|txIFCS|txRS) != txEOP|txIFCS|txRS {
			m.t.Errorf("tx cmd %#x", d[txCmd])
		}
		if !m.discard {
			m.sent = append(m.sent, bytes.Clone(buf))
		}
		d[txStatus] |= txDD
		m.regs[TDH] = (m.regs[TDH] + 1) % n
	}
}

// receive puts a frame in the next hardware-owned descriptor; false if
// the ring is full. status/errors/length override the honest values
// where nonzero (a lying device).
func (m *model) receive(frame []byte, lie func(d []byte)) bool {
	ring := m.ring(RDBAL, RDLEN)
	n := uint32(len(ring) / descSize)
	if m.regs[RDH] == m.regs[RDT] {
		return false
	}
	d := ring[m.regs[RDH]*descSize:][:descSize]
	buf, err := m.mem.Slice(binary.LittleEndian.Uint64(d), BufferSize)
	if err != nil {
		m.t.Fatalf("rx: %v", err)
	}
	copy(buf, frame)
	binary.LittleEndian.PutUint16(d[rxLen:], uint16(len(frame)))
	d[rxStatus], d[rxErrors] = rxDD|rxEOP, 0
	if lie != nil {
		lie(d)
	}
	m.regs[RDH] = (m.regs[RDH] + 1) % n
	return true
}

func frame(n int, tag byte) []byte {
	b := make([]byte, n)
	link.PutHeader(b, link.Broadcast, link.MAC{2, 0, 0, 0, 0, 9}, link.EtherTypeIPv4)
	for i := link.HeaderLen; i < n; i++ {
		b[i] = tag
	}
	return b
}

func TestInit(t *testing.T) {
	for _, ral := range []bool{true, false} {
		m, hw := newModel(t, ral)
		d, err := New(hw, Models[0])
		if err != nil {
			t.Fatal(err)
		}
		if d.MAC().String() != "52:54:00:12:34:56" {
			t.Errorf("MAC %v (from RAL: %v)", d.MAC(), ral)
		}
		if m.regs[RCTL]&RctlEN == 0 || m.regs[TCTL]&TctlEN == 0 || m.regs[CTRL]&CtrlSLU == 0 {
			t.Errorf("RCTL %#x TCTL %#x CTRL %#x", m.regs[RCTL], m.regs[TCTL], m.regs[CTRL])
		}
		if m.regs[RDLEN] != RxDescriptors*descSize || m.regs[RDT] != RxDescriptors-1 || m.regs[RDBAL]%ringAlign != 0 {
			t.Errorf("rx ring: len %d tail %d base %#x", m.regs[RDLEN], m.regs[RDT], m.regs[RDBAL])
		}
		if !d.Up() || d.Driver() != "e1000 (82540EM)" {
			t.Errorf("up %v driver %q", d.Up(), d.Driver())
		}
	}
}

func TestResetTimeout(t *testing.T) {
	m, hw := newModel(t, true)
	m.stuck = true
	if _, err := New(hw, Models[0]); !errors.Is(err, nic.ErrReset) {
		t.Fatalf("err %v, want ErrReset", err)
	}
}

func TestRoundTripAcrossWrap(t *testing.T) {
	m, hw := newModel(t, true)
	d, err := New(hw, Models[2])
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	d.SetReceiver(func(f []byte) { got = append(got, bytes.Clone(f)) })
	for i := 0; i < 3*RxDescriptors; i++ {
		f := frame(60+i%1400, byte(i))
		if err := d.Transmit(f); err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
		if !m.receive(f, nil) {
			t.Fatalf("rx ring full at %d", i)
		}
		if n := d.Poll(8); n != 1 {
			t.Fatalf("poll %d: %d frames", i, n)
		}
		if !bytes.Equal(got[i], f) || !bytes.Equal(m.sent[i], f) {
			t.Fatalf("frame %d differs", i)
		}
	}
	s := d.Stats()
	if s.RxFrames != 3*RxDescriptors || s.TxFrames != 3*RxDescriptors || s.RxErrors != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRingFullAndOversize(t *testing.T) {
	m, hw := newModel(t, true)
	d, _ := New(hw, Models[0])
	// a device that never completes transmissions
	hw.Regs.(*nictest.Regs).Write = func(off uint32, size int, v uint64) { m.regs[Reg(off)] = uint32(v) }
	var err error
	for i := 0; i < TxDescriptors && err == nil; i++ {
		err = d.Transmit(frame(60, 1))
	}
	if !errors.Is(err, nic.ErrRingFull) || d.Stats().TxDropped != 1 {
		t.Errorf("err %v, stats %+v", err, d.Stats())
	}
	if err := d.Transmit(frame(1515, 1)); !errors.Is(err, link.ErrFrameTooLong) {
		t.Errorf("oversize: %v", err)
	}
	if err := d.Transmit(make([]byte, 5)); !errors.Is(err, link.ErrFrameTooShort) {
		t.Errorf("runt: %v", err)
	}
}

func TestLyingDevice(t *testing.T) {
	m, hw := newModel(t, true)
	d, _ := New(hw, Models[0])
	delivered := 0
	d.SetReceiver(func(f []byte) {
		delivered++
		if len(f) > BufferSize || len(f) < link.HeaderLen {
			t.Fatalf("delivered %d bytes", len(f))
		}
	})
	lies := []func([]byte){
		func(b []byte) { binary.LittleEndian.PutUint16(b[rxLen:], 0xffff) },
		func(b []byte) { binary.LittleEndian.PutUint16(b[rxLen:], 3) },
		func(b []byte) { b[rxErrors] = 0x80 },
		func(b []byte) { b[rxStatus] = rxDD }, // no EOP
	}
	for _, lie := range lies {
		m.receive(frame(100, 1), lie)
	}
	m.receive(frame(100, 2), nil)
	if n := d.Poll(64); n != 5 || delivered != 1 || d.Stats().RxErrors != 4 {
		t.Errorf("poll %d delivered %d stats %+v", n, delivered, d.Stats())
	}
}

func TestNoAllocations(t *testing.T) {
	m, hw := newModel(t, true)
	d, _ := New(hw, Models[0])
	d.SetReceiver(func([]byte) {})
	m.discard = true
	f := frame(1514, 3)
	if a := testing.AllocsPerRun(1000, func() { d.Transmit(f) }); a != 0 {
		t.Errorf("Transmit: %v allocs", a)
	}
	if a := testing.AllocsPerRun(1000, func() { d.Poll(8) }); a != 0 {
		t.Errorf("Poll: %v allocs", a)
	}
}

func FuzzPoll(f *testing.F) {
	f.Add(uint8(rxDD|rxEOP), uint8(0), uint16(64))
	f.Fuzz(func(t *testing.T, status, errs uint8, length uint16) {
		m, hw := newModel(t, true)
		d, err := New(hw, Models[0])
		if err != nil {
			t.Fatal(err)
		}
		d.SetReceiver(func(b []byte) {
			if len(b) > BufferSize {
				t.Fatalf("%d bytes delivered", len(b))
			}
		})
		m.receive(frame(64, 1), func(b []byte) {
			b[rxStatus], b[rxErrors] = status, errs
			binary.LittleEndian.PutUint16(b[rxLen:], length)
		})
		d.Poll(4)
	})
}

func BenchmarkTransmitPoll(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(map[int]string{64: "64B", 1514: "1514B"}[size], func(b *testing.B) {
			m, hw := newModel(b, true)
			d, _ := New(hw, Models[0])
			d.SetReceiver(func([]byte) {})
			f := frame(size, 1)
			m.discard = true
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				d.Transmit(f)
				m.receive(f, nil)
				d.Poll(8)
			}
		})
	}
}

// TestAcceptMAC fills receive addresses 1-14 with guests' MACs, valid and
// in the controller's byte order, turns multicast promiscuous at once and
// unicast promiscuous only when the addresses run out.
func TestAcceptMAC(t *testing.T) {
	m, hw := newModel(t, true)
	d, err := New(hw, Models[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 15; i++ {
		mac := link.MAC{0x52, 0x54, 0, 0, 0, byte(i)}
		if err := d.AcceptMAC(mac); err != nil {
			t.Fatal(err)
		}
		rctl := m.regs[RCTL]
		if rctl&RctlMPE == 0 || rctl&RctlEN == 0 {
			t.Fatalf("RCTL %#x after AcceptMAC %d", rctl, i)
		}
		if i <= 14 {
			ral, rah := m.regs[RAL0+Reg(8*i)], m.regs[RAH0+Reg(8*i)]
			if ral != 0x00005452 || rah != uint32(i)<<8|rahAV {
				t.Errorf("address %d: RAL %#x RAH %#x", i, ral, rah)
			}
			if rctl&RctlUPE != 0 {
				t.Errorf("unicast promiscuous with %d addresses", i)
			}
		} else if rctl&RctlUPE == 0 {
			t.Error("out of receive addresses but not promiscuous")
		}
	}
	if m.regs[RAH0+8*15]&rahAV != 0 {
		t.Error("receive address 15 was used")
	}
}

// TestAcceptMACAgain: a MAC accepted again (a VM booted anew with its
// card's MAC) takes no second receive address.
func TestAcceptMACAgain(t *testing.T) {
	m, hw := newModel(t, true)
	d, err := New(hw, Models[0])
	if err != nil {
		t.Fatal(err)
	}
	a, b := link.MAC{0x0a, 0xb1, 0, 0, 0, 1}, link.MAC{0x0a, 0xb1, 0, 0, 0, 2}
	for _, mac := range []link.MAC{a, a, b, a, b} {
		if err := d.AcceptMAC(mac); err != nil {
			t.Fatal(err)
		}
	}
	if d.extra != 2 || m.regs[RAH0+8*3]&rahAV != 0 {
		t.Errorf("%d receive addresses in use for 2 MACs", d.extra)
	}
	if m.regs[RAL0+8] != 0x0000b10a || m.regs[RAH0+8] != 1<<8|rahAV || m.regs[RAH0+16] != 2<<8|rahAV {
		t.Errorf("addresses 1 and 2: RAL %#x RAH %#x, RAH %#x", m.regs[RAL0+8], m.regs[RAH0+8], m.regs[RAH0+16])
	}
}
