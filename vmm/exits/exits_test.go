package exits

import (
	"strings"
	"testing"

	"github.com/big-iron/big-iron/vmm/vmx"
)

// fakeHost is a host CPUID with recognisable values: "GenuineIntel", max
// basic leaf 0xD, VMX, SMX and MONITOR set in leaf 1, SGX in leaf 7.
func fakeHost(leaf, sub uint32) CPUIDResult {
	switch leaf {
	case 0:
		return CPUIDResult{EAX: 0xD, EBX: 0x756E6547, ECX: 0x6C65746E, EDX: 0x49656E69}
	case 1:
		return CPUIDResult{EAX: 0x306C3, EBX: 0x07100800, ECX: 0x7FFAFBFF, EDX: 0xBFEBFBFF}
	case 4:
		if sub < 4 {
			return CPUIDResult{EAX: 0x1C004121 + sub, EBX: 0x01C0003F, ECX: 0x3F}
		}
		return CPUIDResult{}
	case 7:
		if sub == 0 {
			return CPUIDResult{EAX: 0, EBX: 0x27AB | Leaf7EBXSGX, ECX: Leaf7ECXWAITPKG | 1}
		}
	case 0xD:
		if sub <= 1 {
			return CPUIDResult{EAX: 7 - sub, EBX: 0x340, ECX: 0x340}
		}
	case 0x80000000:
		return CPUIDResult{EAX: 0x80000008}
	case 0x80000001:
		return CPUIDResult{ECX: 0x21, EDX: 0x2C100800}
	case 0x80000008:
		return CPUIDResult{EAX: 0x3027}
	}
	if leaf < 0xD {
		return CPUIDResult{EAX: leaf * 0x111}
	}
	return CPUIDResult{}
}

func newPolicy(t testing.TB) *CPUIDPolicy {
	t.Helper()
	p, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, LAPICKHz: 1_000_000, VCPUs: 4}, fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCPUIDPolicy(t *testing.T) {
	p := newPolicy(t)
	if r := p.Lookup(0, 0, 0); r.EAX != 0x16 || r.EBX != 0x756E6547 {
		t.Errorf("leaf 0 = %+v, want max 0x16 and host vendor", r)
	}
	r := p.Lookup(1, 0, 3)
	if r.ECX&Leaf1ECXVMX != 0 || r.ECX&Leaf1ECXSMX != 0 || r.ECX&Leaf1ECXMonitor != 0 {
		t.Errorf("leaf 1 ECX %#x exposes VMX/SMX/MONITOR", r.ECX)
	}
	if r.ECX&Leaf1ECXHypervisor == 0 {
		t.Errorf("leaf 1 ECX %#x lacks the hypervisor bit", r.ECX)
	}
	if r.EBX>>24 != 3 || r.EBX>>16&0xFF != 4 {
		t.Errorf("leaf 1 EBX %#x: want APIC ID 3, 4 logical CPUs", r.EBX)
	}
	// 0x7FFAFBFF less MONITOR, VMX, SMX, EST, TM2, PDCM and OSXSAVE
	// (the vCPU's CR4, GuestBits), plus hypervisor.
	if r.EAX != 0x306C3 || r.ECX != 0xF7FA7A17 {
		t.Errorf("leaf 1 = %+v: other bits not passed through", r)
	}
	if r := p.Lookup(7, 0, 0); r.EBX&Leaf7EBXSGX != 0 || r.ECX&Leaf7ECXWAITPKG != 0 || r.EBX&0x27AB != 0x27AB {
		t.Errorf("leaf 7 = %+v", r)
	}
	for _, leaf := range []uint32{5, 0xA} {
		if r := p.Lookup(leaf, 0, 0); r != (CPUIDResult{}) {
			t.Errorf("hidden leaf %#x = %+v", leaf, r)
		}
	}
	// Leaf 6 offers only ARAT: the LAPIC timer never stops, so Linux
	// can leave periodic ticks without a broadcast timer.
	if r := p.Lookup(6, 0, 0); r != (CPUIDResult{EAX: Leaf6EAXARAT}) {
		t.Errorf("leaf 6 = %+v, want ARAT alone", r)
	}
	// TSC: crystal * EBX / EAX = TSC Hz exactly.
	r = p.Lookup(0x15, 0, 0)
	if r.ECX == 0 || uint64(r.ECX)*uint64(r.EBX)/uint64(r.EAX) != 2_400_000_000 {
		t.Errorf("leaf 0x15 = %+v does not give 2.4 GHz", r)
	}
	// Linux computes crystal kHz * EBX / EAX in 32 bits: the ratio must
	// be in lowest terms for that not to overflow at real TSC frequencies.
	for _, khz := range []uint32{99_999, 100_000, 999_997, 1_000_000, 2_400_000, 3_000_000, 5_200_000} {
		q, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: khz, VCPUs: 1}, fakeHost)
		if err != nil {
			t.Fatal(err)
		}
		r := q.Lookup(0x15, 0, 0)
		if got := uint32(r.ECX/1000) * r.EBX / r.EAX; got != khz {
			t.Errorf("TSC %d kHz: leaf 0x15 %+v gives %d kHz in Linux's 32-bit arithmetic", khz, r, got)
		}
	}
	if r := p.Lookup(0x16, 0, 0); r.EAX != 2400 || r.EBX != 2400 {
		t.Errorf("leaf 0x16 = %+v", r)
	}
	// Vendor leaf.
	r = p.Lookup(LeafHypervisor, 0, 0)
	var b []byte
	for _, v := range []uint32{r.EBX, r.ECX, r.EDX} {
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	if string(b) != "BigIronBigIr" || r.EAX != LeafHypervisorTime {
		t.Errorf("leaf 0x40000000 = %+v (%q)", r, b)
	}
	if r := p.Lookup(LeafHypervisorTime, 0, 0); r.EAX != 2_400_000 || r.EBX != 1_000_000 {
		t.Errorf("leaf 0x40000010 = %+v", r)
	}
	// Topology.
	if r := p.Lookup(0xB, 1, 2); r.EAX != 2 || r.EBX != 4 || r.EDX != 2 || r.ECX != 0x201 {
		t.Errorf("leaf 0xB/1 = %+v", r)
	}
	if r := p.Lookup(0xB, 0, 2); r.EBX != 1 || r.ECX != 0x100 || r.EDX != 2 {
		t.Errorf("leaf 0xB/0 = %+v", r)
	}
	// Leaf 4 reports VCPUs-1 cores, subleaves past the last cache are 0.
	if r := p.Lookup(4, 1, 0); r.EAX>>26 != 3 || r.EAX&0x1F != 2 {
		t.Errorf("leaf 4/1 = %+v", r)
	}
	if r := p.Lookup(4, 9, 0); r != (CPUIDResult{}) {
		t.Errorf("leaf 4/9 = %+v", r)
	}
	// Above the max basic leaf: the max basic leaf's values.
	if r := p.Lookup(0x20, 0, 0); r != p.Lookup(0x16, 0, 0) {
		t.Errorf("leaf 0x20 = %+v", r)
	}
	if r := p.Lookup(0x80000008, 0, 0); r.EAX != 0x3027 {
		t.Errorf("leaf 0x80000008 = %+v", r)
	}
	if r := p.Lookup(0x80000009, 0, 0); r != (CPUIDResult{}) {
		t.Errorf("leaf 0x80000009 = %+v", r)
	}
	if r := p.Lookup(0x4000_0005, 0, 0); r != (CPUIDResult{}) {
		t.Errorf("unknown hypervisor leaf = %+v", r)
	}
	// Subleaf ignored for a non-indexed leaf.
	if p.Lookup(1, 7, 3) != p.Lookup(1, 0, 3) {
		t.Error("leaf 1 depends on subleaf")
	}
}

