// Package testguest builds big-iron's freestanding test-guest payloads and
// decodes what they report.
//
// The payload is assembled by a tiny in-Go assembler (asm.go), not an
// external one, and built by Build on demand: a few microseconds, no
// generated files to keep in sync, and no package state. tools/mkguest
// writes the same images to .bin files (with a listing) for use outside
// Go, e.g. by hand under Bochs.
//
// The guest is loaded at guest-physical LoadAddress and started in 16-bit
// real mode (unrestricted guest) at CS base 0, IP LoadAddress, interrupts
// off. It needs guest RAM (EPT-mapped) from 0 to at least MinGuestMemory.
// It sets up a GDT and identity page tables (1 GiB of 2 MiB pages at
// PageTables), goes to protected and then long mode, reports CPUID leaves
// 0 and 1, writes and reads back a pattern over MemTestStart..MemTestEnd,
// times CPUIDBenchIterations CPUIDs between two RDTSCs, reports done and
// halts. Reports go to DebugPort (see protocol.go).
package testguest

import "fmt"

// Guest memory layout (guest-physical addresses).
const (
	LoadAddress          = 0x8000
	StackTop             = 0x7000
	PageTables           = 0x10000 // PML4; PDPT at +0x1000, PD at +0x2000
	MemTestStart         = 0x100000
	MemTestEnd           = 0x200000
	MinGuestMemory       = MemTestEnd
	MemTestPattern       = 0xA5A5A5A5
	CPUIDBenchIterations = 1000
	// ProbeAddress is read by VariantProbe: inside the guest's identity
	// map (so the guest's own paging allows it) but outside its memory,
	// so the access must cause an EPT violation.
	ProbeAddress = 0x3000_0000
)

// GDT selectors.
const (
	selCode32 = 0x08
	selData   = 0x10
	selCode64 = 0x18
)

// Variant selects a payload.
type Variant int

// Variants.
const (
	// VariantStandard runs every test and halts.
	VariantStandard Variant = iota
	// VariantTripleFault reaches long mode, then loads an empty IDT and
	// executes VMRUN, which a guest offered no SVM cannot: #UD (from the
	// processor on VT-x, from the hyperkernel on AMD-V, where VMRUN
	// always exits) cannot be delivered, nor #GP, nor #DF, so the
	// processor shuts down (VM exit "triple fault"). A VMRUN that
	// reached the host's SVM, or an exit the hyperkernel resumed without
	// #UD, would not end so.
	VariantTripleFault
	// VariantProbe reaches long mode and reads ProbeAddress, which must
	// end in an EPT violation.
	VariantProbe
	// VariantCounter is the shared-memory SMP test: every vCPU (the
	// hyperkernel writes their number and the iterations at
	// ParamVCPUs and ParamIterations) takes a spin lock and increments a
	// shared counter ParamIterations times; the vCPU with APIC id 0 waits
	// for all of them and reports the total, its TSC delta, and done.
	// Only that vCPU reports, so records never interleave. vCPUs other
	// than 0 wait in real mode until vCPU 0 has built the page tables.
	VariantCounter
	// VariantPingPong is the inter-processor interrupt test for two
	// vCPUs: vCPU 0 sends vCPU 1 an IPI (x2APIC ICR write, fixed vector
	// PingVector1), whose handler counts it; vCPU 1 answers each with an
	// IPI of PingVector0 back, ParamIterations times. vCPU 0 reports as
	// the counter variant does: the sum of both vCPUs' received counts
	// (it must be 2 x iterations), the iterations, 2, and its TSC delta.
	VariantPingPong
)

