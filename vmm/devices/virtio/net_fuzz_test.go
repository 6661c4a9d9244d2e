// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// The fuzzed guest's layout: both queues' rings in the first 2 KiB, the
// rest buffers.
const (
	fzRxDesc, fzRxAvail, fzRxUsed = 0x000, 0x100, 0x200
	fzTxDesc, fzTxAvail, fzTxUsed = 0x400, 0x500, 0x600
	fzTxBuf                       = 0x800
	fzRxBufs                      = 0x1000
	fzMem                         = 0x4000
)

// checkedMemory holds the device to the buffers it was given: it
// records every descriptor the device reads from the receive queue's
// table, and a write anywhere but the two used rings and the
// device-writable receive descriptors it read is a violation.
type checkedMemory struct {
	flat
	num      uint16
	given    map[Buffer]bool
	violated string
}

func (m *checkedMemory) ReadAt(p []byte, a uint64) error {
	if err := m.flat.ReadAt(p, a); err != nil {
		return err
	}
	if len(p) == 16 && a >= fzRxDesc && a < fzRxDesc+16*uint64(m.num) && (a-fzRxDesc)%16 == 0 {
		if binary.LittleEndian.Uint16(p[12:])&spec.DescWrite != 0 {
			m.given[Buffer{Addr: binary.LittleEndian.Uint64(p), Len: binary.LittleEndian.Uint32(p[8:])}] = true
		}
	}
	return nil
}

func (m *checkedMemory) WriteAt(p []byte, a uint64) error {
	end := a + uint64(len(p))
	ok := false
	for _, used := range []uint64{fzRxUsed, fzTxUsed} {
		ok = ok || a >= used && end <= used+4+8*uint64(m.num)+2
	}
	for b := range m.given {
		ok = ok || a >= b.Addr && end <= b.Addr+uint64(b.Len) && end >= a
	}
	if !ok && m.violated == "" {
		m.violated = fmt.Sprintf("wrote %d bytes at %#x, outside the used rings and the receive buffers given", len(p), a)
	}
	return m.flat.WriteAt(p, a)
}

// fuzzNet is one fuzzed guest: a device, its memory and the guest's
// available indexes.
type fuzzNet struct {
	t        *testing.T
	mem      *checkedMemory
	dev      *Device
	net      *Net
	clock    fakeClock
	features uint64
	avail    [2]uint16
	taken    uint64 // frames Deliver took
	frame    [2048]byte
	content  []byte // what frames from the NIC begin with
}

func (g *fuzzNet) w(off uint64, v uint32) { g.dev.WriteMMIO(off, 4, uint64(v)) }

// init (re)starts the driver: features and both queues.
func (g *fuzzNet) init() {
	g.w(spec.RegStatus, 0)
	writeFeatures(g.w, g.features)
	for q, at := range []uint64{fzRxDesc, fzTxDesc} {
		setQueue(g.w, uint32(q), uint32(g.mem.num), at, at+0x100, at+0x200)
		binary.LittleEndian.PutUint16(g.mem.flat[at+0x100+2:], 0)
		g.avail[q] = 0
	}
	g.w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK|spec.StatusDriverOK)
}

// serve runs the worker's rounds until it has nothing left, which must
// come.
func (g *fuzzNet) serve() {
	for i := 0; g.dev.Serve(); i++ {
		if i > 10000 {
			g.t.Fatal("the worker never runs out of work")
		}
	}
}