func TestCPUIDPolicyConfigErrors(t *testing.T) {
	for _, cfg := range []CPUIDConfig{{}, {TSCKHz: 1, MaxBasicLeaf: 0xD}, {TSCKHz: 1, CrystalHz: 1500}, {TSCKHz: 1, VCPUs: 300}} {
		if _, err := NewCPUIDPolicy(cfg, fakeHost); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// recorder is a port device that remembers writes and answers reads with
// port+size.
type recorder struct {
	lastPort  uint16
	lastSize  uint8
	lastValue uint32
	writes    int
}

func (r *recorder) In(port uint16, size uint8) uint32 { return 0xABCD0000 | uint32(port) }
func (r *recorder) Out(port uint16, size uint8, v uint32) {
	r.lastPort, r.lastSize, r.lastValue = port, size, v
	r.writes++
}

func TestIOBus(t *testing.T) {
	b := NewIOBus()
	com1 := &recorder{}
	if err := b.Register(0x3F8, 8, "com1", com1); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0x3FF, 2, "clash", &recorder{}); err == nil || !strings.Contains(err.Error(), "com1") {
		t.Errorf("overlap: %v", err)
	}
	if err := b.Register(0xFFFF, 2, "wrap", &recorder{}); err == nil {
		t.Error("range past 0xFFFF accepted")
	}
	if err := b.Register(0x80, 0, "empty", &recorder{}); err == nil {
		t.Error("empty range accepted")
	}
	if got := b.In(0x3F9, 1); got != 0xF9 {
		t.Errorf("In(0x3F9,1) = %#x", got)
	}
	if got := b.In(0x3F8, 4); got != 0xABCD03F8 {
		t.Errorf("In(0x3F8,4) = %#x", got)
	}
	b.Out(0x3FA, 2, 0x12345678)
	if com1.lastPort != 0x3FA || com1.lastSize != 2 || com1.lastValue != 0x5678 {
		t.Errorf("Out reached %+v", com1)
	}
	if got := b.In(0x60, 1); got != 0xFF {
		t.Errorf("unknown port read %#x, want 0xFF", got)
	}
	if got := b.In(0x60, 2); got != 0xFFFF {
		t.Errorf("unknown port read %#x, want 0xFFFF", got)
	}
	b.Out(0x61, 1, 0)
	b.In(0x3F8, 3)
	if s := b.Stats(); s.UnknownReads != 2 || s.UnknownWrites != 1 || s.BadSize != 1 {
		t.Errorf("stats %+v", s)
	}
	if b.Device(0x3FC) != "com1" || b.Device(0x3F7) != "" {
		t.Error("Device names wrong")
	}
}

// msrStore is a per-vCPU MSR with a read-only neighbour.
type msrStore struct{ v [4]uint64 }

func (m *msrStore) ReadMSR(vcpu int, msr uint32) (uint64, bool) {
	if vcpu < 0 || vcpu >= len(m.v) {
		return 0, false
	}
	return m.v[vcpu] + uint64(msr), true
}
func (m *msrStore) WriteMSR(vcpu int, msr uint32, v uint64) bool {
	if msr == 0x11 || vcpu < 0 || vcpu >= len(m.v) {
		return false
	}
	m.v[vcpu] = v
	return true
}

func TestMSRTable(t *testing.T) {
	tab := NewMSRTable()
	s := &msrStore{}
	if err := tab.Register(0x10, 0x11, "tsc", s); err != nil {
		t.Fatal(err)
	}
	if err := tab.Register(0xC0000080, 0xC0000080, "efer", s); err != nil {
		t.Fatal(err)
	}
	if err := tab.Register(0x1B, 0x1B, "apicbase", s); err != nil {
		t.Fatal(err)
	}
	if err := tab.Register(0x11, 0x20, "clash", s); err == nil || !strings.Contains(err.Error(), "tsc") {
		t.Errorf("overlap: %v", err)
	}
	if err := tab.Register(0x5, 0x4, "empty", s); err == nil {
		t.Error("empty range accepted")
	}
	if !tab.Write(1, 0x10, 100) {
		t.Fatal("write refused")
	}
	if v, ok := tab.Read(1, 0x10); !ok || v != 0x74 {
		t.Errorf("read %d %v", v, ok)
	}
	if tab.Write(1, 0x11, 5) {
		t.Error("read-only write accepted")
	}
	for _, msr := range []uint32{0, 0xF, 0x12, 0x1A, 0x1C, 0xC0000081, 0xFFFFFFFF} {
		if _, ok := tab.Read(0, msr); ok {
			t.Errorf("unknown MSR %#x readable", msr)
		}
	}
	if tab.Name(0x1B) != "apicbase" || tab.Name(0x1C) != "" {
		t.Error("Name wrong")
	}
}

func newDispatcher(t testing.TB) (*Dispatcher, *recorder, *msrStore) {
	t.Helper()
	bus := NewIOBus()
	dbg := &recorder{}
	if err := bus.Register(0xE9, 1, "debugcon", dbg); err != nil {
		t.Fatal(err)
	}
	tab := NewMSRTable()
	s := &msrStore{}
	if err := tab.Register(0x10, 0x11, "tsc", s); err != nil {
		t.Fatal(err)
	}
	return &Dispatcher{CPUID: newPolicy(t), IO: bus, MSR: tab, VCPU: 2, APICID: 2}, dbg, s
}

func TestDispatch(t *testing.T) {
	d, dbg, s := newDispatcher(t)
	regs := vmx.GuestRegs{RAX: 1, RCX: 0, RBX: 0xDEAD}
	a := d.Handle(&Exit{Reason: uint64(vmx.ExitCPUID), InstructionLength: 2}, &regs)
	if a.Kind != ActionResume || a.AdvanceRIP != 2 || regs.RCX&Leaf1ECXHypervisor == 0 || regs.RBX>>24 != 2 {
		t.Errorf("CPUID: %+v regs %+v", a, regs)
	}
	// OUT DX, AL to 0xE9.
	regs.RAX = 0x1234_5641
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0xE9 << 16, InstructionLength: 1}, &regs)
	if a.Kind != ActionResume || dbg.lastValue != 0x41 || dbg.writes != 1 {
		t.Errorf("OUT: %+v %+v", a, dbg)
	}
	// IN AX, DX from an unknown port keeps RAX bits 63:16.
	regs.RAX = 0xFFFF_0000_1111_2222
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0x70<<16 | 1<<3 | 1, InstructionLength: 2}, &regs)
	if a.Kind != ActionResume || regs.RAX != 0xFFFF_0000_1111_FFFF {
		t.Errorf("IN AX: %+v RAX %#x", a, regs.RAX)
	}
	// IN EAX zero-extends.
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0x70<<16 | 1<<3 | 3, InstructionLength: 1}, &regs)
	if regs.RAX != 0xFFFFFFFF {
		t.Errorf("IN EAX: RAX %#x", regs.RAX)
	}
	// String I/O is left to the caller.
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0xE9<<16 | 1<<4}, &regs)
	if a.Kind != ActionUnhandled || !a.IO.String {
		t.Errorf("OUTS: %+v", a)
	}
	// WRMSR then RDMSR.
	regs.RCX, regs.RDX, regs.RAX = 0x10, 0x1, 0x2
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitWRMSR), InstructionLength: 2}, &regs)
	if a.Kind != ActionResume || s.v[2] != 0x1_0000_0002 {
		t.Errorf("WRMSR: %+v %#x", a, s.v[2])
	}
	regs.RAX, regs.RDX = 0, 0
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitRDMSR), InstructionLength: 2}, &regs)
	if a.Kind != ActionResume || regs.RDX != 1 || regs.RAX != 0x12 {
		t.Errorf("RDMSR: %+v RDX %#x RAX %#x", a, regs.RDX, regs.RAX)
	}
	// Unknown MSR: #GP, RIP not advanced.
	regs.RCX = 0x1234
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitRDMSR), InstructionLength: 2}, &regs)
	if a.Kind != ActionInject || a.Inject != vmx.InjectGP() || a.AdvanceRIP != 0 {
		t.Errorf("RDMSR unknown: %+v", a)
	}
	if a := d.Handle(&Exit{Reason: uint64(vmx.ExitHLT), InstructionLength: 1}, &regs); a.Kind != ActionHalt || a.AdvanceRIP != 1 {
		t.Errorf("HLT: %+v", a)
	}
	if a := d.Handle(&Exit{Reason: uint64(vmx.ExitTripleFault)}, &regs); a.Kind != ActionShutdown {
		t.Errorf("triple fault: %+v", a)
	}
	a = d.Handle(&Exit{Reason: uint64(vmx.ExitEPTViolation), Qualification: 2 | 1<<7 | 1<<8, GuestPhysical: 0x4000_0000}, &regs)
	if a.Kind != ActionEPTViolation || !a.EPT.Write || !a.EPT.Translated {
		t.Errorf("EPT: %+v", a)
	}
	if a := d.Handle(&Exit{Reason: 1<<31 | uint64(vmx.ExitInvalidGuestState)}, &regs); a.Kind != ActionEntryFailed || a.Reason != vmx.ExitInvalidGuestState {
		t.Errorf("entry failure: %+v", a)
	}
	if d.Stats.Count(vmx.ExitIOInstruction) != 4 || d.Stats.Count(vmx.ExitCPUID) != 1 || d.Stats.Total() != 12 {
		t.Errorf("stats:\n%v", &d.Stats)
	}
	if !strings.Contains(d.Stats.String(), "I/O instruction") {
		t.Errorf("stats report:\n%v", &d.Stats)
	}
}

