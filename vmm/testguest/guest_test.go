package testguest

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

var (
	labelRE  = regexp.MustCompile(`<[a-z0-9]+>`)
	negHexRE = regexp.MustCompile(`-0x[0-9a-f]+`)
)

// normalize makes x86asm's Intel syntax and ours comparable: lower case,
// single spaces, and 32-bit immediates that x86asm prints as negative
// numbers written as their unsigned bit pattern.
func normalize(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return negHexRE.ReplaceAllStringFunc(s, func(n string) string {
		v, err := strconv.ParseUint(n[3:], 16, 32)
		if err != nil {
			return n
		}
		return fmt.Sprintf("%#x", uint32(-int64(v)))
	})
}

// unknownToX86asm are the instructions x86asm does not decode (AMD's
// SVM instructions), with their encodings (AMD APM Vol. 3, "VMRUN").
var unknownToX86asm = map[string][]byte{"vmrun": {0x0F, 0x01, 0xD8}}

// TestDecodeImage disassembles every image with x86asm, instruction by
// instruction in the mode each was assembled for, and compares length and
// text with what the assembler meant to emit; the code must decode back to
// back with no gaps.
func TestDecodeImage(t *testing.T) {
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) {
			im, err := Build(v)
			if err != nil {
				t.Fatal(err)
			}
			next := 0
			modes := map[Mode]int{}
			for _, in := range im.Insts {
				if in.Offset != next {
					t.Fatalf("gap before %#x", in.Offset)
				}
				next = in.Offset + in.Len
				modes[in.Mode]++
				if b, ok := unknownToX86asm[in.Intel]; ok {
					if !bytes.Equal(im.Bytes[in.Offset:next], b) {
						t.Errorf("%#x %q: bytes % x, want % x", in.Offset, in.Intel, im.Bytes[in.Offset:next], b)
					}
					continue
				}
				got, err := x86asm.Decode(im.Bytes[in.Offset:], int(in.Mode))
				if err != nil {
					t.Errorf("%#x (%d-bit) %q: %v", in.Offset, in.Mode, in.Intel, err)
					continue
				}
				if got.Len != in.Len {
					t.Errorf("%#x (%d-bit) %q: x86asm length %d, want %d (%v)", in.Offset, in.Mode, in.Intel, got.Len, in.Len, got)
					continue
				}
				text := x86asm.IntelSyntax(got, uint64(LoadAddress+in.Offset), nil)
				want := in.Intel
				if labelRE.MatchString(want) {
					// Operands are label addresses: compare the mnemonic.
					want = strings.Fields(want)[0]
					text = strings.Fields(text)[0]
				}
				if normalize(text) != normalize(want) {
					t.Errorf("%#x (%d-bit): x86asm %q, assembler %q", in.Offset, in.Mode, text, in.Intel)
				}
			}
			if next != im.CodeEnd {
				t.Errorf("instructions end at %#x, code at %#x", next, im.CodeEnd)
			}
			for _, m := range []Mode{Mode16, Mode32, Mode64} {
				if modes[m] == 0 {
					t.Errorf("no %d-bit code", m)
				}
			}
		})
	}
}

