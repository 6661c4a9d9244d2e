package testguest

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// emitted walks an image's instructions in program order and returns the
// dwords its OUT DX, EAX instructions write, taking register-sourced
// values as 0 (records are emitted in straight-line code).
func emitted(t *testing.T, im *Image) []uint32 {
	t.Helper()
	var out []uint32
	var eax uint32
	for _, in := range im.Insts {
		switch {
		case strings.HasPrefix(in.Intel, "mov eax, 0x"):
			v, err := strconv.ParseUint(strings.TrimPrefix(in.Intel, "mov eax, 0x"), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			eax = uint32(v)
		case strings.HasPrefix(in.Intel, "mov eax, "):
			eax = 0
		case in.Intel == "out dx, eax":
			out = append(out, eax)
		}
	}
	return out
}

func TestGuestRecordsDecode(t *testing.T) {
	wantTypes := map[Variant][]RecordType{
		VariantStandard:    {RecStage, RecStage, RecStage, RecCPUID, RecCPUID, RecMemTest, RecCPUIDBench, RecDone},
		VariantTripleFault: {RecStage, RecStage, RecStage, RecStage},
		VariantProbe:       {RecStage, RecStage, RecStage, RecProbe, RecProbeSurvived, RecDone},
		VariantCounter:     {RecStage, RecStage, RecStage, RecCounter, RecAPDevice, RecDone},
		VariantPingPong:    {RecStage, RecStage, RecStage, RecCounter, RecAPDevice, RecDeviceIRQ, RecDone},
	}
	for _, v := range Variants() {
		im, err := Build(v)
		if err != nil {
			t.Fatal(err)
		}
		var d Decoder
		var got []RecordType
		var rep Report
		for _, w := range emitted(t, im) {
			rec, ok, err := d.Feed(w)
			if err != nil {
				t.Fatalf("%v: %v", v, err)
			}
			if ok {
				got = append(got, rec.Type)
				rep.Add(rec)
			}
		}
		if strings.Join(typeNames(got), ",") != strings.Join(typeNames(wantTypes[v]), ",") {
			t.Errorf("%v: records %v, want %v", v, got, wantTypes[v])
		}
		if len(rep.Stages) < 3 || rep.Stages[0] != StageRealMode || rep.Stages[1] != StageProtected || rep.Stages[2] != StageLong {
			t.Errorf("%v: stages %v", v, rep.Stages)
		}
		if v == VariantProbe && rep.Probe != ProbeAddress {
			t.Errorf("probe address %#x", rep.Probe)
		}
	}
}

func typeNames(ts []RecordType) []string {
	var s []string
	for _, t := range ts {
		s = append(s, t.String())
	}
	return s
}

// stream builds the dwords of a perfect standard run.
func stream() []uint32 {
	w := []uint32{
		header(RecStage), StageRealMode, header(RecStage), StageProtected, header(RecStage), StageLong,
		header(RecCPUID), 0, 0x16, 0x756E6547, 0x6C65746E, 0x49656E69,
		header(RecCPUID), 1, 0x306C3, 0, 0x80000000, 0,
		header(RecMemTest), MemTestEnd - MemTestStart, ExpectedMemChecksum(), 0,
		header(RecCPUIDBench), CPUIDBenchIterations, 2_500_000, 0,
		header(RecDone),
	}
	return w
}

func TestReport(t *testing.T) {
	var d Decoder
	var r Report
	for _, w := range stream() {
		rec, ok, err := d.Feed(w)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			r.Add(rec)
		}
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if r.TSCPerCPUID() != 2500 {
		t.Errorf("TSC per CPUID %d", r.TSCPerCPUID())
	}
	if r.CPUID[0][1] != 0x756E6547 {
		t.Errorf("CPUID[0] = %x", r.CPUID[0])
	}
	// A wrong checksum fails the check.
	bad := r
	bad.MemChecksum++
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("bad checksum: %v", err)
	}
	missing := r
	missing.Done = false
	if missing.Check() == nil {
		t.Error("missing done accepted")
	}
}