// The hyperkernel walks a guest's page tables with four levels, so a guest
// that hides unvirtualized features never sees 5-level paging offered.
func TestLA57Hidden(t *testing.T) {
	host := func(leaf, sub uint32) CPUIDResult {
		if leaf == 0 {
			return CPUIDResult{EAX: 7}
		}
		return CPUIDResult{EAX: 0, EBX: ^uint32(0), ECX: ^uint32(0), EDX: ^uint32(0)}
	}
	for _, hide := range []bool{false, true} {
		p, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 1000, VCPUs: 1, HideUnvirtualized: hide}, host)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Lookup(7, 0, 0).ECX&(1<<16) != 0; got == hide {
			t.Errorf("HideUnvirtualized=%v: LA57 offered=%v", hide, got)
		}
	}
}

// PKS is not emulated (IA32_PKRS #GPs), so a guest that hides
// unvirtualized features is not offered it.
func TestPKSHidden(t *testing.T) {
	host := func(leaf, sub uint32) CPUIDResult {
		if leaf == 0 {
			return CPUIDResult{EAX: 7}
		}
		return CPUIDResult{EBX: ^uint32(0), ECX: ^uint32(0), EDX: ^uint32(0)}
	}
	for _, hide := range []bool{false, true} {
		p, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 1000, VCPUs: 1, HideUnvirtualized: hide}, host)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Lookup(7, 0, 0).ECX&(1<<31) != 0; got == hide {
			t.Errorf("HideUnvirtualized=%v: PKS offered=%v", hide, got)
		}
	}
}