// TestSequence checks the instruction sequence of the standard image:
// the mode switches, the CPUID and OUT pattern, and the targets of far
// jumps and LGDT.
func TestSequence(t *testing.T) {
	im, err := Build(VariantStandard)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, in := range im.Insts {
		ops = append(ops, strings.Fields(in.Intel)[0])
	}
	seq := strings.Join(ops, " ")
	for _, want := range []string{
		"cli xor mov mov mov mov",       // real-mode setup
		"lgdt mov or mov jmp",           // CR0.PE and far jump
		"rep",                           // page-table clearing
		"rdmsr or wrmsr mov or mov jmp", // EFER.LME, CR0.PG, far jump
		"cpuid mov mov mov mov out",     // CPUID report
		"rdtsc mov mov mov xor xor cpuid dec jnz rdtsc", // benchmark loop
		"hlt jmp",
	} {
		if !strings.Contains(seq, want) {
			t.Errorf("sequence lacks %q:\n%s", want, seq)
		}
	}
	// Far jumps land on the first instruction of the next mode.
	for _, in := range im.Insts {
		if !strings.HasPrefix(in.Intel, "jmp far") {
			continue
		}
		got, err := x86asm.Decode(im.Bytes[in.Offset:], int(in.Mode))
		if err != nil {
			t.Fatal(err)
		}
		sel, ok1 := got.Args[0].(x86asm.Imm)
		off, ok2 := got.Args[1].(x86asm.Imm)
		if !ok1 || !ok2 || got.Op != x86asm.LJMP {
			t.Fatalf("far jump decoded as %v", got)
		}
		if in.Mode == Mode16 && sel != selCode32 || in.Mode == Mode32 && sel != selCode64 {
			t.Errorf("far jump from %d-bit code to selector %#x", in.Mode, sel)
		}
		imm := off
		target := int(off) - LoadAddress
		var next *Inst
		for i := range im.Insts {
			if im.Insts[i].Offset == target {
				next = &im.Insts[i]
			}
		}
		if next == nil || next.Mode == in.Mode {
			t.Errorf("far jump at %#x to %#x does not reach a mode switch", in.Offset, imm)
		}
	}
	// LGDT points at a GDTR whose base is the GDT with three descriptors.
	for _, in := range im.Insts {
		if strings.HasPrefix(in.Intel, "lgdt") {
			addr := int(im.Bytes[in.Offset+3]) | int(im.Bytes[in.Offset+4])<<8
			off := addr - LoadAddress
			limit := int(im.Bytes[off]) | int(im.Bytes[off+1])<<8
			base := int(im.Bytes[off+2]) | int(im.Bytes[off+3])<<8 | int(im.Bytes[off+4])<<16 | int(im.Bytes[off+5])<<24
			if limit != 31 || base < LoadAddress+im.CodeEnd || base%8 != 0 {
				t.Errorf("GDTR limit %d base %#x", limit, base)
			}
			gdt := im.Bytes[base-LoadAddress:]
			if gdt[8+5] != 0x9A || gdt[16+5] != 0x92 || gdt[24+6] != 0xAF {
				t.Errorf("GDT % x", gdt[:32])
			}
		}
	}
	if len(im.Bytes) > 0x10000-LoadAddress {
		t.Errorf("image of %d bytes does not fit below 64 KiB for the real-mode LGDT", len(im.Bytes))
	}
}

// TestVariants checks what distinguishes the variants.
func TestVariants(t *testing.T) {
	texts := map[Variant]string{}
	for _, v := range Variants() {
		im, err := Build(v)
		if err != nil {
			t.Fatal(err)
		}
		texts[v] = im.Listing()
	}
	if !strings.Contains(texts[VariantTripleFault], "lidt") || !strings.Contains(texts[VariantTripleFault], "vmrun") {
		t.Error("triple-fault variant lacks LIDT/VMRUN")
	}
	if !strings.Contains(texts[VariantProbe], "mov eax, dword ptr [0x30000000]") {
		t.Errorf("probe variant does not read ProbeAddress:\n%s", texts[VariantProbe])
	}
	if strings.Contains(texts[VariantStandard], "ud2") || strings.Contains(texts[VariantStandard], "0x30000000") {
		t.Error("standard variant faults on purpose")
	}
}

func TestExpectedMemChecksum(t *testing.T) {
	// Independent computation: the pattern XORs the high bits of every
	// address the same way, so sum = sum(a ^ p).
	var sum uint64
	for a := uint64(MemTestStart); a < MemTestEnd; a += 4 {
		sum += a ^ MemTestPattern
	}
	if uint32(sum) != ExpectedMemChecksum() {
		t.Errorf("checksum %#x, want %#x", ExpectedMemChecksum(), uint32(sum))
	}
}
