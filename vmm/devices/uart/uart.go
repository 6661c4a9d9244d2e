// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package uart emulates a 16550A UART at an I/O port base (register map
// of the TI/National PC16550D datasheet, section 8 "Registers"): the
// guest's serial console. Transmission is instantaneous: every byte the
// guest writes goes to an io.Writer at once, so the transmitter is
// always empty. Received bytes come from Input and wait in a FIFO.
// Interrupts (received data, transmitter empty, line status) reach an
// IRQ line gated, as on PCs, by the OUT2 modem-control bit.
package uart

import (
	"io"

	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/spinlock"
)

// Register offsets from the base port (PC16550D, Table II).
const (
	regData    = 0 // RBR (read) / THR (write); DLL with DLAB
	regIER     = 1 // DLM with DLAB
	regIIR     = 2 // IIR (read) / FCR (write)
	regLCR     = 3
	regMCR     = 4
	regLSR     = 5
	regMSR     = 6
	regScratch = 7

	// Ports is the number of I/O ports the UART decodes.
	Ports = 8
)

// Register bits (PC16550D, 8.4 to 8.8).
const (
	ierRxData   = 1 << 0
	ierTxEmpty  = 1 << 1
	ierLineStat = 1 << 2
	ierModem    = 1 << 3

	iirNone     = 1 << 0
	iirLineStat = 0x6
	iirRxData   = 0x4
	iirTxEmpty  = 0x2
	iirFIFOs    = 0xC0

	fcrEnable  = 1 << 0
	fcrClearRx = 1 << 1

	lcrDLAB = 1 << 7

	mcrOUT2     = 1 << 3
	mcrLoopback = 1 << 4

	lsrDataReady = 1 << 0
	lsrOverrun   = 1 << 1
	lsrTHREmpty  = 1 << 5
	lsrTxEmpty   = 1 << 6

	// msr with loopback off: CTS, DSR and DCD asserted (a cable with a
	// terminal that is always there).
	msrLines = 0xB0
)

// rxSize is the receive buffer: larger than a 16550's 16-byte FIFO so
// that an operator's pasted line is not lost; Input reports what did not
// fit.
const rxSize = 4096

// UART is one 16550A. Its methods are safe for concurrent use: the vCPU
// accesses the registers while the operator types.
type UART struct {
	mu  spinlock.Lock
	out io.Writer

	ier, lcr, mcr, scratch, fcr uint8
	dll, dlm                    uint8
	lsrErr                      uint8 // overrun, until LSR is read
	// txIntr: the transmitter-empty interrupt is pending (it is raised
	// when the THR empties or the interrupt is enabled with it empty,
	// and cleared by reading IIR while it is the source, or writing THR).
	txIntr bool
	line   devices.IRQLine // the interrupt output
	tx     [1]byte

	rx         [rxSize]byte
	head, size int
	// Dropped counts received bytes lost to a full buffer.
	dropped uint64
}

// New returns a UART whose transmitted bytes go to out and whose
// interrupt output drives irq (nil: no interrupt line).
func New(out io.Writer, irq func(level bool)) *UART {
	return &UART{out: out, line: devices.NewIRQLine(irq), dll: 12} // 9600 baud at reset
}

// Input queues bytes from the far end of the line and returns how many
// were taken (the rest did not fit).
func (u *UART) Input(p []byte) int {
	u.mu.Lock()
	n := 0
	for _, b := range p {
		if u.size == rxSize {
			u.dropped += uint64(len(p) - n)
			break
		}
		u.rx[(u.head+u.size)%rxSize] = b
		u.size++
		n++
	}
	u.update()
	return n
}

// Pending returns how many received bytes wait for the guest to read.
func (u *UART) Pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.size
}

// In implements exits.PortDevice: it reads the register at port's
// offset from the (8-aligned) base. Wider accesses read the one register.
func (u *UART) In(port uint16, size uint8) uint32 {
	u.mu.Lock()
	v := u.readLocked(port & 7)
	u.update()
	return uint32(v)
}

// Out implements exits.PortDevice: it writes the low byte of v to the
// register at port's offset.
func (u *UART) Out(port uint16, size uint8, value uint32) {
	v := uint8(value)
	u.mu.Lock()
	switch port & 7 {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			u.dll = v
			break
		}
		if u.mcr&mcrLoopback != 0 {
			u.pushLocked(v)
		} else if u.out != nil {
			u.tx[0] = v
			u.out.Write(u.tx[:])
		}
		u.txIntr = true // transmitted at once: empty again
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.dlm = v
			break
		}
		if v&ierTxEmpty != 0 && u.ier&ierTxEmpty == 0 {
			u.txIntr = true
		}
		u.ier = v & 0x0F
	case regIIR: // FCR
		u.fcr = v & (fcrEnable | 0xC0)
		if v&fcrClearRx != 0 || (v^u.fcr)&fcrEnable != 0 {
			u.head, u.size = 0, 0
		}
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1F
	case regScratch:
		u.scratch = v
	}
	u.update()
}

func (u *UART) pushLocked(b byte) {
	if u.size == rxSize {
		u.lsrErr |= lsrOverrun
		u.dropped++
		return
	}
	u.rx[(u.head+u.size)%rxSize] = b
	u.size++
}

func (u *UART) readLocked(off uint16) uint8 {
	switch off {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			return u.dll
		}
		if u.size == 0 {
			return 0
		}
		b := u.rx[u.head]
		u.head = (u.head + 1) % rxSize
		u.size--
		return b
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			return u.dlm
		}
		return u.ier
	case regIIR:
		id := u.sourceLocked()
		if id == iirTxEmpty {
			u.txIntr = false
		}
		if u.fcr&fcrEnable != 0 {
			id |= iirFIFOs
		}
		return id
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		v := uint8(lsrTHREmpty | lsrTxEmpty)
		if u.size > 0 {
			v |= lsrDataReady
		}
		v |= u.lsrErr
		u.lsrErr = 0
		return v
	case regMSR:
		if u.mcr&mcrLoopback != 0 {
			// DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (8.6.4)
			m := u.mcr
			return m&1<<5 | m&2<<3 | m&4<<4 | m&8<<4
		}
		return msrLines
	case regScratch:
		return u.scratch
	}
	return 0xFF
}

// sourceLocked returns the highest-priority pending interrupt's IIR
// identification (8.5, Table IV).
func (u *UART) sourceLocked() uint8 {
	switch {
	case u.ier&ierLineStat != 0 && u.lsrErr != 0:
		return iirLineStat
	case u.ier&ierRxData != 0 && u.size > 0:
		return iirRxData
	case u.ier&ierTxEmpty != 0 && u.txIntr:
		return iirTxEmpty
	}
	return iirNone
}

// update recomputes the interrupt output, unlocks, and drives the line
// if it changed. (devices.IRQLine keeps the operator's input, which
// raises it, and a vCPU's register reads, which lower it, from reaching
// the IOAPIC in the wrong order, which left an edge-triggered line
// there high while the UART's was low: no rising edge, no interrupt,
// ever again.)
func (u *UART) update() {
	u.line.Update(&u.mu, u.sourceLocked() != iirNone && u.mcr&mcrOUT2 != 0 && u.mcr&mcrLoopback == 0)
}

// Dropped returns how many received bytes were lost to a full buffer.
func (u *UART) Dropped() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dropped
}
