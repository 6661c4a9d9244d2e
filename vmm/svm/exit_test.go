// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package svm

import (
	"errors"
	"testing"
)

func TestExitCodeNames(t *testing.T) {
	for c, want := range map[ExitCode]string{
		0x003: "CR3_READ", 0x018: "CR8_WRITE", 0x027: "DR7_READ", 0x04E: "EXCP14",
		0x060: "INTR", 0x072: "CPUID", 0x078: "HLT", 0x07B: "IOIO", 0x07C: "MSR",
		0x07F: "SHUTDOWN", 0x080: "VMRUN", 0x081: "VMMCALL", 0x08D: "XSETBV",
		0x093: "CR3_WRITE_TRAP", 0x400: "NPF", ExitInvalid: "INVALID", 0x1234: "exit code 0x1234",
	} {
		if got := c.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint64(c), got, want)
		}
	}
	if c := ExitInvalid; int64(c) != -1 {
		t.Errorf("VMEXIT_INVALID is %#x", uint64(ExitInvalid))
	}
}

// TestExitCodesMatchIntercepts: exit 0x60+n is word 3 bit n, 0x80+n word
// 4 bit n (Appendix C against Table B-1).
func TestExitCodesMatchIntercepts(t *testing.T) {
	for _, tc := range []struct {
		c ExitCode
		i Intercept
	}{
		{ExitINTR, InterceptINTR}, {ExitVINTR, InterceptVINTR}, {ExitCPUID, InterceptCPUID},
		{ExitHLT, InterceptHLT}, {ExitIOIO, InterceptIOIOProt}, {ExitMSR, InterceptMSRProt},
		{ExitShutdown, InterceptShutdown}, {ExitVMRUN, InterceptVMRUN}, {ExitVMMCALL, InterceptVMMCALL},
		{ExitXSETBV, InterceptXSETBV}, {ExitEFERWriteTrap, InterceptEFERWriteTrap},
	} {
		if uint64(tc.c)-0x60 != uint64(tc.i)-96 {
			t.Errorf("%v (%#x) against intercept bit %d", tc.c, uint64(tc.c), tc.i)
		}
	}
}

