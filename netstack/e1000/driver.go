// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package e1000 drives Intel's 8254x and 82574 gigabit controllers by
// polling: the 82540EM (QEMU -device e1000, Bochs), 82545EM and the
// 82574L (QEMU q35 -device e1000e). Both families accept the legacy
// receive and transmit descriptors, so one driver serves them; the model
// table holds what differs. References: "PCI/PCI-X Family of Gigabit
// Ethernet Controllers Software Developer's Manual" (8254x SDM, rev 4.0)
// and "Intel 82574 GbE Controller Family Datasheet" (82574 DS).
package e1000

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/machine/nic"
)

// Reg is a register offset in BAR 0 (8254x SDM 13.4 "Register
// Descriptions"; 82574 DS 10.2).
type Reg uint32

// Registers used by the driver.
const (
	CTRL   Reg = 0x0000 // Device Control (SDM 13.4.1)
	STATUS Reg = 0x0008 // Device Status (SDM 13.4.2)
	EERD   Reg = 0x0014 // EEPROM Read (SDM 13.4.4)
	ICR    Reg = 0x00c0 // Interrupt Cause Read (SDM 13.4.17)
	IMC    Reg = 0x00d8 // Interrupt Mask Clear (SDM 13.4.21)
	RCTL   Reg = 0x0100 // Receive Control (SDM 13.4.22)
	TCTL   Reg = 0x0400 // Transmit Control (SDM 13.4.33)
	TIPG   Reg = 0x0410 // Transmit IPG (SDM 13.4.34)
	RDBAL  Reg = 0x2800 // Receive Descriptor Base Low (SDM 13.4.27)
	RDBAH  Reg = 0x2804
	RDLEN  Reg = 0x2808 // Receive Descriptor Length (SDM 13.4.28)
	RDH    Reg = 0x2810 // Receive Descriptor Head (SDM 13.4.29)
	RDT    Reg = 0x2818 // Receive Descriptor Tail (SDM 13.4.30)
	TDBAL  Reg = 0x3800 // Transmit Descriptor Base Low (SDM 13.4.38)
	TDBAH  Reg = 0x3804
	TDLEN  Reg = 0x3808 // Transmit Descriptor Length (SDM 13.4.39)
	TDH    Reg = 0x3810 // Transmit Descriptor Head (SDM 13.4.40)
	TDT    Reg = 0x3818 // Transmit Descriptor Tail (SDM 13.4.41)
	MTA    Reg = 0x5200 // Multicast Table Array, 128 entries (SDM 13.4.49)
	RAL0   Reg = 0x5400 // Receive Address Low (SDM 13.4.50)
	RAH0   Reg = 0x5404 // Receive Address High (SDM 13.4.51)
)

// CTRL bits (SDM Table 13-3).
const (
	CtrlFD  = 1 << 0  // full duplex
	CtrlSLU = 1 << 6  // set link up
	CtrlRST = 1 << 26 // device reset, self-clearing
)

// STATUS bits (SDM Table 13-5).
const StatusLU = 1 << 1 // link up

// RCTL bits (SDM Table 13-67).
const (
	RctlEN    = 1 << 1  // receiver enable
	RctlUPE   = 1 << 3  // unicast promiscuous
	RctlMPE   = 1 << 4  // multicast promiscuous
	RctlBAM   = 1 << 15 // accept broadcast
	RctlSECRC = 1 << 26 // strip Ethernet CRC
	// RctlBSIZE2048 is BSIZE 00b with BSEX 0: 2048-byte buffers.
	RctlBSIZE2048 = 0
)

// TCTL bits and fields (SDM Table 13-76).
const (
	TctlEN       = 1 << 1
	TctlPSP      = 1 << 3             // pad short packets
	TctlCTShift  = 4                  // collision threshold
	TctlCOLDShif = 12                 // collision distance
	tctlCT       = 0x0f               // recommended collision threshold
	tctlCOLDFD   = 0x40               // recommended full-duplex collision distance
	tipgCopper   = 10 | 8<<10 | 6<<20 // IPGT 10, IPGR1 8, IPGR2 6 (SDM 13.4.34)
	rahAV        = 1 << 31            // RAH address valid
)

