package vmx

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
)

// asmSource reads vmx_amd64.s.
func asmSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("vmx_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var byteRE = regexp.MustCompile(`BYTE \$0x([0-9A-Fa-f]{2})`)

// TestAsmMatchesTable checks that every "enc:NAME" marker in the assembly
// is followed by exactly the bytes of Encodings()[NAME], and that every
// table entry is used.
func TestAsmMatchesTable(t *testing.T) {
	table := map[string]Encoding{}
	for _, e := range Encodings() {
		table[e.Name] = e
	}
	used := map[string]bool{}
	lines := strings.Split(asmSource(t), "\n")
	for i, line := range lines {
		_, rest, ok := strings.Cut(line, "// enc:")
		if !ok {
			continue
		}
		name, intel, _ := strings.Cut(rest, " ")
		e, ok := table[name]
		if !ok {
			t.Errorf("line %d: marker %q not in Encodings()", i+1, name)
			continue
		}
		if intel != e.Intel {
			t.Errorf("line %d: comment %q, table says %q", i+1, intel, e.Intel)
		}
		if i+1 >= len(lines) {
			t.Fatalf("marker %s at end of file", name)
		}
		var got []byte
		for _, m := range byteRE.FindAllStringSubmatch(lines[i+1], -1) {
			v, _ := strconv.ParseUint(m[1], 16, 8)
			got = append(got, byte(v))
		}
		if !bytes.Equal(got, e.Bytes) {
			t.Errorf("line %d: %s bytes % x, table % x", i+2, name, got, e.Bytes)
		}
		used[name] = true
	}
	for name := range table {
		if !used[name] {
			t.Errorf("%s not used in vmx_amd64.s", name)
		}
	}
}

// TestEncodingStructure decodes each encoding by hand against the SDM Vol.
// 2 opcode tables: x86asm does not know the VMX instructions, so the test
// checks prefix, opcode and ModRM fields itself.
func TestEncodingStructure(t *testing.T) {
	type want struct {
		prefix byte // 0 for none
		opcode []byte
		modrm  int // -1 for none
		mod    byte
		reg    byte
		rm     byte
	}
	wants := map[string]want{
		"VMXON":    {0xF3, []byte{0x0F, 0xC7}, 1, 0, 6, 0},     // /6, [rax]
		"VMCLEAR":  {0x66, []byte{0x0F, 0xC7}, 1, 0, 6, 0},     // /6, [rax]
		"VMPTRLD":  {0, []byte{0x0F, 0xC7}, 1, 0, 6, 0},        // /6, [rax]
		"VMREAD":   {0, []byte{0x0F, 0x78}, 1, 3, 0, 3},        // reg rax, rm rbx
		"VMWRITE":  {0, []byte{0x0F, 0x79}, 1, 3, 0, 3},        // reg rax, rm rbx
		"VMXOFF":   {0, []byte{0x0F, 0x01, 0xC4}, -1, 0, 0, 0}, // fixed
		"VMLAUNCH": {0, []byte{0x0F, 0x01, 0xC2}, -1, 0, 0, 0},
		"VMRESUME": {0, []byte{0x0F, 0x01, 0xC3}, -1, 0, 0, 0},
		"INVEPT":   {0x66, []byte{0x0F, 0x38, 0x80}, 1, 0, 0, 3}, // reg rax, [rbx]
		"INVVPID":  {0x66, []byte{0x0F, 0x38, 0x81}, 1, 0, 0, 3},
	}
	for _, e := range Encodings() {
		w, ok := wants[e.Name]
		if !ok {
			t.Errorf("no expectation for %s", e.Name)
			continue
		}
		b := e.Bytes
		if w.prefix != 0 {
			if len(b) == 0 || b[0] != w.prefix {
				t.Errorf("%s: prefix % x, want %02x", e.Name, b, w.prefix)
				continue
			}
			b = b[1:]
		}
		if !bytes.HasPrefix(b, w.opcode) {
			t.Errorf("%s: opcode % x, want % x", e.Name, b, w.opcode)
			continue
		}
		b = b[len(w.opcode):]
		if w.modrm < 0 {
			if len(b) != 0 {
				t.Errorf("%s: trailing % x", e.Name, b)
			}
			continue
		}
		if len(b) != 1 {
			t.Errorf("%s: want exactly one ModRM byte, have % x", e.Name, b)
			continue
		}
		if mod, reg, rm := b[0]>>6, b[0]>>3&7, b[0]&7; mod != w.mod || reg != w.reg || rm != w.rm {
			t.Errorf("%s: ModRM mod %d reg %d rm %d, want %d %d %d", e.Name, mod, reg, rm, w.mod, w.reg, w.rm)
		}
	}
}

// TestEncodingsObjdump cross-checks the encodings with GNU objdump when it
// is installed: it disassembles the bytes of each instruction and compares
// the Intel-syntax text with the table.
func TestEncodingsObjdump(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("objdump not installed")
	}
	dir := t.TempDir()
	for _, e := range Encodings() {
		path := filepath.Join(dir, e.Name+".bin")
		if err := os.WriteFile(path, e.Bytes, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(objdump, "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", path).CombinedOutput()
		if err != nil {
			t.Fatalf("objdump: %v\n%s", err, out)
		}
		var text string
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Split(line, "\t"); len(f) == 3 && strings.HasSuffix(strings.TrimSpace(f[0]), ":") {
				text = strings.Join(strings.Fields(f[2]), " ")
			}
		}
		norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, ", ", ",")) }
		if norm(text) != norm(e.Intel) {
			t.Errorf("%s: objdump says %q, table %q\n%s", e.Name, text, e.Intel, out)
		}
	}
}