func TestDecodeExit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		code         ExitCode
		info1, info2 uint64
		assists      bool
		check        func(t *testing.T, e Exit)
		wantErr      bool
	}{
		{"OUT 0x3F8, AL", ExitIOIO, 0x3F8<<16 | 1<<4 | 1<<8, 0x1002, false, func(t *testing.T, e Exit) {
			want := IOExit{Port: 0x3F8, Size: 1, AddrSize: 32, NextRIP: 0x1002}
			if e.Kind != KindIO || e.IO != want {
				t.Errorf("%+v", e.IO)
			}
		}, false},
		{"IN EAX, DX (0xCFC)", ExitIOIO, 0xCFC<<16 | 1<<6 | 1<<9 | 1, 0x2001, false, func(t *testing.T, e Exit) {
			if !e.IO.In || e.IO.Size != 4 || e.IO.AddrSize != 64 || e.IO.Port != 0xCFC {
				t.Errorf("%+v", e.IO)
			}
		}, false},
		{"REP OUTSW DS with decode assists", ExitIOIO, 0x80<<16 | 3<<10 | 1<<8 | 1<<5 | ioRep | ioStr, 0, true, func(t *testing.T, e Exit) {
			if !e.IO.String || !e.IO.Rep || e.IO.Size != 2 || e.IO.Segment != SegDS {
				t.Errorf("%+v", e.IO)
			}
		}, false},
		{"IOIO two sizes", ExitIOIO, 3 << 4, 0, false, nil, true},
		{"IOIO no size", ExitIOIO, 1 << 8, 0, false, nil, true},
		{"IOIO reserved bit 1", ExitIOIO, 1<<4 | 1<<7 | 2, 0, false, nil, true},
		{"IOIO segment 6", ExitIOIO, 1<<4 | 1<<7 | 6<<10, 0, false, nil, true},
		{"IOIO upper half", ExitIOIO, 1<<4 | 1<<7 | 1<<40, 0, false, nil, true},
		{"string I/O without address size", ExitIOIO, 1<<4 | ioStr, 0, false, nil, true},
		{"RDMSR", ExitMSR, 0, 0, false, func(t *testing.T, e Exit) {
			if e.Kind != KindMSR || e.MSR.Write {
				t.Errorf("%+v", e)
			}
		}, false},
		{"WRMSR", ExitMSR, 1, 0, false, func(t *testing.T, e Exit) {
			if !e.MSR.Write {
				t.Errorf("%+v", e)
			}
		}, false},
		{"MSR info 2", ExitMSR, 2, 0, false, nil, true},
		{"NPF write to absent page", ExitNPF, NPFWrite | NPFUser | NPFFinal, 0xFEE00000, false, func(t *testing.T, e Exit) {
			n := e.NPF
			if e.Kind != KindNPF || !n.Write || n.Present || !n.User || !n.Final || n.TableWalk || n.GPA != 0xFEE00000 {
				t.Errorf("%+v", n)
			}
		}, false},
		{"NPF in the guest's walk", ExitNPF, NPFUser | NPFTableWalk, 0x5000, false, func(t *testing.T, e Exit) {
			if !e.NPF.TableWalk || e.NPF.Final {
				t.Errorf("%+v", e.NPF)
			}
		}, false},
		{"NPF final and walk", ExitNPF, NPFFinal | NPFTableWalk, 0, false, nil, true},
		{"NPF address beyond 52 bits", ExitNPF, NPFFinal, 1 << 52, false, nil, true},
		{"MOV CR3, RBX with decode assists", ExitCRWrite + 3, 1<<63 | 3, 0, true, func(t *testing.T, e Exit) {
			want := CRExit{Reg: 3, Write: true, Decoded: true, GPR: 3}
			if e.Kind != KindCR || e.CR != want {
				t.Errorf("%+v", e.CR)
			}
		}, false},
		{"LMSW (no MOV bit)", ExitCRWrite, 0, 0, true, func(t *testing.T, e Exit) {
			if e.CR.Decoded || !e.CR.Write || e.CR.Reg != 0 {
				t.Errorf("%+v", e.CR)
			}
		}, false},
		{"CR read without decode assists", ExitCRRead + 4, 0xDEAD, 0, false, func(t *testing.T, e Exit) {
			if e.CR.Decoded || e.CR.Write || e.CR.Reg != 4 {
				t.Errorf("%+v", e.CR)
			}
		}, false},
		{"CR with stray bits", ExitCRRead, 1<<63 | 1<<20, 0, true, nil, true},
		{"CR GPR without MOV bit", ExitCRRead, 5, 0, true, nil, true},
		{"MOV DR7, RAX", ExitDRWrite + 7, 1 << 63, 0, true, func(t *testing.T, e Exit) {
			if e.Kind != KindDR || e.CR.Reg != 7 || !e.CR.Write || !e.CR.Decoded {
				t.Errorf("%+v", e.CR)
			}
		}, false},
		{"#PF", ExitException + 14, 2, 0xDEAD000, false, func(t *testing.T, e Exit) {
			want := ExceptionExit{Vector: 14, ErrorCode: 2, CR2: 0xDEAD000}
			if e.Kind != KindException || e.Exception != want {
				t.Errorf("%+v", e.Exception)
			}
		}, false},
		{"#GP error code too wide", ExitException + 13, 1 << 32, 0, false, nil, true},
		{"INTR", ExitINTR, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindInterrupt) }, false},
		{"NMI", ExitNMI, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindInterrupt) }, false},
		{"VINTR", ExitVINTR, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindInterrupt) }, false},
		{"HLT", ExitHLT, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindHLT) }, false},
		{"CPUID", ExitCPUID, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindCPUID) }, false},
		{"SHUTDOWN", ExitShutdown, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindShutdown) }, false},
		{"VMRUN", ExitVMRUN, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindSVMInsn) }, false},
		{"VMMCALL", ExitVMMCALL, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindSVMInsn) }, false},
		{"VMEXIT_INVALID", ExitInvalid, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindInvalid) }, false},
		{"INT 0x80 with decode assists", ExitSWINT, 0x80, 0, true, func(t *testing.T, e Exit) {
			if e.Operand != 0x80 {
				t.Errorf("%+v", e)
			}
		}, false},
		{"INTn vector too wide", ExitSWINT, 0x100, 0, true, nil, true},
		{"RDTSC", ExitRDTSC, 0, 0, false, func(t *testing.T, e Exit) { kind(t, e, KindOther) }, false},
		{"unknown code", 0x300, 0, 0, false, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeExit(tc.code, tc.info1, tc.info2, tc.assists)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && tc.code.Known() && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func kind(t *testing.T, e Exit, k Kind) {
	t.Helper()
	if e.Kind != k {
		t.Errorf("kind %v, want %v", e.Kind, k)
	}
}

// FuzzDecodeExit: any exit code and information decode without a panic;
// errors name the exit; accepted I/O, MSR and NPF exits are consistent.
func FuzzDecodeExit(f *testing.F) {
	f.Add(uint64(ExitIOIO), uint64(0x3F8<<16|1<<4|1<<8), uint64(0x1002), false)
	f.Add(uint64(ExitNPF), NPFWrite|NPFFinal, uint64(0xFEE00000), false)
	f.Add(uint64(ExitCRWrite+3), uint64(1<<63|3), uint64(0), true)
	f.Add(uint64(ExitMSR), uint64(1), uint64(0), false)
	f.Add(uint64(ExitInvalid), uint64(0), uint64(0), false)
	f.Add(uint64(ExitException+14), uint64(2), uint64(0x1000), false)
	f.Fuzz(func(t *testing.T, code, info1, info2 uint64, assists bool) {
		e, err := DecodeExit(ExitCode(code), info1, info2, assists)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		switch e.Kind {
		case KindIO:
			if s := e.IO.Size; s != 1 && s != 2 && s != 4 {
				t.Fatalf("I/O size %d accepted", s)
			}
			if e.IO.String && e.IO.AddrSize == 0 {
				t.Fatal("string I/O without address size accepted")
			}
		case KindMSR:
			if info1 > 1 {
				t.Fatalf("MSR EXITINFO1 %#x accepted", info1)
			}
		case KindNPF:
			if e.NPF.Final && e.NPF.TableWalk || e.NPF.GPA>>52 != 0 {
				t.Fatalf("NPF %+v accepted", e.NPF)
			}
		case KindCR, KindDR:
			if e.CR.Reg > 15 || e.CR.GPR > 15 {
				t.Fatalf("CR %+v", e.CR)
			}
		}
		_ = e.Code.String()
		_ = e.Kind.String()
	})
}
