package exits

import (
	"fmt"
	"sort"
)

// CPUIDResult is what CPUID returns in EAX, EBX, ECX and EDX.
type CPUIDResult struct {
	EAX, EBX, ECX, EDX uint32
}

// HostCPUID executes (or, in tests, replays) CPUID on the host.
type HostCPUID func(leaf, subleaf uint32) CPUIDResult

// HypervisorVendor is the vendor signature of CPUID leaf 0x40000000
// (EBX, ECX, EDX): "BigIronBigIr".
const HypervisorVendor = "BigIronBigIr"

// CPUID leaves the policy writes itself.
const (
	LeafVendor         = 0x0
	LeafFeatures       = 0x1
	LeafCacheParams    = 0x4
	LeafMonitor        = 0x5
	LeafPower          = 0x6
	LeafExtFeatures    = 0x7
	LeafPerfMon        = 0xA
	LeafTopology       = 0xB
	LeafXSAVE          = 0xD
	LeafSGX            = 0x12
	LeafPT             = 0x14
	LeafTSC            = 0x15
	LeafFrequency      = 0x16
	LeafTopologyV2     = 0x1F
	LeafHypervisor     = 0x40000000
	LeafHypervisorInfo = 0x40000001
	LeafHypervisorTime = 0x40000010 // TSC and LAPIC timer kHz, as VMware and KVM define it
	LeafExtMax         = 0x80000000
	// LeafExtProcFeatures is AMD's extended features (Fn8000_0001),
	// whose EDX repeats leaf 1's APIC flag (AMD APM Vol. 3, E.4.2).
	LeafExtProcFeatures = 0x80000001
)

// Feature bits the policy changes (SDM Vol. 2A, CPUID, Tables 3-10/3-11).
const (
	Leaf1ECXMonitor    = 1 << 3
	Leaf1ECXVMX        = 1 << 5
	Leaf1ECXSMX        = 1 << 6
	Leaf1ECXEST        = 1 << 7
	Leaf1ECXTM2        = 1 << 8
	Leaf1ECXPDCM       = 1 << 15
	Leaf1ECXHypervisor = 1 << 31
	Leaf1EDXAPIC       = 1 << 9 // on-chip APIC, cleared while IA32_APIC_BASE.EN is 0
	Leaf1EDXACPI       = 1 << 22
	Leaf1EDXTM         = 1 << 29
	Leaf1EDXHTT        = 1 << 28
	// Leaf6EAXARAT: the APIC timer runs at a constant rate in every
	// C-state (SDM Vol. 2A, CPUID leaf 06H EAX bit 2; Vol. 3A, 10.5.4
	// "APIC Timer"; AMD APM Vol. 3, Appendix E, Fn0000_0006_EAX). The
	// hyperkernel's LAPIC timer is a host deadline that no guest idle
	// state stops. Without the bit Linux takes the LAPIC timer for one
	// that stops in deep C-states and, with no broadcast timer (the
	// guest has no HPET), never leaves periodic ticks: no tickless idle,
	// no nohz_full, no high-resolution timers. (Linux sets it itself on
	// AMD families above 0x11; under QEMU's -cpu max it did not.)
	Leaf6EAXARAT    = 1 << 2
	Leaf7EBXSGX     = 1 << 2
	Leaf7EBXPT      = 1 << 25
	Leaf7ECXWAITPKG = 1 << 5
	leaf7ECXLA57    = 1 << 16 // 57-bit linear addresses, 5-level paging
	Leaf7ECXSGXLC   = 1 << 30
	Leaf7ECXPKS     = 1 << 31 // supervisor protection keys (IA32_PKRS)
	leaf7ECXRDPID   = 1 << 22 // RDPID: reads IA32_TSC_AUX
)

