package testguest

import (
	"errors"
	"fmt"
)

// The guest reports through 32-bit OUTs to DebugPort. Each record is a
// header dword followed by its payload dwords:
//
//	header = 0xB1<<24 | type<<16 | payload count (bits 7:0), bits 15:8 zero
//
// Types and payloads (all dwords):
//
//	RecStage         stage (StageRealMode, StageProtected, StageLong, StageTripleFault)
//	RecCPUID         leaf, EAX, EBX, ECX, EDX (leaf 0 and leaf 1, subleaf 0)
//	RecMemTest       bytes tested, checksum (sum of the dwords read back), mismatches
//	RecCPUIDBench    iterations, TSC delta low, TSC delta high
//	RecProbe         address about to be read (outside guest memory)
//	RecProbeSurvived value read (the probe did not fault: a bug in the host)
//	RecDone          (none): the guest halts next
//	RecCounter       counter, iterations per vCPU, vCPUs, TSC delta low, high
//	RecAPDevice      what vCPU 1 read from DeviceIDPort and from the MMIO ID register,
//	                 what vCPU 0 read from the MMIO scratch register, and vCPU 1's
//	                 XMM0 at its last store (APFPU) (0s with one vCPU)
//	RecDeviceIRQ     device interrupts vCPU 1 took (ping-pong variant)
//
// Reading DeviceIDPort (4 bytes) returns DeviceID: the hyperkernel's
// debug device answers it wherever the reading vCPU runs.
const (
	DebugPort    = 0x0F00
	DeviceIDPort = DebugPort + 4
	DeviceID     = 0x31474942 // "BIG1"
	recordMagic  = 0xB1
)

// RecordType identifies a record.
type RecordType uint8

// Record types.
const (
	RecStage         RecordType = 1
	RecCPUID         RecordType = 2
	RecMemTest       RecordType = 3
	RecCPUIDBench    RecordType = 4
	RecProbe         RecordType = 5
	RecProbeSurvived RecordType = 6
	RecDone          RecordType = 7
	RecCounter       RecordType = 8
	RecAPDevice      RecordType = 9
	RecDeviceIRQ     RecordType = 10
)

// payloadLen is the fixed payload length of each record type.
var payloadLen = [...]int{RecStage: 1, RecCPUID: 5, RecMemTest: 3, RecCPUIDBench: 3, RecProbe: 1, RecProbeSurvived: 1, RecDone: 0, RecCounter: 5, RecAPDevice: 4, RecDeviceIRQ: 1}

var recordNames = [...]string{RecStage: "stage", RecCPUID: "cpuid", RecMemTest: "memtest", RecCPUIDBench: "cpuid-bench", RecProbe: "probe", RecProbeSurvived: "probe-survived", RecDone: "done", RecCounter: "counter", RecAPDevice: "ap-device", RecDeviceIRQ: "device-irq"}

// String names the record type.
func (t RecordType) String() string {
	if int(t) < len(recordNames) && recordNames[t] != "" {
		return recordNames[t]
	}
	return fmt.Sprintf("record type %d", uint8(t))
}

// Stages reported with RecStage.
const (
	StageRealMode    = 1
	StageProtected   = 2
	StageLong        = 3
	StageTripleFault = 0x10 // about to triple-fault on purpose
)

// MaxPayload is the longest payload of any record.
const MaxPayload = 5

// Record is one decoded report.
type Record struct {
	Type    RecordType
	Len     int
	Payload [MaxPayload]uint32
}

// header returns the header dword of a record of type t.
func header(t RecordType) uint32 {
	return recordMagic<<24 | uint32(t)<<16 | uint32(payloadLen[t])
}

// ErrBadHeader is wrapped by the decoder's errors for words that are not a
// valid record header.
var ErrBadHeader = errors.New("not a record header")

// Decoder reassembles records from the stream of dwords the guest writes
// to DebugPort. It is fed one OUT at a time from the exit handler, keeps
// no more than one record, and never allocates. After an error it drops
// the partial record and waits for the next header.
type Decoder struct {
	cur  Record
	need int
	busy bool
}