// Legacy descriptor layout (SDM 3.2.3 receive, 3.3.3 transmit): 16 bytes.
const (
	descSize = 16
	// receive: buffer address, length, checksum, status, errors, special
	rxLen    = 8
	rxStatus = 12
	rxErrors = 13
	// transmit: buffer address, length, CSO, CMD, status, CSS, special
	txLen    = 8
	txCmd    = 11
	txStatus = 12
)

// Descriptor status and command bits.
const (
	rxDD   = 1 << 0 // descriptor done
	rxEOP  = 1 << 1 // end of packet
	txEOP  = 1 << 0
	txIFCS = 1 << 1 // insert FCS
	txRS   = 1 << 3 // report status
	txDD   = 1 << 0
)

// Ring and buffer sizes. Rings must be multiples of 128 bytes (8
// descriptors) and 16-byte aligned; 128-byte alignment is used.
const (
	RxDescriptors = 256
	TxDescriptors = 256
	BufferSize    = 2048
	ringAlign     = 128
)

// Model is one controller's identity and quirks.
type Model struct {
	Name   string
	Device uint16
	// EERDDone and EERDAddrShift locate the done bit and address field
	// of EERD, which moved between the 8254x (SDM 13.4.4) and the 82574
	// (DS 10.2.2.6).
	EERDDone      uint32
	EERDAddrShift uint
}

// Models lists the controllers this driver knows, by PCI device id.
var Models = []Model{
	{Name: "82540EM", Device: 0x100e, EERDDone: 1 << 4, EERDAddrShift: 8},
	{Name: "82545EM", Device: 0x100f, EERDDone: 1 << 4, EERDAddrShift: 8},
	{Name: "82574L", Device: 0x10d3, EERDDone: 1 << 1, EERDAddrShift: 2},
}

// ModelFor returns the model of an Intel PCI device id.
func ModelFor(vendor, device uint16) (Model, bool) {
	if vendor != 0x8086 {
		return Model{}, false
	}
	for _, m := range Models {
		if m.Device == device {
			return m, true
		}
	}
	return Model{}, false
}

// resetPolls bounds the wait for CTRL.RST to clear, in 100 µs steps.
const resetPolls = 1000

// Device is an initialized controller.
type Device struct {
	nic.Base // address, receiver (its lock guards the receive ring), counters

	hw    nic.Hardware
	model Model

	rxRing []byte
	rxBufs []byte
	rxNext int

	filterMu sync.Mutex               // guards RCTL and the receive addresses past RAL0/RAH0
	extra    int                      // receive addresses in use past the first
	accepted [extraAddresses]link.MAC // their MACs, the first extra of them

	txMu   sync.Mutex
	txRing []byte
	txBufs []byte
	txHead int // oldest descriptor not yet reclaimed
	txTail int // next descriptor to fill
}

var _ nic.Device = (*Device)(nil)

