// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package uart

import (
	"bytes"
	"testing"
)

const base = 0x3F8

type line struct {
	level bool
	edges int
}

func (l *line) set(v bool) {
	if v && !l.level {
		l.edges++
	}
	l.level = v
}

func newUART() (*UART, *bytes.Buffer, *line) {
	var out bytes.Buffer
	l := &line{}
	return New(&out, l.set), &out, l
}

func in(u *UART, off uint16) uint8     { return uint8(u.In(base+off, 1)) }
func out(u *UART, off uint16, v uint8) { u.Out(base+off, 1, uint32(v)) }

// TestLinuxProbe follows the register dance of Linux's 8250 autoconfig:
// IER must hold four bits, the FIFO bits of IIR say 16550A, and the
// 16650/16750/XScale checks must all fail.
func TestLinuxProbe(t *testing.T) {
	u, _, _ := newUART()
	out(u, regIER, 0)
	if got := in(u, regIER) & 0x0F; got != 0 {
		t.Fatalf("IER after 0: %#x", got)
	}
	out(u, regIER, 0x0F)
	if got := in(u, regIER) & 0x0F; got != 0x0F {
		t.Fatalf("IER after 0x0F: %#x", got)
	}
	out(u, regIER, 0x4F) // XScale UUE bit must not stick
	if got := in(u, regIER); got != 0x0F {
		t.Errorf("IER kept bit 6: %#x", got)
	}
	out(u, regIER, 0)
	out(u, regIIR, fcrEnable)
	if got := in(u, regIIR) & 0xC0; got != 0xC0 {
		t.Errorf("IIR FIFO bits %#x, want 0xC0 (16550A)", got)
	}
	out(u, regLCR, 0xBF)
	if got := in(u, regIIR); got == 0 {
		t.Error("EFR reads 0: would be taken for a 16650")
	}
	out(u, regLCR, lcrDLAB)
	out(u, regData, 1)
	out(u, regIER, 0)
	if in(u, regData) != 1 || in(u, regIER) != 0 {
		t.Error("divisor latch not kept")
	}
	out(u, regLCR, 3)
}

func TestTransmitAndReceive(t *testing.T) {
	u, o, l := newUART()
	out(u, regLCR, 3)
	out(u, regMCR, mcrOUT2|3)
	for _, c := range []byte("hi\n") {
		if in(u, regLSR)&lsrTHREmpty == 0 {
			t.Fatal("transmitter not empty")
		}
		out(u, regData, c)
	}
	if o.String() != "hi\n" {
		t.Errorf("sent %q", o.String())
	}
	if l.level {
		t.Error("interrupt with every source disabled")
	}
	out(u, regIER, ierRxData)
	if n := u.Input([]byte("ls\r")); n != 3 {
		t.Fatalf("Input took %d", n)
	}
	if !l.level || in(u, regIIR)&0x0F != iirRxData {
		t.Fatalf("received data: line %v", l.level)
	}
	var got []byte
	for in(u, regLSR)&lsrDataReady != 0 {
		got = append(got, in(u, regData))
	}
	if string(got) != "ls\r" || l.level {
		t.Errorf("read %q, line %v", got, l.level)
	}
	if in(u, regIIR)&0x0F != iirNone {
		t.Error("IIR not idle")
	}
}

// TestTxEmptyInterrupt: enabling the interrupt with the THR empty raises
// it; reading IIR clears it; writing THR raises it again.
func TestTxEmptyInterrupt(t *testing.T) {
	u, _, l := newUART()
	out(u, regMCR, mcrOUT2)
	out(u, regIER, ierTxEmpty)
	if !l.level || l.edges != 1 {
		t.Fatalf("enable: line %v edges %d", l.level, l.edges)
	}
	if got := in(u, regIIR) & 0x0F; got != iirTxEmpty {
		t.Fatalf("IIR %#x", got)
	}
	if l.level || in(u, regIIR)&0x0F != iirNone {
		t.Fatal("IIR read did not clear the interrupt")
	}
	out(u, regData, 'x')
	if !l.level || l.edges != 2 {
		t.Errorf("after THR write: line %v edges %d", l.level, l.edges)
	}
	out(u, regMCR, 0) // OUT2 gates the line
	if l.level {
		t.Error("line up with OUT2 clear")
	}
}