// Ping-pong variant layout and vectors. Each vCPU's received count and
// stack live on pages of their own, so that only the IPIs travel.
const (
	PingVector0 = 0x40 // the vector vCPU 0 takes
	PingVector1 = 0x41 // the vector vCPU 1 takes
	// PingVectorDevice is the interrupt the debug device raises on the
	// vCPU whose APIC id is written to its MMIO doorbell register.
	PingVectorDevice = 0x42
	PingDevIRQ       = PingRecv1 + 4 // device interrupts vCPU 1 took
	PingRecv0        = 0x203000      // IPIs vCPU 0 received
	PingRecv1        = 0x204000      // IPIs vCPU 1 received
	PingStackTop1    = 0x206000      // vCPU 1's stack (vCPU 0 uses StackTop)
	// MMIOBase is the debug device's register page, outside RAM: the ID
	// register (32 bits, reads DeviceID) at MMIOID, a scratch register
	// (32 bits, reads what was last written) at MMIOScratch. The
	// multiprocessor variants' vCPU 1 reads the ID and writes
	// MMIOScratchValue; vCPU 0 reads it back.
	MMIOBase         = 0x3FFFF000
	MMIOID           = 0x0
	MMIOScratch      = 0x8
	MMIODoorbell     = 0x10
	MMIOScratchValue = 0xC0FFEE01
	// PingPongMinMemory is the guest memory the ping-pong variant needs.
	PingPongMinMemory = PingStackTop1
	// MSRx2APICICR is the x2APIC interrupt command register (Intel SDM
	// Vol. 3A, 11.12.9 "ICR Operation in x2APIC Mode"): destination in
	// bits 63:32, vector in bits 7:0.
	MSRx2APICICR = 0x830
	// ICRInit and ICRStartup are the low ICR words of an INIT IPI (level
	// assert) and of a startup IPI without its vector (SDM Vol. 3A,
	// 11.6.1: delivery modes 101b and 110b, level bit 14).
	ICRInit    = 0x4500
	ICRStartup = 0x4600
)

// Counter variant layout (guest-physical addresses). The lock and the
// counter share a page, as a lock and the data it guards do; the count
// of finished vCPUs lives on another page.
const (
	ParamVCPUs      = 0x7F00 // written by the hyperkernel before start
	ParamIterations = 0x7F04 // written by the hyperkernel before start
	ReadyFlag       = 0x7F10 // vCPU 0 sets it once the page tables exist
	TSCStash        = 0x7F18 // vCPU 0's TSC at the start of counting
	CounterLock     = 0x200000
	CounterValue    = CounterLock + 4
	CounterDone     = 0x201000
	APDeviceRead    = CounterDone + 4 // what vCPU 1 read from DeviceIDPort, then from MMIOBase
	// APFPU is where vCPU 1 stores XMM0 (low 32 bits), which it loaded
	// with FPUPattern when it started: the check that its FPU state
	// survives exits, the host's own use of SSE, and migration.
	APFPU      = APDeviceRead + 8
	FPUPattern = 0x5EE5F00D
	// CounterMinMemory is the guest memory the counter variant needs.
	CounterMinMemory = 0x202000
	// DefaultCounterIterations is what a single-node `vm run counter`
	// uses.
	DefaultCounterIterations = 20000
)

// Variants lists every variant.
func Variants() []Variant {
	return []Variant{VariantStandard, VariantTripleFault, VariantProbe, VariantCounter, VariantPingPong}
}

// String names the variant (also the .bin file name used by mkguest).
func (v Variant) String() string {
	switch v {
	case VariantStandard:
		return "standard"
	case VariantTripleFault:
		return "triplefault"
	case VariantProbe:
		return "probe"
	case VariantCounter:
		return "counter"
	case VariantPingPong:
		return "pingpong"
	}
	return fmt.Sprintf("variant%d", int(v))
}

// Image is an assembled payload.
type Image struct {
	Bytes []byte // load at LoadAddress
	Insts []Inst // every instruction, for listings and decode checks
	// CodeEnd is the offset where code ends and data (GDT, GDTR, IDTR)
	// begins.
	CodeEnd int
}

// ExpectedMemChecksum is the checksum the memory test must report: the
// 32-bit sum of (address ^ MemTestPattern) over the tested dwords.
func ExpectedMemChecksum() uint32 {
	var sum uint32
	for a := uint32(MemTestStart); a < MemTestEnd; a += 4 {
		sum += a ^ MemTestPattern
	}
	return sum
}

// reportWord is a payload word: an immediate or a register's value.
type reportWord struct {
	imm   uint32
	reg   int
	isReg bool
}

func imm(v uint32) reportWord { return reportWord{imm: v} }
func reg(r int) reportWord    { return reportWord{reg: r, isReg: true} }