// CPUID's APIC flag follows the vCPU's IA32_APIC_BASE.EN, in leaf 1 and
// in AMD's leaf 0x80000001.
func TestCPUIDAPICFlagFollowsEnable(t *testing.T) {
	host := func(leaf, sub uint32) CPUIDResult {
		switch leaf {
		case 0:
			return CPUIDResult{EAX: 7}
		case LeafExtMax:
			return CPUIDResult{EAX: LeafExtProcFeatures}
		}
		return CPUIDResult{EDX: Leaf1EDXAPIC}
	}
	p, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 1000, VCPUs: 1}, host)
	if err != nil {
		t.Fatal(err)
	}
	enabled := true
	d := Dispatcher{CPUID: p, IO: NewIOBus(), MSR: NewMSRTable(), APICEnabled: func() bool { return enabled }}
	for _, en := range []bool{true, false, true} {
		enabled = en
		for _, leaf := range []uint64{LeafFeatures, LeafExtProcFeatures} {
			regs := vmx.GuestRegs{RAX: leaf}
			d.Handle(&Exit{Reason: uint64(vmx.ExitCPUID), InstructionLength: 2}, &regs)
			if got := regs.RDX&Leaf1EDXAPIC != 0; got != en {
				t.Errorf("leaf %#x with the APIC enabled=%v: APIC flag %v", leaf, en, got)
			}
		}
	}
}

// A guest's VMX instructions raise #UD in the guest, RIP not advanced;
// none is left unhandled (which would stop the VM).
func TestVMXInstructionsRaiseUD(t *testing.T) {
	d, _, _ := newDispatcher(t)
	var regs vmx.GuestRegs
	for _, r := range []vmx.ExitReason{vmx.ExitVMCALL, vmx.ExitVMCLEAR, vmx.ExitVMLAUNCH, vmx.ExitVMPTRLD,
		vmx.ExitVMPTRST, vmx.ExitVMREAD, vmx.ExitVMRESUME, vmx.ExitVMWRITE, vmx.ExitVMXOFF, vmx.ExitVMXON,
		vmx.ExitINVEPT, vmx.ExitINVVPID, vmx.ExitVMFUNC} {
		a := d.Handle(&Exit{Reason: uint64(r), InstructionLength: 3}, &regs)
		if a.Kind != ActionInject || a.Inject != vmx.InjectUD() || a.AdvanceRIP != 0 {
			t.Errorf("%v: %+v, want #UD without advancing RIP", r, a)
		}
	}
}

// XSETBV sets the guest's XCR0 within what CPUID offers, or raises #GP
// (#UD without XSAVE), RIP advanced only on success; CPUID's XSAVE sizes
// and OSXSAVE follow the vCPU.
func TestXSETBV(t *testing.T) {
	cpl, cr4 := 0, uint64(1<<18)
	d := Dispatcher{CPUID: mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000}, xsaveHost), IO: NewIOBus(), MSR: NewMSRTable(),
		CPL: func() int { return cpl }, CR4: func() uint64 { return cr4 }}
	xsetbv := func(regs *vmx.GuestRegs, ecx uint64, v uint64) Action {
		regs.RCX, regs.RAX, regs.RDX = ecx, v&0xFFFFFFFF|0xDEAD<<32, v>>32
		return d.Handle(&Exit{Reason: uint64(vmx.ExitXSETBV), InstructionLength: 3}, regs)
	}
	regs := vmx.GuestRegs{XCR0: 1}
	if a := xsetbv(&regs, 0, 7); a.Kind != ActionResume || a.AdvanceRIP != 3 || regs.XCR0 != 7 {
		t.Fatalf("XSETBV 7: %+v, XCR0 %#x; want it set and RIP advanced", a, regs.XCR0)
	}
	cpuid := func(leaf, sub uint64) vmx.GuestRegs {
		r := regs
		r.RAX, r.RCX = leaf, sub
		d.Handle(&Exit{Reason: uint64(vmx.ExitCPUID), InstructionLength: 2}, &r)
		return r
	}
	if r := cpuid(0xD, 0); r.RBX != 832 || r.RAX != 7 {
		t.Errorf("CPUID 0xD/0 with XCR0 7: EAX %#x EBX %d, want 7 and 832", r.RAX, r.RBX)
	}
	if r := cpuid(1, 0); r.RCX&(1<<27) == 0 {
		t.Errorf("CPUID 1 ECX %#x with CR4.OSXSAVE: want OSXSAVE", r.RCX)
	}
	cr4 = 0
	if r := cpuid(1, 0); r.RCX&(1<<27) != 0 {
		t.Errorf("CPUID 1 ECX %#x without CR4.OSXSAVE: want no OSXSAVE", r.RCX)
	}
	for _, c := range []struct {
		name string
		ecx  uint64
		v    uint64
		cpl  int
	}{
		{"XCR1", 1, 7, 0}, {"x87 off", 0, 6, 0}, {"AVX-512", 0, 0xE7, 0}, {"ring 3", 0, 3, 3},
	} {
		cpl = c.cpl
		before := regs.XCR0
		if a := xsetbv(&regs, c.ecx, c.v); a.Kind != ActionInject || a.Inject != vmx.InjectGP() || a.AdvanceRIP != 0 || regs.XCR0 != before {
			t.Errorf("%s: %+v, XCR0 %#x; want #GP and XCR0 unchanged", c.name, a, regs.XCR0)
		}
	}
	cpl = 0
	noXSAVE := vmx.GuestRegs{}
	if a := xsetbv(&noXSAVE, 0, 3); a.Kind != ActionInject || a.Inject != vmx.InjectUD() || noXSAVE.XCR0 != 0 {
		t.Errorf("XSETBV without an XSAVE area: %+v, want #UD", a)
	}
}