// New resets the controller, reads its MAC and starts receive and
// transmit with rings from hw.DMA.
func New(hw nic.Hardware, m Model) (*Device, error) {
	if hw.Regs == nil || hw.DMA == nil {
		return nil, fmt.Errorf("e1000: %s: registers and DMA required", m.Name)
	}
	d := &Device{hw: hw, model: m}
	r := hw.Regs
	r.Write32(uint32(IMC), 0xffffffff)
	r.Write32(uint32(CTRL), r.Read32(uint32(CTRL))|CtrlRST)
	for i := 0; ; i++ {
		if hw.Sleep != nil {
			hw.Sleep(100_000)
		}
		if r.Read32(uint32(CTRL))&CtrlRST == 0 {
			break
		}
		if i == resetPolls {
			return nil, fmt.Errorf("e1000: %s: %w", m.Name, nic.ErrReset)
		}
	}
	r.Write32(uint32(IMC), 0xffffffff) // reset unmasks nothing, but be sure
	r.Read32(uint32(ICR))

	mac, err := d.readMAC()
	if err != nil {
		return nil, err
	}
	d.SetMAC(mac)
	r.Write32(uint32(CTRL), r.Read32(uint32(CTRL))|CtrlSLU)
	for i := 0; i < 128; i++ {
		r.Write32(uint32(MTA)+4*uint32(i), 0)
	}

	var rxAddr, txAddr, rxBufAddr, txBufAddr uint64
	if d.rxRing, rxAddr, err = hw.DMA.Alloc(RxDescriptors*descSize, ringAlign); err != nil {
		return nil, fmt.Errorf("e1000: receive ring: %w", err)
	}
	if d.rxBufs, rxBufAddr, err = hw.DMA.Alloc(RxDescriptors*BufferSize, BufferSize); err != nil {
		return nil, fmt.Errorf("e1000: receive buffers: %w", err)
	}
	if d.txRing, txAddr, err = hw.DMA.Alloc(TxDescriptors*descSize, ringAlign); err != nil {
		return nil, fmt.Errorf("e1000: transmit ring: %w", err)
	}
	if d.txBufs, txBufAddr, err = hw.DMA.Alloc(TxDescriptors*BufferSize, BufferSize); err != nil {
		return nil, fmt.Errorf("e1000: transmit buffers: %w", err)
	}
	for i := 0; i < RxDescriptors; i++ {
		binary.LittleEndian.PutUint64(d.rxRing[i*descSize:], rxBufAddr+uint64(i*BufferSize))
	}
	for i := 0; i < TxDescriptors; i++ {
		binary.LittleEndian.PutUint64(d.txRing[i*descSize:], txBufAddr+uint64(i*BufferSize))
	}

	// Receive (SDM 14.4 "Receive Initialization").
	r.Write32(uint32(RDBAL), uint32(rxAddr))
	r.Write32(uint32(RDBAH), uint32(rxAddr>>32))
	r.Write32(uint32(RDLEN), RxDescriptors*descSize)
	r.Write32(uint32(RDH), 0)
	r.Write32(uint32(RDT), RxDescriptors-1) // all but one to the hardware
	r.Write32(uint32(RCTL), RctlEN|RctlBAM|RctlSECRC|RctlBSIZE2048)

	// Transmit (SDM 14.5 "Transmit Initialization").
	r.Write32(uint32(TDBAL), uint32(txAddr))
	r.Write32(uint32(TDBAH), uint32(txAddr>>32))
	r.Write32(uint32(TDLEN), TxDescriptors*descSize)
	r.Write32(uint32(TDH), 0)
	r.Write32(uint32(TDT), 0)
	r.Write32(uint32(TIPG), tipgCopper)
	r.Write32(uint32(TCTL), TctlEN|TctlPSP|tctlCT<<TctlCTShift|tctlCOLDFD<<TctlCOLDShif)
	return d, nil
}

// readMAC takes the address from RAL0/RAH0, which the EEPROM load fills
// after reset, or from the EEPROM words 0-2 (SDM 5.6.1) when RAH0 is not
// valid.
func (d *Device) readMAC() (link.MAC, error) {
	var m link.MAC
	r := d.hw.Regs
	if rah := r.Read32(uint32(RAH0)); rah&rahAV != 0 {
		binary.LittleEndian.PutUint32(m[0:4], r.Read32(uint32(RAL0)))
		m[4], m[5] = byte(rah), byte(rah>>8)
		return m, nil
	}
	for w := 0; w < 3; w++ {
		r.Write32(uint32(EERD), 1|uint32(w)<<d.model.EERDAddrShift)
		v, done := uint32(0), false
		for i := 0; i < resetPolls && !done; i++ {
			v = r.Read32(uint32(EERD))
			done = v&d.model.EERDDone != 0
		}
		if !done {
			return m, fmt.Errorf("e1000: %s: EEPROM read of word %d did not complete", d.model.Name, w)
		}
		m[2*w], m[2*w+1] = byte(v>>16), byte(v>>24)
	}
	ral := binary.LittleEndian.Uint32(m[0:4])
	r.Write32(uint32(RAL0), ral)
	r.Write32(uint32(RAH0), uint32(m[4])|uint32(m[5])<<8|rahAV)
	return m, nil
}

// extraAddresses is how many receive addresses past the first AcceptMAC
// uses: every model has 16 (SDM 13.4.50; 82574: 13.3.61), the last kept
// free as QEMU's e1000 has only 15 in its model's filter.
const extraAddresses = 14