// CPUIDConfig configures the guest-visible CPUID.
type CPUIDConfig struct {
	// MaxBasicLeaf caps leaf 0's EAX; 0 means 0x16 (the TSC leaves must
	// be visible).
	MaxBasicLeaf uint32
	// TSCKHz is the guest TSC frequency reported by leaves 0x15, 0x16 and
	// 0x40000010. Required.
	TSCKHz uint32
	// CrystalHz is the crystal clock reported by leaf 0x15; 0 means the
	// TSC frequency itself (or an integer fraction of it where that
	// does not fit in 32 bits), so that the ratio is 1 (or that
	// integer). Leaf 0x15 reports EBX/EAX = TSCKHz/(CrystalHz/1000), exact,
	// in lowest terms.
	CrystalHz uint32
	// LAPICKHz is the LAPIC timer frequency reported in leaf 0x40000010.
	LAPICKHz uint32
	// VCPUs is the number of vCPUs, for the topology fields.
	VCPUs uint32
	// EmulatedAPIC advertises the x2APIC and the TSC-deadline timer of
	// the hyperkernel's local APIC model (leaf 1 ECX bits 21 and 24).
	EmulatedAPIC bool
	// FXSAVEOnly hides XSAVE and every feature whose register state only
	// XSAVE manages (AVX and its VEX/EVEX relatives, MPX, PKU): for
	// guests whose FPU state the hypervisor switches with FXSAVE.
	// Without it, XSAVE is offered with the x87, SSE and AVX state
	// components (XCR0Offered), and the features of the others (MPX,
	// AVX-512, PKU, AMX) are hidden.
	FXSAVEOnly bool
	// PKU offers protection keys for user pages where the host has them
	// (CPUID.7.0:ECX.PKU, with OSPKE following the vCPU's CR4.PKE, see
	// GuestBits) and their XSAVE state component (PKRU, XCR0 bit 9):
	// for hypervisors that give each vCPU its own PKRU across entries
	// and exits. Ignored with FXSAVEOnly.
	PKU bool
	// PKS keeps supervisor protection keys (CPUID.7.0:ECX.PKS) where the
	// host has them, which HideUnvirtualized otherwise hides: for
	// hypervisors that give each vCPU its own IA32_PKRS, loaded into
	// the core while the guest runs.
	PKS bool
	// HideUnvirtualized hides features that would reach hardware the
	// hypervisor does not virtualise or that raise #UD in VMX non-root
	// operation unless a control enables them: RDTSCP, INVPCID, machine
	// check architecture, TSC_ADJUST, the speculation-control and
	// architectural-capabilities MSRs, resource director technology,
	// debug store.
	HideUnvirtualized bool
	// TSCAux says the hypervisor gives every vCPU its own IA32_TSC_AUX,
	// so that RDTSCP and RDPID, which read it, are offered even with
	// HideUnvirtualized.
	TSCAux bool
	// KVMCompatible adds a second hypervisor leaf range at 0x40000100
	// with KVM's signature and no paravirtual features (leaf 0x40000101
	// all zeros). Linux scans 0x40000000-0x4000FF00 for that signature,
	// and a guest that finds it keeps the x2APIC on without interrupt
	// remapping (x2apic_available), which an x2APIC-only local APIC
	// model needs; nothing else changes, as no feature is offered.
	KVMCompatible bool
}

// KVM-compatible leaves (Linux Documentation/virt/kvm/x86/cpuid.rst).
const (
	LeafKVMCompat         = 0x40000100
	LeafKVMCompatFeatures = 0x40000101
	kvmSignature          = "KVMKVMKVM\x00\x00\x00"
)