func TestDispatchAllocs(t *testing.T) {
	d, _, _ := newDispatcher(t)
	regs := vmx.GuestRegs{}
	exits := []Exit{
		{Reason: uint64(vmx.ExitCPUID), InstructionLength: 2},
		{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0xE9 << 16, InstructionLength: 1},
		{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0x70<<16 | 1<<3, InstructionLength: 1},
		{Reason: uint64(vmx.ExitRDMSR), InstructionLength: 2},
		{Reason: uint64(vmx.ExitWRMSR), InstructionLength: 2},
		{Reason: uint64(vmx.ExitEPTViolation), Qualification: 3},
		{Reason: uint64(vmx.ExitXSETBV), InstructionLength: 3},
	}
	for _, e := range exits {
		e := e
		if n := testing.AllocsPerRun(1000, func() {
			regs.RAX, regs.RCX = 1, 0x10
			d.Handle(&e, &regs)
		}); n != 0 {
			t.Errorf("%v: %v allocs per exit", vmx.ExitReason(e.Reason), n)
		}
	}
}

func BenchmarkDispatchCPUID(b *testing.B) {
	d, _, _ := newDispatcher(b)
	regs := vmx.GuestRegs{}
	e := Exit{Reason: uint64(vmx.ExitCPUID), InstructionLength: 2}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		regs.RAX, regs.RCX = uint64(i&0xF), 0
		d.Handle(&e, &regs)
	}
}

func BenchmarkDispatchOUT(b *testing.B) {
	d, _, _ := newDispatcher(b)
	regs := vmx.GuestRegs{}
	e := Exit{Reason: uint64(vmx.ExitIOInstruction), Qualification: 0xE9 << 16, InstructionLength: 1}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Handle(&e, &regs)
	}
}

func FuzzIOBus(f *testing.F) {
	f.Add(uint16(0xE9), uint8(1), uint32(0x41), true)
	f.Add(uint16(0xFFFF), uint8(4), uint32(0), false)
	f.Add(uint16(0x3F8), uint8(3), uint32(7), true)
	b := NewIOBus()
	rec := &recorder{}
	if err := b.Register(0x3F8, 8, "com1", rec); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, port uint16, size uint8, v uint32, in bool) {
		if in {
			got := b.In(port, size)
			if validSize(size) && got&^sizeMask(size) != 0 {
				t.Fatalf("In(%#x,%d) = %#x exceeds size", port, size, got)
			}
		} else {
			b.Out(port, size, v)
			if rec.writes > 0 && rec.lastValue&^sizeMask(rec.lastSize) != 0 {
				t.Fatalf("device saw %#x for size %d", rec.lastValue, rec.lastSize)
			}
		}
	})
}

func FuzzMSRTable(f *testing.F) {
	f.Add(uint32(0x10), uint64(1), 0, true)
	f.Add(uint32(0xFFFFFFFF), uint64(0), -1, false)
	tab := NewMSRTable()
	s := &msrStore{}
	for _, r := range [][2]uint32{{0x10, 0x11}, {0x1B, 0x1B}, {0xC0000080, 0xC0000084}, {0xFFFFFFF0, 0xFFFFFFFF}} {
		if err := tab.Register(r[0], r[1], "r", s); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, msr uint32, v uint64, vcpu int, write bool) {
		claimed := tab.Name(msr) != ""
		if write {
			ok := tab.Write(vcpu, msr, v)
			if ok && !claimed {
				t.Fatalf("write to unclaimed %#x succeeded", msr)
			}
		} else if _, ok := tab.Read(vcpu, msr); ok && !claimed {
			t.Fatalf("read of unclaimed %#x succeeded", msr)
		}
	})
}

func FuzzDispatch(f *testing.F) {
	for _, r := range []uint64{0, 2, 10, 12, 28, 30, 31, 32, 48, 1<<31 | 33, 0xFFFF, ^uint64(0)} {
		f.Add(r, uint64(0xE9<<16), uint64(1), uint64(0x10), uint32(2))
	}
	d, _, _ := newDispatcher(f)
	f.Fuzz(func(t *testing.T, reason, qual, rax, rcx uint64, ilen uint32) {
		regs := vmx.GuestRegs{RAX: rax, RCX: rcx, RDX: rax >> 7}
		a := d.Handle(&Exit{Reason: reason, Qualification: qual, InstructionLength: ilen}, &regs)
		if a.AdvanceRIP > 15 {
			t.Fatalf("advance %d", a.AdvanceRIP)
		}
		if a.Kind == ActionResume && a.Reason == vmx.ExitCPUID && regs.RAX>>32 != 0 {
			t.Fatalf("CPUID left RAX high bits %#x", regs.RAX)
		}
		_ = a.Kind.String()
	})
}