// record emits the OUTs of one record. It clobbers EAX and DX.
func (a *assembler) record(t RecordType, words ...reportWord) {
	if len(words) != payloadLen[t] {
		a.fail(fmt.Sprintf("record %v with %d words", t, len(words)))
	}
	a.movImm16(regDX, DebugPort)
	a.movImm32(regAX, header(t))
	a.outDXEAX()
	for _, w := range words {
		if w.isReg {
			a.mov32(regAX, w.reg)
		} else {
			a.movImm32(regAX, w.imm)
		}
		a.outDXEAX()
	}
}

// Build assembles the payload of variant v: the boot from real mode
// through protected mode to long mode, the variant's 64-bit body, and the
// data the mode switches load (GDT, GDTR, IDTRs).
func Build(v Variant) (*Image, error) {
	a := newAssembler(LoadAddress)
	smp := v == VariantCounter || v == VariantPingPong
	a.realMode(smp)
	a.protectedMode(smp)
	a.longModeEntry()
	a.longModeBody(v)
	codeEnd := len(a.buf)
	a.dataSection(v)
	buf, insts, err := a.finish()
	if err != nil {
		return nil, fmt.Errorf("testguest: building %v: %w", v, err)
	}
	return &Image{Bytes: buf, Insts: insts, CodeEnd: codeEnd}, nil
}

// realMode emits the 16-bit entry at LoadAddress: interrupts off, flat
// real-mode segments and the stack, then (vCPU 0 only, in the
// multiprocessor variants) the real-mode stage report and the switch to
// protected mode at "pm32".
func (a *assembler) realMode(smp bool) {
	a.setMode(Mode16)
	a.cli()
	a.xor16(regAX, regAX)
	a.movSegAX(3) // ds
	a.movSegAX(0) // es
	a.movSegAX(2) // ss
	a.movImm16(regSP, StackTop)
	if smp {
		a.apWaitForPageTables()
	}
	a.record(RecStage, imm(StageRealMode))
	a.enterProtectedMode("pm32")
}

// apWaitForPageTables emits the multiprocessor variants' real-mode fork:
// vCPU 0 (APIC id 0 in CPUID leaf 1 EBX[31:24]) goes on at "bsp16";
// every other vCPU spins until vCPU 0 sets ReadyFlag, then enters
// protected mode at "ap32", skipping the page-table set-up.
func (a *assembler) apWaitForPageTables() {
	a.movImm32(regAX, 1)
	a.cpuid()
	a.shrImm32(regBX, 24)
	a.test32(regBX, regBX)
	a.jcc8(ccE, "jz", "bsp16")
	a.label("apwait")
	a.pause()
	a.cmpMem16Zero(ReadyFlag)
	a.jcc8(ccE, "jz", "apwait")
	a.enterProtectedMode("ap32")
	a.label("bsp16")
}

// enterProtectedMode emits the switch from real to protected mode: load
// the GDT, set CR0.PE and jump far to the 32-bit code at label.
func (a *assembler) enterProtectedMode(label string) {
	a.lgdt16("gdtr")
	a.movCR(0, true)
	a.orEAXImm(1) // CR0.PE
	a.movCR(0, false)
	a.jmpFar(selCode32, label)
}

// protectedMode emits the 32-bit code: vCPU 0 reports the stage and
// builds the identity page tables (releasing the other vCPUs of the
// multiprocessor variants, which join at "ap32"), then every vCPU
// enables paging and enters long mode.
func (a *assembler) protectedMode(smp bool) {
	a.setMode(Mode32)
	a.label("pm32")
	a.loadDataSegments32()
	a.record(RecStage, imm(StageProtected))
	a.identityPageTables()
	if smp {
		a.movMemImm32(ReadyFlag, 1)
		a.jmp8("paging")
		a.label("ap32")
		a.loadDataSegments32()
		a.label("paging")
	}
	a.enterLongMode(smp)
}

// loadDataSegments32 emits the protected-mode load of the flat data
// selector into DS, ES and SS, and of the stack pointer.
func (a *assembler) loadDataSegments32() {
	a.movImm16(regAX, selData)
	a.movSegAX(3)
	a.movSegAX(0)
	a.movSegAX(2)
	a.movImm32(regSP, StackTop)
}