// TestNonVMXBytesDecode checks with x86asm that the bytes around the VMX
// instructions are ordinary instructions: the fixed opcodes 0F 01 C2-C4
// must not be mistaken for another instruction of the same length that
// x86asm knows.
func TestNonVMXBytesDecode(t *testing.T) {
	for _, e := range Encodings() {
		inst, err := x86asm.Decode(e.Bytes, 64)
		if err == nil && inst.Len == len(e.Bytes) && inst.Op != 0 {
			// x86asm has no VMX opcodes: a full-length decode as
			// something else would mean a wrong encoding.
			t.Errorf("%s: x86asm decodes % x as %v", e.Name, e.Bytes, inst)
		}
	}
	// And the surrounding instruction that the entry routine relies on:
	// PUSHQ 8(SP) reads the host RFLAGS slot.
	inst, err := x86asm.Decode([]byte{0xFF, 0x74, 0x24, 0x08}, 64)
	if err != nil || inst.Op != x86asm.PUSH {
		t.Errorf("push [rsp+8]: %v %v", inst, err)
	}
}

func TestGuestRegsLayout(t *testing.T) {
	var r GuestRegs
	offsets := map[string]uintptr{
		"RAX": unsafe.Offsetof(r.RAX), "RCX": unsafe.Offsetof(r.RCX), "RDX": unsafe.Offsetof(r.RDX), "RBX": unsafe.Offsetof(r.RBX),
		"RBP": unsafe.Offsetof(r.RBP), "RSI": unsafe.Offsetof(r.RSI), "RDI": unsafe.Offsetof(r.RDI),
		"R8": unsafe.Offsetof(r.R8), "R9": unsafe.Offsetof(r.R9), "R10": unsafe.Offsetof(r.R10), "R11": unsafe.Offsetof(r.R11),
		"R12": unsafe.Offsetof(r.R12), "R13": unsafe.Offsetof(r.R13), "R14": unsafe.Offsetof(r.R14), "R15": unsafe.Offsetof(r.R15),
		"CR2": unsafe.Offsetof(r.CR2), "FPU": unsafe.Offsetof(r.FPU), "HOSTFPU": unsafe.Offsetof(r.HostFPU),
		"XCR0": unsafe.Offsetof(r.XCR0), "HOSTXCR0": unsafe.Offsetof(r.HostXCR0), "XCR0MAX": unsafe.Offsetof(r.XCR0Max),
	}
	defs := regexp.MustCompile(`(?m)^#define G_([A-Z0-9]+) (\d+)$`).FindAllStringSubmatch(asmSource(t), -1)
	if len(defs) != len(offsets) {
		t.Fatalf("%d G_ defines, %d fields", len(defs), len(offsets))
	}
	for _, d := range defs {
		off, _ := strconv.Atoi(d[2])
		want, ok := offsets[d[1]]
		if !ok || uintptr(off) != want {
			t.Errorf("G_%s = %d, struct offset %d (known %v)", d[1], off, want, ok)
		}
	}
	// Reg maps GPR numbers to fields, RSP to nil.
	for g := RAX; g <= R15; g++ {
		p := r.Reg(g)
		if g == RSP {
			if p != nil {
				t.Error("Reg(RSP) not nil")
			}
			continue
		}
		*p = uint64(g) + 100
	}
	if r.RAX != 100 || r.RBX != 103 || r.RDI != 107 || r.R15 != 115 || r.Reg(16) != nil {
		t.Errorf("Reg mapping wrong: %+v", r)
	}
}

func TestUseXSAVE(t *testing.T) {
	for _, size := range []int{0, 576, 832, 2696} {
		var r GuestRegs
		r.UseXSAVE(size, 7, 3)
		a := r.XSAVEArea()
		if uintptr(unsafe.Pointer(&a[0]))%64 != 0 {
			t.Fatalf("XSAVE area at %p is not 64-byte aligned", &a[0])
		}
		if want := max(size, XSAVEMinSize); len(a) != want {
			t.Errorf("size %d: area of %d bytes, want %d", size, len(a), want)
		}
		if unsafe.Pointer(r.FPU) != unsafe.Pointer(&a[0]) {
			t.Error("FPU is not the area's legacy region")
		}
		if *r.FPU != *NewFXArea() {
			t.Error("legacy region not in its initial state")
		}
		for i, b := range a[XSAVEHeader:] {
			if b != 0 {
				t.Fatalf("byte %d past the legacy region is %#x, want 0 (every component in its initial state)", XSAVEHeader+i, b)
			}
		}
		if r.XCR0 != 1 || r.HostXCR0 != 3 {
			t.Errorf("XCR0 %#x host %#x, want 1 and 3", r.XCR0, r.HostXCR0)
		}
	}
}

func TestNewFXArea(t *testing.T) {
	for range 100 {
		a := NewFXArea()
		if uintptr(unsafe.Pointer(a))%16 != 0 {
			t.Fatalf("FX area at %p is not 16-byte aligned", a)
		}
		if fcw, mxcsr := uint16(a[0])|uint16(a[1])<<8, uint32(a[24])|uint32(a[25])<<8; fcw != 0x037F || mxcsr != 0x1F80 {
			t.Fatalf("initial FCW %#x MXCSR %#x, want 0x37f and 0x1f80", fcw, mxcsr)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		rflags uint64
		want   Outcome
	}{{0x2, VMSucceed}, {0x3, VMFailInvalid}, {0x42, VMFailValid}, {0x202, VMSucceed}, {0x43, VMFailInvalid}} {
		if got := OutcomeOf(tc.rflags); got != tc.want {
			t.Errorf("OutcomeOf(%#x) = %d, want %d", tc.rflags, got, tc.want)
		}
	}
}