func TestCPUIDPolicyGuestOptions(t *testing.T) {
	allOnes := func(leaf, sub uint32) CPUIDResult {
		r := fakeHost(leaf, sub)
		switch leaf {
		case 1, 7, 0x80000001:
			r.ECX, r.EDX = 0xFFFFFFFF, 0xFFFFFFFF
			if leaf != 1 {
				r.EBX = 0xFFFFFFFF
			}
			if leaf == 7 && sub == 0 {
				r.EAX = 1 // subleaf 1 exists
			}
			if leaf == 7 && sub == 1 {
				r.EAX = 0xFFFFFFFF
			}
		}
		return r
	}
	plain, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, VCPUs: 2}, allOnes)
	if err != nil {
		t.Fatal(err)
	}
	linux, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, VCPUs: 2, EmulatedAPIC: true, FXSAVEOnly: true, HideUnvirtualized: true}, allOnes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		leaf, sub uint32
		reg       func(CPUIDResult) uint32
		bit       uint32
		plain, on bool
	}{
		{"x2APIC", 1, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 21, true, true},
		{"XSAVE", 1, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 26, true, false},
		{"AVX", 1, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 28, true, false},
		{"SSE4.2", 1, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 20, true, true},
		{"MCE", 1, 0, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 7, true, false},
		{"SSE2", 1, 0, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 26, true, true},
		{"AVX2", 7, 0, func(r CPUIDResult) uint32 { return r.EBX }, 1 << 5, true, false},
		{"INVPCID", 7, 0, func(r CPUIDResult) uint32 { return r.EBX }, 1 << 10, true, false},
		{"BMI2", 7, 0, func(r CPUIDResult) uint32 { return r.EBX }, 1 << 8, true, true},
		{"AVX512F", 7, 0, func(r CPUIDResult) uint32 { return r.EBX }, 1 << 16, false, false},
		{"PKU", 7, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 3, false, false},
		{"VAES", 7, 0, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 9, true, false},
		{"AVX-VNNI", 7, 1, func(r CPUIDResult) uint32 { return r.EAX }, 1 << 4, true, false},
		{"AVX512-BF16", 7, 1, func(r CPUIDResult) uint32 { return r.EAX }, 1 << 5, false, false},
		{"ARCH_CAPABILITIES", 7, 0, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 29, true, false},
		{"RDTSCP", 0x80000001, 0, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 27, true, false},
		{"NX", 0x80000001, 0, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 20, true, true},
		{"XSAVE leaf", 0xD, 0, func(r CPUIDResult) uint32 { return r.EAX }, 1, true, false},
	} {
		if got := c.reg(plain.Lookup(c.leaf, c.sub, 0))&c.bit != 0; got != c.plain {
			t.Errorf("%s without options: %v, want %v", c.name, got, c.plain)
		}
		if got := c.reg(linux.Lookup(c.leaf, c.sub, 1))&c.bit != 0; got != c.on {
			t.Errorf("%s with the guest options: %v, want %v", c.name, got, c.on)
		}
	}
	// With TSCAux, RDTSCP and RDPID are offered again.
	rdpid := func(leaf, sub uint32) CPUIDResult {
		r := fakeHost(leaf, sub)
		if leaf == 7 && sub == 0 {
			r.ECX |= 1 << 22
		}
		return r
	}
	hide, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, HideUnvirtualized: true}, rdpid)
	if err != nil {
		t.Fatal(err)
	}
	aux, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, HideUnvirtualized: true, TSCAux: true}, rdpid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		leaf      uint32
		reg       func(CPUIDResult) uint32
		bit       uint32
		hid, with bool
	}{
		{"RDTSCP", 0x80000001, func(r CPUIDResult) uint32 { return r.EDX }, 1 << 27, false, true},
		{"RDPID", 7, func(r CPUIDResult) uint32 { return r.ECX }, 1 << 22, false, true},
	} {
		if got := c.reg(hide.Lookup(c.leaf, 0, 0))&c.bit != 0; got != c.hid {
			t.Errorf("%s hiding the unvirtualized: %v, want %v", c.name, got, c.hid)
		}
		if got := c.reg(aux.Lookup(c.leaf, 0, 0))&c.bit != 0; got != c.with {
			t.Errorf("%s with TSCAux: %v, want %v", c.name, got, c.with)
		}
	}
	// x2APIC and the TSC-deadline timer appear even where the host has
	// neither (the LAPIC is emulated).
	lapic, _ := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, EmulatedAPIC: true}, func(leaf, sub uint32) CPUIDResult {
		r := fakeHost(leaf, sub)
		if leaf == 1 {
			r.ECX &^= 1<<21 | 1<<24
		}
		return r
	})
	if ecx := lapic.Lookup(1, 0, 0).ECX; ecx&(1<<21) == 0 || ecx&(1<<24) == 0 {
		t.Errorf("leaf 1 ECX %#x lacks x2APIC or TSC deadline", ecx)
	}
}

// TestCPUIDKVMCompatible checks the signature Linux's hypervisor scan
// looks for (0x40000000 to 0x4000FF00 in steps of 0x100), and that the
// BigIron leaves stay first.
func TestCPUIDKVMCompatible(t *testing.T) {
	find := func(p *CPUIDPolicy, sig string) uint32 {
		for base := uint32(0x40000000); base < 0x40010000; base += 0x100 {
			r := p.Lookup(base, 0, 0)
			var b [12]byte
			for i, v := range []uint32{r.EBX, r.ECX, r.EDX} {
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			}
			if string(b[:]) == sig {
				return base
			}
		}
		return 0
	}
	on, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000, KVMCompatible: true}, fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	off, _ := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000}, fakeHost)
	const kvm = "KVMKVMKVM\x00\x00\x00"
	if got := find(on, kvm); got != LeafKVMCompat {
		t.Errorf("KVM signature at %#x, want %#x", got, LeafKVMCompat)
	}
	if got := find(off, kvm); got != 0 {
		t.Errorf("KVM signature at %#x without the option", got)
	}
	if got := find(on, HypervisorVendor); got != LeafHypervisor {
		t.Errorf("BigIron signature at %#x", got)
	}
	if r := on.Lookup(LeafKVMCompatFeatures, 0, 0); r != (CPUIDResult{}) {
		t.Errorf("KVM features leaf %+v, want none", r)
	}
	if r := on.Lookup(LeafKVMCompat, 0, 0); r.EAX != LeafKVMCompatFeatures {
		t.Errorf("KVM max leaf %#x", r.EAX)
	}
}

