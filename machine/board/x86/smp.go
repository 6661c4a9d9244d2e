// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"fmt"
	"runtime"
	"runtime/goos"
	"sync/atomic"
	"time"
	"unsafe"
	_ "unsafe" // go:linkname

	"github.com/usbarmory/tamago/amd64/lapic"
)

// Addresses of tamago's AP start-up protocol (github.com/usbarmory/tamago
// amd64/smp.go): the real-mode trampoline, the pointer it calls once in
// long mode, its GDT and GDTR, and the task block an AP reads when woken by
// an NMI (sp, mp, gp, pc), whose first word also counts arrived APs.
const (
	apinitAddress  = 0x4000
	apstartAddress = 0x5000
	apGDTAddress   = 0x6000
	apGDTRAddress  = 0x6018
	taskAddress    = 0x6020

	maxProbes     = 256
	probeSlotSize = 16
)

// apinitReloc copies tamago's AP trampoline to init and stores the address
// of its long-mode AP start routine at start.
//
//go:linkname apinitReloc github.com/usbarmory/tamago/amd64.apinit_reloc
func apinitReloc(init uintptr, start uintptr)

// apGDTPtr is the GDTR image (limit u16, base u64) that tamago's AP start
// code loads once in long mode. tamago defines it in its cpuinit file,
// which the linkcpuinit tag drops, so it is provided here.
//
//go:linkname apGDTPtr github.com/usbarmory/tamago/amd64.gdtptr
var apGDTPtr [5]uint16

// imageGDT returns the address of the image's GDT (entry_amd64.s).
func imageGDT() uintptr

// apProbeAddr returns the address of apProbe, the assembly routine each AP
// runs first (smp_amd64.s).
func apProbeAddr() uintptr

// Written by APs in apProbe, read by the BSP after they arrive. These are
// the only package-level mutable variables: assembly needs fixed addresses.
var (
	probeCount    uint32
	probeSlots    [maxProbes][probeSlotSize]byte
	tamagoAPStart uintptr
)

// CoreProbe is what a core reported about itself when it started.
type CoreProbe struct {
	// APICID is the initial APIC id (CPUID.1:EBX[31:24]).
	APICID uint32
	// CPUID1ECX is CPUID leaf 1 ECX (bit 5: VMX).
	CPUID1ECX uint32
	// FeatureControl is IA32_FEATURE_CONTROL, read only when VMX is
	// reported.
	FeatureControl uint64
}

// SMP starts application processors and hands them to the Go runtime as
// hardware threads.
type SMP struct {
	lapic   *lapic.LAPIC
	ids     []uint32 // APIC ids of started APs, in start order
	next    atomic.Int32
	refused atomic.Uint64 // Ms asked for beyond the cores
	probes  []CoreProbe
}