// normalize makes most descriptors of the fuzzed tables point into
// guest memory with lengths that fit, and most available heads index
// the table, so that the fuzzer spends its time past Pop's checks; an
// entry with bit 15 of its flags (or of its head) set is left raw.
func normalize(mem flat, num uint16) {
	for _, desc := range []uint64{fzRxDesc, fzTxDesc} {
		for i := range uint64(num) {
			e := mem[desc+16*i:]
			if binary.LittleEndian.Uint16(e[12:])&0x8000 != 0 {
				continue
			}
			binary.LittleEndian.PutUint64(e, binary.LittleEndian.Uint64(e)%(fzMem+64))
			binary.LittleEndian.PutUint32(e[8:], binary.LittleEndian.Uint32(e[8:])%0x1000)
			next := binary.LittleEndian.Uint16(e[14:]) % num
			binary.LittleEndian.PutUint16(e[14:], next)
			binary.LittleEndian.PutUint16(e[12:], binary.LittleEndian.Uint16(e[12:])&(spec.DescNext|spec.DescWrite))
		}
		for i := range uint64(num) {
			e := mem[desc+0x100+4+2*i:]
			if h := binary.LittleEndian.Uint16(e); h&0x8000 == 0 {
				binary.LittleEndian.PutUint16(e, h%num)
			}
		}
	}
}

// op runs one fuzzed operation from ops, returning the rest.
func (g *fuzzNet) op(ops []byte) []byte {
	code, arg := ops[0]%8, ops[1]
	ops = ops[2:]
	switch code {
	case 0: // a frame from the NIC of 14+6*arg bytes, its first ones from content
		n := link.HeaderLen + 6*int(arg)
		k := min(len(g.content), 16, n)
		for i := range n {
			g.frame[i] = byte(i)
		}
		copy(g.frame[:], g.content[:k])
		g.content = g.content[k:]
		if arg&1 != 0 {
			copy(g.frame[:], guestMAC[:]) // often for the guest
		}
		if g.net.Deliver(g.frame[:n]) {
			g.taken++
		}
	case 1, 2: // the guest posts arg%5 chains on a queue
		q := code - 1
		g.avail[q] += uint16(arg % 5)
		binary.LittleEndian.PutUint16(g.mem.flat[[]uint64{fzRxAvail, fzTxAvail}[q]+2:], g.avail[q])
	case 3, 4: // the guest notifies a queue
		g.w(spec.RegQueueNotify, uint32(code-3))
	case 5:
		g.serve()
	case 6:
		if arg < 16 {
			g.init()
		}
	case 7:
		g.clock.advance(time.Duration(arg) * time.Millisecond)
	}
	return ops
}

// checkFrame holds what goes out to the rules.
func checkFrame(t *testing.T, f []byte, mtu int) {
	ty, tags, ok := innerType(f)
	switch {
	case len(f) < link.HeaderLen || !ok:
		t.Fatalf("a frame of %d bytes went out", len(f))
	case len(f) > link.HeaderLen+mtu+vlanTagLen*min(tags, 1):
		t.Fatalf("a frame of %d bytes, %d tags, went out", len(f), tags)
	case !bytes.Equal(f[6:12], guestMAC[:]):
		t.Fatalf("a frame from %x went out", f[6:12])
	case ty == link.EtherTypeCluster:
		t.Fatal("a frame of the cluster's EtherType went out")
	}
}

