// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package virtionet drives a virtio network device on the MMIO transport
// (OASIS "Virtual I/O Device (VIRTIO) Version 1.2": 4.2 "Virtio Over
// MMIO", version 2 registers; 5.1 "Network Device"; 2.7 "Split
// Virtqueues"), as QEMU's microvm machine and KVM clouds provide it. The
// driver polls: one receive and one transmit queue of fixed buffers from
// the board's DMA memory, no offloads, no allocation per frame.
package virtionet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/nic"
	"github.com/big-iron/big-iron/machine/virtio/spec"
)

// Network device configuration and feature bits (5.1.3, 5.1.4); the
// transport's registers and bits are in package spec.
const (
	configMAC     = 0 // 6 bytes (5.1.4)
	configStatus  = 6 // u16, bit 0 link up
	linkUp        = 1
	featureMAC    = 1 << 5
	featureStatus = 1 << 16
)

// Ring geometry.
const (
	// QueueSize is the number of buffers per queue (fewer if the device
	// offers fewer).
	QueueSize = 64
	// HeaderLen is struct virtio_net_hdr with VIRTIO_F_VERSION_1 (5.1.6).
	HeaderLen = 12
	// BufferSize holds a header and a full-size frame.
	BufferSize = 2048

	rxQueue = 0
	txQueue = 1
)

// ErrLegacy means the transport is virtio-mmio version 1, which this
// driver does not speak (QEMU: -global virtio-mmio.force-legacy=false).
var ErrLegacy = errors.New("virtionet: legacy virtio-mmio (version 1) device")

// queue is one split virtqueue in DMA memory.
type queue struct {
	num              uint16
	desc, avail, use []byte
	bufs             []byte
	availIdx         uint16 // next available-ring slot the driver fills
	usedIdx          uint16 // next used-ring entry the driver reads
}

// Device is a virtio-net device. Transmit and Poll may be called
// concurrently.
type Device struct {
	nic.Base // address, receiver (its lock guards the receive queue), counters

	hw       nic.Hardware
	features uint64

	rx queue

	txMu sync.Mutex
	tx   queue
	free []uint16 // transmit descriptors not in flight
}

var _ nic.Device = (*Device)(nil)

// New initialises the device (3.1.1 "Driver Requirements: Device
// Initialization") with one receive and one transmit queue.
func New(hw nic.Hardware) (*Device, error) {
	r := hw.Regs
	if r == nil || hw.DMA == nil {
		return nil, fmt.Errorf("virtionet: registers and DMA required")
	}
	if r.Read32(spec.RegMagic) != spec.MagicValue || r.Read32(spec.RegDeviceID) != spec.DeviceNet {
		return nil, fmt.Errorf("virtionet: %w", nic.ErrNoDevice)
	}
	switch v := r.Read32(spec.RegVersion); v {
	case 2:
	case 1:
		return nil, ErrLegacy
	default:
		return nil, fmt.Errorf("virtionet: transport version %d: %w", v, nic.ErrNoDevice)
	}
	d := &Device{hw: hw}
	r.Write32(spec.RegStatus, 0)
	r.Write32(spec.RegStatus, spec.StatusAcknowledge)
	r.Write32(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver)
	var offered uint64
	for sel := uint32(0); sel < 2; sel++ {
		r.Write32(spec.RegDeviceFeatSel, sel)
		offered |= uint64(r.Read32(spec.RegDeviceFeatures)) << (32 * sel)
	}
	if offered&spec.FeatureVersion1 == 0 {
		r.Write32(spec.RegStatus, spec.StatusFailed)
		return nil, ErrLegacy
	}
	d.features = offered & (spec.FeatureVersion1 | featureMAC | featureStatus)
	for sel := uint32(0); sel < 2; sel++ {
		r.Write32(spec.RegDriverFeatSel, sel)
		r.Write32(spec.RegDriverFeatures, uint32(d.features>>(32*sel)))
	}
	r.Write32(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK)
	if r.Read32(spec.RegStatus)&spec.StatusFeaturesOK == 0 {
		r.Write32(spec.RegStatus, spec.StatusFailed)
		return nil, fmt.Errorf("virtionet: the device refused features %#x", d.features)
	}
	var err error
	if d.rx, err = d.setupQueue(rxQueue); err != nil {
		return nil, err
	}
	if d.tx, err = d.setupQueue(txQueue); err != nil {
		return nil, err
	}
	// Every receive buffer goes to the device; transmit buffers wait.
	for i := uint16(0); i < d.rx.num; i++ {
		d.rx.setDesc(i, BufferSize, spec.DescWrite)
		d.rx.offer(i)
	}
	d.rx.publish()
	for i := uint16(0); i < d.tx.num; i++ {
		d.free = append(d.free, i)
	}
	mac := link.MAC{0x52, 0x54, 0x00, 0xb1, 0x6e, 0x01} // locally administered
	if d.features&featureMAC != 0 {
		for i := range mac {
			mac[i] = r.Read8(spec.RegConfig + configMAC + uint32(i))
		}
	}
	d.SetMAC(mac)
	r.Write32(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK|spec.StatusDriverOK)
	r.Write32(spec.RegQueueNotify, rxQueue)
	return d, nil
}