// identityPageTables emits the code that builds the page tables at
// PageTables: a PML4 and a PDPT with one entry each, and a PD of 512
// 2 MiB pages mapping the first GiB to itself.
func (a *assembler) identityPageTables() {
	// Zero PML4, PDPT, PD.
	a.movImm32(regDI, PageTables)
	a.xor32(regAX, regAX)
	a.movImm32(regCX, 3*4096/4)
	a.repStosd()
	a.movMemImm32(PageTables, PageTables+0x1000|3)        // PML4[0] -> PDPT, P|RW
	a.movMemImm32(PageTables+0x1000, PageTables+0x2000|3) // PDPT[0] -> PD
	// PD: 512 2 MiB pages, identity, P|RW|PS.
	a.movImm32(regDI, PageTables+0x2000)
	a.movImm32(regAX, 0x83)
	a.movImm32(regCX, 512)
	a.label("pdloop")
	a.storeDI(regAX)
	a.addImm32(regAX, 0x200000)
	a.addImm8(regDI, 8)
	a.loop("pdloop")
}

// enterLongMode emits the switch from protected to long mode: CR4.PAE
// (and CR4.OSFXSR for the multiprocessor variants' FPU check), CR3,
// EFER.LME, CR0.PG, and a far jump to the 64-bit code at "lm64".
func (a *assembler) enterLongMode(smp bool) {
	a.movCR(4, true)
	if smp {
		a.orEAXImm(1<<5 | 1<<9) // CR4.PAE, CR4.OSFXSR: SSE for the FPU check
	} else {
		a.orEAXImm(1 << 5) // CR4.PAE
	}
	a.movCR(4, false)
	a.movImm32(regAX, PageTables)
	a.movCR(3, false)
	a.movImm32(regCX, 0xC0000080) // IA32_EFER
	a.rdmsr()
	a.orEAXImm(1 << 8) // LME
	a.wrmsr()
	a.movCR(0, true)
	a.orEAXImm(1 << 31) // CR0.PG
	a.movCR(0, false)
	a.jmpFar(selCode64, "lm64")
}

// longModeEntry emits the start of the 64-bit code at "lm64": the flat
// data selector in DS, ES and SS, and the stack pointer.
func (a *assembler) longModeEntry() {
	a.setMode(Mode64)
	a.label("lm64")
	a.movImm16(regAX, selData)
	a.movSegAX(3)
	a.movSegAX(0)
	a.movSegAX(2)
	a.movRSPImm(StackTop)
}

// longModeBody emits what variant v does in long mode. The
// multiprocessor variants' bodies report for themselves; the others first
// report that long mode was reached. Every body ends in a halt loop (or,
// for VariantTripleFault, in a shutdown before it).
func (a *assembler) longModeBody(v Variant) {
	switch v {
	case VariantCounter:
		a.counter()
	case VariantPingPong:
		a.pingPong()
	case VariantTripleFault:
		a.record(RecStage, imm(StageLong))
		a.tripleFault()
	case VariantProbe:
		a.record(RecStage, imm(StageLong))
		a.probe()
	default:
		a.record(RecStage, imm(StageLong))
		a.standardTests()
	}
}

// tripleFault emits VariantTripleFault's body: report the stage, load an
// empty IDT and execute VMRUN, whose #UD cannot be delivered.
func (a *assembler) tripleFault() {
	a.record(RecStage, imm(StageTripleFault))
	a.lidt64("nullidt")
	a.vmrun()
	a.haltLoop()
}

// probe emits VariantProbe's body: announce the probe, read ProbeAddress
// (an EPT violation) and, should the read return, report what it read.
func (a *assembler) probe() {
	a.record(RecProbe, imm(ProbeAddress))
	a.loadAbs64(ProbeAddress)
	a.mov32(regSI, regAX)
	a.record(RecProbeSurvived, reg(regSI))
	a.record(RecDone)
	a.haltLoop()
}

