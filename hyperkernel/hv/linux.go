// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"
	"sync"
	"time"

	"github.com/big-iron/big-iron/boot/memmap"
	"github.com/big-iron/big-iron/hyperkernel/devices"
	"github.com/big-iron/big-iron/hyperkernel/exits"
)

// LinuxConfig describes an operating-system guest to boot.
type LinuxConfig struct {
	// Name identifies the VM in `vm list`.
	Name string
	// VCPUs is the number of virtual processors; Memory the RAM in bytes.
	VCPUs  int
	Memory uint64
	// Load places the kernel, its boot data and page tables into guest
	// memory laid out as layout says, telling the kernel that the ACPI
	// RSDP is at rsdp, and returns where the boot processor starts and
	// its RSI (the Linux zero page).
	Load func(mem devices.GuestMemory, layout memmap.Map, rsdp uint64) (entry LongModeEntry, rsi uint64, err error)
}

// VMInfo is a running or finished VM as `vm list` shows it.
type VMInfo struct {
	ID      int
	Name    string
	VCPUs   int
	Memory  uint64
	Started time.Time
	// Outcome is "running" or how it ended.
	Outcome string
	Exits   exits.ExitStats
}

// ConsoleLog keeps the latest output of a guest's console: a bounded
// buffer that never blocks the vCPU writing it (the oldest bytes go).
type ConsoleLog struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped uint64
	written uint64
}

// NewConsoleLog returns a log keeping the last max bytes.
func NewConsoleLog(max int) *ConsoleLog { return &ConsoleLog{buf: make([]byte, 0, max), max: max} }

// WriteByte appends one byte; it does not allocate.
func (c *ConsoleLog) WriteByte(b byte) error {
	c.mu.Lock()
	if len(c.buf) == c.max {
		n := copy(c.buf, c.buf[c.max/4:])
		c.dropped += uint64(c.max - n)
		c.buf = c.buf[:n]
	}
	c.buf = append(c.buf, b)
	c.written++
	c.mu.Unlock()
	return nil
}

// Since returns the bytes written after the first `from` bytes ever
// written (as far as they are still kept) and the count to pass next time.
func (c *ConsoleLog) Since(from uint64) ([]byte, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.written - uint64(len(c.buf)) // count of the oldest byte kept
	if from < first {
		from = first
	}
	if from > c.written {
		from = c.written
	}
	return append([]byte(nil), c.buf[from-first:]...), c.written
}

// earlySerial is the smallest 16550 a booting Linux can print through
// (its decompressor and earlyprintk=serial poll the line status register
// and write the transmit register): transmitted bytes go to the console
// log, the line status always says the transmitter is empty, and nothing
// is ever received. The full UART model replaces it.
type earlySerial struct {
	mu  sync.Mutex
	out *ConsoleLog
	lcr uint8
	ier uint8
	mcr uint8
	scr uint8
	dll uint8
	dlm uint8
}

// 16550 registers, offsets from the base port (PC16550D datasheet,
// Table 2).
const (
	uartTHR = 0 // transmit holding (DLAB 0) / divisor latch low (DLAB 1)
	uartIER = 1 // interrupt enable / divisor latch high
	uartIIR = 2 // interrupt identification (read) / FIFO control (write)
	uartLCR = 3 // line control; bit 7 DLAB
	uartMCR = 4 // modem control
	uartLSR = 5 // line status
	uartMSR = 6 // modem status
	uartSCR = 7 // scratch

	lsrTHRE   = 1 << 5 // transmit holding register empty
	lsrTEMT   = 1 << 6 // transmitter empty
	iirNone   = 1      // no interrupt pending
	lcrDLAB   = 1 << 7
	msrCTSDSR = 1<<4 | 1<<5 // clear to send, data set ready
)

func (s *earlySerial) In(port uint16, size uint8) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch port & 7 {
	case uartTHR:
		if s.lcr&lcrDLAB != 0 {
			return uint32(s.dll)
		}
		return 0
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			return uint32(s.dlm)
		}
		return uint32(s.ier)
	case uartIIR:
		return iirNone
	case uartLCR:
		return uint32(s.lcr)
	case uartMCR:
		return uint32(s.mcr)
	case uartLSR:
		return lsrTHRE | lsrTEMT
	case uartMSR:
		return msrCTSDSR
	}
	return uint32(s.scr)
}

func (s *earlySerial) Out(port uint16, size uint8, v uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := uint8(v)
	switch port & 7 {
	case uartTHR:
		if s.lcr&lcrDLAB != 0 {
			s.dll = b
			return
		}
		s.out.WriteByte(b)
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			s.dlm = b
			return
		}
		s.ier = b & 0xF
	case uartLCR:
		s.lcr = b
	case uartMCR:
		s.mcr = b & 0x1F
	case uartSCR:
		s.scr = b
	}
}

// validateLinuxConfig checks a configuration before any memory is taken.
func validateLinuxConfig(cfg *LinuxConfig, cores int) error {
	if cfg.VCPUs < 1 || cfg.VCPUs > 64 {
		return fmt.Errorf("hv: %d vCPUs: want 1 to 64", cfg.VCPUs)
	}
	if cfg.Load == nil {
		return fmt.Errorf("hv: no guest image to load")
	}
	if cfg.Name == "" {
		cfg.Name = "linux"
	}
	return nil
}