// StartAPs sends INIT-SIPI-SIPI (Intel SDM Vol. 3A 9.4.4.1 "Typical BSP
// Initialization Sequence") to each APIC id in apicIDs, waits for them to
// reach tamago's idle loop, installs the runtime's Task and ProcID hooks
// and raises GOMAXPROCS to the cores started. APIC ids come from the ACPI
// MADT, so sparse ids of multi-socket servers work. It returns the SMP
// state, which also holds each core's probe.
func StartAPs(l *lapic.LAPIC, apicIDs []uint32) (*SMP, error) {
	s := &SMP{lapic: l}
	if len(apicIDs) == 0 {
		return s, nil
	}
	if len(apicIDs) >= maxProbes {
		return s, fmt.Errorf("%d APs: at most %d supported", len(apicIDs), maxProbes-1)
	}

	gdt := uint64(imageGDT())
	apGDTPtr = [5]uint16{3*8 - 1, uint16(gdt), uint16(gdt >> 16), uint16(gdt >> 32), uint16(gdt >> 48)}

	apinitReloc(apinitAddress, apstartAddress)
	// interpose apProbe in front of tamago's AP start routine
	start := (*uint64)(physPtr(apstartAddress))
	atomic.StoreUintptr(&tamagoAPStart, uintptr(*start))
	*start = uint64(apProbeAddr())

	*(*uint32)(physPtr(taskAddress)) = 0
	// trampoline GDT: null, code, data; and its GDTR (limit, 32-bit base)
	*(*uint64)(physPtr(apGDTAddress)) = 0
	*(*uint64)(physPtr(apGDTAddress + 8)) = 0x00209a00000fffff
	*(*uint64)(physPtr(apGDTAddress + 16)) = 0x00009200000fffff
	*(*uint16)(physPtr(apGDTRAddress)) = 3*8 - 1
	*(*uint32)(physPtr(apGDTRAddress + 2)) = apGDTAddress

	vector := apinitAddress >> 12
	arrived := func() uint32 { return atomic.LoadUint32((*uint32)(physPtr(taskAddress))) }
	for i, id := range apicIDs {
		l.IPI(int(id), vector, 1<<lapic.ICR_INIT|lapic.ICR_DLV_INIT)
		time.Sleep(10 * time.Millisecond)
		l.IPI(int(id), vector, 1<<lapic.ICR_INIT|lapic.ICR_DLV_SIPI)
		time.Sleep(time.Millisecond)
		if arrived() < uint32(i+1) {
			// a second SIPI, as the MP specification recommends
			l.IPI(int(id), vector, 1<<lapic.ICR_INIT|lapic.ICR_DLV_SIPI)
		}
		for deadline := time.Now().Add(200 * time.Millisecond); arrived() < uint32(i+1) && time.Now().Before(deadline); {
		}
		if arrived() < uint32(i+1) {
			return s, fmt.Errorf("AP with APIC id %d did not start", id)
		}
		s.ids = append(s.ids, id)
	}

	n := int(atomic.LoadUint32(&probeCount))
	for i := 0; i < n && i < maxProbes; i++ {
		b := probeSlots[i][:]
		s.probes = append(s.probes, CoreProbe{
			APICID:         le32(b[0:]),
			CPUID1ECX:      le32(b[4:]),
			FeatureControl: uint64(le32(b[8:])) | uint64(le32(b[12:]))<<32,
		})
	}

	goos.ProcID = func() uint64 { return uint64(l.ID()) }
	goos.Task = s.task
	runtime.GOMAXPROCS(1 + len(s.ids))
	return s, nil
}

// Probes returns what each started AP reported, in arrival order.
func (s *SMP) Probes() []CoreProbe { return s.probes }

// APs returns the APIC ids of the started application processors.
func (s *SMP) APs() []uint32 { return s.ids }

// task gives a parked AP a Go M to run (the runtime's newosproc hook): it
// fills tamago's task block and wakes the next unused AP with an NMI.
//
// Each core runs one M for good, but the scheduler may ask for more: it
// starts a new M for a P whenever it finds no idle M, and after a
// stop-the-world an M may have given up its P without having parked yet
// (a short stop, as runtime.ReadMemStats makes, loses that race often
// under an emulator). Such an M gets no core; its P and goroutines go
// back to the scheduler (bigironUnstartedM, added to the runtime from
// _runtime/). Dropping the request, as this once did, left the P owned
// by nobody, and the node hung at its next stop-the-world.
func (s *SMP) task(sp, mp, gp, fn unsafe.Pointer) {
	i := int(s.next.Add(1)) - 1
	if i >= len(s.ids) {
		s.refused.Add(1)
		unstartedM(mp, sp)
		return
	}
	t := (*[4]uint64)(physPtr(taskAddress))
	// wait until the previous task was taken (pc cleared by the AP)
	for atomic.LoadUint64(&t[3]) != 0 {
	}
	t[0] = uint64(uintptr(sp))
	t[1] = uint64(uintptr(mp))
	t[2] = uint64(uintptr(gp))
	atomic.StoreUint64(&t[3], uint64(uintptr(fn)))
	s.lapic.IPI(int(s.ids[i]), 0, lapic.ICR_DLV_NMI)
}

// unstartedM hands back the P and stack of an M no core will run.
//
//go:linkname unstartedM runtime.bigironUnstartedM
func unstartedM(mp, sp unsafe.Pointer)

// ExtraThreadRequests returns how many times the Go runtime asked for an M
// beyond the cores, each refused and its P handed back.
func (s *SMP) ExtraThreadRequests() uint64 { return s.refused.Load() }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