// standardTests emits VariantStandard's body: the CPUID report, the
// memory test and the CPUID benchmark, then done.
func (a *assembler) standardTests() {
	a.reportCPUIDLeaves(0, 1)
	a.memoryTest()
	a.cpuidBenchmark()
	a.record(RecDone)
	a.haltLoop()
}

// reportCPUIDLeaves emits a RecCPUID record of each leaf (subleaf 0).
func (a *assembler) reportCPUIDLeaves(leaves ...uint32) {
	for _, leaf := range leaves {
		a.movImm32(regAX, leaf)
		a.xor32(regCX, regCX)
		a.cpuid()
		a.mov32(regSI, regAX)
		a.mov32(regDI, regDX)
		a.record(RecCPUID, imm(leaf), reg(regSI), reg(regBX), reg(regCX), reg(regDI))
	}
}

// memoryTest emits the memory test: write address^MemTestPattern to
// every dword of MemTestStart..MemTestEnd, read it all back, and report
// the sum of what was read and the number of mismatches.
func (a *assembler) memoryTest() {
	a.movImm32(regDI, MemTestStart)
	a.label("wloop")
	a.mov32(regAX, regDI)
	a.xorEAXImm(MemTestPattern)
	a.storeDI(regAX)
	a.addImm8(regDI, 4)
	a.cmpImm32(regDI, MemTestEnd)
	a.jcc8(ccB, "jb", "wloop")
	a.movImm32(regDI, MemTestStart)
	a.xor32(regBX, regBX) // checksum
	a.xor32(regBP, regBP) // mismatches
	a.label("rloop")
	a.loadDI(regAX)
	a.add32(regBX, regAX)
	a.mov32(regCX, regDI)
	a.xorImm32(regCX, MemTestPattern)
	a.cmp32(regAX, regCX)
	a.jcc8(ccE, "jz", "rok")
	a.inc32(regBP)
	a.label("rok")
	a.addImm8(regDI, 4)
	a.cmpImm32(regDI, MemTestEnd)
	a.jcc8(ccB, "jb", "rloop")
	a.record(RecMemTest, imm(MemTestEnd-MemTestStart), reg(regBX), reg(regBP))
}

// cpuidBenchmark emits the CPUID benchmark: CPUIDBenchIterations CPUIDs
// (leaf 0) between two RDTSCs, reporting the 64-bit TSC delta.
func (a *assembler) cpuidBenchmark() {
	a.rdtsc()
	a.mov32(regSI, regAX)
	a.mov32(regDI, regDX)
	a.movImm32(regBP, CPUIDBenchIterations)
	a.label("bloop")
	a.xor32(regAX, regAX)
	a.xor32(regCX, regCX)
	a.cpuid()
	a.dec32(regBP)
	a.jcc8(ccNE, "jnz", "bloop")
	a.rdtsc()
	a.shl64Imm(regDX, 32)
	a.or64(regAX, regDX)
	a.shl64Imm(regDI, 32)
	a.or64(regSI, regDI)
	a.sub64(regAX, regSI)
	a.mov64(regBX, regAX)
	a.mov32(regSI, regBX)
	a.shr64Imm(regBX, 32)
	a.record(RecCPUIDBench, imm(CPUIDBenchIterations), reg(regSI), reg(regBX))
}

// haltLoop emits the final "halt" loop: HLT forever (an interrupt or
// NMI only resumes the loop).
func (a *assembler) haltLoop() {
	a.label("halt")
	a.hlt()
	a.jmp8("halt")
}

// dataSection emits the data after the code: the flat GDT (null, 32-bit
// code, data, 64-bit code) and its GDTR, an empty IDTR, and for
// VariantPingPong its IDT.
func (a *assembler) dataSection(v Variant) {
	a.align(8)
	a.label("gdt")
	a.data(make([]byte, 8)...)                             // null
	a.data(0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00) // 0x08: 32-bit code, flat
	a.data(0xFF, 0xFF, 0x00, 0x00, 0x00, 0x92, 0xCF, 0x00) // 0x10: data, flat
	a.data(0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xAF, 0x00) // 0x18: 64-bit code (L=1, D=0)
	gdtAddr := a.org + uint32(a.labels["gdt"])
	a.label("gdtr")
	a.data(le16(4*8 - 1)...)
	a.data(le32(gdtAddr)...)
	a.align(8)
	a.label("nullidt")
	a.data(make([]byte, 10)...) // limit 0, base 0
	if v == VariantPingPong {
		a.pingPongIDT()
	}
}