// Feed takes one dword. It returns a record when one is complete, and an
// error for a word that should be a header and is not.
func (d *Decoder) Feed(w uint32) (Record, bool, error) {
	if d.busy {
		d.cur.Payload[d.cur.Len] = w
		d.cur.Len++
		if d.cur.Len == d.need {
			d.busy = false
			return d.cur, true, nil
		}
		return Record{}, false, nil
	}
	if w>>24 != recordMagic || w&0xFF00 != 0 {
		return Record{}, false, fmt.Errorf("word %#08x: %w", w, ErrBadHeader)
	}
	t := RecordType(w >> 16)
	if int(t) >= len(payloadLen) || recordNames[t] == "" {
		return Record{}, false, fmt.Errorf("word %#08x: unknown type %d: %w", w, uint8(t), ErrBadHeader)
	}
	if n := int(w & 0xFF); n != payloadLen[t] {
		return Record{}, false, fmt.Errorf("word %#08x: %v with %d payload words, want %d: %w", w, t, n, payloadLen[t], ErrBadHeader)
	}
	d.cur = Record{Type: t}
	d.need = payloadLen[t]
	if d.need == 0 {
		return d.cur, true, nil
	}
	d.busy = true
	return Record{}, false, nil
}

// Report is what a run of the guest reported, accumulated record by
// record.
type Report struct {
	Stages        []uint32
	CPUID         map[uint32][4]uint32 // leaf -> EAX, EBX, ECX, EDX
	MemBytes      uint32
	MemChecksum   uint32
	MemErrors     uint32
	MemTested     bool
	BenchIters    uint32
	BenchTSCDelta uint64
	Benched       bool
	Probe         uint32
	Probed        bool
	ProbeSurvived bool
	Done          bool
	// Counter variant: the shared counter, the iterations and vCPUs it
	// should add up to, and vCPU 0's TSC delta over the counting.
	Counter, CounterIters, CounterVCPUs uint32
	CounterTSC                          uint64
	Counted                             bool
	// APDevice and APMMIO are what vCPU 1 read from DeviceIDPort and
	// the MMIO ID register, Scratch what vCPU 0 read back from the MMIO
	// scratch register vCPU 1 wrote.
	APDevice, APMMIO, Scratch uint32
	// APFPU is vCPU 1's XMM0 as it last stored it.
	APFPU      uint32
	APDeviceOK bool // the record arrived
	// DeviceIRQs is how many device interrupts vCPU 1 took (ping-pong).
	DeviceIRQs   uint32
	DeviceIRQsOK bool
}

// Add folds one record into the report.
func (r *Report) Add(rec Record) {
	p := rec.Payload
	switch rec.Type {
	case RecStage:
		r.Stages = append(r.Stages, p[0])
	case RecCPUID:
		if r.CPUID == nil {
			r.CPUID = map[uint32][4]uint32{}
		}
		r.CPUID[p[0]] = [4]uint32{p[1], p[2], p[3], p[4]}
	case RecMemTest:
		r.MemBytes, r.MemChecksum, r.MemErrors, r.MemTested = p[0], p[1], p[2], true
	case RecCPUIDBench:
		r.BenchIters, r.BenchTSCDelta, r.Benched = p[0], uint64(p[2])<<32|uint64(p[1]), true
	case RecProbe:
		r.Probe, r.Probed = p[0], true
	case RecProbeSurvived:
		r.ProbeSurvived = true
	case RecDone:
		r.Done = true
	case RecCounter:
		r.Counter, r.CounterIters, r.CounterVCPUs = p[0], p[1], p[2]
		r.CounterTSC, r.Counted = uint64(p[4])<<32|uint64(p[3]), true
	case RecAPDevice:
		r.APDevice, r.APMMIO, r.Scratch, r.APFPU, r.APDeviceOK = p[0], p[1], p[2], p[3], true
	case RecDeviceIRQ:
		r.DeviceIRQs, r.DeviceIRQsOK = p[0], true
	}
}

