package vcpu

// Vec256 is a 256-bit interrupt-vector set such as the local APIC's ISR,
// TMR or IRR: bit v of the set stands for vector v.
type Vec256 [4]uint64

// Has reports whether vector v is in the set.
func (s *Vec256) Has(v uint8) bool { return s[v>>6]&(1<<(v&63)) != 0 }

// Set adds vector v to the set.
func (s *Vec256) Set(v uint8) { s[v>>6] |= 1 << (v & 63) }

// Clear removes vector v from the set.
func (s *Vec256) Clear(v uint8) { s[v>>6] &^= 1 << (v & 63) }

// Highest returns the highest vector in the set, or ok == false when the
// set is empty.
func (s *Vec256) Highest() (v uint8, ok bool) {
	for i := 3; i >= 0; i-- {
		if w := s[i]; w != 0 {
			n := 63
			for w&(1<<n) == 0 {
				n--
			}
			return uint8(i*64 + n), true
		}
	}
	return 0, false
}

// String lists the set's vectors in hex, lowest first ("0x21 0xec"), or
// "-" for an empty set.
func (s *Vec256) String() string {
	var b []byte
	for v := 0; v < 256; v++ {
		if !s.Has(uint8(v)) {
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, '0', 'x', hexDigits[v>>4], hexDigits[v&15])
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"

// LVT indexes LAPIC.LVT: the local vector table entries
// (Intel SDM Vol. 3A, 11.5.1, Figure 11-8).
type LVT int

// Local vector table entries, with their x2APIC MSR addresses
// (Intel SDM Vol. 3A, 11.12.1.2, Table 11-6) in the comments.
const (
	LVTTimer   LVT = iota // MSR 0x832
	LVTCMCI               // MSR 0x82F
	LVTThermal            // MSR 0x833
	LVTPerf               // MSR 0x834
	LVTLINT0              // MSR 0x835
	LVTLINT1              // MSR 0x836
	LVTError              // MSR 0x837

	// NumLVT is the number of LVT entries held in LAPIC.LVT.
	NumLVT = 7
)

var lvtNames = [NumLVT]string{"timer", "CMCI", "thermal", "perf", "LINT0", "LINT1", "error"}

// String returns the entry's name.
func (l LVT) String() string {
	if l < 0 || int(l) >= NumLVT {
		return "LVT(?)"
	}
	return lvtNames[l]
}

// LVT entry bits (Intel SDM Vol. 3A, 11.5.1, Figure 11-8).
const (
	LVTVectorMask        uint32 = 0xFF
	LVTDeliveryModeShift        = 8
	LVTDeliveryModeMask  uint32 = 7 << 8
	LVTDeliveryStatus    uint32 = 1 << 12
	LVTPolarityLow       uint32 = 1 << 13
	LVTRemoteIRR         uint32 = 1 << 14
	LVTTriggerLevel      uint32 = 1 << 15
	LVTMasked            uint32 = 1 << 16
	LVTTimerModeShift           = 17
	LVTTimerModeMask     uint32 = 3 << 17 // 0 one-shot, 1 periodic, 2 TSC-deadline
)

// lvtDefined is, for each LVT entry, the mask of bits that are not
// reserved (Intel SDM Vol. 3A, 11.5.1, Figure 11-8).
var lvtDefined = [NumLVT]uint32{
	LVTTimer:   LVTVectorMask | LVTDeliveryStatus | LVTMasked | LVTTimerModeMask,
	LVTCMCI:    LVTVectorMask | LVTDeliveryModeMask | LVTDeliveryStatus | LVTMasked,
	LVTThermal: LVTVectorMask | LVTDeliveryModeMask | LVTDeliveryStatus | LVTMasked,
	LVTPerf:    LVTVectorMask | LVTDeliveryModeMask | LVTDeliveryStatus | LVTMasked,
	LVTLINT0: LVTVectorMask | LVTDeliveryModeMask | LVTDeliveryStatus | LVTPolarityLow |
		LVTRemoteIRR | LVTTriggerLevel | LVTMasked,
	LVTLINT1: LVTVectorMask | LVTDeliveryModeMask | LVTDeliveryStatus | LVTPolarityLow |
		LVTRemoteIRR | LVTTriggerLevel | LVTMasked,
	LVTError: LVTVectorMask | LVTDeliveryStatus | LVTMasked,
}

// Local APIC register bits (Intel SDM Vol. 3A, chapter 11).
const (
	// IA32_APIC_BASE (11.4.4, Figure 11-5; 11.12.1, Figure 11-26).
	APICBaseBSP     uint64 = 1 << 8
	APICBaseX2APIC  uint64 = 1 << 10 // EXTD: x2APIC mode
	APICBaseEnable  uint64 = 1 << 11 // EN: APIC globally enabled
	APICBaseAddress uint64 = 0x000FFFFFFFFFF000
	apicBaseDefined        = APICBaseBSP | APICBaseX2APIC | APICBaseEnable | APICBaseAddress

	// Spurious-interrupt vector register (11.9, Figure 11-23).
	SVRVector          uint32 = 0xFF
	SVREnable          uint32 = 1 << 8
	SVRFocusDisable    uint32 = 1 << 9
	SVREOIBroadcastOff uint32 = 1 << 12
	svrDefined                = SVRVector | SVREnable | SVRFocusDisable | SVREOIBroadcastOff

	// Task-priority register (11.8.3.1, Figure 11-18).
	tprDefined uint32 = 0xFF
	// Error status register (11.5.3, Figure 11-9).
	esrDefined uint32 = 0xFF
	// Divide configuration register (11.5.4, Figure 11-10): bits 0, 1, 3.
	divideDefined uint32 = 0xB

	// Destination format register (11.6.2.2, Figure 11-14): bits 27:0
	// read as ones; bits 31:28 select the flat (0xF) or cluster (0x0) model.
	DFRFlat    uint32 = 0xFFFFFFFF
	DFRCluster uint32 = 0x0FFFFFFF

	// Interrupt command register as one 64-bit value (11.6.1, Figure
	// 11-12; 11.12.9, Figure 11-28): vector, delivery mode, destination
	// mode, delivery status (xAPIC only), level, trigger mode, shorthand
	// and destination.
	icrDefined uint64 = 0xFFFFFFFF_000CDFFF
)

// LAPIC is the state of a virtual local APIC, modelled on x2APIC
// (Intel SDM Vol. 3A, 11.12). Registers are held at their architectural
// width; the 256-bit ISR, TMR and IRR are Vec256 values.
type LAPIC struct {
	// Base is IA32_APIC_BASE.
	Base uint64
	// ID is the APIC ID as a number: the 32-bit x2APIC ID, or in xAPIC
	// mode the 8-bit ID (not shifted into bits 31:24).
	ID uint32
	// TPR is the task-priority register.
	TPR uint32
	// LDR is the logical destination register. In x2APIC mode it is
	// derived from ID (see X2APICLogicalID).
	LDR uint32
	// DFR is the destination format register (xAPIC mode only; DFRFlat
	// or DFRCluster).
	DFR uint32
	// SVR is the spurious-interrupt vector register.
	SVR uint32
	// ESR is the error status register.
	ESR uint32

	ISR Vec256 // in-service register
	TMR Vec256 // trigger-mode register
	IRR Vec256 // interrupt-request register

	// LVT holds the local vector table, indexed by the LVT constants.
	LVT [NumLVT]uint32

	TimerInitial uint32 // initial-count register
	TimerCurrent uint32 // current-count register at the time of saving
	TimerDivide  uint32 // divide-configuration register

	// ICR is the interrupt command register (64 bits as in x2APIC mode).
	ICR uint64
}

// X2APICLogicalID returns the logical ID that an x2APIC derives from its
// APIC ID (Intel SDM Vol. 3A, 11.12.10.2): cluster ID in bits 31:16 and a
// one-hot position in bits 15:0.
func X2APICLogicalID(id uint32) uint32 {
	return (id>>4)<<16 | 1<<(id&0xF)
}