// counter emits the 64-bit body of VariantCounter. ESI holds the APIC id
// throughout; only vCPU 0 reports.
func (a *assembler) counter() {
	a.movImm32(regAX, 1)
	a.cpuid()
	a.mov32(regSI, regBX)
	a.shrImm32(regSI, 24)
	a.test32(regSI, regSI)
	a.jcc8(ccNE, "jnz", "count")
	a.startAPs()
	a.record(RecStage, imm(StageLong))
	a.stashTSC()
	a.label("count")
	a.test32(regSI, regSI)
	a.jcc8(ccE, "jz", "countbsp")
	a.readDeviceID()
	a.label("countbsp")
	a.loadAbs64(ParamIterations)
	a.mov32(regBP, regAX)
	a.movImm32(regDI, CounterLock)
	a.test32(regBP, regBP)
	a.jcc8(ccE, "jz", "counted")
	a.label("lock")
	a.movImm32(regAX, 1)
	a.xchgDI(regAX)
	a.test32(regAX, regAX)
	a.jcc8(ccE, "jz", "locked")
	a.pause()
	a.jmp8("lock")
	a.label("locked")
	a.incDIDisp8(CounterValue - CounterLock)
	a.movDIImm32(0)
	a.dec32(regBP)
	a.jcc8(ccNE, "jnz", "lock")
	a.label("counted")
	a.test32(regSI, regSI)
	a.jcc8(ccE, "jz", "countedbsp")
	a.storeFPU()
	a.label("countedbsp")
	a.movImm32(regDI, CounterDone)
	a.lockIncDI()
	a.test32(regSI, regSI)
	a.jcc8(ccE, "jz", "wait")
	a.label("aphalt")
	a.hlt()
	a.jmp8("aphalt")
	// vCPU 0: wait for everyone, then report.
	a.label("wait")
	a.pause()
	a.loadAbs64(ParamVCPUs)
	a.mov32(regCX, regAX)
	a.loadAbs64(CounterDone)
	a.cmp32(regAX, regCX)
	a.jcc8(ccB, "jb", "wait")
	a.tscSinceStash()
	a.loadAbs64(CounterValue)
	a.mov32(regSI, regAX)
	a.loadAbs64(ParamIterations)
	a.mov32(regDI, regAX)
	a.loadAbs64(ParamVCPUs)
	a.mov32(regCX, regAX)
	a.record(RecCounter, reg(regSI), reg(regDI), reg(regCX), reg(regBP), reg(regBX))
	a.reportAPDevice()
	a.record(RecDone)
	a.haltLoop()
}