func TestDecoderErrors(t *testing.T) {
	var d Decoder
	for _, w := range []uint32{0x12345678, 0xB1000000, 0xB1090000, 0xB1010002, 0xB1010101} {
		if _, _, err := d.Feed(w); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%#x: err %v", w, err)
		}
	}
	// After an error the decoder resynchronises on the next header.
	rec, ok, err := d.Feed(header(RecDone))
	if err != nil || !ok || rec.Type != RecDone {
		t.Errorf("resync: %v %v %v", rec, ok, err)
	}
}

func TestDecoderAllocs(t *testing.T) {
	words := stream()
	var d Decoder
	if n := testing.AllocsPerRun(100, func() {
		for _, w := range words {
			d.Feed(w)
		}
	}); n != 0 {
		t.Errorf("%v allocs per stream", n)
	}
}

func FuzzDecoder(f *testing.F) {
	var seed []byte
	for _, w := range stream() {
		seed = binary.LittleEndian.AppendUint32(seed, w)
	}
	f.Add(seed)
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 1, 0xB1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		var r Report
		for len(b) >= 4 {
			w := binary.LittleEndian.Uint32(b)
			b = b[4:]
			rec, ok, err := d.Feed(w)
			if err != nil && ok {
				t.Fatal("record and error together")
			}
			if ok {
				if rec.Len != payloadLen[rec.Type] {
					t.Fatalf("%v with %d words", rec.Type, rec.Len)
				}
				r.Add(rec)
			}
		}
		_ = r.Check()
		_ = r.TSCPerCPUID()
	})
}

func TestCheckCounter(t *testing.T) {
	ok := Report{Stages: []uint32{StageRealMode, StageProtected, StageLong}, Counted: true, Counter: 40000, CounterIters: 20000, CounterVCPUs: 2, Done: true, APDevice: DeviceID, APMMIO: DeviceID, Scratch: MMIOScratchValue, APFPU: FPUPattern, APDeviceOK: true}
	if err := ok.CheckCounter(); err != nil {
		t.Fatal(err)
	}
	unforwarded := ok
	unforwarded.APDevice = 0xFFFFFFFF // what a port nobody serves reads
	if unforwarded.CheckCounter() == nil {
		t.Fatal("a device read that never reached the device passed")
	}
	lostWrite := ok
	lostWrite.Scratch = 0
	if lostWrite.CheckCounter() == nil {
		t.Fatal("an MMIO write that never reached the device passed")
	}
	lostFPU := ok
	lostFPU.APFPU = 0
	if lostFPU.CheckCounter() == nil {
		t.Fatal("lost FPU state passed")
	}
	single := ok
	single.CounterVCPUs, single.Counter, single.APDevice, single.APMMIO, single.Scratch, single.APFPU = 1, 20000, 0, 0, 0, 0
	if err := single.CheckCounter(); err != nil {
		t.Fatalf("one vCPU, no device read: %v", err)
	}
	if ok.CheckPingPong() == nil {
		t.Fatal("a ping-pong report without its device interrupt passed")
	}
	pp := ok
	pp.DeviceIRQs, pp.DeviceIRQsOK = 1, true
	if err := pp.CheckPingPong(); err != nil {
		t.Fatalf("ping-pong: %v", err)
	}
	pp.DeviceIRQs = 2
	if pp.CheckPingPong() == nil {
		t.Fatal("a ping-pong report with two device interrupts passed")
	}
	noRecord := ok
	noRecord.APDeviceOK = false
	if noRecord.CheckCounter() == nil {
		t.Fatal("a report without the device record passed")
	}
	lost := ok
	lost.Counter--
	if lost.CheckCounter() == nil {
		t.Fatal("a lost increment passed")
	}
	notDone := ok
	notDone.Done = false
	if notDone.CheckCounter() == nil {
		t.Fatal("a report without done passed")
	}
}