// Check verifies a report of the standard variant: all stages in order,
// both CPUID leaves, the memory test with the expected checksum and no
// mismatches, the benchmark, and the done record.
func (r *Report) Check() error {
	want := []uint32{StageRealMode, StageProtected, StageLong}
	if len(r.Stages) != len(want) {
		return fmt.Errorf("stages %v, want %v", r.Stages, want)
	}
	for i := range want {
		if r.Stages[i] != want[i] {
			return fmt.Errorf("stages %v, want %v", r.Stages, want)
		}
	}
	for _, leaf := range []uint32{0, 1} {
		if _, ok := r.CPUID[leaf]; !ok {
			return fmt.Errorf("no CPUID leaf %d reported", leaf)
		}
	}
	if !r.MemTested {
		return errors.New("no memory test reported")
	}
	if r.MemBytes != MemTestEnd-MemTestStart || r.MemErrors != 0 || r.MemChecksum != ExpectedMemChecksum() {
		return fmt.Errorf("memory test: %d bytes, checksum %#x (want %#x), %d mismatches", r.MemBytes, r.MemChecksum, ExpectedMemChecksum(), r.MemErrors)
	}
	if !r.Benched || r.BenchIters != CPUIDBenchIterations {
		return fmt.Errorf("CPUID benchmark missing or wrong iteration count %d", r.BenchIters)
	}
	if !r.Done {
		return errors.New("guest did not report done")
	}
	return nil
}

// CheckCounter verifies a report of the counter variant: the stages, the
// counter equal to vCPUs times iterations (no increment lost), and done.
func (r *Report) CheckCounter() error {
	want := []uint32{StageRealMode, StageProtected, StageLong}
	if len(r.Stages) != len(want) || r.Stages[0] != want[0] || r.Stages[1] != want[1] || r.Stages[2] != want[2] {
		return fmt.Errorf("stages %v, want %v", r.Stages, want)
	}
	if !r.Counted {
		return errors.New("no counter reported")
	}
	if total := uint64(r.CounterVCPUs) * uint64(r.CounterIters); uint64(r.Counter) != total || total == 0 {
		return fmt.Errorf("counter %d, want %d vCPUs x %d iterations = %d", r.Counter, r.CounterVCPUs, r.CounterIters, total)
	}
	if !r.APDeviceOK {
		return errors.New("no device read of vCPU 1 reported")
	}
	if r.CounterVCPUs > 1 && (r.APDevice != DeviceID || r.APMMIO != DeviceID || r.Scratch != MMIOScratchValue) {
		return fmt.Errorf("vCPU 1 read %#x from the device ID port and %#x from the MMIO ID register (want %#x), vCPU 0 read back %#x from the scratch register vCPU 1 wrote (want %#x)",
			r.APDevice, r.APMMIO, DeviceID, r.Scratch, MMIOScratchValue)
	}
	if r.CounterVCPUs > 1 && r.APFPU != FPUPattern {
		return fmt.Errorf("vCPU 1's XMM0 changed from %#x to %#x while it ran", uint32(FPUPattern), r.APFPU)
	}
	if !r.Done {
		return errors.New("guest did not report done")
	}
	return nil
}

// TSCPerCPUID returns the TSC cycles per CPUID round trip measured by the
// benchmark (in Bochs, instructions per CPUID exit).
func (r *Report) TSCPerCPUID() uint64 {
	if r.BenchIters == 0 {
		return 0
	}
	return r.BenchTSCDelta / uint64(r.BenchIters)
}

// CheckPingPong verifies a report of the ping-pong variant: what
// CheckCounter checks (every IPI counted: 2 x rounds), and the one device
// interrupt vCPU 1 asked for through the doorbell.
func (r *Report) CheckPingPong() error {
	if err := r.CheckCounter(); err != nil {
		return err
	}
	if !r.DeviceIRQsOK || r.DeviceIRQs != 1 {
		return fmt.Errorf("vCPU 1 took %d device interrupts (reported: %v), want 1", r.DeviceIRQs, r.DeviceIRQsOK)
	}
	return nil
}
