// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtionet

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/machine/nic/nictest"
	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

// busMemory lets the device model reach the driver's DMA memory.
type busMemory struct{ m *nictest.Memory }

func (b busMemory) ReadAt(p []byte, a uint64) error {
	s, err := b.m.Slice(a, len(p))
	if err != nil {
		return devices.ErrBadAddress
	}
	copy(p, s)
	return nil
}

func (b busMemory) WriteAt(p []byte, a uint64) error {
	s, err := b.m.Slice(a, len(p))
	if err != nil {
		return devices.ErrBadAddress
	}
	copy(s, p)
	return nil
}

// netModel is a virtio-net device behind vmm/devices/virtio's
// transport: frames the driver sends are kept, frames queued with
// deliver are put in the driver's receive buffers.
type netModel struct {
	mac      [6]byte
	features uint64
	sent     [][]byte
	pending  [][]byte
	chain    virtio.Chain
	rx       *virtio.Queue
	mem      devices.GuestMemory
	// discard drops sent frames without copying (allocation tests).
	discard bool
}

func (n *netModel) DeviceID() uint32 { return spec.DeviceNet }
func (n *netModel) Features() uint64 { return n.features }
func (n *netModel) NumQueues() int   { return 2 }
func (n *netModel) Reset()           {}
func (n *netModel) ReadConfig(off uint64, size int) uint64 {
	if size == 1 && off < 6 {
		return uint64(n.mac[off])
	}
	if off == configStatus && size == 2 {
		return linkUp
	}
	return 0
}

func (n *netModel) Notify(mem devices.GuestMemory, q *virtio.Queue, index int, _ *virtio.Budget) (bool, error) {
	n.mem = mem
	used := false
	if index == txQueue {
		for {
			ok, err := q.Pop(mem, &n.chain)
			if err != nil || !ok {
				return used, err
			}
			if n.discard {
				if err := q.Push(mem, n.chain.Head, 0); err != nil {
					return used, err
				}
				used = true
				continue
			}
			var f []byte
			for _, b := range n.chain.Buffers {
				p := make([]byte, b.Len)
				if err := mem.ReadAt(p, b.Addr); err != nil {
					return used, err
				}
				f = append(f, p...)
			}
			if len(f) < HeaderLen || !bytes.Equal(f[:HeaderLen], make([]byte, HeaderLen)) {
				return used, fmt.Errorf("bad virtio-net header % x", f[:min(len(f), HeaderLen)])
			}
			n.sent = append(n.sent, f[HeaderLen:])
			if err := q.Push(mem, n.chain.Head, 0); err != nil {
				return used, err
			}
			used = true
		}
	}
	n.rx = q
	return n.flush()
}

// flush fills receive buffers with pending frames.
func (n *netModel) flush() (bool, error) {
	used := false
	for len(n.pending) > 0 && n.rx != nil {
		ok, err := n.rx.Pop(n.mem, &n.chain)
		if err != nil || !ok {
			return used, err
		}
		b := n.chain.Buffers[0]
		f := append(make([]byte, HeaderLen), n.pending[0]...)
		if !b.Write || int(b.Len) < len(f) {
			return used, errors.New("receive buffer too small or read-only")
		}
		if err := n.mem.WriteAt(f, b.Addr); err != nil {
			return used, err
		}
		n.pending = n.pending[1:]
		if err := n.rx.Push(n.mem, n.chain.Head, uint32(len(f))); err != nil {
			return used, err
		}
		used = true
	}
	return used, nil
}

// drain serves the device's pending queues on the test's goroutine.
func drain(dev *virtio.Device) {
	for dev.Serve() {
	}
}