// FuzzNetQueues lets fuzzed bytes be the guest's memory (descriptor
// tables, available rings, buffers), its posting and notifying, the
// frames the NIC delivers and the clock: the device never panics, never
// writes outside the used rings and the receive buffers it was given,
// always comes to the end of its work, sends only frames that pass its
// rules, and accounts for every frame Deliver took.
func FuzzNetQueues(f *testing.F) {
	// Seeds: a frame each way without mergeable buffers; a full-size
	// frame over small mergeable buffers, then the clock; a reset.
	f.Add(fuzzSeedMemory(false), []byte{0, 0x41, 1, 4, 3, 0, 5, 0, 2, 3, 4, 0, 5, 0}, []byte{}, byte(4))
	f.Add(fuzzSeedMemory(true), []byte{0, 0xF9, 1, 4, 3, 0, 5, 0, 1, 4, 3, 0, 2, 4, 4, 0, 5, 0, 7, 200, 4, 0, 5, 0}, []byte("\xff\xff\xff\xff\xff\xffRT\x00\xab\xcd\xef\x86\xdd"), byte(4|0x08|0x10))
	f.Add([]byte{}, []byte{0, 0x51, 1, 1, 3, 0, 6, 0, 5, 0}, []byte{}, byte(0xFF))
	f.Fuzz(func(t *testing.T, memIn, ops, content []byte, cfg byte) {
		// A hang crashes the fuzzing process, which records the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic("FuzzNetQueues: the device has worked on one input for 10s") })
		defer watchdog.Stop()
		num := []uint16{1, 2, 4, 8, 16, 16, 16, 3}[cfg&7]
		mem := &checkedMemory{flat: make(flat, fzMem), num: num, given: map[Buffer]bool{}}
		copy(mem.flat, memIn)
		if num&(num-1) == 0 {
			normalize(mem.flat, num)
		}
		g := &fuzzNet{t: t, mem: mem, content: content, clock: fakeClock{t: time.Unix(0, 0)}, features: spec.FeatureVersion1 | spec.NetFeatureMAC}
		if cfg&0x08 != 0 {
			g.features |= spec.NetFeatureMergeRxBuf
		}
		if cfg&0x10 != 0 {
			g.features |= spec.NetFeatureCSUM
			if cfg&0x40 != 0 {
				g.features |= spec.NetFeatureHostTSO4 | spec.NetFeatureHostTSO6
			}
		}
		rate := RateLimit{}
		if cfg&0x20 != 0 {
			rate = RateLimit{FramesPerSecond: 100, BytesPerSecond: 20000, Burst: 20 * time.Millisecond}
		}
		const mtu = 1500
		n, err := NewNet(NetConfig{MAC: guestMAC, MTU: mtu, RxSlots: 8, Rate: rate, Now: g.clock.now,
			Uplink: &captureUplink{check: func(f []byte) { checkFrame(t, f, mtu) }}})
		if err != nil {
			t.Fatal(err)
		}
		g.net = n
		g.dev = NewDevice(n, mem, func(bool) {})
		n.Attach(g.dev)
		g.init()
		for len(ops) >= 2 {
			ops = g.op(ops)
		}
		g.w(spec.RegQueueNotify, spec.NetQueueTx)
		g.w(spec.RegQueueNotify, spec.NetQueueRx)
		g.serve()
		if mem.violated != "" {
			t.Fatal(mem.violated)
		}
		st := n.Status()
		out := st.RxFrames + st.Drops[DropRxBufferTooSmall] + st.Drops[DropRxBadChain] + st.Drops[DropRxReset] + uint64(st.RxQueued)
		if out != g.taken {
			t.Fatalf("Deliver took %d frames; %d delivered, %d dropped, %d queued", g.taken, st.RxFrames,
				st.Drops[DropRxBufferTooSmall]+st.Drops[DropRxBadChain]+st.Drops[DropRxReset], st.RxQueued)
		}
	})
}

// fuzzSeedMemory is a well-formed guest: 16 receive buffers of 0x100
// bytes (merge) or 0x600 (not), and 16 transmit chains of a header and
// a 60-byte frame from the guest.
func fuzzSeedMemory(merge bool) []byte {
	m := make([]byte, fzTxBuf+netHdrLen+60)
	size := uint32(0x600)
	if merge {
		size = 0x100
	}
	for i := range uint64(16) {
		e := m[fzRxDesc+16*i:]
		binary.LittleEndian.PutUint64(e, fzRxBufs+uint64(i%2)*0x600)
		binary.LittleEndian.PutUint32(e[8:], size)
		binary.LittleEndian.PutUint16(e[12:], spec.DescWrite)
		binary.LittleEndian.PutUint16(m[fzRxAvail+4+2*i:], uint16(i))
		e = m[fzTxDesc+16*i:]
		binary.LittleEndian.PutUint64(e, fzTxBuf)
		binary.LittleEndian.PutUint32(e[8:], uint32(netHdrLen+60))
		binary.LittleEndian.PutUint16(m[fzTxAvail+4+2*i:], uint16(i))
	}
	link.PutHeader(m[fzTxBuf+netHdrLen:], link.Broadcast, guestMAC, link.EtherTypeARP)
	return m
}