// xsaveHost is a processor with XSAVE (leaf 1 ECX bit 26) and the state
// components x87, SSE, AVX, AVX-512 and PKRU at Intel's offsets, and
// every XSAVE instruction.
func xsaveHost(leaf, sub uint32) CPUIDResult {
	switch {
	case leaf == 1:
		r := fakeHost(leaf, sub)
		r.ECX |= 1 << 26
		return r
	case leaf == 0xD && sub == 0:
		return CPUIDResult{EAX: 0x2E7, EBX: 2696, ECX: 2696}
	case leaf == 0xD && sub == 1:
		return CPUIDResult{EAX: 0x1F, EBX: 2696, ECX: 0x1900}
	case leaf == 0xD && sub == 2:
		return CPUIDResult{EAX: 256, EBX: 576}
	case leaf == 0xD && sub == 5:
		return CPUIDResult{EAX: 64, EBX: 1088, ECX: 2}
	case leaf == 0xD && sub == 9:
		return CPUIDResult{EAX: 8, EBX: 2688}
	}
	return fakeHost(leaf, sub)
}

func TestCPUIDPolicyXSAVE(t *testing.T) {
	p, err := NewCPUIDPolicy(CPUIDConfig{TSCKHz: 2_400_000}, xsaveHost)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.XCR0Offered(); got != 7 {
		t.Fatalf("XCR0Offered = %#x, want x87|SSE|AVX", got)
	}
	if r := p.Lookup(0xD, 0, 0); r.EAX != 7 || r.EDX != 0 || r.ECX != 832 {
		t.Errorf("leaf 0xD/0 = %+v, want EAX 7 and ECX 832 (AVX ends at 576+256)", r)
	}
	if r := p.Lookup(0xD, 1, 0); r.EAX != 7 || r.ECX != 0 || r.EDX != 0 {
		t.Errorf("leaf 0xD/1 = %+v, want XSAVEOPT, XSAVEC, XGETBV1 only, no XSS bits", r)
	}
	for _, sub := range []uint32{5, 9} {
		if r := p.Lookup(0xD, sub, 0); r != (CPUIDResult{}) {
			t.Errorf("leaf 0xD/%d = %+v for a component not offered", sub, r)
		}
	}
	if r := p.Lookup(0xD, 2, 0); r.EAX != 256 || r.EBX != 576 {
		t.Errorf("leaf 0xD/2 = %+v, want the host's AVX place", r)
	}
	for _, c := range []struct {
		sub        uint32
		xcr0       uint64
		wantEBX    uint32
		whatFormat string
	}{
		{0, 1, 576, "standard"}, {0, 3, 576, "standard"}, {0, 7, 832, "standard"},
		{1, 3, 576, "compacted"}, {1, 7, 832, "compacted"},
	} {
		if r := p.GuestBits(p.Lookup(0xD, c.sub, 0), 0xD, c.sub, 0, c.xcr0); r.EBX != c.wantEBX {
			t.Errorf("XCR0 %#x: %s size %d, want %d", c.xcr0, c.whatFormat, r.EBX, c.wantEBX)
		}
	}
	// OSXSAVE follows CR4.OSXSAVE.
	if r := p.GuestBits(p.Lookup(1, 0, 0), 1, 0, 0, 1); r.ECX&(1<<27) != 0 || r.ECX&(1<<26) == 0 {
		t.Errorf("leaf 1 ECX %#x with CR4.OSXSAVE clear: want XSAVE without OSXSAVE", r.ECX)
	}
	if r := p.GuestBits(p.Lookup(1, 0, 0), 1, 0, 1<<18, 1); r.ECX&(1<<27) == 0 {
		t.Errorf("leaf 1 ECX %#x with CR4.OSXSAVE set: want OSXSAVE", r.ECX)
	}
	for _, c := range []struct {
		ecx  uint32
		v    uint64
		want bool
	}{
		{0, 1, true}, {0, 3, true}, {0, 7, true},
		{1, 7, false},     // only XCR0 exists
		{0, 0, false},     // x87 cannot be turned off
		{0, 6, false},     // nor here
		{0, 5, false},     // AVX without SSE
		{0, 0xE7, false},  // AVX-512 is not offered
		{0, 0x203, false}, // nor PKRU
		{0, 1 << 63, false},
	} {
		if got := p.ValidXCR0(c.ecx, c.v); got != c.want {
			t.Errorf("ValidXCR0(%d, %#x) = %v, want %v", c.ecx, c.v, got, c.want)
		}
	}
	// A host without XSAVE, or FXSAVEOnly, offers none.
	for name, q := range map[string]*CPUIDPolicy{
		"no XSAVE": mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000}, func(leaf, sub uint32) CPUIDResult {
			r := xsaveHost(leaf, sub)
			if leaf == 1 {
				r.ECX &^= 1 << 26
			}
			return r
		}),
		"FXSAVEOnly": mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000, FXSAVEOnly: true}, xsaveHost),
	} {
		if q.XCR0Offered() != 0 || q.ValidXCR0(0, 1) || q.Lookup(0xD, 0, 0) != (CPUIDResult{}) {
			t.Errorf("%s: XCR0Offered %#x, leaf 0xD %+v: want no XSAVE", name, q.XCR0Offered(), q.Lookup(0xD, 0, 0))
		}
	}
}