func setup(t *testing.T, features uint64) (*Device, *netModel, *virtio.Device) {
	t.Helper()
	mem := nictest.NewMemory(0x100000, 1<<20)
	model := &netModel{mac: [6]byte{0x52, 0x54, 0, 1, 2, 3}, features: features}
	dev := virtio.NewDevice(model, busMemory{mem}, nil)
	regs := &nictest.Regs{
		Read: func(off uint32, size int) uint64 { return dev.ReadMMIO(uint64(off), size) },
		// The model serves its queues at once, as a synchronous device.
		Write: func(off uint32, size int, v uint64) { dev.WriteMMIO(uint64(off), size, v); drain(dev) },
	}
	d, err := New(nic.Hardware{Regs: regs, DMA: mem})
	if err != nil {
		t.Fatal(err)
	}
	return d, model, dev
}

func TestTransmitReceive(t *testing.T) {
	d, model, dev := setup(t, featureMAC|featureStatus)
	if d.MAC() != (link.MAC{0x52, 0x54, 0, 1, 2, 3}) || !d.Up() {
		t.Fatalf("MAC %v up %v", d.MAC(), d.Up())
	}
	frame := append(bytes.Repeat([]byte{0xff}, 6), []byte("\x52\x54\x00\x01\x02\x03\x88\xb5hello")...)
	for i := 0; i < 3*QueueSize; i++ { // more than the ring: buffers come back
		if err := d.Transmit(frame); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if len(model.sent) != 3*QueueSize || !bytes.Equal(model.sent[0], frame) {
		t.Fatalf("device got %d frames", len(model.sent))
	}
	var got [][]byte
	d.SetReceiver(func(f []byte) { got = append(got, append([]byte(nil), f...)) })
	for i := 0; i < 2*QueueSize; i++ {
		model.pending = append(model.pending, append(append([]byte(nil), frame...), byte(i)))
	}
	for len(got) < 2*QueueSize {
		before := len(got)
		d.Poll(16)
		dev.Kick(rxQueue) // the model delivers into the buffers given back
		drain(dev)
		if len(got) == before && len(model.pending) == 0 {
			break
		}
	}
	if len(got) != 2*QueueSize || got[5][len(frame)] != 5 {
		t.Fatalf("received %d frames", len(got))
	}
	if s := d.Stats(); s.RxFrames != 2*QueueSize || s.TxFrames != 3*QueueSize || s.RxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := d.Transmit(make([]byte, 2000)); !errors.Is(err, link.ErrFrameTooLong) {
		t.Errorf("oversized frame: %v", err)
	}
	if dev.Errors() != 0 {
		t.Error("the device model saw a broken queue")
	}
}

func TestNoMACFeature(t *testing.T) {
	d, _, _ := setup(t, 0)
	if d.MAC()[0]&2 == 0 || !d.Up() {
		t.Errorf("without the MAC feature: %v (want a locally administered address), up %v", d.MAC(), d.Up())
	}
}

func TestRefusesOtherDevices(t *testing.T) {
	mem := nictest.NewMemory(0, 1<<16)
	for name, read := range map[string]func(off uint32, size int) uint64{
		"no spec.MagicValue": func(uint32, int) uint64 { return 0 },
		"block device": func(off uint32, _ int) uint64 {
			return map[uint32]uint64{spec.RegMagic: spec.MagicValue, spec.RegVersion: 2, spec.RegDeviceID: 2}[off]
		},
		"legacy": func(off uint32, _ int) uint64 {
			return map[uint32]uint64{spec.RegMagic: spec.MagicValue, spec.RegVersion: 1, spec.RegDeviceID: 1}[off]
		},
	} {
		_, err := New(nic.Hardware{Regs: &nictest.Regs{Read: read}, DMA: mem})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if name == "legacy" && !errors.Is(err, ErrLegacy) {
			t.Errorf("legacy: %v", err)
		}
	}
}

func TestNoAllocationsPerFrame(t *testing.T) {
	d, model, _ := setup(t, featureMAC)
	model.discard = true
	frame := make([]byte, 64)
	d.SetReceiver(func([]byte) {})
	n := testing.AllocsPerRun(1000, func() {
		d.Transmit(frame)
		d.Poll(8)
	})
	if n != 0 {
		t.Errorf("%v allocations per frame", n)
	}
}