// setupQueue allocates and registers queue index (4.2.3.2).
func (d *Device) setupQueue(index uint32) (queue, error) {
	r := d.hw.Regs
	r.Write32(spec.RegQueueSel, index)
	if r.Read32(spec.RegQueueReady) != 0 {
		return queue{}, fmt.Errorf("virtionet: queue %d already in use", index)
	}
	max := r.Read32(spec.RegQueueNumMax)
	if max == 0 {
		return queue{}, fmt.Errorf("virtionet: queue %d not available", index)
	}
	q := queue{num: uint16(min(max, QueueSize))}
	n := int(q.num)
	var descAddr, availAddr, usedAddr, bufAddr uint64
	var err error
	if q.desc, descAddr, err = d.hw.DMA.Alloc(16*n, 16); err == nil {
		if q.avail, availAddr, err = d.hw.DMA.Alloc(6+2*n, 2); err == nil {
			if q.use, usedAddr, err = d.hw.DMA.Alloc(6+8*n, 4); err == nil {
				q.bufs, bufAddr, err = d.hw.DMA.Alloc(BufferSize*n, 16)
			}
		}
	}
	if err != nil {
		return queue{}, fmt.Errorf("virtionet: queue %d: %w", index, err)
	}
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(q.desc[16*i:], bufAddr+uint64(i*BufferSize))
	}
	r.Write32(spec.RegQueueNum, uint32(q.num))
	r.Write32(spec.RegQueueDescLow, uint32(descAddr))
	r.Write32(spec.RegQueueDescHigh, uint32(descAddr>>32))
	r.Write32(spec.RegQueueDrvLow, uint32(availAddr))
	r.Write32(spec.RegQueueDrvHigh, uint32(availAddr>>32))
	r.Write32(spec.RegQueueDevLow, uint32(usedAddr))
	r.Write32(spec.RegQueueDevHigh, uint32(usedAddr>>32))
	r.Write32(spec.RegQueueReady, 1)
	return q, nil
}

func (q *queue) setDesc(i uint16, length uint32, flags uint16) {
	e := q.desc[16*int(i):]
	binary.LittleEndian.PutUint32(e[8:], length)
	binary.LittleEndian.PutUint16(e[12:], flags)
}

func (q *queue) buf(i uint16) []byte {
	return q.bufs[int(i)*BufferSize : (int(i)+1)*BufferSize]
}

// offer puts descriptor i in the next available slot (publish makes it
// visible).
func (q *queue) offer(i uint16) {
	binary.LittleEndian.PutUint16(q.avail[4+2*int(q.availIdx%q.num):], i)
	q.availIdx++
}

// publish writes the available index, after the ring entries.
func (q *queue) publish() { binary.LittleEndian.PutUint16(q.avail[2:], q.availIdx) }