// AcceptMAC has the controller receive unicast frames for mac as well as
// its own (a guest bridged onto this port), and every multicast frame
// (the guest's own groups are not known here). Past the receive
// addresses it has, it turns unicast promiscuous; the caller filters. A
// MAC accepted before (a VM booted again with its card's MAC) takes no
// second address.
func (d *Device) AcceptMAC(mac link.MAC) error {
	d.filterMu.Lock()
	defer d.filterMu.Unlock()
	r := d.hw.Regs
	rctl := r.Read32(uint32(RCTL)) | RctlMPE
	ral, rah := binary.LittleEndian.Uint32(mac[0:4]), uint32(mac[4])|uint32(mac[5])<<8|rahAV
	if slices.Contains(d.accepted[:d.extra], mac) {
		return nil
	}
	if d.extra < extraAddresses {
		d.accepted[d.extra] = mac
		d.extra++
		off := uint32(RAL0) + 8*uint32(d.extra)
		r.Write32(off, ral)
		r.Write32(off+4, rah)
	} else {
		rctl |= RctlUPE
	}
	r.Write32(uint32(RCTL), rctl)
	return nil
}

// Driver implements nic.Device.
func (d *Device) Driver() string { return "e1000 (" + d.model.Name + ")" }

// Up implements link.Link.
func (d *Device) Up() bool { return d.hw.Regs.Read32(uint32(STATUS))&StatusLU != 0 }

// Transmit implements link.Link: the frame is copied into the next
// transmit buffer and handed to the hardware.
func (d *Device) Transmit(frame []byte) error {
	if err := link.CheckFrame(frame, d.MTU()); err != nil {
		return err
	}
	d.txMu.Lock()
	d.reclaimLocked()
	next := (d.txTail + 1) % TxDescriptors
	if next == d.txHead {
		d.txMu.Unlock()
		d.Count(func(s *nic.Stats) { s.TxDropped++ })
		return nic.ErrRingFull
	}
	i := d.txTail
	copy(d.txBufs[i*BufferSize:(i+1)*BufferSize], frame)
	desc := d.txRing[i*descSize : (i+1)*descSize]
	binary.LittleEndian.PutUint16(desc[txLen:], uint16(len(frame)))
	desc[txCmd] = txEOP | txIFCS | txRS
	desc[txStatus] = 0
	d.txTail = next
	d.hw.Regs.Write32(uint32(TDT), uint32(next))
	d.txMu.Unlock()
	d.Count(func(s *nic.Stats) { s.TxFrames++; s.TxBytes += uint64(len(frame)) })
	return nil
}

// reclaimLocked frees transmit descriptors the hardware is done with.
func (d *Device) reclaimLocked() {
	for d.txHead != d.txTail && d.txRing[d.txHead*descSize+txStatus]&txDD != 0 {
		d.txRing[d.txHead*descSize+txStatus] = 0
		d.txHead = (d.txHead + 1) % TxDescriptors
	}
}

// Poll implements nic.Device.
func (d *Device) Poll(budget int) int {
	d.txMu.Lock()
	d.reclaimLocked()
	d.txMu.Unlock()

	recv := d.LockReceiver()
	defer d.UnlockReceiver()
	n, last := 0, -1
	var good, bad, dropped, bytes uint64
	for n < budget {
		i := d.rxNext
		desc := d.rxRing[i*descSize : (i+1)*descSize]
		st := desc[rxStatus]
		if st&rxDD == 0 {
			break
		}
		length := int(binary.LittleEndian.Uint16(desc[rxLen:]))
		switch {
		case desc[rxErrors] != 0, st&rxEOP == 0, length < link.HeaderLen, length > BufferSize:
			// hardware-flagged errors, frames spanning buffers (longer
			// than the MTU), and lengths no real device reports
			bad++
		case recv == nil:
			dropped++
		default:
			recv(d.rxBufs[i*BufferSize : i*BufferSize+length])
			good++
			bytes += uint64(length)
		}
		desc[rxStatus], desc[rxErrors] = 0, 0
		binary.LittleEndian.PutUint16(desc[rxLen:], 0)
		last = i
		d.rxNext = (i + 1) % RxDescriptors
		n++
	}
	if last >= 0 {
		// give the descriptors back: the tail trails the next one we read
		d.hw.Regs.Write32(uint32(RDT), uint32(last))
		d.Count(func(s *nic.Stats) {
			s.RxFrames += good
			s.RxBytes += bytes
			s.RxErrors += bad
			s.RxDropped += dropped
		})
	}
	return n
}
