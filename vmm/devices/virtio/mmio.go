// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package virtio

import (
	"runtime"

	"github.com/big-iron/big-iron/machine/virtio/spec"
	"github.com/big-iron/big-iron/vmm/devices"
	"github.com/big-iron/big-iron/vmm/spinlock"
)

// The transport's registers and bits are in package spec; these are
// big-iron's own.
const (
	// vendorID is "BIGI" little-endian.
	vendorID = 0x49474942

	// WindowSize is the size of a device's register window.
	WindowSize = 0x200
)

// Backend is a device type behind the transport: a block device, a
// console.
type Backend interface {
	// DeviceID is the virtio device type (5, "Device Types").
	DeviceID() uint32
	// Features are the device-specific feature bits offered.
	Features() uint64
	// NumQueues is the number of virtqueues.
	NumQueues() int
	// ReadConfig reads size bytes of the configuration space at off.
	ReadConfig(off uint64, size int) uint64
	// Notify processes queue index q within budget, spending it as it
	// serves chains, and reports whether buffers were returned to the
	// driver. It runs on the device's worker (Run), never on a vCPU, and
	// may wait for guest memory. An error means the driver broke the
	// queue: the device then needs a reset.
	Notify(mem devices.GuestMemory, q *Queue, index int, budget *Budget) (bool, error)
	// Reset returns the device to its initial state.
	Reset()
}

// Device is a virtio device on the MMIO transport. Its methods are safe
// for concurrent use.
//
// Register accesses come from vCPUs, pinned to their cores, so they take
// only the spin lock and never touch the rings: a queue notification
// marks the queue pending and wakes the device's worker (Run), an
// ordinary goroutine that serves the rings, where reading guest memory may
// wait (a distributed VM's page on another node) and long work is
// preemptible. The worker serves a queue a Budget at a time and comes back
// for the rest, so one notification cannot hold it for ever.
type Device struct {
	mu      spinlock.Lock // guards the fields below but be, mem and the worker's
	be      Backend
	mem     devices.GuestMemory
	queues  []Queue
	status  uint32
	devSel  uint32
	drvSel  uint32
	drvFeat uint64
	qsel    uint32
	intr    uint32
	line    devices.IRQLine // the interrupt output: intr != 0
	// pending marks queues notified and not yet served (bit per queue).
	pending uint32
	// gen counts resets and queue (re)configurations: the worker drops
	// the results of a round that a reset overtook.
	gen uint64
	// errors counts queues the guest broke.
	errors uint64
	// rounds counts rounds that ended with the budget spent.
	rounds uint64
	// inRound is set while the worker serves a round begun at gen
	// roundGen; roundDone, made by the first Settle that waits for
	// it, is closed when the round ends.
	inRound   bool
	roundGen  uint64
	roundDone chan struct{}

	wake   chan struct{} // capacity 1: the worker has work
	work   Queue         // the worker's copy of the queue it serves
	budget Budget        // the worker's: a field, so that it does not escape
	round  Budget        // what each round may do
}

// MaxQueues is the most queues a Backend may have.
const MaxQueues = 32

// Budget bounds one round of work on a queue: chains served and bytes
// moved. A backend stops taking chains when either runs out (a chain
// under way is finished); the worker comes back for the rest.
type Budget struct {
	Chains int
	Bytes  int
}

// One round's budget: enough for a block request of a megabyte or a
// screenful of console output, short enough that the other queue and the
// other devices' interrupts wait little.
const (
	roundChains = 64
	roundBytes  = 1 << 20
)

// Spend takes one chain that moved n bytes from the budget.
func (b *Budget) Spend(n uint64) {
	b.Chains--
	b.Bytes -= int(min(n, 1<<30))
}

// Left reports whether another chain may be taken.
func (b *Budget) Left() bool { return b.Chains > 0 && b.Bytes > 0 }

// NewDevice puts be on the MMIO transport, reading and writing guest
// memory mem and raising interrupts on irq. The caller runs its worker:
// go d.Run(stop).
func NewDevice(be Backend, mem devices.GuestMemory, irq func(level bool)) *Device {
	n := be.NumQueues()
	if n > MaxQueues {
		panic("virtio: a backend with more than 32 queues")
	}
	return &Device{be: be, mem: mem, line: devices.NewIRQLine(irq), queues: make([]Queue, n),
		wake: make(chan struct{}, 1), round: Budget{Chains: roundChains, Bytes: roundBytes}}
}

func (d *Device) offered() uint64 { return d.be.Features() | spec.FeatureVersion1 }

func (d *Device) queue() *Queue {
	if int(d.qsel) < len(d.queues) {
		return &d.queues[d.qsel]
	}
	return nil
}

