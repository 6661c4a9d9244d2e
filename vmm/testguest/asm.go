package testguest

import (
	"encoding/binary"
	"fmt"
)

// This file is a tiny x86 assembler: exactly the instructions the test
// payload needs, each emitted by a method that knows its encoding (SDM Vol.
// 2). It records every instruction it emits (offset, length, mode and
// Intel-syntax text) so that a hosted test can disassemble the image and
// compare.

// Mode is the processor mode an instruction is encoded for.
type Mode int

// Code modes.
const (
	Mode16 Mode = 16
	Mode32 Mode = 32
	Mode64 Mode = 64
)

// Inst is one emitted instruction.
type Inst struct {
	Offset int    // offset in the image
	Len    int    // length in bytes
	Mode   Mode   // mode it was encoded for
	Intel  string // the instruction in Intel syntax (as x86asm prints it)
}

type fixupKind int

const (
	fixRel8 fixupKind = iota
	fixRel32
	fixAbs32 // absolute guest-physical address of a label
	fixAbs16
)

type fixup struct {
	at    int // where the field starts
	end   int // end of the instruction (rel base)
	kind  fixupKind
	label string
}

// assembler accumulates code at guest-physical address org.
type assembler struct {
	org    uint32
	buf    []byte
	mode   Mode
	labels map[string]int
	fixups []fixup
	insts  []Inst
	err    error
}

func newAssembler(org uint32) *assembler {
	return &assembler{org: org, mode: Mode16, labels: map[string]int{}}
}

func (a *assembler) setMode(m Mode) { a.mode = m }

// label defines name at the current position.
func (a *assembler) label(name string) {
	if _, dup := a.labels[name]; dup && a.err == nil {
		a.err = fmt.Errorf("label %q defined twice", name)
	}
	a.labels[name] = len(a.buf)
}

// addr returns the guest-physical address of the current position.
func (a *assembler) addr() uint32 { return a.org + uint32(len(a.buf)) }