func TestLoopbackAndOverrun(t *testing.T) {
	u, o, _ := newUART()
	out(u, regMCR, mcrLoopback|0xF)
	out(u, regData, 0x55)
	if in(u, regData) != 0x55 || o.Len() != 0 {
		t.Error("loopback byte not returned, or sent")
	}
	if got := in(u, regMSR); got != 0xF0 {
		t.Errorf("MSR in loopback %#x, want 0xF0", got)
	}
	out(u, regMCR, 0)
	big := make([]byte, rxSize+10)
	if n := u.Input(big); n != rxSize || u.Dropped() != 10 {
		t.Errorf("took %d, dropped %d", n, u.Dropped())
	}
	out(u, regIIR, fcrEnable|fcrClearRx)
	if u.Pending() != 0 {
		t.Error("FIFO not cleared")
	}
}

func TestNoAllocations(t *testing.T) {
	u, o, _ := newUART()
	out(u, regMCR, mcrOUT2)
	out(u, regIER, ierRxData|ierTxEmpty)
	o.Grow(1 << 20)
	n := testing.AllocsPerRun(1000, func() {
		out(u, regData, 'a')
		_ = in(u, regIIR)
		_ = in(u, regLSR)
	})
	if n != 0 {
		t.Errorf("%v allocations per byte", n)
	}
}

func FuzzRegisters(f *testing.F) {
	f.Add([]byte{0x83, 0x01, 0x03, 0x03, 0x84, 0x08, 0x81, 0x0F, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		u, _, l := newUART()
		for len(ops) >= 2 {
			off := uint16(ops[0] & 7)
			switch ops[0] >> 6 {
			case 0:
				_ = in(u, off)
			case 1:
				u.Input(ops[1:2])
			default:
				out(u, off, ops[1])
			}
			ops = ops[2:]
		}
		want := u.sourceLocked() != iirNone && u.mcr&mcrOUT2 != 0 && u.mcr&mcrLoopback == 0
		if l.level != want {
			t.Fatalf("line %v, want %v", l.level, want)
		}
		if u.size < 0 || u.size > rxSize || u.head < 0 || u.head >= rxSize {
			t.Fatalf("FIFO head %d size %d", u.head, u.size)
		}
	})
}

// TestEchoWhileTypingIsTold: the operator's typing raises the line, and
// while that is being told to the (edge-triggered) IOAPIC, the guest
// reads the byte, which lowers it, and enables the transmitter-empty
// interrupt to echo it, which raises it again. The controller must see
// a second rising edge: with one, the guest waited for the THRE
// interrupt for ever and its console died mid-line (the QEMU guest-I/O
// hang of TestQEMULinuxGuestIO).
func TestEchoWhileTypingIsTold(t *testing.T) {
	var out bytes.Buffer
	l := &line{}
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	u := New(&out, func(v bool) {
		l.set(v)
		if first {
			first = false
			close(entered)
			<-release
		}
	})
	outb := func(off uint16, v uint8) { u.Out(base+off, 1, uint32(v)) }
	outb(regMCR, mcrOUT2)
	outb(regIER, ierRxData)
	done := make(chan struct{})
	go func() {
		u.Input([]byte("l")) // told while the vCPU goes on
		close(done)
	}()
	<-entered
	if got := in(u, regData); got != 'l' {
		t.Fatalf("read %q", got)
	}
	outb(regIER, ierRxData|ierTxEmpty) // echo: transmitter empty
	close(release)
	<-done
	if !l.level || l.edges != 2 {
		t.Fatalf("the IOAPIC saw %d rising edges and ends %v; want 2 and high", l.edges, l.level)
	}
}