// ReadMMIO implements devices.MMIODevice. Registers are 32-bit; the
// configuration space takes any size.
func (d *Device) ReadMMIO(off uint64, size int) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= spec.RegConfig {
		return d.be.ReadConfig(off-spec.RegConfig, size)
	}
	if size != 4 {
		return 0
	}
	q := d.queue()
	switch off {
	case spec.RegMagic:
		return spec.MagicValue
	case spec.RegVersion:
		return 2
	case spec.RegDeviceID:
		return uint64(d.be.DeviceID())
	case spec.RegVendorID:
		return vendorID
	case spec.RegDeviceFeatures:
		if d.devSel > 1 {
			return 0
		}
		return d.offered() >> (32 * d.devSel) & 0xFFFFFFFF
	case spec.RegQueueNumMax:
		if q == nil {
			return 0
		}
		return MaxQueueSize
	case spec.RegQueueReady:
		if q != nil && q.Ready {
			return 1
		}
		return 0
	case spec.RegInterrupt:
		return uint64(d.intr)
	case spec.RegStatus:
		return uint64(d.status)
	case spec.RegSHMLenLow, spec.RegSHMLenHigh:
		return 0xFFFFFFFF // no shared memory regions
	case spec.RegConfigGen:
		return 0
	}
	return 0
}

// WriteMMIO implements devices.MMIODevice.
func (d *Device) WriteMMIO(off uint64, size int, v uint64) {
	d.mu.Lock()
	if off >= spec.RegConfig || size != 4 {
		d.mu.Unlock()
		return // the configuration spaces offered are read-only
	}
	val := uint32(v)
	q := d.queue()
	live := q != nil && !q.Ready // queue fields are written before QueueReady
	switch off {
	case spec.RegDeviceFeatSel:
		d.devSel = val
	case spec.RegDriverFeatSel:
		d.drvSel = val
	case spec.RegDriverFeatures:
		if d.drvSel <= 1 && d.status&spec.StatusFeaturesOK == 0 {
			shift := 32 * d.drvSel
			d.drvFeat = d.drvFeat&^(0xFFFFFFFF<<shift) | uint64(val)<<shift
		}
	case spec.RegQueueSel:
		d.qsel = val
	case spec.RegQueueNum:
		if live {
			q.Num = uint16(min(val, 0xFFFF))
		}
	case spec.RegQueueReady:
		if q != nil {
			q.Ready = val&1 == 1
			d.gen++
		}
	case spec.RegQueueDescLow, spec.RegQueueDescHigh, spec.RegQueueDrvLow, spec.RegQueueDrvHigh, spec.RegQueueDevLow, spec.RegQueueDevHigh:
		if live {
			var p *uint64
			switch off &^ 4 {
			case spec.RegQueueDescLow:
				p = &q.Desc
			case spec.RegQueueDrvLow:
				p = &q.Driver
			default:
				p = &q.Device
			}
			if off&4 == 0 {
				*p = *p&^0xFFFFFFFF | uint64(val)
			} else {
				*p = *p&0xFFFFFFFF | uint64(val)<<32
			}
		}
	case spec.RegQueueNotify:
		d.notify(val)
	case spec.RegInterruptACK:
		d.intr &^= val
	case spec.RegStatus:
		d.setStatus(val)
	}
	d.update()
}

// setStatus applies a driver write to the status register (3.1.1).
func (d *Device) setStatus(val uint32) {
	if val == 0 {
		for i := range d.queues {
			d.queues[i].reset()
		}
		d.status, d.drvFeat, d.intr, d.devSel, d.drvSel, d.qsel, d.pending = 0, 0, 0, 0, 0, 0, 0
		d.gen++
		d.be.Reset()
		return
	}
	if val&spec.StatusFeaturesOK != 0 && d.status&spec.StatusFeaturesOK == 0 {
		// Features are accepted only if offered and VERSION_1 is among
		// them; otherwise FEATURES_OK does not stick.
		if d.drvFeat&^d.offered() != 0 || d.drvFeat&spec.FeatureVersion1 == 0 {
			val &^= spec.StatusFeaturesOK
		}
	}
	d.status = val | d.status&spec.StatusNeedsReset
}

// update unlocks and drives the interrupt line: asserted while any
// interrupt status bit is set. (devices.IRQLine keeps the worker's
// raise and a vCPU's ACK from reaching the IOAPIC in the wrong order: a
// Linux guest's disk hung so, its interrupt status set and the line
// low, under 4 KiB random reads with 16 in flight.)
func (d *Device) update() { d.line.Update(&d.mu, d.intr != 0) }

// notify marks queue q pending and wakes the worker; the lock is held.
// It neither blocks nor allocates.
func (d *Device) notify(q uint32) {
	if q >= uint32(len(d.queues)) || d.status&spec.StatusDriverOK == 0 || d.status&spec.StatusNeedsReset != 0 {
		return
	}
	d.pending |= 1 << q
	select {
	case d.wake <- struct{}{}:
	default: // already woken
	}
}