// pingPong emits the 64-bit body of VariantPingPong (see there).
// ESI holds the APIC id, EBP the round.
func (a *assembler) pingPong() {
	a.movImm32(regAX, 1)
	a.cpuid()
	a.mov32(regSI, regBX)
	a.shrImm32(regSI, 24)
	a.lidt64("idtr")
	a.test32(regSI, regSI)
	a.jcc8(ccNE, "jnz", "pong")
	a.jmp32("ping0")
	// vCPU 1: ring the device's doorbell and wait for its interrupt,
	// then answer every IPI with one.
	a.label("pong")
	a.readDeviceID()
	a.movRSPImm(PingStackTop1)
	a.sti()
	a.movImm32(regAX, 1) // this vCPU's APIC id
	a.movImm32(regDI, MMIOBase+MMIODoorbell)
	a.storeDI(regAX)
	a.movImm32(regBP, 1)
	a.haltUntil("devirqwait", PingDevIRQ, regBP)
	a.xor32(regBP, regBP)
	a.label("pongloop")
	a.inc32(regBP)
	a.haltUntil("pongwait", PingRecv1, regBP)
	a.storeFPU()
	a.sendIPI(0, PingVector0)
	a.loadAbs64(ParamIterations)
	a.cmp32(regBP, regAX)
	a.jcc8(ccB, "jb", "pongloop")
	a.cli()
	a.label("ponghalt")
	a.hlt()
	a.jmp8("ponghalt")

	// vCPU 0: ping, wait for the answer, and report.
	a.label("ping0")
	a.startAPs()
	a.record(RecStage, imm(StageLong))
	a.stashTSC()
	a.sti()
	a.xor32(regBP, regBP)
	a.label("ping")
	a.inc32(regBP)
	a.sendIPI(1, PingVector1)
	a.haltUntil("pingwait", PingRecv0, regBP)
	a.loadAbs64(ParamIterations)
	a.cmp32(regBP, regAX)
	a.jcc8(ccB, "jb", "ping")
	a.cli()
	a.tscSinceStash()
	a.loadAbs64(PingRecv1)
	a.mov32(regSI, regAX)
	a.loadAbs64(PingRecv0)
	a.add32(regSI, regAX)
	a.loadAbs64(ParamIterations)
	a.mov32(regDI, regAX)
	a.movImm32(regCX, 2)
	a.record(RecCounter, reg(regSI), reg(regDI), reg(regCX), reg(regBP), reg(regBX))
	a.reportAPDevice()
	a.loadAbs64(PingDevIRQ)
	a.mov32(regSI, regAX)
	a.record(RecDeviceIRQ, reg(regSI))
	a.record(RecDone)
	a.label("pinghalt")
	a.hlt()
	a.jmp8("pinghalt")

	// The handlers count what they receive.
	for i, recv := range []uint32{PingRecv0, PingRecv1, PingDevIRQ} {
		a.label(fmt.Sprintf("ipi%d", i))
		a.pushRDI()
		a.movImm32(regDI, recv)
		a.lockIncDI()
		a.popRDI()
		a.iretq()
	}
}

// startAPs is the BSP's part of the multiprocessor start-up (Intel SDM
// Vol. 3A, 9.4.4.1 "Typical BSP Initialization Sequence"): an INIT IPI
// and a startup IPI at LoadAddress to each of the vCPUs 1..ParamVCPUs-1,
// through the x2APIC ICR. A hyperkernel that starts every vCPU at once
// ignores them, as a processor ignores SIPIs outside wait-for-SIPI.
func (a *assembler) startAPs() {
	a.movImm32(regBP, 1)
	a.label("sipiloop")
	a.loadAbs64(ParamVCPUs)
	a.cmp32(regBP, regAX)
	a.jcc8(ccAE, "jnb", "sipidone")
	a.movImm32(regCX, MSRx2APICICR)
	a.mov32(regDX, regBP)
	a.movImm32(regAX, ICRInit)
	a.wrmsr()
	a.movImm32(regCX, MSRx2APICICR)
	a.mov32(regDX, regBP)
	a.movImm32(regAX, ICRStartup|LoadAddress>>12)
	a.wrmsr()
	a.inc32(regBP)
	a.jmp8("sipiloop")
	a.label("sipidone")
}

// stashTSC stores the TSC at TSCStash: vCPU 0 starts timing.
func (a *assembler) stashTSC() {
	a.rdtsc()
	a.movImm32(regDI, TSCStash)
	a.storeDI(regAX)
	a.movImm32(regDI, TSCStash+4)
	a.storeDI(regDX)
}

// tscSinceStash leaves the TSC ticks since stashTSC in EBP (low half)
// and EBX (high half).
func (a *assembler) tscSinceStash() {
	a.rdtsc()
	a.shl64Imm(regDX, 32)
	a.or64(regAX, regDX)
	a.mov64(regBX, regAX) // end TSC
	a.loadAbs64(TSCStash + 4)
	a.mov32(regDX, regAX)
	a.loadAbs64(TSCStash)
	a.shl64Imm(regDX, 32)
	a.or64(regAX, regDX) // start TSC
	a.sub64(regBX, regAX)
	a.mov32(regBP, regBX)
	a.shr64Imm(regBX, 32)
}

