// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
)

// waitingMemory is guest memory whose every access waits until gate is
// closed, as a distributed VM's page held by another node does; it
// counts accesses.
type waitingMemory struct {
	flat
	gate     chan struct{}
	accesses *atomic.Int64
}

func (m waitingMemory) ReadAt(p []byte, a uint64) error {
	m.accesses.Add(1)
	<-m.gate
	return m.flat.ReadAt(p, a)
}

func (m waitingMemory) WriteAt(p []byte, a uint64) error {
	m.accesses.Add(1)
	<-m.gate
	return m.flat.WriteAt(p, a)
}

// waitingDisk returns a driver of a block device over an 8-sector RAM
// disk, the disk, and the driver's memory as memory that waits for its
// gate (the caller makes the device over it).
func waitingDisk(t *testing.T) (*driver, *Block, []byte, waitingMemory) {
	disk := make([]byte, 8*SectorSize)
	blk, _ := NewBlock(NewMemDisk(disk, MemDiskOptions{}), "")
	d := newDriver(t, blk)
	return d, blk, disk, waitingMemory{d.mem, make(chan struct{}), new(atomic.Int64)}
}

// TestNotifyWithWaitingMemory: a queue notification written by a vCPU
// (pinned, holding the device's spin lock) returns without touching guest
// memory; the worker serves the ring, waiting for memory as long as it
// takes, then raises the interrupt. Before the worker, the notify read
// the ring under the spin lock: with memory that waits, the Go runtime
// died with "schedule: holding locks" (issue 16, finding 1).
func TestNotifyWithWaitingMemory(t *testing.T) {
	d, blk, disk, mem := waitingDisk(t)
	gate, accesses := mem.gate, mem.accesses
	irq := make(chan bool, 16)
	d.dev = NewDevice(blk, mem, func(l bool) { irq <- l })
	d.async = true
	d.init(spec.FeatureVersion1)
	stop := make(chan struct{})
	defer close(stop)
	go d.dev.Run(stop)

	msg := bytes.Repeat([]byte("w"), SectorSize)
	d.request(blkOut, 2, msg, false) // returns at once: the worker waits
	if n := accesses.Load(); n > 1 {
		t.Fatalf("%d guest memory accesses before the memory answered", n)
	}
	close(gate)
	select {
	case level := <-irq:
		if !level {
			t.Fatal("interrupt lowered, not raised")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no interrupt after the memory answered")
	}
	if d.usedIdx() != 1 || !bytes.Equal(disk[2*SectorSize:3*SectorSize], msg) {
		t.Errorf("used %d, disk %q", d.usedIdx(), disk[2*SectorSize:2*SectorSize+8])
	}
}

// consoleDriver sets up a console with its transmit queue ready.
func consoleDriver(t *testing.T, mem int) (*driver, *bytes.Buffer, *Console) {
	var out bytes.Buffer
	con := NewConsole(&out)
	d := newDriver(t, con)
	d.mem = make(flat, mem)
	d.dev = NewDevice(con, d.mem, func(l bool) { d.irq = l })
	con.Attach(d.dev)
	d.init(spec.FeatureVersion1)
	d.initTransmit()
	return d, &out, con
}

// initTransmit sets up the console's transmit queue (queue 1), its rings
// after queue 0's.
func (d *driver) initTransmit() {
	d.w(spec.RegQueueSel, 1)
	d.w(spec.RegQueueNum, qSize)
	d.w(spec.RegQueueDescLow, txDesc)
	d.w(spec.RegQueueDrvLow, txAvail)
	d.w(spec.RegQueueDevLow, txUsed)
	d.w(spec.RegQueueReady, 1)
}

const txDesc, txAvail, txUsed = 0x4000, 0x5000, 0x6000

// transmit places a one-buffer chain of n bytes of b in descriptor slot
// i of the console's transmit queue (not yet made available).
func (d *driver) transmit(i int, at uint64, n uint32, b byte) {
	for j := range n {
		d.mem[at+uint64(j)] = b
	}
	e := d.mem[txDesc+16*i:]
	binary.LittleEndian.PutUint64(e, at)
	binary.LittleEndian.PutUint32(e[8:], n)
	binary.LittleEndian.PutUint16(e[12:], 0)
	binary.LittleEndian.PutUint16(d.mem[txAvail+4+2*i:], uint16(i))
}

// TestRoundBudget: one notify of 8 chains of 512 KiB is served a
// megabyte per round; every byte arrives, in order, and the device
// counts the rounds that spent their budget (issue 16, finding 2: one
// notify used to copy everything the guest posted in one go, pinned).
func TestRoundBudget(t *testing.T) {
	const chain = 512 << 10
	d, out, _ := consoleDriver(t, 0x10000+8*chain)
	for i := range qSize {
		d.transmit(i, 0x10000+uint64(i)*chain, chain, byte('a'+i))
	}
	binary.LittleEndian.PutUint16(d.mem[txAvail+2:], qSize)
	d.dev.WriteMMIO(spec.RegQueueNotify, 4, 1)
	if !d.dev.Serve() {
		t.Fatal("the first round served everything: no budget")
	}
	if out.Len() != roundBytes || binary.LittleEndian.Uint16(d.mem[txUsed+2:]) != 2 {
		t.Fatalf("first round moved %d bytes, %d chains; want %d, 2", out.Len(), binary.LittleEndian.Uint16(d.mem[txUsed+2:]), roundBytes)
	}
	rounds := 1
	for d.dev.Serve() {
		rounds++
	}
	if out.Len() != qSize*chain || binary.LittleEndian.Uint16(d.mem[txUsed+2:]) != qSize {
		t.Fatalf("after %d rounds: %d bytes, used %d", rounds, out.Len(), binary.LittleEndian.Uint16(d.mem[txUsed+2:]))
	}
	for i := range qSize {
		if b := out.Bytes()[i*chain]; b != byte('a'+i) {
			t.Errorf("chain %d out of order: %q", i, b)
		}
	}
	if got := d.dev.FullRounds(); got != 4 {
		t.Errorf("%d rounds spent their budget, want 4", got)
	}

	// The chain budget: 8 small chains, 3 per round.
	d.dev.round = Budget{Chains: 3, Bytes: roundBytes}
	out.Reset()
	for i := range qSize {
		d.transmit(i, 0x10000+uint64(i)*16, 16, 'x')
	}
	binary.LittleEndian.PutUint16(d.mem[txAvail+2:], 2*qSize)
	d.dev.WriteMMIO(spec.RegQueueNotify, 4, 1)
	for rounds = 1; d.dev.Serve(); rounds++ {
	}
	if out.Len() != qSize*16 || rounds != 3 {
		t.Errorf("small chains: %d bytes in %d rounds, want %d in 3", out.Len(), rounds, qSize*16)
	}
}

// TestConsoleChainLimit: a transmit chain longer than the console takes
// breaks the queue instead of being copied.
func TestConsoleChainLimit(t *testing.T) {
	d, out, _ := consoleDriver(t, 0x20000)
	d.transmit(0, 0x10000, 16, 'x')
	e := d.mem[txDesc:]
	binary.LittleEndian.PutUint32(e[8:], 0xFFFFFFF0) // 4 GiB, most of it outside memory
	binary.LittleEndian.PutUint16(d.mem[txAvail+2:], 1)
	d.w(spec.RegQueueNotify, 1)
	if d.r(spec.RegStatus)&spec.StatusNeedsReset == 0 || out.Len() != 0 {
		t.Errorf("status %#x, %d bytes written", d.r(spec.RegStatus), out.Len())
	}
}

// TestResetDuringRound: a reset that overtakes a round voids it: the
// worker does not bring the old ring positions back.
func TestResetDuringRound(t *testing.T) {
	d, blk, _, mem := waitingDisk(t)
	gate, accesses := mem.gate, mem.accesses
	d.dev = NewDevice(blk, mem, nil)
	d.async = true
	d.init(spec.FeatureVersion1)
	d.request(blkOut, 0, make([]byte, SectorSize), false)
	done := make(chan bool)
	go func() { done <- d.dev.Serve() }()
	for accesses.Load() == 0 {
		runtime.Gosched()
	}
	d.w(spec.RegStatus, 0) // the driver resets the device mid-round
	close(gate)
	<-done
	if q := d.dev.queues[0]; q.lastAvail != 0 || q.usedIdx != 0 || q.Ready {
		t.Errorf("after a reset mid-round the queue is %+v", q)
	}
}

// TestResetSettles: a reset that overtakes the worker's round leaves the
// device unsettled until the round ends; Settle waits for it, and once
// Settle has returned the device writes no guest memory, so that the
// driver may free its rings. Before Settle, the round finished its
// writes after the reset had completed (the used ring, the status byte),
// into memory a driver that reset the device has already given back.
func TestResetSettles(t *testing.T) {
	d, blk, _, wm := waitingDisk(t)
	gate, accesses := wm.gate, wm.accesses
	mem := &afterMemory{waitingMemory: wm}
	d.dev = NewDevice(blk, mem, nil)
	d.async = true
	d.init(spec.FeatureVersion1)
	if d.dev.Unsettled() {
		t.Fatal("unsettled before any round")
	}
	d.request(blkIn, 0, make([]byte, SectorSize), false)
	served := make(chan struct{})
	go func() { d.dev.Serve(); close(served) }()
	for accesses.Load() == 0 {
		runtime.Gosched()
	}
	d.w(spec.RegStatus, 0) // the driver resets the device mid-round
	if !d.dev.Unsettled() {
		t.Fatal("a reset that overtook a round left the device settled")
	}
	settled := make(chan struct{})
	go func() { d.dev.Settle(); mem.settled.Store(true); close(settled) }()
	select {
	case <-settled:
		t.Fatal("Settle returned while the round was still under way")
	case <-time.After(20 * time.Millisecond):
	}
	close(gate)
	<-settled
	<-served
	if n := mem.late.Load(); n != 0 {
		t.Errorf("%d guest memory writes after Settle returned", n)
	}
	if d.dev.Unsettled() {
		t.Error("still unsettled after the round ended")
	}
	d.dev.Settle() // settled: returns at once
}

// afterMemory counts the writes that come once settled is set.
type afterMemory struct {
	waitingMemory
	settled atomic.Bool
	late    atomic.Int64
}

func (m *afterMemory) WriteAt(p []byte, a uint64) error {
	err := m.waitingMemory.WriteAt(p, a)
	if m.settled.Load() {
		m.late.Add(1)
	}
	return err
}

// yieldingMemory is guest memory that lets other goroutines run at every
// access, as memory that waits for the network does, so that register
// writes race with the worker the way a vCPU's do.
type yieldingMemory struct{ flat }

func (m yieldingMemory) ReadAt(p []byte, a uint64) error {
	runtime.Gosched()
	return m.flat.ReadAt(p, a)
}

func (m yieldingMemory) WriteAt(p []byte, a uint64) error {
	runtime.Gosched()
	return m.flat.WriteAt(p, a)
}

// FuzzConsole lets arbitrary bytes be the console's two rings and their
// buffers, arbitrary register writes the driver's (racing with the
// worker, as a vCPU's do) and arbitrary input the operator's: the
// console never panics, never writes outside guest memory (flat would
// panic), never sends more than the guest's buffers held and never keeps
// more input than it may.
func FuzzConsole(f *testing.F) {
	f.Add([]byte{0x50, 1, 0, 0, 0}, []byte{0, 0, 0x10, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0}, []byte("ls\r"))
	f.Add([]byte{0x50, 0, 0, 0, 0, 0x70, 0, 0, 0, 0}, []byte{0, 0, 0x10, 0, 0, 0, 0, 0, 64, 0, 0, 0, 2, 0, 0, 0}, []byte("x"))
	f.Fuzz(func(t *testing.T, regs, ring, input []byte) {
		const rxDesc, rxAvail, rxUsed = 0x1000, 0x1100, 0x1200
		var out bytes.Buffer
		con := NewConsole(&out)
		mem := make(flat, 0x8000)
		copy(mem[rxDesc:], ring)
		copy(mem[txDesc:], ring)
		dev := NewDevice(con, yieldingMemory{mem}, func(bool) {})
		con.Attach(dev)
		w := func(off uint64, v uint32) { dev.WriteMMIO(off, 4, uint64(v)) }
		w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver)
		w(spec.RegDriverFeatSel, 1)
		w(spec.RegDriverFeatures, 1)
		w(spec.RegStatus, spec.StatusAcknowledge|spec.StatusDriver|spec.StatusFeaturesOK)
		for q, at := range []uint64{rxDesc, txDesc} {
			w(spec.RegQueueSel, uint32(q))
			w(spec.RegQueueNum, qSize)
			w(spec.RegQueueDescLow, uint32(at))
			w(spec.RegQueueDrvLow, uint32(at+0x100))
			w(spec.RegQueueDevLow, uint32(at+0x200))
			w(spec.RegQueueReady, 1)
		}
		w(spec.RegStatus, 15)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { dev.Run(stop); close(done) }()
		con.Input(input)
		for len(regs) >= 5 {
			off := uint64(regs[0]) << 2 & 0x1FF
			w(off, binary.LittleEndian.Uint32(regs[1:]))
			_ = dev.ReadMMIO(off, int(regs[1]&7)+1)
			regs = regs[5:]
		}
		w(spec.RegQueueNotify, 1)
		con.Input(input)
		close(stop)
		<-done
		for dev.Serve() {
		}
		// Every transmitted byte came from a descriptor of at most
		// maxConsoleChain, and each round took at most a budget of them.
		if out.Len() > int(dev.FullRounds()+2)*(roundBytes+maxConsoleChain) {
			t.Fatalf("%d bytes out after %d full rounds", out.Len(), dev.FullRounds())
		}
		if n := len(con.in); n > consoleInputMax {
			t.Fatalf("%d bytes of input kept", n)
		}
	})
}