// Kick has queue index q served as a notification would (a backend with
// input to deliver calls it).
func (d *Device) Kick(q int) {
	d.mu.Lock()
	if q >= 0 && q < len(d.queues) && d.queues[q].Ready {
		d.notify(uint32(q))
	}
	d.mu.Unlock()
}

// Run is the device's worker: it serves notified queues until stop is
// closed. It must not run on a pinned goroutine.
func (d *Device) Run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-d.wake:
		}
		for d.Serve() {
			select {
			case <-stop:
				return
			default:
				runtime.Gosched() // a full budget: let others run first
			}
		}
	}
}

// Serve runs one round of the worker's: every pending queue, each within
// the round's budget. It reports whether a queue spent its budget and has to be
// served again. Run calls it; a test's device model may call it after
// each register write to behave synchronously. Never call it pinned.
func (d *Device) Serve() (more bool) {
	d.mu.Lock()
	pending := d.pending
	d.pending = 0
	d.mu.Unlock()
	for i := 0; pending != 0; i++ {
		if pending&(1<<i) == 0 {
			continue
		}
		pending &^= 1 << i
		if d.serveQueue(i) {
			more = true
		}
	}
	return more
}

// serveQueue serves queue i for one round on a copy of it, outside the
// lock, then publishes the new ring positions and the interrupt unless a
// reset came in between. It reports whether the budget ran out.
func (d *Device) serveQueue(i int) bool {
	d.mu.Lock()
	if d.status&spec.StatusDriverOK == 0 || d.status&spec.StatusNeedsReset != 0 || !d.queues[i].Ready {
		d.mu.Unlock()
		return false
	}
	gen := d.gen
	d.work = d.queues[i]
	d.work.gen = gen
	d.inRound, d.roundGen = true, gen
	d.mu.Unlock()

	d.budget = d.round
	used, err := d.be.Notify(d.mem, &d.work, i, &d.budget)
	spent := !d.budget.Left()

	d.mu.Lock()
	d.endRoundLocked()
	if d.gen != gen {
		d.update() // reset or reconfigured meanwhile: the round is void
		return false
	}
	q := &d.queues[i]
	q.lastAvail, q.usedIdx = d.work.lastAvail, d.work.usedIdx
	switch {
	case err != nil:
		d.errors++
		d.status |= spec.StatusNeedsReset
		d.intr |= spec.InterruptConfigChange
		spent = false
	case used:
		d.intr |= spec.InterruptUsedBuffer
	}
	if spent {
		d.rounds++
		d.pending |= 1 << i
	}
	d.update()
	return spent
}

// endRoundLocked marks the worker's round over and lets the Settle
// calls waiting for it go on.
func (d *Device) endRoundLocked() {
	d.inRound = false
	if d.roundDone != nil {
		close(d.roundDone)
		d.roundDone = nil
	}
}

// overtakenLocked reports whether the worker is in a round that a reset
// or a queue's reconfiguration overtook: one that may still write guest
// memory the driver no longer lends the device.
func (d *Device) overtakenLocked() bool { return d.inRound && d.roundGen != d.gen }

// Unsettled implements devices.Settler: whether a reset (or a queue's
// reconfiguration) overtook the worker's round, which may still write
// guest memory. It neither blocks nor allocates.
func (d *Device) Unsettled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.overtakenLocked()
}

// Settle implements devices.Settler: it waits until no round that a
// reset or a queue's reconfiguration overtook is under way, so that the
// device no longer touches the memory of the rings and buffers the
// driver took back. Requests a backend still has in flight (a network
// disk's) are dropped when they complete, without touching guest memory
// (see Block). Never call it pinned: the worker has to run.
func (d *Device) Settle() {
	for {
		d.mu.Lock()
		if !d.overtakenLocked() {
			d.mu.Unlock()
			return
		}
		if d.roundDone == nil {
			d.roundDone = make(chan struct{})
		}
		done := d.roundDone
		d.mu.Unlock()
		<-done
	}
}

// DriverFeatures returns the features the driver accepted (3.1.1): what
// it wrote once FEATURES_OK stuck, zero before. A backend whose work
// depends on them (virtio-net's mergeable receive buffers) reads them
// from Notify.
func (d *Device) DriverFeatures() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.status&spec.StatusFeaturesOK == 0 {
		return 0
	}
	return d.drvFeat
}

// FullRounds returns how many rounds ended with their budget spent.
func (d *Device) FullRounds() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rounds
}

// Errors returns how many times the guest broke a queue.
func (d *Device) Errors() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errors
}