// readDeviceID is an application processor's device accesses, served
// wherever the device lives: it reads DeviceIDPort and the MMIO ID
// register into APDeviceRead and APDeviceRead+4, and writes
// MMIOScratchValue to the MMIO scratch register.
func (a *assembler) readDeviceID() {
	a.movImm16(regDX, DeviceIDPort)
	a.inDXEAX()
	a.movImm32(regDI, APDeviceRead)
	a.storeDI(regAX)
	a.loadAbs64(MMIOBase + MMIOID)
	a.movImm32(regDI, APDeviceRead+4)
	a.storeDI(regAX)
	a.movImm32(regAX, MMIOScratchValue)
	a.movImm32(regDI, MMIOBase+MMIOScratch)
	a.storeDI(regAX)
	a.movImm32(regAX, FPUPattern)
	a.movqXMM0RAX()
}

// storeFPU stores XMM0's low 32 bits at APFPU.
func (a *assembler) storeFPU() {
	a.movqRAXXMM0()
	a.movImm32(regDI, APFPU)
	a.storeDI(regAX)
}

// reportAPDevice has vCPU 0 report what the application processor read
// and, with more than one vCPU, the MMIO scratch register it wrote.
func (a *assembler) reportAPDevice() {
	a.loadAbs64(APDeviceRead)
	a.mov32(regSI, regAX)
	a.loadAbs64(APDeviceRead + 4)
	a.mov32(regDI, regAX)
	a.xor32(regBX, regBX)
	a.loadAbs64(ParamVCPUs)
	a.cmpImm32(regAX, 2)
	a.jcc8(ccB, "jb", "apdevone")
	a.loadAbs64(MMIOBase + MMIOScratch)
	a.mov32(regBX, regAX)
	a.label("apdevone")
	a.loadAbs64(APFPU)
	a.mov32(regCX, regAX)
	a.record(RecAPDevice, reg(regSI), reg(regDI), reg(regBX), reg(regCX))
}

// haltUntil waits, halted, until the dword at addr reaches the value in
// register r: the idle loop of an OS. Interrupts are off while it checks
// and come back on with STI right before HLT, whose one-instruction
// shadow keeps an interrupt from slipping in between (SDM Vol. 2,
// "STI"). Interrupts are on when it returns.
func (a *assembler) haltUntil(label string, addr uint32, r int) {
	a.label(label)
	a.cli()
	a.loadAbs64(addr)
	a.cmp32(regAX, r)
	a.jcc8(ccAE, "jnb", label+"done")
	a.sti()
	a.hlt()
	a.jmp8(label)
	a.label(label + "done")
	a.sti()
}

// sendIPI writes the x2APIC ICR: fixed delivery of vector to the vCPU
// with APIC id dest.
func (a *assembler) sendIPI(dest, vector uint32) {
	a.movImm32(regCX, MSRx2APICICR)
	a.movImm32(regDX, dest)
	a.movImm32(regAX, vector)
	a.wrmsr()
}

// pingPongIDT emits the ping-pong variant's IDT (interrupt gates for
// PingVector0, PingVector1 and PingVectorDevice, Intel SDM Vol. 3A,
// 6.14.1) and its IDTR.
func (a *assembler) pingPongIDT() {
	a.align(16)
	a.label("idt")
	for vec := 0; vec <= PingVectorDevice; vec++ {
		if vec < PingVector0 {
			a.data(make([]byte, 16)...)
			continue
		}
		a.dataAbs16(fmt.Sprintf("ipi%d", vec-PingVector0)) // offset 15:0
		a.data(le16(selCode64)...)
		a.data(0, 0x8E)                // no IST; present, DPL 0, 64-bit interrupt gate
		a.data(make([]byte, 2+4+4)...) // offset 31:16 and 63:32 (the code is below 64 KiB), reserved
	}
	a.align(8)
	a.label("idtr")
	a.data(le16((PingVectorDevice+1)*16 - 1)...)
	a.dataAbs32("idt")
	a.data(0, 0, 0, 0)
}

// Listing returns the image as one instruction a line: offset,
// guest-physical address, mode, bytes and text.
func (im *Image) Listing() string {
	var out []byte
	for _, in := range im.Insts {
		out = fmt.Appendf(out, "%04x %08x %2d  % -24x %s\n", in.Offset, LoadAddress+in.Offset, in.Mode, im.Bytes[in.Offset:in.Offset+in.Len], in.Intel)
	}
	return string(out)
}