// Feature bits hidden by CPUIDConfig's options (SDM Vol. 2A, CPUID,
// Tables 3-10, 3-11 and the leaf 07H description).
const (
	leaf1ECXFMA         = 1 << 12
	leaf1ECXDCA         = 1 << 18
	leaf1ECXX2APIC      = 1 << 21
	leaf1ECXTSCDeadline = 1 << 24
	Leaf1ECXXSAVE       = 1 << 26 // XSAVE, XRSTOR, XSETBV, XGETBV and XCR0
	leaf1ECXOSXSAVE     = 1 << 27
	leaf1ECXAVX         = 1 << 28
	leaf1ECXF16C        = 1 << 29
	leaf1EDXMCE         = 1 << 7
	leaf1EDXMCA         = 1 << 14
	leaf1EDXDS          = 1 << 21
	leaf1EDXPBE         = 1 << 31

	leaf7EBXTSCAdjust = 1 << 1
	leaf7EBXAVX2      = 1 << 5
	leaf7EBXINVPCID   = 1 << 10
	leaf7EBXRDTM      = 1 << 12
	leaf7EBXMPX       = 1 << 14
	leaf7EBXRDTA      = 1 << 15
	// AVX-512 F, DQ, IFMA, PF, ER, CD, BW, VL.
	leaf7EBXAVX512 = 1<<16 | 1<<17 | 1<<21 | 1<<26 | 1<<27 | 1<<28 | 1<<30 | 1<<31
	// PKU, OSPKE; AVX-512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ; VAES,
	// VPCLMULQDQ (VEX-encoded forms need AVX state).
	leaf7ECXXSAVEState = 1<<3 | 1<<4 | 1<<1 | 1<<6 | 1<<11 | 1<<12 | 1<<14 | 1<<9 | 1<<10
	// AVX-512 4VNNIW, 4FMAPS; AMX and AVX-512 FP16 (bits 22-24).
	leaf7EDXXSAVEState = 1<<2 | 1<<3 | 1<<22 | 1<<23 | 1<<24
	// VAES and VPCLMULQDQ: their VEX forms need only AVX state.
	leaf7ECXAVXState = 1<<9 | 1<<10
	// Leaf 7 subleaf 1: AVX-VNNI, AVX-IFMA (EAX) and AVX-VNNI-INT8,
	// AVX-NE-CONVERT, AVX-VNNI-INT16 (EDX) need AVX state;
	// AVX512-BF16, AMX-FP16 (EAX), AMX-COMPLEX and AVX10 (EDX) AVX-512
	// or AMX state.
	leaf7s1EAXAVXState   = 1<<4 | 1<<23
	leaf7s1EDXAVXState   = 1<<4 | 1<<5 | 1<<10
	leaf7s1EAXBeyondAVX  = 1<<5 | 1<<21
	leaf7s1EDXBeyondAVX  = 1<<8 | 1<<19
	Leaf7ECXPKU          = 1 << 3 // protection keys for user pages
	leaf7ECXOSPKE        = 1 << 4
	xsaveS1EAXOffered    = 1<<0 | 1<<1 | 1<<2 // XSAVEOPT, XSAVEC, XGETBV with ECX=1
	xsaveCompAligned     = 1 << 1             // subleaf i ECX: aligned to 64 bytes when compacted
	xsaveLegacyAndHeader = 576
	xcr0Offered          = 1<<0 | 1<<1 | 1<<2 // x87, SSE, AVX (SDM Vol. 1, 13.1)
	xcr0X87, xcr0SSE     = 1 << 0, 1 << 1
	xcr0AVX              = 1 << 2
	xcr0PKRU             = 1 << 9
	// IBRS/IBPB, STIBP, L1D_FLUSH, IA32_ARCH_CAPABILITIES,
	// IA32_CORE_CAPABILITIES, SSBD.
	leaf7EDXSpecCtrl = 1<<26 | 1<<27 | 1<<28 | 1<<29 | 1<<30 | 1<<31

	extEDXRDTSCP = 1 << 27
)

type cpuidKey struct{ leaf, sub uint32 }

type cpuidEntry struct {
	key cpuidKey
	res CPUIDResult
	// indexed: subleaf matters; otherwise any subleaf returns res.
	indexed bool
}

// CPUIDPolicy is the hyperkernel-defined CPUID the guest sees. It is built
// once from the host's CPUID and a configuration, and then read
// concurrently by all vCPUs without locks or allocation.
type CPUIDPolicy struct {
	cfg      CPUIDConfig
	entries  []cpuidEntry // sorted by key
	maxBasic uint32
	maxExt   uint32
	// xcr0 is the state components offered (XCR0Offered), xsaveComp
	// where each lies in an XSAVE area.
	xcr0      uint64
	xsaveComp [64]xsaveComponent
}

// xsaveComponent is a state component's place in an XSAVE area (CPUID
// leaf 0xD subleaf i): its size, its offset in standard format, and
// whether the compacted format aligns it to 64 bytes.
type xsaveComponent struct {
	size, offset uint32
	aligned      bool
}

// NewCPUIDPolicy builds the policy. It executes host CPUID for the leaves
// it passes through (filtered) and computes the rest.
func NewCPUIDPolicy(cfg CPUIDConfig, host HostCPUID) (*CPUIDPolicy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &CPUIDPolicy{cfg: cfg}
	p.addBasicLeaves(host)
	p.addHypervisorLeaves()
	p.addExtendedLeaves(host)
	sort.Slice(p.entries, func(i, j int) bool {
		a, b := p.entries[i].key, p.entries[j].key
		return a.leaf < b.leaf || a.leaf == b.leaf && a.sub < b.sub
	})
	return p, nil
}