// usedBackend returns a buffer at every notify (a device with work done).
type usedBackend struct{}

func (usedBackend) DeviceID() uint32                    { return spec.DeviceBlock }
func (usedBackend) Features() uint64                    { return 0 }
func (usedBackend) NumQueues() int                      { return 1 }
func (usedBackend) ReadConfig(off uint64, n int) uint64 { return 0 }
func (usedBackend) Reset()                              {}
func (usedBackend) Notify(devices.GuestMemory, *Queue, int, *Budget) (bool, error) {
	return true, nil
}

// TestInterruptLineOrder: a vCPU's ACK lowers the line while the worker
// raises it for new used buffers, the vCPU's call to the interrupt
// controller running late. The controller must end with the line high,
// as the interrupt status is: before, it ended low, and the guest never
// had another interrupt from the device (a Linux guest's disk hung).
func TestInterruptLineOrder(t *testing.T) {
	var ctrl atomic.Bool // the interrupt controller's view of the line
	var blockLow atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	d := newDriver(t, usedBackend{})
	d.dev = NewDevice(usedBackend{}, d.mem, func(level bool) {
		if !level && blockLow.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		ctrl.Store(level)
	})
	d.init(spec.FeatureVersion1)
	d.w(spec.RegQueueNotify, 0)
	if !ctrl.Load() || d.r(spec.RegInterrupt) == 0 {
		t.Fatal("no interrupt for the first used buffer")
	}
	blockLow.Store(true)
	acked := make(chan struct{})
	go func() { // the vCPU's ACK, its call to the controller late
		d.dev.WriteMMIO(spec.RegInterruptACK, 4, spec.InterruptUsedBuffer)
		close(acked)
	}()
	<-entered
	d.w(spec.RegQueueNotify, 0) // the worker: more used buffers
	close(release)
	<-acked
	if d.r(spec.RegInterrupt) == 0 || !ctrl.Load() {
		t.Errorf("interrupt status %#x, the controller's line %v: want both set", d.r(spec.RegInterrupt), ctrl.Load())
	}
}