// used returns the next used entry, if the device has returned one.
func (q *queue) used() (id uint16, length uint32, ok bool) {
	if binary.LittleEndian.Uint16(q.use[2:]) == q.usedIdx {
		return 0, 0, false
	}
	e := q.use[4+8*int(q.usedIdx%q.num):]
	q.usedIdx++
	return uint16(binary.LittleEndian.Uint32(e)), binary.LittleEndian.Uint32(e[4:]), true
}

// Driver implements nic.Device.
func (d *Device) Driver() string { return "virtio-net" }

// AcceptMAC lets a guest's MAC be bridged onto this port. The driver
// negotiates no control queue (VIRTIO_NET_F_CTRL_RX), so it cannot program
// a filter: it relies on the device delivering every frame, as QEMU's
// does until a driver turns promiscuous mode off through that queue.
func (d *Device) AcceptMAC(link.MAC) error { return nil }

// Up implements link.Link: the device's link status where it reports
// one, otherwise up.
func (d *Device) Up() bool {
	if d.features&featureStatus == 0 {
		return true
	}
	return d.hw.Regs.Read16(spec.RegConfig+configStatus)&linkUp != 0
}

// Transmit implements link.Link: the frame is copied after a zero
// virtio-net header into a free transmit buffer.
func (d *Device) Transmit(frame []byte) error {
	if err := link.CheckFrame(frame, d.MTU()); err != nil {
		return err
	}
	d.txMu.Lock()
	d.reclaimLocked()
	if len(d.free) == 0 {
		d.txMu.Unlock()
		d.Count(func(s *nic.Stats) { s.TxDropped++ })
		return nic.ErrRingFull
	}
	id := d.free[len(d.free)-1]
	d.free = d.free[:len(d.free)-1]
	b := d.tx.buf(id)
	clear(b[:HeaderLen])
	n := copy(b[HeaderLen:], frame)
	d.tx.setDesc(id, uint32(HeaderLen+n), 0)
	d.tx.offer(id)
	d.tx.publish()
	d.hw.Regs.Write32(spec.RegQueueNotify, txQueue)
	d.txMu.Unlock()
	d.Count(func(s *nic.Stats) { s.TxFrames++; s.TxBytes += uint64(n) })
	return nil
}

// reclaimLocked takes back the transmit buffers the device has sent.
func (d *Device) reclaimLocked() {
	for {
		id, _, ok := d.tx.used()
		if !ok {
			return
		}
		if id < d.tx.num {
			d.free = append(d.free, id)
		}
	}
}

// Poll implements nic.Device.
func (d *Device) Poll(budget int) int {
	d.txMu.Lock()
	d.reclaimLocked()
	d.txMu.Unlock()

	recv := d.LockReceiver()
	n, dropped, bytes := 0, 0, 0
	for n < budget {
		id, length, ok := d.rx.used()
		if !ok {
			break
		}
		if id >= d.rx.num || length < HeaderLen || length > BufferSize {
			dropped++ // a device bug; the buffer is lost to the ring
			continue
		}
		frame := d.rx.buf(id)[HeaderLen:length]
		if recv != nil {
			recv(frame)
			n++
			bytes += len(frame)
		} else {
			dropped++
		}
		d.rx.setDesc(id, BufferSize, spec.DescWrite)
		d.rx.offer(id)
	}
	if n > 0 || dropped > 0 {
		d.rx.publish()
		d.hw.Regs.Write32(spec.RegQueueNotify, rxQueue)
	}
	d.UnlockReceiver()
	if n > 0 || dropped > 0 {
		d.Count(func(s *nic.Stats) {
			s.RxFrames += uint64(n)
			s.RxBytes += uint64(bytes)
			s.RxDropped += uint64(dropped)
		})
	}
	// Interrupts are not used; acknowledge any the device raised.
	if v := d.hw.Regs.Read32(spec.RegInterrupt); v != 0 {
		d.hw.Regs.Write32(spec.RegInterruptACK, v)
	}
	return n
}