// inst emits one instruction's bytes and records it.
func (a *assembler) inst(intel string, b ...byte) int {
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	a.insts = append(a.insts, Inst{Offset: start, Len: len(b), Mode: a.mode, Intel: intel})
	return start
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// data emits raw data (not an instruction).
func (a *assembler) data(b ...byte) { a.buf = append(a.buf, b...) }

// dataAbs16 emits the 16-bit guest-physical address of a label as data.
func (a *assembler) dataAbs16(label string) {
	a.fixups = append(a.fixups, fixup{at: len(a.buf), end: len(a.buf) + 2, kind: fixAbs16, label: label})
	a.data(0, 0)
}

// dataAbs32 emits the 32-bit guest-physical address of a label as data.
func (a *assembler) dataAbs32(label string) {
	a.fixups = append(a.fixups, fixup{at: len(a.buf), end: len(a.buf) + 4, kind: fixAbs32, label: label})
	a.data(0, 0, 0, 0)
}

// align pads with zeros to a multiple of n.
func (a *assembler) align(n int) {
	for len(a.buf)%n != 0 {
		a.buf = append(a.buf, 0)
	}
}

// Register numbers (ModRM encoding).
const (
	regAX = 0
	regCX = 1
	regDX = 2
	regBX = 3
	regSP = 4
	regBP = 5
	regSI = 6
	regDI = 7
)

var (
	reg32Names = [8]string{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"}
	reg64Names = [8]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"}
	segNames   = [8]string{"es", "cs", "ss", "ds", "fs", "gs", "", ""}
)

// opsize returns the operand-size prefix needed for a 32-bit operation in
// the current mode (66 in 16-bit code).
func (a *assembler) opsize32() []byte {
	if a.mode == Mode16 {
		return []byte{0x66}
	}
	return nil
}

// opsize16 returns the prefix for a 16-bit operation.
func (a *assembler) opsize16() []byte {
	if a.mode == Mode16 {
		return nil
	}
	return []byte{0x66}
}

func (a *assembler) cli()     { a.inst("cli", 0xFA) }
func (a *assembler) sti()     { a.inst("sti", 0xFB) }
func (a *assembler) pushRDI() { a.inst("push rdi", 0x57) }
func (a *assembler) popRDI()  { a.inst("pop rdi", 0x5F) }
func (a *assembler) iretq()   { a.inst("iretq", 0x48, 0xCF) }
func (a *assembler) hlt()     { a.inst("hlt", 0xF4) }
func (a *assembler) cpuid()   { a.inst("cpuid", 0x0F, 0xA2) }
func (a *assembler) rdtsc()   { a.inst("rdtsc", 0x0F, 0x31) }
func (a *assembler) rdmsr()   { a.inst("rdmsr", 0x0F, 0x32) }
func (a *assembler) wrmsr()   { a.inst("wrmsr", 0x0F, 0x30) }
func (a *assembler) ud2()     { a.inst("ud2", 0x0F, 0x0B) }

// vmrun: VMRUN (0F 01 D8; AMD APM Vol. 3). A guest that is offered no
// SVM gets #UD from it: from the processor on Intel's, from the
// hyperkernel on AMD-V, where VMRUN always exits.
func (a *assembler) vmrun() { a.inst("vmrun", 0x0F, 0x01, 0xD8) }

// repStosd: REP STOSD (F3 AB).
func (a *assembler) repStosd() {
	if a.mode == Mode64 {
		a.inst("rep stosd dword ptr [rdi]", 0xF3, 0xAB)
	} else {
		a.inst("rep stosd dword ptr [edi]", cat(a.opsize32(), []byte{0xF3, 0xAB})...)
	}
}

// xor32 r, r: 31 /r.
func (a *assembler) xor32(dst, src int) {
	a.inst(fmt.Sprintf("xor %s, %s", reg32Names[dst], reg32Names[src]), cat(a.opsize32(), []byte{0x31, byte(0xC0 | src<<3 | dst)})...)
}

// xor16 r, r in 16-bit code: 31 /r.
func (a *assembler) xor16(dst, src int) {
	names := [8]string{"ax", "cx", "dx", "bx", "sp", "bp", "si", "di"}
	a.inst(fmt.Sprintf("xor %s, %s", names[dst], names[src]), cat(a.opsize16(), []byte{0x31, byte(0xC0 | src<<3 | dst)})...)
}

// movSegAX: MOV Sreg, AX (8E /r).
func (a *assembler) movSegAX(seg int) {
	a.inst(fmt.Sprintf("mov %s, ax", segNames[seg]), 0x8E, byte(0xC0|seg<<3|regAX))
}

// movImm16 r16, imm16: B8+r iw.
func (a *assembler) movImm16(r int, v uint16) {
	names := [8]string{"ax", "cx", "dx", "bx", "sp", "bp", "si", "di"}
	a.inst(fmt.Sprintf("mov %s, %#x", names[r], v), cat(a.opsize16(), []byte{0xB8 + byte(r)}, le16(v))...)
}

// movImm32 r32, imm32: B8+r id (zero-extends in 64-bit mode).
func (a *assembler) movImm32(r int, v uint32) {
	a.inst(fmt.Sprintf("mov %s, %#x", reg32Names[r], v), cat(a.opsize32(), []byte{0xB8 + byte(r)}, le32(v))...)
}

// movRSPImm sets RSP in 64-bit mode: REX.W C7 /0 id.
func (a *assembler) movRSPImm(v uint32) {
	a.inst(fmt.Sprintf("mov rsp, %#x", v), cat([]byte{0x48, 0xC7, 0xC4}, le32(v))...)
}

// mov32 dst, src: 89 /r.
func (a *assembler) mov32(dst, src int) {
	a.inst(fmt.Sprintf("mov %s, %s", reg32Names[dst], reg32Names[src]), cat(a.opsize32(), []byte{0x89, byte(0xC0 | src<<3 | dst)})...)
}

// mov64 dst, src: REX.W 89 /r.
func (a *assembler) mov64(dst, src int) {
	a.inst(fmt.Sprintf("mov %s, %s", reg64Names[dst], reg64Names[src]), 0x48, 0x89, byte(0xC0|src<<3|dst))
}

// outDXEAX: OUT DX, EAX (EF).
func (a *assembler) outDXEAX() { a.inst("out dx, eax", cat(a.opsize32(), []byte{0xEF})...) }

// outDXAL: OUT DX, AL (EE).
func (a *assembler) outDXAL() { a.inst("out dx, al", 0xEE) }

// movqXMM0RAX: MOVQ XMM0, RAX (66 REX.W 0F 6E /r).
func (a *assembler) movqXMM0RAX() { a.inst("movq xmm0, rax", 0x66, 0x48, 0x0F, 0x6E, 0xC0) }

// movqRAXXMM0: MOVQ RAX, XMM0 (66 REX.W 0F 7E /r).
func (a *assembler) movqRAXXMM0() { a.inst("movq rax, xmm0", 0x66, 0x48, 0x0F, 0x7E, 0xC0) }

// inDXEAX: IN EAX, DX (ED; 66 ED in 16-bit code).
func (a *assembler) inDXEAX() { a.inst("in eax, dx", cat(a.opsize32(), []byte{0xED})...) }

// movCR reads (toReg) or writes a control register: 0F 20 /r, 0F 22 /r.
func (a *assembler) movCR(cr int, toReg bool) {
	rn := reg32Names[regAX]
	if a.mode == Mode64 {
		rn = reg64Names[regAX]
	}
	if toReg {
		a.inst(fmt.Sprintf("mov %s, cr%d", rn, cr), 0x0F, 0x20, byte(0xC0|cr<<3|regAX))
	} else {
		a.inst(fmt.Sprintf("mov cr%d, %s", cr, rn), 0x0F, 0x22, byte(0xC0|cr<<3|regAX))
	}
}

// orEAXImm: OR EAX, imm32 (0D id).
func (a *assembler) orEAXImm(v uint32) {
	a.inst(fmt.Sprintf("or eax, %#x", v), cat(a.opsize32(), []byte{0x0D}, le32(v))...)
}

// xorEAXImm: XOR EAX, imm32 (35 id).
func (a *assembler) xorEAXImm(v uint32) {
	a.inst(fmt.Sprintf("xor eax, %#x", v), cat(a.opsize32(), []byte{0x35}, le32(v))...)
}

// xorImm32 r, imm32: 81 /6 id.
func (a *assembler) xorImm32(r int, v uint32) {
	a.inst(fmt.Sprintf("xor %s, %#x", reg32Names[r], v), cat(a.opsize32(), []byte{0x81, byte(0xF0 | r)}, le32(v))...)
}

// addImm32 r, imm32: 81 /0 id (05 id for EAX).
func (a *assembler) addImm32(r int, v uint32) {
	if r == regAX {
		a.inst(fmt.Sprintf("add eax, %#x", v), cat(a.opsize32(), []byte{0x05}, le32(v))...)
		return
	}
	a.inst(fmt.Sprintf("add %s, %#x", reg32Names[r], v), cat(a.opsize32(), []byte{0x81, byte(0xC0 | r)}, le32(v))...)
}

// addImm8 r, imm8: 83 /0 ib.
func (a *assembler) addImm8(r int, v int8) {
	a.inst(fmt.Sprintf("add %s, %#x", reg32Names[r], v), cat(a.opsize32(), []byte{0x83, byte(0xC0 | r), byte(v)})...)
}

// add32 dst, src: 01 /r.
func (a *assembler) add32(dst, src int) {
	a.inst(fmt.Sprintf("add %s, %s", reg32Names[dst], reg32Names[src]), cat(a.opsize32(), []byte{0x01, byte(0xC0 | src<<3 | dst)})...)
}

// cmpImm32 r, imm32: 81 /7 id.
func (a *assembler) cmpImm32(r int, v uint32) {
	a.inst(fmt.Sprintf("cmp %s, %#x", reg32Names[r], v), cat(a.opsize32(), []byte{0x81, byte(0xF8 | r)}, le32(v))...)
}

// cmp32 a, b: 39 /r (cmp r/m, reg).
func (a *assembler) cmp32(rm, reg int) {
	a.inst(fmt.Sprintf("cmp %s, %s", reg32Names[rm], reg32Names[reg]), cat(a.opsize32(), []byte{0x39, byte(0xC0 | reg<<3 | rm)})...)
}

// inc32 / dec32: FF /0, FF /1 (the one-byte 40+r forms are REX in 64-bit mode).
func (a *assembler) inc32(r int) {
	a.inst("inc "+reg32Names[r], cat(a.opsize32(), []byte{0xFF, byte(0xC0 | r)})...)
}

func (a *assembler) dec32(r int) {
	a.inst("dec "+reg32Names[r], cat(a.opsize32(), []byte{0xFF, byte(0xC8 | r)})...)
}

// shl64Imm / or64 / sub64 for combining RDTSC halves.
func (a *assembler) shl64Imm(r int, n uint8) {
	a.inst(fmt.Sprintf("shl %s, %#x", reg64Names[r], n), 0x48, 0xC1, byte(0xE0|r), n)
}

func (a *assembler) shr64Imm(r int, n uint8) {
	a.inst(fmt.Sprintf("shr %s, %#x", reg64Names[r], n), 0x48, 0xC1, byte(0xE8|r), n)
}

func (a *assembler) or64(dst, src int) {
	a.inst(fmt.Sprintf("or %s, %s", reg64Names[dst], reg64Names[src]), 0x48, 0x09, byte(0xC0|src<<3|dst))
}

func (a *assembler) sub64(dst, src int) {
	a.inst(fmt.Sprintf("sub %s, %s", reg64Names[dst], reg64Names[src]), 0x48, 0x29, byte(0xC0|src<<3|dst))
}

// storeDI: MOV [rdi/edi], r32 (89 /r, mod 00 rm 111).
func (a *assembler) storeDI(src int) {
	base := "edi"
	if a.mode == Mode64 {
		base = "rdi"
	}
	a.inst(fmt.Sprintf("mov dword ptr [%s], %s", base, reg32Names[src]), cat(a.opsize32(), []byte{0x89, byte(src<<3 | regDI)})...)
}

// loadDI: MOV r32, [rdi/edi] (8B /r).
func (a *assembler) loadDI(dst int) {
	base := "edi"
	if a.mode == Mode64 {
		base = "rdi"
	}
	a.inst(fmt.Sprintf("mov %s, dword ptr [%s]", reg32Names[dst], base), cat(a.opsize32(), []byte{0x8B, byte(dst<<3 | regDI)})...)
}

// movMemImm32: MOV dword [abs32], imm32. 32-bit mode: C7 05 disp32 id.
func (a *assembler) movMemImm32(addr, v uint32) {
	if a.mode != Mode32 {
		a.fail("movMemImm32 only in 32-bit mode")
		return
	}
	a.inst(fmt.Sprintf("mov dword ptr [%#x], %#x", addr, v), cat([]byte{0xC7, 0x05}, le32(addr), le32(v))...)
}

// loadAbs64: MOV EAX, [abs32] in 64-bit mode (8B 04 25 disp32, SIB with no
// base so the address is absolute, not RIP-relative).
func (a *assembler) loadAbs64(addr uint32) {
	a.inst(fmt.Sprintf("mov eax, dword ptr [%#x]", addr), cat([]byte{0x8B, 0x04, 0x25}, le32(addr))...)
}

// lgdt16 loads GDTR from a label in 16-bit code: 0F 01 /2 with disp16.
func (a *assembler) lgdt16(label string) {
	at := a.inst("lgdt ptr [<gdtr>]", 0x0F, 0x01, 0x16, 0, 0)
	a.fixups = append(a.fixups, fixup{at: at + 3, end: at + 5, kind: fixAbs16, label: label})
}

// lidt64 loads IDTR from a label in 64-bit code: 0F 01 /3, SIB absolute.
func (a *assembler) lidt64(label string) {
	at := a.inst("lidt ptr [<idtr>]", 0x0F, 0x01, 0x1C, 0x25, 0, 0, 0, 0)
	a.fixups = append(a.fixups, fixup{at: at + 4, end: at + 8, kind: fixAbs32, label: label})
}

// jmpFar to selector:label. In 16-bit code with a 66 prefix (32-bit
// offset); in 32-bit code plain EA.
func (a *assembler) jmpFar(sel uint16, label string) {
	var at, off int
	switch a.mode {
	case Mode16:
		at = a.inst(fmt.Sprintf("jmp far %#x:<%s>", sel, label), cat([]byte{0x66, 0xEA, 0, 0, 0, 0}, le16(sel))...)
		off = 2
	case Mode32:
		at = a.inst(fmt.Sprintf("jmp far %#x:<%s>", sel, label), cat([]byte{0xEA, 0, 0, 0, 0}, le16(sel))...)
		off = 1
	default:
		a.fail("far jump with immediate does not exist in 64-bit mode")
		return
	}
	a.fixups = append(a.fixups, fixup{at: at + off, end: at + off + 4, kind: fixAbs32, label: label})
}

// jcc8 emits a short conditional (or unconditional, cc<0) jump.
func (a *assembler) jcc8(cc int, name, label string) {
	op := byte(0xEB)
	if cc >= 0 {
		op = 0x70 | byte(cc)
	}
	at := a.inst(name+" <"+label+">", op, 0)
	a.fixups = append(a.fixups, fixup{at: at + 1, end: at + 2, kind: fixRel8, label: label})
}

// Condition codes (SDM Vol. 2, Table B-10).
const (
	ccB  = 0x2 // below (CF=1)
	ccAE = 0x3 // above or equal (CF=0)
	ccE  = 0x4
	ccNE = 0x5
)

func (a *assembler) jmp8(label string) { a.jcc8(-1, "jmp", label) }

// jmp32 emits a near jump with a 32-bit displacement (E9 cd).
func (a *assembler) jmp32(label string) {
	at := a.inst("jmp <"+label+">", 0xE9, 0, 0, 0, 0)
	a.fixups = append(a.fixups, fixup{at: at + 1, end: at + 5, kind: fixRel32, label: label})
}

// loop: E2 cb (decrements ECX in 32-bit code).
func (a *assembler) loop(label string) {
	at := a.inst("loop <"+label+">", 0xE2, 0)
	a.fixups = append(a.fixups, fixup{at: at + 1, end: at + 2, kind: fixRel8, label: label})
}

func (a *assembler) fail(msg string) {
	if a.err == nil {
		a.err = fmt.Errorf("assembler at %#x: %s", a.addr(), msg)
	}
}

// finish resolves fixups and returns the image.
func (a *assembler) finish() ([]byte, []Inst, error) {
	if a.err != nil {
		return nil, nil, a.err
	}
	for _, f := range a.fixups {
		pos, ok := a.labels[f.label]
		if !ok {
			return nil, nil, fmt.Errorf("undefined label %q", f.label)
		}
		switch f.kind {
		case fixRel8:
			d := pos - f.end
			if d < -128 || d > 127 {
				return nil, nil, fmt.Errorf("jump to %q out of rel8 range (%d)", f.label, d)
			}
			a.buf[f.at] = byte(int8(d))
		case fixRel32:
			binary.LittleEndian.PutUint32(a.buf[f.at:], uint32(int32(pos-f.end)))
		case fixAbs32:
			binary.LittleEndian.PutUint32(a.buf[f.at:], a.org+uint32(pos))
		case fixAbs16:
			v := a.org + uint32(pos)
			if v > 0xFFFF {
				return nil, nil, fmt.Errorf("label %q at %#x beyond 16-bit reach", f.label, v)
			}
			binary.LittleEndian.PutUint16(a.buf[f.at:], uint16(v))
		}
	}
	return a.buf, a.insts, nil
}

// Instructions of the counter variant.

// shrImm32 r, imm8: C1 /5 ib.
func (a *assembler) shrImm32(r int, n uint8) {
	a.inst(fmt.Sprintf("shr %s, %#x", reg32Names[r], n), cat(a.opsize32(), []byte{0xC1, byte(0xE8 | r), n})...)
}

// test32 a, b: 85 /r.
func (a *assembler) test32(rm, reg int) {
	a.inst(fmt.Sprintf("test %s, %s", reg32Names[rm], reg32Names[reg]), cat(a.opsize32(), []byte{0x85, byte(0xC0 | reg<<3 | rm)})...)
}

// pause: F3 90, the spin-wait hint.
func (a *assembler) pause() { a.inst("pause", 0xF3, 0x90) }

// cmpMem16Zero: CMP dword [abs16], 0 in 16-bit code (66 83 /7 with
// mod 00 rm 110: disp16).
func (a *assembler) cmpMem16Zero(addr uint16) {
	if a.mode != Mode16 {
		a.fail("cmpMem16Zero only in 16-bit mode")
		return
	}
	a.inst(fmt.Sprintf("cmp dword ptr [%#x], 0x0", addr), cat([]byte{0x66, 0x83, 0x3E}, le16(addr), []byte{0})...)
}

// xchgDI: XCHG [rdi], r32 (87 /r), locked by the processor.
func (a *assembler) xchgDI(r int) {
	a.inst(fmt.Sprintf("xchg dword ptr [rdi], %s", reg32Names[r]), 0x87, byte(r<<3|regDI))
}

// incDIDisp8: INC dword [rdi+d8] (FF /0, mod 01).
func (a *assembler) incDIDisp8(d uint8) {
	a.inst(fmt.Sprintf("inc dword ptr [rdi+%#x]", d), 0xFF, 0x47, d)
}

// lockIncDI: LOCK INC dword [rdi] (F0 FF /0).
func (a *assembler) lockIncDI() { a.inst("lock inc dword ptr [rdi]", 0xF0, 0xFF, 0x07) }

// movDIImm32: MOV dword [rdi], imm32 (C7 /0 id).
func (a *assembler) movDIImm32(v uint32) {
	a.inst(fmt.Sprintf("mov dword ptr [rdi], %#x", v), cat([]byte{0xC7, 0x07}, le32(v))...)
}