// withDefaults returns cfg with its zero fields defaulted (see
// CPUIDConfig), or an error if it cannot be honoured.
func (cfg CPUIDConfig) withDefaults() (CPUIDConfig, error) {
	if cfg.TSCKHz == 0 {
		return cfg, fmt.Errorf("cpuid policy: TSC frequency not configured")
	}
	if cfg.MaxBasicLeaf == 0 {
		cfg.MaxBasicLeaf = LeafFrequency
	}
	if cfg.MaxBasicLeaf < LeafFrequency {
		return cfg, fmt.Errorf("cpuid policy: max basic leaf %#x hides the TSC leaves 0x15/0x16", cfg.MaxBasicLeaf)
	}
	if cfg.CrystalHz == 0 {
		cfg.CrystalHz = defaultCrystal(cfg.TSCKHz)
	}
	if cfg.CrystalHz%1000 != 0 {
		return cfg, fmt.Errorf("cpuid policy: crystal %d Hz is not a whole number of kHz", cfg.CrystalHz)
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.VCPUs > 255 {
		return cfg, fmt.Errorf("cpuid policy: %d vCPUs exceed the 8-bit APIC ID fields", cfg.VCPUs)
	}
	return cfg, nil
}

// add appends an entry; indexed entries answer only their own subleaf.
func (p *CPUIDPolicy) add(leaf, sub uint32, indexed bool, r CPUIDResult) {
	p.entries = append(p.entries, cpuidEntry{key: cpuidKey{leaf, sub}, res: r, indexed: indexed})
}

// addBasicLeaves adds leaf 0 (the host's vendor, the maximum basic leaf
// capped by the configuration but never below the TSC leaves the policy
// synthesises) and every basic leaf up to that maximum.
func (p *CPUIDPolicy) addBasicLeaves(host HostCPUID) {
	h0 := host(0, 0)
	p.maxBasic = min(h0.EAX, p.cfg.MaxBasicLeaf)
	if p.maxBasic < LeafFrequency {
		p.maxBasic = LeafFrequency // leaves we synthesise exist even if the host lacks them
	}
	p.add(LeafVendor, 0, false, CPUIDResult{EAX: p.maxBasic, EBX: h0.EBX, ECX: h0.ECX, EDX: h0.EDX})
	for leaf := uint32(1); leaf <= p.maxBasic; leaf++ {
		p.addBasicLeaf(leaf, host)
	}
}

// addBasicLeaf adds basic leaf 1 to maxBasic: filtered from the host's,
// computed from the configuration, hidden, left to Lookup (topology) or
// passed through.
func (p *CPUIDPolicy) addBasicLeaf(leaf uint32, host HostCPUID) {
	switch leaf {
	case LeafFeatures:
		p.add(leaf, 0, false, p.features(host(leaf, 0)))
	case LeafCacheParams:
		p.addCacheParams(host)
	case LeafExtFeatures:
		p.addExtFeatures(host)
	case LeafXSAVE:
		p.addXSAVE(host)
	case LeafTopology, LeafTopologyV2:
		// Computed per vCPU in Lookup.
	case LeafPower:
		// Power and thermal management hidden; the one fact
		// offered is the LAPIC timer's (as KVM offers it).
		p.add(leaf, 0, false, CPUIDResult{EAX: Leaf6EAXARAT})
	case LeafMonitor, LeafPerfMon, LeafSGX, LeafPT:
		p.add(leaf, 0, false, CPUIDResult{}) // hidden: not virtualised
	case LeafTSC:
		p.add(leaf, 0, false, p.tscRatio())
	case LeafFrequency:
		mhz := p.cfg.TSCKHz / 1000
		p.add(leaf, 0, false, CPUIDResult{EAX: mhz, EBX: mhz, ECX: 100})
	default:
		p.add(leaf, 0, false, host(leaf, 0))
	}
}

// features filters the host's leaf 1: no VMX, SMX, MONITOR, power or
// thermal management, the hypervisor bit set, the vCPU count as the
// package's logical processors (the APIC ID is filled per vCPU by
// Lookup), and the configuration's options applied.
func (p *CPUIDPolicy) features(r CPUIDResult) CPUIDResult {
	r.ECX &^= Leaf1ECXVMX | Leaf1ECXSMX | Leaf1ECXMonitor | Leaf1ECXEST | Leaf1ECXTM2 | Leaf1ECXPDCM
	r.ECX |= Leaf1ECXHypervisor
	r.EDX &^= Leaf1EDXACPI | Leaf1EDXTM
	r.EDX |= Leaf1EDXHTT
	// EBX[23:16] logical processors per package; [31:24] APIC ID is
	// filled per vCPU by Lookup.
	r.EBX = r.EBX&0x0000FFFF | (p.cfg.VCPUs&0xFF)<<16
	if p.cfg.EmulatedAPIC {
		r.ECX |= leaf1ECXX2APIC | leaf1ECXTSCDeadline
	}
	// OSXSAVE is CR4.OSXSAVE, the vCPU's (GuestBits)
	r.ECX &^= leaf1ECXOSXSAVE
	if p.cfg.FXSAVEOnly {
		r.ECX &^= Leaf1ECXXSAVE | leaf1ECXAVX | leaf1ECXF16C | leaf1ECXFMA
	}
	if p.cfg.HideUnvirtualized {
		r.ECX &^= leaf1ECXDCA
		r.EDX &^= leaf1EDXMCE | leaf1EDXMCA | leaf1EDXDS | leaf1EDXPBE
	}
	return r
}

// addCacheParams adds the host's cache subleaves of leaf 4, up to the
// first null one (included), with the core and sharing counts of a
// package of VCPUs single-threaded cores.
func (p *CPUIDPolicy) addCacheParams(host HostCPUID) {
	for sub := uint32(0); sub < 16; sub++ {
		r := host(LeafCacheParams, sub)
		if r.EAX&0x1F == 0 {
			p.add(LeafCacheParams, sub, true, CPUIDResult{})
			return
		}
		// EAX[31:26]: cores per package - 1; EAX[25:14]: threads
		// sharing the cache - 1. One thread per core.
		r.EAX = r.EAX&0x3FFF | (p.cfg.VCPUs-1)<<26
		p.add(LeafCacheParams, sub, true, r)
	}
}

// addExtFeatures adds leaf 7: subleaf 0 without SGX, processor trace and
// WAITPKG and with the configuration's options applied, and the host's
// subleaves 1 and 2 where it has them.
func (p *CPUIDPolicy) addExtFeatures(host HostCPUID) {
	r := host(LeafExtFeatures, 0)
	maxSub := min(r.EAX, 2)
	r.EAX = maxSub
	r.EBX &^= Leaf7EBXSGX | Leaf7EBXPT
	r.ECX &^= Leaf7ECXWAITPKG | Leaf7ECXSGXLC
	// beyond AVX state (MPX, AVX-512, PKU, AMX) always; AVX too with
	// FXSAVEOnly
	r.EBX &^= leaf7EBXMPX | leaf7EBXAVX512
	r.ECX &^= leaf7ECXXSAVEState &^ leaf7ECXAVXState
	r.EDX &^= leaf7EDXXSAVEState
	if p.pkuOffered(host) {
		r.ECX |= Leaf7ECXPKU // OSPKE: GuestBits
	}
	if p.cfg.FXSAVEOnly {
		r.EBX &^= leaf7EBXAVX2
		r.ECX &^= leaf7ECXAVXState
	}
	if p.cfg.HideUnvirtualized {
		r.EBX &^= leaf7EBXTSCAdjust | leaf7EBXINVPCID | leaf7EBXRDTM | leaf7EBXRDTA
		// 5-level paging: the hyperkernel walks the guest's page
		// tables (device emulation fetches at RIP) with 4 levels
		r.ECX &^= leaf7ECXLA57
		// Supervisor protection keys, unless the hypervisor gives
		// each vCPU its own IA32_PKRS (PKS).
		if !p.cfg.PKS {
			r.ECX &^= Leaf7ECXPKS
		}
		r.EDX &^= leaf7EDXSpecCtrl
		if !p.cfg.TSCAux {
			r.ECX &^= leaf7ECXRDPID
		}
	}
	p.add(LeafExtFeatures, 0, true, r)
	for sub := uint32(1); sub <= maxSub; sub++ {
		r := host(LeafExtFeatures, sub)
		if sub == 1 {
			r.EAX &^= leaf7s1EAXBeyondAVX
			r.EDX &^= leaf7s1EDXBeyondAVX
			if p.cfg.FXSAVEOnly {
				r.EAX &^= leaf7s1EAXAVXState
				r.EDX &^= leaf7s1EDXAVXState
			}
		}
		p.add(LeafExtFeatures, sub, true, r)
	}
}

// addXSAVE adds leaf 0xD: zeros when FXSAVEOnly hides XSAVE or the host
// has none. Otherwise the state components offered are those of
// xcr0Offered the host has (subleaf 0 EDX:EAX, with the size of them all
// in ECX; EBX follows the vCPU's XCR0, see GuestBits); subleaf 1 offers
// XSAVEOPT, XSAVEC and XGETBV with ECX=1, not XSAVES (IA32_XSS is not
// virtualized) nor XFD; and each offered component above SSE has the
// host's subleaf (Intel SDM Vol. 1, 13.2 "Enumeration of CPU Support for
// XSAVE Instructions and XSAVE-Supported Features").
func (p *CPUIDPolicy) addXSAVE(host HostCPUID) {
	h0 := host(LeafXSAVE, 0)
	offerable := uint64(xcr0Offered)
	if p.pkuOffered(host) {
		offerable |= xcr0PKRU
	}
	offered := (uint64(h0.EDX)<<32 | uint64(h0.EAX)) & offerable
	if p.cfg.FXSAVEOnly || host(LeafFeatures, 0).ECX&Leaf1ECXXSAVE == 0 || offered&(xcr0X87|xcr0SSE) != xcr0X87|xcr0SSE {
		p.add(LeafXSAVE, 0, false, CPUIDResult{})
		return
	}
	if offered&xcr0AVX != 0 {
		if r := host(LeafXSAVE, 2); r.EAX == 0 || r.EBX < xsaveLegacyAndHeader {
			offered &^= xcr0AVX // a component without a place in the area
		}
	}
	for i := uint32(2); i < 64; i++ {
		if offered&(1<<i) != 0 {
			r := host(LeafXSAVE, i)
			p.add(LeafXSAVE, i, true, r)
			p.xsaveComp[i] = xsaveComponent{size: r.EAX, offset: r.EBX, aligned: r.ECX&xsaveCompAligned != 0}
		}
	}
	p.xcr0 = offered
	h1 := host(LeafXSAVE, 1)
	p.add(LeafXSAVE, 0, true, CPUIDResult{EAX: uint32(offered), EDX: uint32(offered >> 32), ECX: uint32(p.XSAVESize(offered))})
	p.add(LeafXSAVE, 1, true, CPUIDResult{EAX: h1.EAX & xsaveS1EAXOffered})
}

// pkuOffered reports whether the policy offers protection keys: the
// configuration asks for them, XSAVE state is not hidden, and the host
// has them.
func (p *CPUIDPolicy) pkuOffered(host HostCPUID) bool {
	return p.cfg.PKU && !p.cfg.FXSAVEOnly && host(0, 0).EAX >= LeafExtFeatures &&
		host(LeafExtFeatures, 0).ECX&Leaf7ECXPKU != 0
}

// PKU reports whether the policy offers protection keys (CPUIDConfig.PKU
// on a host that has them): the vCPU's PKRU must then be its own.
func (p *CPUIDPolicy) PKU() bool {
	r, _ := p.find(LeafExtFeatures, 0)
	return r.ECX&Leaf7ECXPKU != 0
}

// XCR0Offered returns the XCR0 bits a guest may set: 0 when XSAVE is
// hidden.
func (p *CPUIDPolicy) XCR0Offered() uint64 { return p.xcr0 }

// XSAVESize returns the size of an XSAVE area in standard format that
// holds the state components of xcr0 (SDM Vol. 1, 13.4.3): the legacy
// region and header, then each component above SSE at its offset.
func (p *CPUIDPolicy) XSAVESize(xcr0 uint64) int {
	size := xsaveLegacyAndHeader
	for i := uint32(2); i < 64; i++ {
		if c := p.xsaveComp[i]; xcr0&p.xcr0&(1<<i) != 0 {
			size = max(size, int(c.offset)+int(c.size))
		}
	}
	return size
}

// xsaveCompactedSize is the size of an XSAVE area in compacted format
// (XSAVEC) that holds the components of xcr0: each above SSE in turn,
// aligned to 64 bytes where its subleaf says so (SDM Vol. 1, 13.4.3).
func (p *CPUIDPolicy) xsaveCompactedSize(xcr0 uint64) int {
	size := xsaveLegacyAndHeader
	for i := uint32(2); i < 64; i++ {
		if c := p.xsaveComp[i]; xcr0&p.xcr0&(1<<i) != 0 {
			if c.aligned {
				size = (size + 63) &^ 63
			}
			size += int(c.size)
		}
	}
	return size
}

// ValidXCR0 reports whether XSETBV may write v to extended control
// register ecx, or takes #GP (SDM Vol. 2C, XSETBV): only XCR0 exists,
// x87 state cannot be turned off, AVX needs SSE, and only offered
// components may be turned on.
func (p *CPUIDPolicy) ValidXCR0(ecx uint32, v uint64) bool {
	return ecx == 0 && v&xcr0X87 != 0 && v&^p.xcr0 == 0 && (v&xcr0AVX == 0 || v&xcr0SSE != 0)
}

// GuestBits sets in r, the policy's answer for leaf and sub, the bits
// that follow the vCPU's own state: CPUID.1:ECX.OSXSAVE is CR4.OSXSAVE
// and CPUID.7.0:ECX.OSPKE CR4.PKE (cr4), and leaf 0xD's sizes of the area XCR0's components (xcr0)
// need, in standard (subleaf 0 EBX) and compacted format (subleaf 1
// EBX) (SDM Vol. 2A, CPUID).
func (p *CPUIDPolicy) GuestBits(r CPUIDResult, leaf, sub uint32, cr4, xcr0 uint64) CPUIDResult {
	switch {
	case leaf == LeafFeatures && r.ECX&Leaf1ECXXSAVE != 0 && cr4&cr4OSXSAVE != 0:
		r.ECX |= leaf1ECXOSXSAVE
	case leaf == LeafExtFeatures && sub == 0 && r.ECX&Leaf7ECXPKU != 0 && cr4&cr4PKE != 0:
		r.ECX |= leaf7ECXOSPKE
	case leaf == LeafXSAVE && p.xcr0 != 0 && sub == 0:
		r.EBX = uint32(p.XSAVESize(xcr0))
	case leaf == LeafXSAVE && p.xcr0 != 0 && sub == 1:
		r.EBX = uint32(p.xsaveCompactedSize(xcr0))
	}
	return r
}

// CR4.OSXSAVE and CR4.PKE (SDM Vol. 3A, 2.5).
const (
	cr4OSXSAVE = 1 << 18
	cr4PKE     = 1 << 22
)

// tscRatio is leaf 0x15: the TSC to crystal ratio in lowest terms and the
// crystal's frequency. Linux multiplies the crystal's kHz by EBX in 32
// bits (native_calibrate_tsc), which the unreduced 25000:TSCKHz
// overflowed above 171 MHz.
func (p *CPUIDPolicy) tscRatio() CPUIDResult {
	den, num := p.cfg.CrystalHz/1000, p.cfg.TSCKHz
	g := gcd(den, num)
	return CPUIDResult{EAX: den / g, EBX: num / g, ECX: p.cfg.CrystalHz}
}

// addHypervisorLeaves adds the hypervisor leaves: BigIron's signature,
// no paravirtual features, the TSC and LAPIC timer frequencies, and with
// KVMCompatible the KVM signature range at 0x40000100.
func (p *CPUIDPolicy) addHypervisorLeaves() {
	vendor := []byte(HypervisorVendor)
	p.add(LeafHypervisor, 0, false, CPUIDResult{EAX: LeafHypervisorTime, EBX: le32(vendor[0:]), ECX: le32(vendor[4:]), EDX: le32(vendor[8:])})
	p.add(LeafHypervisorInfo, 0, false, CPUIDResult{})
	p.add(LeafHypervisorTime, 0, false, CPUIDResult{EAX: p.cfg.TSCKHz, EBX: p.cfg.LAPICKHz})
	if p.cfg.KVMCompatible {
		kvm := []byte(kvmSignature)
		p.add(LeafKVMCompat, 0, false, CPUIDResult{EAX: LeafKVMCompatFeatures, EBX: le32(kvm[0:]), ECX: le32(kvm[4:]), EDX: le32(kvm[8:])})
		p.add(LeafKVMCompatFeatures, 0, false, CPUIDResult{})
	}
}

// le32 is the little-endian 32-bit word at the start of b: four
// characters of a signature as CPUID returns them in a register.
func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// addExtendedLeaves adds the extended leaves up to the host's maximum,
// capped at 0x80000008, passed through but for RDTSCP, which
// HideUnvirtualized hides unless TSCAux.
func (p *CPUIDPolicy) addExtendedLeaves(host HostCPUID) {
	he := host(LeafExtMax, 0)
	p.maxExt = min(he.EAX, 0x80000008)
	if p.maxExt < LeafExtMax {
		p.maxExt = LeafExtMax
	}
	p.add(LeafExtMax, 0, false, CPUIDResult{EAX: p.maxExt})
	for leaf := uint32(LeafExtMax + 1); leaf <= p.maxExt; leaf++ {
		r := host(leaf, 0)
		if leaf == LeafExtMax+1 && p.cfg.HideUnvirtualized && !p.cfg.TSCAux {
			r.EDX &^= extEDXRDTSCP
		}
		p.add(leaf, 0, false, r)
	}
}

// Lookup returns the guest-visible CPUID for leaf/subleaf on the vCPU with
// the given APIC ID. Leaves above the maximum basic leaf return the
// maximum basic leaf's values, as Intel processors do; unknown hypervisor
// and extended leaves return zeros. It never allocates.
func (p *CPUIDPolicy) Lookup(leaf, sub, apicID uint32) CPUIDResult {
	switch {
	case leaf == LeafTopology || leaf == LeafTopologyV2:
		if leaf <= p.maxBasic {
			return p.topology(sub, apicID)
		}
	case leaf < LeafHypervisor && leaf > p.maxBasic:
		leaf, sub = p.maxBasic, 0
	case leaf >= LeafExtMax && leaf > p.maxExt:
		return CPUIDResult{}
	}
	r, ok := p.find(leaf, sub)
	if !ok {
		return CPUIDResult{}
	}
	if leaf == LeafFeatures {
		r.EBX = r.EBX&0x00FFFFFF | apicID<<24
	}
	return r
}

func (p *CPUIDPolicy) find(leaf, sub uint32) (CPUIDResult, bool) {
	lo, hi := 0, len(p.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k := p.entries[m].key
		if k.leaf < leaf || k.leaf == leaf && k.sub < sub {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(p.entries) && p.entries[lo].key == (cpuidKey{leaf, sub}) {
		return p.entries[lo].res, true
	}
	// A non-indexed leaf answers every subleaf with subleaf 0's values;
	// an indexed leaf answers unknown subleaves with zeros.
	if lo > 0 && p.entries[lo-1].key.leaf == leaf && !p.entries[lo-1].indexed {
		return p.entries[lo-1].res, true
	}
	if lo < len(p.entries) && p.entries[lo].key.leaf == leaf && !p.entries[lo].indexed {
		return p.entries[lo].res, true
	}
	return CPUIDResult{}, leaf <= p.maxBasic || leaf >= LeafHypervisor
}

// topology answers leaves 0xB/0x1F: one thread per core, all vCPUs cores
// of one package (SDM Vol. 2A, CPUID leaf 0BH).
func (p *CPUIDPolicy) topology(sub, apicID uint32) CPUIDResult {
	coreShift := uint32(0)
	for 1<<coreShift < p.cfg.VCPUs {
		coreShift++
	}
	switch sub {
	case 0: // SMT level
		return CPUIDResult{EAX: 0, EBX: 1, ECX: sub | 1<<8, EDX: apicID}
	case 1: // core level
		return CPUIDResult{EAX: coreShift, EBX: p.cfg.VCPUs, ECX: sub | 2<<8, EDX: apicID}
	}
	return CPUIDResult{ECX: sub & 0xFF, EDX: apicID}
}

// gcd is the greatest common divisor of a and b (not both zero).
func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// defaultCrystal is the crystal frequency leaf 0x15 reports for a TSC of
// tscKHz: the TSC's own frequency divided by the smallest k that makes it
// fit in ECX (32 bits of Hz). With the ratio k:1, Linux's 32-bit
// arithmetic (crystal kHz * EBX / EAX) gives the TSC frequency exactly
// for any TSC the 32-bit kHz field can express.
func defaultCrystal(tscKHz uint32) uint32 {
	for k := uint64(1); ; k++ {
		if uint64(tscKHz)%k == 0 && uint64(tscKHz)/k*1000 <= 0xFFFFFFFF {
			return uint32(uint64(tscKHz) / k * 1000)
		}
	}
}