// TestCPUIDPolicyPKU checks the PKU option: protection keys and the PKRU
// state component are offered only where asked for and the host has
// them, OSPKE follows the vCPU's CR4.PKE, and the host's own OSPKE never
// shows.
func TestCPUIDPolicyPKU(t *testing.T) {
	pkuHost := func(leaf, sub uint32) CPUIDResult {
		r := xsaveHost(leaf, sub)
		if leaf == 7 && sub == 0 {
			r.ECX |= 1<<3 | 1<<4 // PKU, and OSPKE as the host's CR4 has it
		}
		return r
	}
	p := mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000, PKU: true}, pkuHost)
	if !p.PKU() {
		t.Fatal("PKU not offered on a host with PKU")
	}
	if r := p.Lookup(7, 0, 0); r.ECX&(1<<3) == 0 || r.ECX&(1<<4) != 0 {
		t.Errorf("leaf 7 ECX %#x: want PKU without OSPKE", r.ECX)
	}
	if got := p.XCR0Offered(); got != 0x207 {
		t.Errorf("XCR0Offered = %#x, want x87|SSE|AVX|PKRU", got)
	}
	if !p.ValidXCR0(0, 0x203) || !p.ValidXCR0(0, 0x207) {
		t.Error("XCR0 with PKRU refused")
	}
	if r := p.Lookup(0xD, 9, 0); r.EAX != 8 || r.EBX != 2688 {
		t.Errorf("leaf 0xD/9 = %+v, want the host's PKRU place", r)
	}
	if got := p.XSAVESize(0x207); got != 2696 {
		t.Errorf("XSAVE area for x87|SSE|AVX|PKRU: %d bytes, want 2696", got)
	}
	r := p.Lookup(7, 0, 0)
	if g := p.GuestBits(r, 7, 0, 1<<22, 1); g.ECX&(1<<4) == 0 {
		t.Errorf("leaf 7 ECX %#x with CR4.PKE set: want OSPKE", g.ECX)
	}
	if g := p.GuestBits(r, 7, 0, 0, 1); g.ECX&(1<<4) != 0 {
		t.Errorf("leaf 7 ECX %#x with CR4.PKE clear: want no OSPKE", g.ECX)
	}
	for name, q := range map[string]*CPUIDPolicy{
		"not asked":  mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000}, pkuHost),
		"FXSAVEOnly": mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000, PKU: true, FXSAVEOnly: true}, pkuHost),
		"host lacks": mustPolicy(t, CPUIDConfig{TSCKHz: 2_400_000, PKU: true}, xsaveHost),
	} {
		r := q.Lookup(7, 0, 0)
		if q.PKU() || r.ECX&(3<<3) != 0 || q.XCR0Offered()&(1<<9) != 0 {
			t.Errorf("%s: PKU %v, leaf 7 ECX %#x, XCR0Offered %#x: want no protection keys", name, q.PKU(), r.ECX, q.XCR0Offered())
		}
		if g := q.GuestBits(r, 7, 0, 1<<22, 1); g.ECX&(1<<4) != 0 {
			t.Errorf("%s: OSPKE without PKU", name)
		}
	}
}

// TestCPUIDPolicyPKS checks that HideUnvirtualized hides supervisor
// protection keys unless the PKS option keeps them, and that PKS offers
// nothing the host lacks.
func TestCPUIDPolicyPKS(t *testing.T) {
	pksHost := func(leaf, sub uint32) CPUIDResult {
		r := xsaveHost(leaf, sub)
		if leaf == 7 && sub == 0 {
			r.ECX |= 1 << 31
		}
		return r
	}
	for _, c := range []struct {
		name string
		cfg  CPUIDConfig
		host HostCPUID
		want bool
	}{
		{"hidden", CPUIDConfig{TSCKHz: 2_400_000, HideUnvirtualized: true}, pksHost, false},
		{"kept", CPUIDConfig{TSCKHz: 2_400_000, HideUnvirtualized: true, PKS: true}, pksHost, true},
		{"host lacks", CPUIDConfig{TSCKHz: 2_400_000, HideUnvirtualized: true, PKS: true}, xsaveHost, false},
	} {
		if got := mustPolicy(t, c.cfg, c.host).Lookup(7, 0, 0).ECX&(1<<31) != 0; got != c.want {
			t.Errorf("%s: PKS offered %v, want %v", c.name, got, c.want)
		}
	}
}

func mustPolicy(t testing.TB, cfg CPUIDConfig, host HostCPUID) *CPUIDPolicy {
	t.Helper()
	p, err := NewCPUIDPolicy(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzXSETBV feeds XSETBV whatever a guest may put in ECX and EDX:EAX:
// the XCR0 it leaves is always the old one or one the processor would
// take (x87 set, AVX only with SSE, offered components only), and only
// then does RIP move.
func FuzzXSETBV(f *testing.F) {
	for _, v := range []uint64{0, 1, 3, 5, 7, 0xE7, 1 << 63} {
		f.Add(uint64(0), v, uint64(3))
	}
	f.Add(uint64(1)<<32, uint64(7), uint64(1))
	p := mustPolicy(f, CPUIDConfig{TSCKHz: 2_400_000}, xsaveHost)
	d := Dispatcher{CPUID: p, IO: NewIOBus(), MSR: NewMSRTable()}
	f.Fuzz(func(t *testing.T, rcx, v, old uint64) {
		old = old&p.XCR0Offered() | 1
		regs := vmx.GuestRegs{RCX: rcx, RAX: v, RDX: v >> 32, XCR0: old}
		a := d.Handle(&Exit{Reason: uint64(vmx.ExitXSETBV), InstructionLength: 3}, &regs)
		x := regs.XCR0
		switch {
		case x == old && a.Kind == ActionInject && a.AdvanceRIP == 0:
		case a.Kind == ActionResume && a.AdvanceRIP == 3 && x == v&0xFFFFFFFF|v>>32<<32 && p.ValidXCR0(uint32(rcx), x):
			if x&1 == 0 || x&^p.XCR0Offered() != 0 || x&4 != 0 && x&2 == 0 {
				t.Fatalf("XCR0 %#x taken", x)
			}
		default:
			t.Fatalf("XSETBV(%#x, %#x) from %#x: %+v, XCR0 %#x", rcx, v, old, a, x)
		}
	})
}
